/**
 * The HTTP API against a real service: real SQLite files, real S3 (in-process s3rver or
 * S3_TEST_*), downloads through the returned links with plain fetch.
 */
import { writeFile } from "node:fs/promises";
import { gunzipSync } from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Manifest } from "../../src/backup.js";
import { corruptTableLeaf, dumpTables, makeDatabase, quickCheck, sha256 } from "../helpers/db.js";
import { expectErrorShape, Harness, type Wired } from "./harness.js";
import { DOT_SEGMENTS, HOSTILE_FILE_SEGMENTS, VALID_FILE } from "../helpers/api-cases.js";

const h = new Harness();
beforeAll(() => h.start());
afterAll(() => h.close());

async function download(url: string): Promise<Uint8Array> {
  const res = await fetch(url);
  expect(res.status).toBe(200);
  return new Uint8Array(gunzipSync(new Uint8Array(await res.arrayBuffer())));
}

describe("GET /health", () => {
  it("answers without authentication, cacheable, nosniff", async () => {
    const { app } = await h.wire("health", { apiKey: null });
    const a = await h.call(app, "/health");
    expect(a.status).toBe(200);
    expect(a.json).toEqual({ status: "ok" });
    expect(a.res.headers.get("x-content-type-options")).toBe("nosniff");
    expect(a.res.headers.get("cache-control")).toBeNull();
  });
});

describe("POST /backups and the link routes", () => {
  let w: Wired;
  let manifest: Manifest;

  beforeAll(async () => {
    w = await h.wire("round", { db: { rows: 300, targetBytes: 512 * 1024 } });
  });

  it("POST /backups → 201 with the manifest of a backup that exists in the bucket", async () => {
    const a = await h.call(w.app, "/backups", { method: "POST", ...h.bearer() });
    expect(a.status, a.text).toBe(201);
    manifest = a.json as Manifest;
    expect(manifest.key).toMatch(/^backups\/round\/round-\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}-\d{3}Z-[0-9a-f]{6}\.sqlite\.gz$/);
    expect(manifest.file).toBe(manifest.key.split("/").pop());
    expect(manifest.bytes).toBe(w.source.length);
    expect(manifest.sha256).toBe(sha256(w.source));
    expect(manifest.pruned).toEqual([]);
    expect(a.res.headers.get("location")).toBe(`/backups/${manifest.file}/link`);
    expect(a.res.headers.get("cache-control")).toBe("no-store");
    expect(a.res.headers.get("x-content-type-options")).toBe("nosniff");
    expect(await h.s3.keys("backups/round/")).toEqual([manifest.key]);
  });

  for (const which of ["latest", "file"] as const) {
    it(`GET /backups/${which === "latest" ? "latest" : "{file}"}/link → a URL that downloads exactly the source`, async () => {
      const path = `/backups/${which === "latest" ? "latest" : manifest.file}/link`;
      const a = await h.call(w.app, path, { headers: { "X-API-Key": h.apiKey } });
      expect(a.status, a.text).toBe(200);
      expect(Object.keys(a.json).sort()).toEqual(["expiresAt", "key", "size", "url"]);
      expect(a.json.key).toBe(manifest.key);
      expect(a.json.size).toBe(manifest.gzipBytes);
      expect(a.json.url).toMatch(/X-Amz-Signature=/);
      const expires = Date.parse(a.json.expiresAt);
      expect(expires - Date.now()).toBeGreaterThan(800_000); // LINK_TTL_SECONDS 900
      expect(expires - Date.now()).toBeLessThanOrEqual(900_000);
      const bytes = await download(a.json.url);
      expect(sha256(bytes)).toBe(sha256(w.source));
      expect(await dumpTables(bytes)).toEqual(await dumpTables(w.source));
    });
  }

  it("?redirect=1 → 302 whose Location downloads the backup; ?redirect=0 → JSON", async () => {
    for (const path of ["/backups/latest/link?redirect=1", `/backups/${manifest.file}/link?redirect=true`]) {
      const a = await h.call(w.app, path, h.bearer());
      expect(a.status).toBe(302);
      expect(a.res.headers.get("x-content-type-options")).toBe("nosniff");
      expect(a.res.headers.get("cache-control")).toBe("no-store");
      const location = a.res.headers.get("location") ?? "";
      expect(location).toMatch(/^http:\/\/.*X-Amz-Signature=/);
      expect(sha256(await download(location))).toBe(manifest.sha256);
    }
    const json = await h.call(w.app, "/backups/latest/link?redirect=0", h.bearer());
    expect(json.status).toBe(200);
    expect(json.json.key).toBe(manifest.key);
  });

  it("GET /status reports the last run", async () => {
    const a = await h.call(w.app, "/status", h.bearer());
    expect(a.status).toBe(200);
    expect(a.json).toMatchObject({ name: "round", running: false, nextRun: null, lastRun: { ok: true, key: manifest.key, bytes: manifest.bytes } });
    expect(a.json.runningSince).toBeUndefined();
  });
});

describe("CHECK=structure", () => {
  it("POST /backups → 201 for a sound database; 422 SQLITE_CORRUPT for a damaged one, nothing uploaded", async () => {
    const w = await h.wire("structure", { db: { rows: 300, targetBytes: 512 * 1024 }, env: { CHECK: "structure" } });
    const a = await h.call(w.app, "/backups", { method: "POST", ...h.bearer() });
    expect(a.status, a.text).toBe(201);
    const manifest = a.json as Manifest;
    expect(manifest.sha256).toBe(sha256(w.source));
    expect(manifest.pageCount).toBe(w.source.length / 4096);
    const link = await h.call(w.app, "/backups/latest/link", h.bearer());
    expect(sha256(await download(link.json.url as string))).toBe(sha256(w.source));

    const bad = await corruptTableLeaf(await makeDatabase({ rows: 3000 }));
    expect(await quickCheck(bad)).not.toEqual(["ok"]);
    await writeFile(w.dbPath, bad);
    const refused = await h.call(w.app, "/backups", { method: "POST", ...h.bearer() });
    expectErrorShape(refused, 422, "SQLITE_CORRUPT");
    expect(refused.json.error.message).toMatch(/ failed the structural check \(CHECK=structure\): .*\bpage \d+/i);
    expect(await h.s3.keys("backups/structure/")).toEqual([manifest.key]);
    expect(await h.s3.uploads("backups/structure/")).toEqual([]);
    const status = await h.call(w.app, "/status", h.bearer());
    expect(status.json.lastRun).toMatchObject({ ok: false, error: { code: "SQLITE_CORRUPT" } });
  });
});

describe("single flight", () => {
  it("10 concurrent POSTs → exactly one 201, nine 409 BACKUP_RUNNING, one new object", async () => {
    const w = await h.wire("flight", { db: { rows: 500, targetBytes: 6 * 1024 * 1024 } });
    const before = await h.s3.keys("backups/flight/");
    expect(before).toEqual([]);

    const answers = await Promise.all(Array.from({ length: 10 }, () => h.call(w.app, "/backups", { method: "POST", ...h.bearer() })));
    const created = answers.filter((a) => a.status === 201);
    const refused = answers.filter((a) => a.status === 409);
    expect(answers.map((a) => a.status).sort()).toEqual([201, 409, 409, 409, 409, 409, 409, 409, 409, 409]);
    const manifest = created[0]!.json as Manifest;

    for (const a of refused) {
      expectErrorShape(a, 409, "BACKUP_RUNNING");
      const since = a.json.error.runningSince as string;
      expect(since).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/);
      expect(a.json.error.message).toContain(since); // the message names the start time too
      expect(Date.parse(since)).toBeLessThanOrEqual(Date.parse(manifest.startedAt));
      // The run that was running is the one that finished (taking the lease came first).
      expect(since).toBe(w.service.status().lastRun?.startedAt);
    }
    expect(await h.s3.keys("backups/flight/")).toEqual([manifest.key]);
    expect(await h.s3.uploads("backups/flight/")).toEqual([]);

    // Once it has finished, the next one runs.
    const again = await h.call(w.app, "/backups", { method: "POST", ...h.bearer() });
    expect(again.status).toBe(201);
    expect((await h.s3.keys("backups/flight/")).length).toBe(2);
  });
});

describe("GET /backups", () => {
  it("lists this name's backups newest first, and nothing else in the bucket", async () => {
    const w = await h.wire("listing");
    const other = await h.wire("listing2");
    await h.call(other.app, "/backups", { method: "POST", ...h.bearer() });

    const empty = await h.call(w.app, "/backups", h.bearer());
    expect(empty.status).toBe(200);
    expect(empty.json).toEqual({ backups: [] });

    const manifests: Manifest[] = [];
    for (let i = 0; i < 3; i++) {
      const a = await h.call(w.app, "/backups", { method: "POST", ...h.bearer() });
      expect(a.status).toBe(201);
      manifests.push(a.json as Manifest);
    }
    const a = await h.call(w.app, "/backups", h.bearer());
    expect(a.status).toBe(200);
    const backups = a.json.backups as { key: string; file: string; size: number; lastModified: string }[];
    expect(backups.map((b) => b.key)).toEqual(manifests.map((m) => m.key).reverse());
    for (const b of backups) {
      const m = manifests.find((x) => x.key === b.key)!;
      expect(b).toEqual({ key: m.key, file: m.file, size: m.gzipBytes, lastModified: expect.stringMatching(/^\d{4}-.*Z$/) });
    }
  });
});

describe("{file} validation happens before any store call", () => {
  let w: Wired;
  const valid = VALID_FILE;

  beforeAll(async () => {
    w = await h.wire("files");
  });

  const hostile = [...HOSTILE_FILE_SEGMENTS, ["a single dot", "."]] as const;

  for (const [label, segment] of hostile) {
    it(`400 INVALID_BACKUP_FILE for ${label}`, async () => {
      const before = w.storeCalls.length;
      const a = await h.call(w.app, `/backups/${segment}/link`, h.bearer());
      if (segment === ".") {
        // "." is a dot-segment: the URL parser removes it, so this is /backups/link.
        expectErrorShape(a, 404, "NOT_FOUND");
      } else {
        expectErrorShape(a, 400, "INVALID_BACKUP_FILE");
        expect(a.json.error.message).toContain("files-YYYY-MM-DDTHH-MM-SS-mmmZ-xxxxxx.sqlite.gz");
        expect(a.text.length).toBeLessThan(600); // the input is not echoed
      }
      expect(w.storeCalls.slice(before)).toEqual([]);
      expect(w.linkCalls).toEqual([]);
    });
  }

  it("dot-segments (.., %2e%2e, .%2E) never reach the route: the URL parser resolves them first", async () => {
    for (const segment of DOT_SEGMENTS.filter((d) => d !== ".")) {
      const a = await h.call(w.app, `/backups/${segment}/link`, h.bearer());
      expectErrorShape(a, 404, "NOT_FOUND"); // it became GET /link
    }
    expect(w.storeCalls).toEqual([]);
    expect(w.linkCalls).toEqual([]);
  });

  it("a valid name that does not exist → 404 BACKUP_NOT_FOUND after one HEAD, and latest with no backups → 404", async () => {
    const a = await h.call(w.app, `/backups/${valid}/link`, h.bearer());
    expectErrorShape(a, 404, "BACKUP_NOT_FOUND");
    expect(a.json.error.message).toContain(valid);
    expect(w.storeCalls).toEqual([`head backups/files/${valid}`]);
    const latest = await h.call(w.app, "/backups/latest/link?redirect=1", h.bearer());
    expectErrorShape(latest, 404, "BACKUP_NOT_FOUND");
  });
});

describe("logging", () => {
  it("one JSON line per request with method, path without the query, status and ms — never headers", async () => {
    const w = await h.wire("logging");
    const start = h.logLines.length;
    await h.call(w.app, "/health?probe=token-in-query");
    await h.call(w.app, "/backups/latest/link?redirect=1&sig=token-in-query", { headers: { Authorization: `Bearer ${h.apiKey}`, "X-Secret-Header": "header-value-xyz" } });
    await h.call(w.app, "/nope?x=1", h.bearer("wrong-key-0123456789"));
    const lines = h.logLines.slice(start).map((l) => JSON.parse(l) as Record<string, unknown>);
    const requests = lines.filter((l) => l.msg === "request");
    expect(requests.map(({ method, path, status }) => ({ method, path, status }))).toEqual([
      { method: "GET", path: "/health", status: 200 },
      { method: "GET", path: "/backups/latest/link", status: 404 },
      { method: "GET", path: "/nope", status: 404 },
    ]);
    for (const r of requests) expect(typeof r.ms).toBe("number");
    const text = h.logLines.slice(start).join("\n");
    expect(text).not.toContain("token-in-query");
    expect(text).not.toContain("header-value-xyz");
    expect(text).not.toContain("wrong-key-0123456789");
    expect(text.toLowerCase()).not.toContain("authorization");
  });
});

describe("secrets", () => {
  it("neither the API key nor the S3 secret appeared in any response or log line of this file", () => {
    expect(h.transcript.length).toBeGreaterThan(40);
    expect(h.logLines.length).toBeGreaterThan(40);
    h.assertNoSecrets();
  });
});
