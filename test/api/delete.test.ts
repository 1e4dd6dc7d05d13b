/**
 * DELETE /backups/{file} on Node against the real S3 server: authentication, validation
 * before any store call, 404, the newest only with ?force=1, ?name= with several databases,
 * the log line and the metrics counter. Every case compares the bucket's full key list.
 */
import { PutObjectCommand } from "@aws-sdk/client-s3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Manifest } from "../../src/backup.js";
import { createApp } from "../../src/api/app.js";
import { putBackup } from "../helpers/backups.js";
import { DOT_SEGMENTS, HOSTILE_FILE_SEGMENTS, VALID_FILE } from "../helpers/api-cases.js";
import { expectErrorShape, Harness, type Wired } from "./harness.js";

const h = new Harness();
let w: Wired;
const made: Manifest[] = [];
let neighbour: { key: string; file: string };
const strangers = ["backups/files/.lock", "backups/files/readme.txt", "other/files.db"];

beforeAll(async () => {
  await h.start();
  w = await h.wire("files", { env: { MAX_COUNT: "10" } });
  for (let i = 0; i < 3; i++) {
    const a = await h.call(w.app, "/backups", { method: "POST", ...h.bearer() });
    expect(a.status, a.text).toBe(201);
    made.push(a.json as Manifest);
  }
  neighbour = await putBackup(h.s3, { name: "files2", image: w.source });
  for (const key of strangers) await h.s3.client.send(new PutObjectCommand({ Bucket: h.s3.bucket, Key: key, Body: "not a backup" }));
  expect(made[2]!.key > made[1]!.key && made[1]!.key > made[0]!.key).toBe(true);
});
afterAll(async () => {
  h.assertNoSecrets();
  await h.close();
});

/** Runs `request`, asserts the bucket did not change and which store calls were made. */
async function unchanged<T>(request: () => Promise<T>, storeCalls: string[] = []): Promise<T> {
  const before = await h.s3.keys();
  w.storeCalls.length = 0;
  const answer = await request();
  expect(await h.s3.keys()).toEqual(before);
  expect(w.storeCalls).toEqual(storeCalls);
  return answer;
}

const del = (path: string, init: RequestInit = h.bearer()) => h.call(w.app, path, { method: "DELETE", ...init });

describe("DELETE /backups/{file}", () => {
  it("401 without or with a wrong key, 403 when the API is off; nothing touched", async () => {
    const path = `/backups/${made[0]!.file}`;
    const none = await unchanged(() => del(path, {}));
    expectErrorShape(none, 401, "UNAUTHORIZED");
    expect(none.res.headers.get("www-authenticate")).toMatch(/^Bearer/);
    expectErrorShape(await unchanged(() => del(path, h.bearer(`${h.apiKey}x`))), 401, "UNAUTHORIZED");
    const off = await h.wire("files", { apiKey: null });
    const before = await h.s3.keys();
    expectErrorShape(await h.call(off.app, path, { method: "DELETE" }), 403, "API_DISABLED");
    expect(off.storeCalls).toEqual([]);
    expect(await h.s3.keys()).toEqual(before);
  });

  for (const [label, segment] of HOSTILE_FILE_SEGMENTS) {
    it(`400 INVALID_BACKUP_FILE before any store call: ${label}`, async () => {
      const a = await unchanged(() => del(`/backups/${segment}`));
      expectErrorShape(a, 400, "INVALID_BACKUP_FILE");
      expect(a.text.length).toBeLessThan(600); // the input is not echoed
    });
  }

  it("400 for latest and for the neighbour name's backup; dot-segments never reach {file}", async () => {
    const latest = await unchanged(() => del("/backups/latest?force=1"));
    expectErrorShape(latest, 400, "INVALID_BACKUP_FILE");
    expect(latest.json.error.message).not.toContain('or "latest"');
    expectErrorShape(await unchanged(() => del(`/backups/${neighbour.file}?force=1`)), 400, "INVALID_BACKUP_FILE");
    expectErrorShape(await unchanged(() => del(`/backups/files/${made[0]!.file}`)), 400, "INVALID_BACKUP_FILE");
    for (const segment of DOT_SEGMENTS) expectErrorShape(await unchanged(() => del(`/backups/${segment}`)), 404, "NOT_FOUND");
  });

  it("404 BACKUP_NOT_FOUND for a valid name that is not there, after one listing", async () => {
    const a = await unchanged(() => del(`/backups/${VALID_FILE}`), ["list backups/files/"]);
    expectErrorShape(a, 404, "BACKUP_NOT_FOUND");
    expect(a.json.error.message).toContain(VALID_FILE);
  });

  it("409 NEWEST_BACKUP for the newest without ?force=1 (or with force=0)", async () => {
    for (const query of ["", "?force=0", "?force=false"]) {
      const a = await unchanged(() => del(`/backups/${made[2]!.file}${query}`), ["list backups/files/"]);
      expectErrorShape(a, 409, "NEWEST_BACKUP");
      expect(a.json.error.message).toContain("?force=1");
    }
    expectErrorShape(await unchanged(() => del(`/backups/${made[2]!.file}?force=yes`)), 400, "BAD_REQUEST");
  });

  it("200: removes exactly the named object, logs it and counts it; then the newest with ?force=1", async () => {
    const before = await h.s3.keys();
    w.storeCalls.length = 0;
    const a = await del(`/backups/${made[0]!.file}`);
    expect(a.status, a.text).toBe(200);
    expect(a.json).toEqual({ key: made[0]!.key, file: made[0]!.file, name: "files", size: made[0]!.gzipBytes, lastModified: expect.any(String), wasNewest: false, remaining: 2 });
    expect(a.res.headers.get("cache-control")).toBe("no-store");
    expect(w.storeCalls).toEqual(["list backups/files/", `delete ${made[0]!.key}`]);
    expect(await h.s3.keys()).toEqual(before.filter((k) => k !== made[0]!.key));
    const logged = h.logLines.map((l) => JSON.parse(l)).find((l) => l.msg === "backup deleted" && l.key === made[0]!.key);
    expect(logged).toMatchObject({ level: "info", name: "files", wasNewest: false, remaining: 2 });

    // Gone: a clean 404 the second time (as when retention got there first).
    expectErrorShape(await unchanged(() => del(`/backups/${made[0]!.file}`), ["list backups/files/"]), 404, "BACKUP_NOT_FOUND");

    const beforeNewest = await h.s3.keys();
    const forced = await del(`/backups/${made[2]!.file}?force=1`);
    expect(forced.status, forced.text).toBe(200);
    expect(forced.json).toMatchObject({ key: made[2]!.key, wasNewest: true, remaining: 1 });
    expect(await h.s3.keys()).toEqual(beforeNewest.filter((k) => k !== made[2]!.key));
    expect(h.logLines.map((l) => JSON.parse(l)).find((l) => l.msg === "backup deleted" && l.key === made[2]!.key)).toMatchObject({ level: "warn", wasNewest: true });
    expect(await h.s3.keys()).toEqual(expect.arrayContaining([made[1]!.key, neighbour.key, ...strangers]));

    const metrics = await h.call(w.app, "/metrics", h.bearer());
    expect(metrics.text).toContain('sqlite_backup_deleted_total{name="files"} 2\n');
  });

  it("?name= picks the database with several; without it 400 NAME_REQUIRED", async () => {
    const other = await h.wire("files2");
    const app = createApp({ services: [w.service, other.service], apiKey: h.apiKey, logger: h.logger });
    const before = await h.s3.keys();
    expectErrorShape(await h.call(app, `/backups/${neighbour.file}`, { method: "DELETE", ...h.bearer() }), 400, "NAME_REQUIRED");
    // files's service does not know files2's backups, and the reverse.
    expectErrorShape(await h.call(app, `/backups/${neighbour.file}?name=files`, { method: "DELETE", ...h.bearer() }), 400, "INVALID_BACKUP_FILE");
    expectErrorShape(await h.call(app, `/backups/${neighbour.file}?name=nope`, { method: "DELETE", ...h.bearer() }), 404, "UNKNOWN_NAME");
    expect(await h.s3.keys()).toEqual(before);
    const a = await h.call(app, `/backups/${neighbour.file}?name=files2&force=1`, { method: "DELETE", ...h.bearer() });
    expect(a.status, a.text).toBe(200);
    expect(a.json).toMatchObject({ key: neighbour.key, name: "files2", wasNewest: true, remaining: 0 });
    expect(await h.s3.keys()).toEqual(before.filter((k) => k !== neighbour.key));
  });
});
