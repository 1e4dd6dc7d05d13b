/**
 * URL source failures inside workerd (its fetch, its streams): POST /backups answers the
 * JSON error with the right code and status, and nothing reaches the bucket — no object,
 * no multipart upload. The source needs a token from BACKUP_SOURCE_HEADERS, which must
 * never be echoed either.
 */
import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Manifest } from "../../src/backup.js";
import { makeDatabase } from "../helpers/db.js";
import { expectErrorShape } from "../api/harness.js";
import { serve, WorkerHarness, type Route, type TestWorker } from "./harness.js";

const MiB = 1024 * 1024;
const TOKEN = `src-${randomBytes(12).toString("hex")}`;
const h = new WorkerHarness();
h.secrets.push(TOKEN);
let w: TestWorker;
let small: TestWorker;
let db: Uint8Array;

/** The source answers only requests carrying the token. */
const guarded =
  (route: Route): Route =>
  (req, res) => {
    if (req.headers["x-source-token"] !== TOKEN) {
      res.writeHead(401, { "Content-Type": "text/plain" }).end("token required");
      return;
    }
    route(req, res);
  };

beforeAll(async () => {
  [, db] = await Promise.all([h.start(), makeDatabase({ rows: 2000, targetBytes: 2 * MiB })]);
  const headers = JSON.stringify({ "X-Source-Token": TOKEN });
  [w, small] = await Promise.all([
    h.worker("src", { env: { BACKUP_SOURCE_HEADERS: headers } }),
    h.worker("limited", { env: { BACKUP_SOURCE_HEADERS: headers, MAX_BYTES: String(1 * MiB) } }),
  ]);
});
afterAll(() => h.close());

async function expectNothingStored(): Promise<void> {
  expect(await h.s3.keys()).toEqual([]);
  expect(await h.s3.uploads()).toEqual([]);
}

describe("POST /backups with a failing source", () => {
  const cases: { label: string; route: () => Route; status: number; code: string; message: RegExp; worker?: () => TestWorker }[] = [
    { label: "404", route: () => serve.status(404, "no such file"), status: 502, code: "SOURCE_NOT_FOUND", message: /HTTP 404/ },
    { label: "410", route: () => serve.status(410), status: 502, code: "SOURCE_NOT_FOUND", message: /HTTP 410/ },
    { label: "500", route: () => serve.status(500, "boom"), status: 502, code: "SOURCE_UNREADABLE", message: /HTTP 500/ },
    { label: "a body shorter than its Content-Length", route: () => serve.short(db), status: 502, code: "SOURCE_UNREADABLE", message: /Content-Length|connection|ended/i },
    { label: "a zip file instead of a database", route: () => serve.body(new Uint8Array([0x50, 0x4b, 0x03, 0x04, ...randomBytes(4096)])), status: 422, code: "NOT_SQLITE", message: /not a SQLite database/ },
    { label: "random bytes", route: () => serve.body(randomBytes(64 * 1024)), status: 422, code: "NOT_SQLITE", message: /not a SQLite database/ },
    { label: "an HTML login page", route: () => serve.body("<!doctype html><html><body>Please log in</body></html>", "text/html; charset=utf-8"), status: 422, code: "NOT_SQLITE", message: /HTML/ },
    { label: "a missing token (401)", route: () => serve.status(401), status: 502, code: "SOURCE_UNREADABLE", message: /HTTP 401/ },
    {
      label: "over MAX_BYTES, announced by Content-Length",
      route: () => serve.db(db),
      status: 413,
      code: "SOURCE_TOO_LARGE",
      message: /over MAX_BYTES/,
      worker: () => small,
    },
    {
      label: "over MAX_BYTES, chunked (no Content-Length)",
      route: () => serve.chunked(db),
      status: 413,
      code: "SOURCE_TOO_LARGE",
      message: /more than MAX_BYTES/,
      worker: () => small,
    },
  ];

  for (const c of cases) {
    it(`${c.label} → ${c.status} ${c.code}, nothing uploaded`, async () => {
      const target = c.worker?.() ?? w;
      const route = c.route();
      h.source.set(target.sourcePath, c.label.includes("token") ? route : guarded(route));
      const a = await target.backup();
      expectErrorShape(a, c.status, c.code);
      expect(a.json.error.message).toMatch(c.message);
      await expectNothingStored();

      const status = await target.call("/status", { headers: h.auth() });
      expect(status.json.lastRun).toMatchObject({ ok: false, error: { code: c.code } });
      expect(status.json.running).toBe(false);
    });
  }

  it("the same Worker then backs up the real database (a failure leaves the isolate usable)", async () => {
    h.source.set(w.sourcePath, guarded(serve.db(db)));
    const a = await w.backup();
    expect(a.status, a.text).toBe(201);
    expect((a.json as Manifest).bytes).toBe(db.length);
    expect(await h.s3.keys()).toEqual([(a.json as Manifest).key]);
    expect(await h.s3.uploads()).toEqual([]);
  });
});

describe("secrets", () => {
  it("neither the API key, the S3 secret nor the source token appears in any response or workerd log line", () => {
    expect(h.logs.some((l) => l.message.includes("backup failed"))).toBe(true);
    h.assertNoSecrets();
  });
});
