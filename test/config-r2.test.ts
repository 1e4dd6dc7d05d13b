/**
 * R2_BUCKET and r2:// sources in the configuration: accepted in a Worker (bindings: true) in
 * place of every S3_* setting, refused elsewhere with a message that says what to use instead,
 * and malformed values named.
 */
import { describe, expect, it } from "vitest";
import { parseConfig } from "../src/config.js";
import { BackupError } from "../src/errors.js";

const WORKER = { maxBytes: 4 * 1024 ** 3, bindings: true };
const NODE = { maxBytes: 2 ** 40 };

function problem(env: Record<string, string>, defaults: { maxBytes: number; bindings?: boolean }): string {
  try {
    parseConfig(env, defaults);
  } catch (err) {
    expect(err).toBeInstanceOf(BackupError);
    expect((err as BackupError).code).toBe("CONFIG_INVALID");
    return (err as BackupError).message;
  }
  throw new Error("parseConfig accepted it");
}

describe("R2_BUCKET", () => {
  it("in a Worker it replaces S3_*: no bucket, endpoint or keys needed", () => {
    const c = parseConfig({ R2_BUCKET: "BACKUPS", BACKUP_SOURCE: "https://example.com/app.db" }, WORKER);
    expect(c.r2Bucket).toBe("BACKUPS");
    expect(c.s3.bucket).toBe("");
    expect(c.s3.prefix).toBe("backups/");
  });

  it("an r2://BINDING/key source parses, and the name comes from the key", () => {
    const c = parseConfig({ R2_BUCKET: "BACKUPS", BACKUP_SOURCE: "r2://DATA/dbs/My App.sqlite" }, WORKER);
    expect(c.source).toEqual({ kind: "r2", binding: "DATA", key: "dbs/My App.sqlite" });
    expect(c.name).toBe("my-app");
  });

  it("an r2:// source into an S3 store works in a Worker too", () => {
    const c = parseConfig({ S3_BUCKET: "backups", BACKUP_SOURCE: "r2://DATA/app.db" }, WORKER);
    expect(c.r2Bucket).toBeUndefined();
    expect(c.source).toMatchObject({ kind: "r2", binding: "DATA" });
  });

  it("on Node R2_BUCKET is an error naming it and saying to use the S3 API", () => {
    const m = problem({ R2_BUCKET: "BACKUPS", BACKUP_SOURCE: "/data/app.db" }, NODE);
    expect(m).toMatch(/R2_BUCKET names an R2 binding, which exists only in a Cloudflare Worker/);
    expect(m).toContain("S3_ENDPOINT");
  });

  it("on Node an r2:// source is an error naming BACKUP_SOURCE (and BACKUP_SOURCES)", () => {
    expect(problem({ S3_BUCKET: "backups", BACKUP_SOURCE: "r2://DATA/app.db" }, NODE)).toMatch(/BACKUP_SOURCE has an r2:\/\/ source, which only a Cloudflare Worker/);
    expect(problem({ S3_BUCKET: "backups", BACKUP_SOURCES: JSON.stringify([{ name: "a", source: "/a.db" }, { name: "b", source: "r2://DATA/b.db" }]) }, NODE)).toMatch(/BACKUP_SOURCES has an r2:\/\/ source/);
  });

  it("R2_BUCKET with S3_BUCKET is one bucket too many", () => {
    expect(problem({ R2_BUCKET: "BACKUPS", S3_BUCKET: "backups", BACKUP_SOURCE: "https://example.com/app.db" }, WORKER)).toMatch(/R2_BUCKET and S3_BUCKET are both set/);
  });

  it("neither R2_BUCKET nor S3_BUCKET: the message names both", () => {
    expect(problem({ BACKUP_SOURCE: "https://example.com/app.db" }, WORKER)).toMatch(/S3_BUCKET is required .* or R2_BUCKET/);
  });

  it("malformed binding names are named", () => {
    expect(problem({ R2_BUCKET: "my-bucket", BACKUP_SOURCE: "https://example.com/app.db" }, WORKER)).toMatch(/R2_BUCKET must be the name of an R2 binding/);
    expect(problem({ R2_BUCKET: "BACKUPS", BACKUP_SOURCE: "r2://bad-name/app.db" }, WORKER)).toMatch(/BACKUP_SOURCE must look like r2:\/\/BINDING\/path/);
    expect(problem({ R2_BUCKET: "BACKUPS", BACKUP_SOURCE: "r2://DATA" }, WORKER)).toMatch(/must look like r2:\/\/BINDING/);
  });
});
