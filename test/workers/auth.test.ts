/**
 * In workerd: hostile {file} names are refused before any store call, authentication on
 * every protected route (Bearer and X-API-Key; none, wrong, right), the API disabled
 * without API_KEY, and the public routes.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Manifest } from "../../src/backup.js";
import { makeDatabase } from "../helpers/db.js";
import { expectErrorShape } from "../api/harness.js";
import { serve, WorkerHarness, type TestWorker } from "./harness.js";
import { DOT_SEGMENTS, HOSTILE_FILE_SEGMENTS, protectedRoutes, VALID_FILE } from "../helpers/api-cases.js";

const h = new WorkerHarness();
let w: TestWorker;
let file: string;
const WRONG = "wrong-key-but-long-enough-0123456789";

beforeAll(async () => {
  await h.start();
  w = await h.worker("files");
  h.source.set(w.sourcePath, serve.db(await makeDatabase({ rows: 50 })));
  const first = await w.backup();
  expect(first.status, first.text).toBe(201);
  file = (first.json as Manifest).file;
});
afterAll(() => h.close());

describe("{file} validation", () => {
  const valid = VALID_FILE;
  const hostile = HOSTILE_FILE_SEGMENTS;

  for (const [label, segment] of hostile) {
    it(`400 INVALID_BACKUP_FILE for ${label}`, async () => {
      const a = await w.call(`/backups/${segment}/link`, { headers: h.auth() });
      expectErrorShape(a, 400, "INVALID_BACKUP_FILE");
      expect(a.json.error.message).toContain("files-YYYY-MM-DDTHH-MM-SS-mmmZ-xxxxxx.sqlite.gz");
      expect(a.text.length).toBeLessThan(600); // the input is not echoed
    });
  }

  it("dot-segments never reach the route: the URL parser resolves them first (404 NOT_FOUND)", async () => {
    for (const segment of DOT_SEGMENTS) {
      const a = await w.call(`/backups/${segment}/link`, { headers: h.auth() });
      expectErrorShape(a, 404, "NOT_FOUND");
    }
  });

  it("a valid name that does not exist → 404 BACKUP_NOT_FOUND; the existing one → 200", async () => {
    const a = await w.call(`/backups/${valid}/link`, { headers: h.auth() });
    expectErrorShape(a, 404, "BACKUP_NOT_FOUND");
    expect(a.json.error.message).toContain(valid);
    const ok = await w.call(`/backups/${file}/link`, { headers: h.auth() });
    expect(ok.status, ok.text).toBe(200);
  });

  it("the hostile requests created, read or removed nothing in the bucket", async () => {
    expect(await h.s3.keys()).toEqual([`backups/files/${file}`]);
  });
});

describe("authentication on every protected route", () => {
  const routes = () => protectedRoutes(file);
  const presentations = ["bearer", "x-api-key"] as const;

  it("no credentials → 401 UNAUTHORIZED with WWW-Authenticate: Bearer", async () => {
    for (const r of routes()) {
      const a = await w.call(r.path, { method: r.method });
      expectErrorShape(a, 401, "UNAUTHORIZED");
      expect(a.res.headers.get("www-authenticate")).toMatch(/^Bearer\b/);
    }
  });

  for (const p of presentations) {
    it(`a wrong key (${p}) → 401, and the presented key is not echoed`, async () => {
      for (const r of routes()) {
        for (const key of [WRONG, h.apiKey.slice(0, -1), `${h.apiKey}x`, h.apiKey.toUpperCase()]) {
          const a = await w.call(r.path, { method: r.method, headers: h.auth(p, key) });
          expectErrorShape(a, 401, "UNAUTHORIZED");
          expect(a.res.headers.get("www-authenticate")).toMatch(/^Bearer\b/);
          expect(a.text).not.toContain(key.slice(0, 12));
        }
      }
    });

    it(`the right key (${p}) → each route's success status`, async () => {
      for (const r of routes()) {
        const a = await w.call(r.path, { method: r.method, headers: h.auth(p) });
        expect(a.status, `${r.method} ${r.path}: ${a.text}`).toBe(r.ok);
        expect(a.res.headers.get("www-authenticate")).toBeNull();
        expect(a.res.headers.get("x-content-type-options")).toBe("nosniff");
      }
    });
  }

  it("/health and /openapi.json need no key", async () => {
    const health = await w.call("/health");
    expect(health.status).toBe(200);
    expect(health.json).toEqual({ status: "ok" });
    expect(health.res.headers.get("x-content-type-options")).toBe("nosniff");
    expect((await w.call("/health", { headers: h.auth("bearer", WRONG) })).status).toBe(200);

    const doc = await w.call("/openapi.json");
    expect(doc.status).toBe(200);
    expect(doc.json.openapi).toMatch(/^3\./);
    expect(Object.keys(doc.json.paths).sort()).toEqual(["/backups", "/backups/latest/link", "/backups/{file}", "/backups/{file}/link", "/download/{file}", "/health", "/metrics", "/openapi.json", "/status"]);
  });
});

describe("without API_KEY", () => {
  it("every protected route → 403 API_DISABLED whatever the headers; /health and /openapi.json still 200", async () => {
    const off = await h.worker("off", { env: { API_KEY: null } });
    h.source.set(off.sourcePath, serve.db(await makeDatabase({ rows: 10 })));
    const paths = [
      { method: "POST", path: "/backups" },
      { method: "GET", path: "/backups" },
      { method: "GET", path: "/backups/latest/link" },
      { method: "GET", path: "/backups/off-2026-01-02T03-04-05-678Z-abcdef.sqlite.gz/link" },
      { method: "GET", path: "/backups/latest/link?redirect=1" },
      { method: "GET", path: "/status" },
    ];
    for (const r of paths) {
      for (const headers of [{}, h.auth("bearer"), h.auth("x-api-key"), { Authorization: "Basic abc" }]) {
        const a = await off.call(r.path, { method: r.method, headers });
        expectErrorShape(a, 403, "API_DISABLED");
        expect(a.json.error.message).toContain("API_KEY");
        expect(a.res.headers.get("www-authenticate")).toBeNull();
      }
    }
    expect(await h.s3.keys(off.prefix)).toEqual([]);
    expect(h.source.hits).not.toContain(off.sourcePath);
    expect((await off.call("/health")).status).toBe(200);
    expect((await off.call("/openapi.json")).status).toBe(200);
  });
});

describe("secrets", () => {
  it("neither the API key nor the S3 secret appears in any response or workerd log line", () => {
    expect(h.transcript.length).toBeGreaterThan(100);
    h.assertNoSecrets();
  });
});
