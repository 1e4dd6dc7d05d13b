/** BACKUP_SOURCES: several databases in one deployment, each with its own name and MAX_COUNT. */
import { describe, expect, it } from "vitest";
import { configFor, parseConfig, redactedConfig, secretsOf, type Env } from "../src/config.js";
import { BackupError } from "../src/errors.js";

const DEFAULTS = { maxBytes: 4_294_967_296 };
const env = (sources: unknown, extra: Env = {}): Env => ({ S3_BUCKET: "my-bucket", BACKUP_SOURCES: typeof sources === "string" ? sources : JSON.stringify(sources), ...extra });

function problems(e: Env): string {
  try {
    parseConfig(e, DEFAULTS);
  } catch (err) {
    expect(err).toBeInstanceOf(BackupError);
    expect((err as BackupError).code).toBe("CONFIG_INVALID");
    return (err as BackupError).message;
  }
  throw new Error("parseConfig should have thrown");
}

describe("BACKUP_SOURCES", () => {
  it("parses a list: names (given or derived), sources, headers and per-database MAX_COUNT", () => {
    const c = parseConfig(
      env(
        [
          { name: "app", source: "/data/app.db" },
          { source: "https://db.example.com/files/Jobs.sqlite", headers: { Authorization: "Bearer tok-123456" }, maxCount: 30 },
          { name: "media", source: "s3://other-bucket/media.db" },
        ],
        { MAX_COUNT: "9" },
      ),
      DEFAULTS,
    );
    expect(c.databases).toEqual([
      { name: "app", source: { kind: "file", path: "/data/app.db" }, maxCount: 9 },
      { name: "jobs", source: { kind: "url", url: "https://db.example.com/files/Jobs.sqlite", headers: { Authorization: "Bearer tok-123456" } }, maxCount: 30 },
      { name: "media", source: { kind: "s3", bucket: "other-bucket", key: "media.db" }, maxCount: 9 },
    ]);
    // The first is also the top-level one, so single-database code paths keep working.
    expect(c.name).toBe("app");
    const jobs = configFor(c, c.databases[1]!);
    expect(jobs).toMatchObject({ name: "jobs", maxCount: 30, databases: [c.databases[1]] });
    expect(jobs.s3).toBe(c.s3);
  });

  it("BACKUP_SOURCE alone gives a list of one", () => {
    const c = parseConfig({ BACKUP_SOURCE: "/data/app.db", S3_BUCKET: "b-1", MAX_COUNT: "3" }, DEFAULTS);
    expect(c.databases).toEqual([{ name: "app", source: { kind: "file", path: "/data/app.db" }, maxCount: 3 }]);
  });

  it("header values and URL credentials of every entry are secrets: redacted, never echoed", () => {
    const c = parseConfig(env([{ name: "a", source: "/a.db" }, { name: "b", source: "https://u:pass-9876@x.example.com/b.db?token=qtok-555", headers: { "X-Key": "hdr-secret-42" } }]), DEFAULTS);
    expect(secretsOf(c)).toEqual(expect.arrayContaining(["hdr-secret-42", "pass-9876", "qtok-555"]));
    const shown = JSON.stringify(redactedConfig(c));
    for (const s of ["hdr-secret-42", "pass-9876", "qtok-555"]) expect(shown).not.toContain(s);
    const bad = problems(env([{ name: "Bad Name", source: "ftp://x", headers: { "X-Key": "hdr-secret-42" } }]));
    expect(bad).not.toContain("hdr-secret-42");
  });

  it.each([
    ["not JSON", "[{name:", /BACKUP_SOURCES must be a JSON list/],
    ["an object, not a list", { name: "a", source: "/a.db" }, /BACKUP_SOURCES must be a JSON list of 1 to 100/],
    ["an empty list", [], /BACKUP_SOURCES must be a JSON list of 1 to 100/],
    ["an entry that is not an object", ["/a.db"], /BACKUP_SOURCES\[0\] must be an object/],
    ["a missing source", [{ name: "a" }], /BACKUP_SOURCES\[0\]\.source is required/],
    ["a bad name", [{ name: "A B", source: "/a.db" }], /BACKUP_SOURCES\[0\]\.name must match/],
    ["a duplicate name", [{ name: "a", source: "/a.db" }, { name: "a", source: "/b.db" }], /BACKUP_SOURCES\[1\]\.name "a" is used twice/],
    ["a derived duplicate", [{ source: "/x/app.db" }, { source: "/y/app.sqlite" }], /BACKUP_SOURCES\[1\]\.name "app" is used twice/],
    ["a bad maxCount", [{ name: "a", source: "/a.db", maxCount: 0 }], /BACKUP_SOURCES\[0\]\.maxCount must be a whole number between 1 and 100000/],
    ["bad headers", [{ name: "a", source: "https://x.example.com/a.db", headers: { A: 1 } }], /BACKUP_SOURCES\[0\]\.headers must be an object of string header values/],
    ["an unsupported scheme", [{ name: "a", source: "ftp://x/a.db" }], /BACKUP_SOURCES\[0\]\.source has an unsupported scheme/],
    ["an unknown field", [{ name: "a", source: "/a.db", maxcount: 3 }], /BACKUP_SOURCES\[0\] has an unknown field "maxcount"/],
  ])("rejects %s, naming the entry", (_what, value, pattern) => {
    expect(problems(env(value))).toMatch(pattern);
  });

  it("refuses BACKUP_SOURCES together with BACKUP_SOURCE or BACKUP_NAME", () => {
    expect(problems(env([{ name: "a", source: "/a.db" }], { BACKUP_SOURCE: "/b.db" }))).toMatch(/BACKUP_SOURCES is set together with BACKUP_SOURCE/);
    expect(problems(env([{ name: "a", source: "/a.db" }], { BACKUP_NAME: "b" }))).toMatch(/use one way/);
  });

  it("without either, names both ways", () => {
    expect(problems({ S3_BUCKET: "b-1" })).toMatch(/BACKUP_SOURCE is required.*or BACKUP_SOURCES for several databases/);
  });
});
