/**
 * Authentication of the HTTP API against a real service: every protected route × every way of
 * presenting (or not presenting) the key, the API disabled without API_KEY, and the
 * constant-time comparison's answers.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { timingSafeEqual } from "../../src/api/auth.js";
import type { Manifest } from "../../src/backup.js";
import { expectErrorShape, Harness, type Wired } from "./harness.js";
import { protectedRoutes } from "../helpers/api-cases.js";

const h = new Harness();
let w: Wired;
let file: string;

beforeAll(async () => {
  await h.start();
  w = await h.wire("auth");
  const first = await h.call(w.app, "/backups", { method: "POST", ...h.bearer() });
  expect(first.status).toBe(201);
  file = (first.json as Manifest).file;
});
afterAll(() => h.close());

const routes = () => protectedRoutes(file);

const WRONG = "wrong-key-but-long-enough-0123456789";

describe("every protected route", () => {
  const presentations: { label: string; headers: (key: string) => Record<string, string> }[] = [
    { label: "Authorization: Bearer", headers: (key) => ({ Authorization: `Bearer ${key}` }) },
    { label: "X-API-Key", headers: (key) => ({ "X-API-Key": key }) },
  ];

  it("without credentials → 401 UNAUTHORIZED with WWW-Authenticate: Bearer realm", async () => {
    for (const r of routes()) {
      const a = await h.call(w.app, r.path, { method: r.method });
      expectErrorShape(a, 401, "UNAUTHORIZED");
      expect(a.res.headers.get("www-authenticate")).toBe('Bearer realm="sqlite-edge-backup"');
      expect(a.json.error.message).toMatch(/Authorization: Bearer <API_KEY>.*X-API-Key: <API_KEY>/);
    }
  });

  for (const p of presentations) {
    it(`with a wrong key in ${p.label} → 401 with WWW-Authenticate`, async () => {
      for (const r of routes()) {
        for (const key of [WRONG, h.apiKey.slice(0, -1), `${h.apiKey}x`, h.apiKey.toUpperCase(), `${h.apiKey} ${h.apiKey}`]) {
          const a = await h.call(w.app, r.path, { method: r.method, headers: p.headers(key) });
          expectErrorShape(a, 401, "UNAUTHORIZED");
          expect(a.res.headers.get("www-authenticate")).toMatch(/^Bearer realm="sqlite-edge-backup"/);
          expect(a.text).not.toContain(key.slice(0, 12)); // what was presented is not echoed
        }
      }
    });

    it(`with the right key in ${p.label} → the route's success status`, async () => {
      for (const r of routes()) {
        const a = await h.call(w.app, r.path, { method: r.method, headers: p.headers(h.apiKey) });
        expect(a.status, `${r.method} ${r.path}: ${a.text}`).toBe(r.ok);
        expect(a.res.headers.get("www-authenticate")).toBeNull();
        expect(a.res.headers.get("x-content-type-options")).toBe("nosniff");
        expect(a.res.headers.get("cache-control")).toBe("no-store");
      }
    });
  }

  it("another scheme (Basic, Digest, Token) → 401, even carrying the right key", async () => {
    const basic = btoa(`user:${h.apiKey}`);
    for (const r of routes()) {
      for (const authorization of [`Basic ${basic}`, `Basic ${h.apiKey}`, `Token ${h.apiKey}`, h.apiKey, "Bearer", "Bearer    "]) {
        const a = await h.call(w.app, r.path, { method: r.method, headers: { Authorization: authorization } });
        expectErrorShape(a, 401, "UNAUTHORIZED");
        expect(a.res.headers.get("www-authenticate")).toMatch(/^Bearer realm="sqlite-edge-backup"/);
      }
    }
  });

  it("the scheme name is case-insensitive (RFC 7235) and a right X-API-Key wins over a foreign Authorization", async () => {
    const lower = await h.call(w.app, "/status", { headers: { Authorization: `bearer ${h.apiKey}` } });
    expect(lower.status).toBe(200);
    const both = await h.call(w.app, "/status", { headers: { Authorization: "Basic dXNlcjpwYXNz", "X-API-Key": h.apiKey } });
    expect(both.status).toBe(200);
    const wrongBoth = await h.call(w.app, "/status", { headers: { Authorization: `Bearer ${WRONG}`, "X-API-Key": WRONG } });
    expectErrorShape(wrongBoth, 401, "UNAUTHORIZED");
  });

  it("authentication comes before validation: a bad {file} or query without a key is 401, not 400", async () => {
    const a = await h.call(w.app, "/backups/..%2Fx/link?redirect=maybe");
    expectErrorShape(a, 401, "UNAUTHORIZED");
    const multi = await h.call(w.app, "/backups/a/b/link");
    expectErrorShape(multi, 401, "UNAUTHORIZED");
  });

  it("/health and /openapi.json need no key", async () => {
    expect((await h.call(w.app, "/health")).status).toBe(200);
    expect((await h.call(w.app, "/openapi.json")).status).toBe(200);
    expect((await h.call(w.app, "/health", { headers: { Authorization: `Bearer ${WRONG}` } })).status).toBe(200);
  });
});

describe("without API_KEY", () => {
  it("every protected route → 403 API_DISABLED naming API_KEY, whatever the headers; /health still 200", async () => {
    const off = await h.wire("auth-off", { apiKey: null });
    const before = (await h.s3.keys("backups/auth-off/")).length;
    for (const r of routes()) {
      for (const headers of [{}, { Authorization: `Bearer ${h.apiKey}` }, { "X-API-Key": h.apiKey }, { Authorization: "Basic abc" }] as Record<string, string>[]) {
        const a = await h.call(off.app, r.path.replaceAll("auth-", "auth-off-"), { method: r.method, headers });
        expectErrorShape(a, 403, "API_DISABLED");
        expect(a.json.error.message).toContain("set API_KEY");
        expect(a.res.headers.get("www-authenticate")).toBeNull();
      }
    }
    expect(off.storeCalls).toEqual([]);
    expect((await h.s3.keys("backups/auth-off/")).length).toBe(before);
    expect((await h.call(off.app, "/health")).status).toBe(200);
    expect((await h.call(off.app, "/openapi.json")).status).toBe(200);
  });
});

describe("timingSafeEqual", () => {
  it("is true only for identical strings, whatever their lengths", async () => {
    expect(await timingSafeEqual(h.apiKey, h.apiKey)).toBe(true);
    expect(await timingSafeEqual("", "")).toBe(true);
    expect(await timingSafeEqual(h.apiKey, `${h.apiKey} `)).toBe(false);
    expect(await timingSafeEqual(h.apiKey, h.apiKey.slice(1))).toBe(false);
    expect(await timingSafeEqual("a".repeat(10_000), "a".repeat(9_999) + "b")).toBe(false);
    expect(await timingSafeEqual("ключ-✓", "ключ-✓")).toBe(true);
    expect(await timingSafeEqual("ключ-✓", "ключ-x")).toBe(false);
  });
});

describe("secrets", () => {
  it("neither the API key nor the S3 secret appeared in any response or log line of this file", () => {
    expect(h.transcript.length).toBeGreaterThan(100);
    h.assertNoSecrets();
  });
});
