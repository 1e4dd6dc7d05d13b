/**
 * The log capture itself: a deliberately leaked secret in synthetic text is found (raw,
 * JSON-escaped, URL-encoded) and reported by kind and file without its value; this file's
 * own output reaches its capture file. Nothing here leaks into the real capture.
 */
import { readFile } from "node:fs/promises";
import { randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { describeLeaks, findLeaks, secretForms } from "../helpers/log-capture-scan.js";
import { capture, captureFile, capturedLines } from "../helpers/log-capture.js";

const canary = `canary-${randomBytes(8).toString("hex")}`;

describe("findLeaks", () => {
  const secrets = [
    { kind: "API_KEY", value: `key-${canary}` },
    { kind: "BACKUP_SOURCE_HEADERS value", value: `tok"en/${canary}` },
  ];

  it("finds a secret written as is, naming kind and file", () => {
    const leaks = findLeaks([{ name: "a.log", text: `line\n{"msg":"auth","header":"Bearer key-${canary}"}\n` }, { name: "b.log", text: "clean" }], secrets);
    expect(leaks).toEqual([{ kind: "API_KEY", file: "a.log", form: "raw" }]);
  });

  it("finds a secret JSON-escaped or URL-encoded", () => {
    const json = JSON.stringify({ h: `tok"en/${canary}` });
    const url = `https://x.test/?t=${encodeURIComponent(`tok"en/${canary}`)}`;
    expect(findLeaks([{ name: "j.log", text: json }], secrets)).toEqual([{ kind: "BACKUP_SOURCE_HEADERS value", file: "j.log", form: "json" }]);
    expect(findLeaks([{ name: "u.log", text: url }], secrets)).toEqual([{ kind: "BACKUP_SOURCE_HEADERS value", file: "u.log", form: "url" }]);
  });

  it("reports nothing for clean text, a redacted line or a partial match", () => {
    const text = `{"msg":"auth","header":"Bearer [redacted]"}\nkey-${canary.slice(0, -1)}`;
    expect(findLeaks([{ name: "c.log", text }], secrets)).toEqual([]);
  });

  it("ignores values too short to mean anything, and merges kinds of one value", () => {
    const leaks = findLeaks([{ name: "d.log", text: "testing S3RVER shared-value-1234" }], [
      { kind: "S3_SECRET_ACCESS_KEY", value: "testing" },
      { kind: "S3_SECRET_ACCESS_KEY", value: "S3RVER" },
      { kind: "API_KEY", value: "shared-value-1234" },
      { kind: "BACKUP_SOURCE_HEADERS value", value: "shared-value-1234" },
    ]);
    expect(leaks).toEqual([{ kind: "API_KEY / BACKUP_SOURCE_HEADERS value", file: "d.log", form: "raw" }]);
  });

  it("the report names kind and file, never the secret", () => {
    const report = describeLeaks(findLeaks([{ name: "a.log", text: `key-${canary}` }], secrets), "/tmp/run");
    expect(report).toContain("API_KEY appears (raw) in a.log");
    expect(report).not.toContain(canary);
  });

  it("secretForms: each distinct form once", () => {
    expect(secretForms("plain-value").map((f) => f.form)).toEqual(["raw"]);
    expect(secretForms('a"b c').map((f) => f.form)).toEqual(["raw", "json", "url"]);
  });
});

describe("the capture of this test file", () => {
  it("holds stdout, stderr, console output and captured logger lines", async () => {
    const file = captureFile();
    expect(file, "test/setup/log-capture.ts runs as a setup file").toBeDefined();
    const marker = `marker-${randomBytes(6).toString("hex")}`;
    process.stdout.write(`${marker} stdout\n`);
    process.stderr.write(`${marker} stderr\n`);
    console.log(`${marker} console.log %d`, 42);
    console.warn(`${marker} console.warn`);
    capturedLines("logger").push(`{"msg":"${marker} logger"}`);
    capture("child", `${marker} child`);
    const text = await readFile(file!, "utf8");
    for (const line of [`[stdout] ${marker} stdout`, `[stderr] ${marker} stderr`, `[console.log] ${marker} console.log 42`, `[console.warn] ${marker} console.warn`, `[logger] {"msg":"${marker} logger"}`, `[child] ${marker} child`]) {
      expect(text).toContain(line);
    }
  });
});
