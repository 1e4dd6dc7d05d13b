/**
 * The HTTP API served by the Worker in workerd, against the real S3 server: POST /backups,
 * listing, links (JSON and 302), status, retention, and one backup at a time per isolate.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Manifest } from "../../src/backup.js";
import { makeDatabase, sha256 } from "../helpers/db.js";
import { expectErrorShape } from "../api/harness.js";
import { download, expectSameDatabase, KEY_PATTERN, serve, WorkerHarness, type TestWorker, type WorkerAnswer } from "./harness.js";

const MiB = 1024 * 1024;
const h = new WorkerHarness();
beforeAll(() => h.start());
afterAll(() => h.close());

describe("POST /backups, GET /backups, the link routes and GET /status", () => {
  let w: TestWorker;
  let db: Uint8Array;
  const manifests: Manifest[] = [];

  beforeAll(async () => {
    db = await makeDatabase({ rows: 1000, targetBytes: 1 * MiB });
    w = await h.worker("round");
    h.source.set(w.sourcePath, serve.db(db));
  });

  it("POST /backups → 201 with the manifest of the object now in the bucket", async () => {
    const a = await w.backup();
    expect(a.status, a.text).toBe(201);
    const m = a.json as Manifest;
    manifests.push(m);
    expect(m.key).toMatch(KEY_PATTERN(w.prefix, "round"));
    expect(m.file).toBe(m.key.split("/").pop());
    expect(m.bytes).toBe(db.length);
    expect(m.sha256).toBe(sha256(db));
    expect(m.pageSize).toBe(4096);
    expect(m.pageCount).toBe(db.length / 4096);
    expect(m.gzipBytes).toBeGreaterThan(0);
    expect(m.gzipBytes).toBeLessThan(db.length * 1.01 + 1024);
    expect(typeof m.durationMs).toBe("number");
    expect(m.durationMs).toBeGreaterThanOrEqual(0);
    expect(m.pruned).toEqual([]);
    expect(m.verified).toBe("head");
    expect(a.res.headers.get("location")).toBe(`/backups/${m.file}/link`);
    expect(a.res.headers.get("cache-control")).toBe("no-store");
    expect(a.res.headers.get("x-content-type-options")).toBe("nosniff");
    expect(await h.s3.keys(w.prefix)).toEqual([m.key]);
    expect(await h.s3.uploads(w.prefix)).toEqual([]);
  });

  it("GET /backups lists this name's backups newest first", async () => {
    const second = await w.backup();
    expect(second.status, second.text).toBe(201);
    manifests.push(second.json as Manifest);

    const a = await w.call("/backups", { headers: h.auth() });
    expect(a.status, a.text).toBe(200);
    const backups = a.json.backups as { key: string; file: string; size: number; lastModified: string }[];
    expect(backups.map((b) => b.key)).toEqual(manifests.map((m) => m.key).reverse());
    for (const b of backups) {
      const m = manifests.find((x) => x.key === b.key)!;
      expect(b).toMatchObject({ key: m.key, file: m.file, size: m.gzipBytes, lastModified: expect.stringMatching(/^\d{4}-.*Z$/) });
    }
  });

  it("GET /backups/{file}/link → a signed URL that downloads exactly the source", async () => {
    const m = manifests[0]!;
    const a = await w.call(`/backups/${m.file}/link`, { headers: h.auth("x-api-key") });
    expect(a.status, a.text).toBe(200);
    expect(Object.keys(a.json).sort()).toEqual(["expiresAt", "key", "size", "url"]);
    expect(a.json.key).toBe(m.key);
    expect(a.json.size).toBe(m.gzipBytes);
    expect(a.json.url).toMatch(/X-Amz-Signature=/);
    const ttl = Date.parse(a.json.expiresAt) - Date.now();
    expect(ttl).toBeGreaterThan(800_000); // LINK_TTL_SECONDS = 900 in wrangler.toml
    expect(ttl).toBeLessThanOrEqual(900_000);
    const { bytes } = await download(a.json.url);
    await expectSameDatabase(bytes, db);
  });

  it("?redirect=1 → 302 whose Location downloads the backup (latest and {file})", async () => {
    const cases: [string, Manifest][] = [
      ["/backups/latest/link?redirect=1", manifests[1]!],
      [`/backups/${manifests[0]!.file}/link?redirect=1`, manifests[0]!],
    ];
    for (const [path, m] of cases) {
      const a = await w.call(path, { headers: h.auth(), redirect: "manual" });
      expect(a.status, a.text).toBe(302);
      expect(a.res.headers.get("x-content-type-options")).toBe("nosniff");
      expect(a.res.headers.get("cache-control")).toBe("no-store");
      const location = a.res.headers.get("location") ?? "";
      expect(location).toMatch(/^http:\/\/.*X-Amz-Signature=/);
      expect(new URL(location).pathname).toContain(m.key);
      const { bytes } = await download(location);
      expect(sha256(bytes)).toBe(m.sha256);
    }
  });

  it("GET /status shows the last run with its key", async () => {
    const a = await w.call("/status", { headers: h.auth() });
    expect(a.status, a.text).toBe(200);
    const last = manifests[1]!;
    expect(a.json).toMatchObject({ name: "round", running: false, lastRun: { ok: true, key: last.key, bytes: last.bytes, gzipBytes: last.gzipBytes, pruned: 0 } });
    expect(a.json.runningSince).toBeUndefined();
  });

  it("logs the JSON 'backup finished' line for each backup", async () => {
    await h.waitForLog((l) => l.msg === "backup finished" && l.bytes === db.length, "round");
    // Both runs' lines arrive (console output is relayed asynchronously).
    const deadline = Date.now() + 3000;
    while (h.jsonLogs("round").filter((l) => l.msg === "backup finished").length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 25));
    const finished = h.jsonLogs("round").filter((l) => l.msg === "backup finished");
    expect(finished).toHaveLength(2);
    for (const l of finished) expect(l).toMatchObject({ level: "info", name: "round", bytes: db.length, pruned: 0 });
    // sql.js's WebAssembly memory counts against the isolate's 128 MB: the line reports it
    // (at least the 16 MiB the sql.js build starts with, in whole 64 KiB WebAssembly pages).
    for (const l of finished) {
      expect(l.wasmMemoryBytes).toBeGreaterThanOrEqual(16 * 1024 * 1024);
      expect(Number(l.wasmMemoryBytes) % 65536).toBe(0);
    }
  });
});

describe("retention in workerd", () => {
  it("MAX_COUNT=2: the third backup prunes the first, and only this name's keys", async () => {
    const db = await makeDatabase({ rows: 100 });
    const w = await h.worker("prune", { env: { MAX_COUNT: "2" } });
    h.source.set(w.sourcePath, serve.db(db));
    const manifests: Manifest[] = [];
    for (let i = 0; i < 3; i++) {
      const a = await w.backup();
      expect(a.status, a.text).toBe(201);
      manifests.push(a.json as Manifest);
    }
    expect(manifests.map((m) => m.pruned)).toEqual([[], [], [manifests[0]!.key]]);
    expect(manifests[2]!.pruneError).toBeUndefined();
    expect(await h.s3.keys(w.prefix)).toEqual([manifests[1]!.key, manifests[2]!.key]);
    // Other names' backups (from the other describe blocks) are untouched.
    expect((await h.s3.keys("backups/round/")).length).toBeGreaterThanOrEqual(2);
  });
});

describe("one backup at a time per isolate", () => {
  it("10 concurrent POSTs → exactly one 201, nine 409 BACKUP_RUNNING, one new object", async () => {
    const db = await makeDatabase({ rows: 500, targetBytes: 16 * MiB });
    const w = await h.worker("flight");
    h.source.set(w.sourcePath, serve.db(db));
    expect(await h.s3.keys(w.prefix)).toEqual([]);

    const answers: WorkerAnswer[] = await Promise.all(Array.from({ length: 10 }, () => w.backup()));
    expect(answers.map((a) => a.status).sort()).toEqual([201, 409, 409, 409, 409, 409, 409, 409, 409, 409]);
    const manifest = answers.find((a) => a.status === 201)!.json as Manifest;
    expect(manifest.bytes).toBe(db.length);
    for (const a of answers.filter((x) => x.status === 409)) {
      expectErrorShape(a, 409, "BACKUP_RUNNING");
      const since = a.json.error.runningSince as string;
      expect(since).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/);
      expect(a.json.error.message).toContain(since);
      expect(Date.parse(since)).toBeLessThanOrEqual(Date.parse(manifest.startedAt));
    }
    expect(await h.s3.keys(w.prefix)).toEqual([manifest.key]);
    expect(await h.s3.uploads(w.prefix)).toEqual([]);
    // The source was read once.
    expect(h.source.hits.filter((p) => p === w.sourcePath)).toHaveLength(1);

    // Once it has finished, the next one runs.
    const again = await w.backup();
    expect(again.status, again.text).toBe(201);
    expect(await h.s3.keys(w.prefix)).toHaveLength(2);
  });
});

describe("secrets", () => {
  it("neither the API key nor the S3 secret appears in any response or workerd log line", () => {
    expect(h.transcript.length).toBeGreaterThan(15);
    expect(h.logs.length).toBeGreaterThan(15);
    h.assertNoSecrets();
  });
});
