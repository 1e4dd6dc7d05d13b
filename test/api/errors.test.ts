/**
 * Every kind of error response of the HTTP API has the same JSON shape
 * {"error":{"code","message"}}, nosniff and no-store: 400, 401, 403, 404, 405-as-404, 409,
 * 413 and 500 — the 500 without the real message, which goes to the log instead.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { BackupService } from "../../src/service.js";
import { type Answer, expectErrorShape, Harness, type Wired } from "./harness.js";

const h = new Harness();
let w: Wired;

beforeAll(async () => {
  await h.start();
  w = await h.wire("errs");
});
afterAll(() => h.close());

const post = (init: RequestInit = {}): RequestInit => ({ method: "POST", ...init, headers: { Authorization: `Bearer ${h.apiKey}`, ...(init.headers as Record<string, string>) } });

describe("error responses", () => {
  it("400 INVALID_BACKUP_FILE", async () => {
    expectErrorShape(await h.call(w.app, "/backups/nope/link", h.bearer()), 400, "INVALID_BACKUP_FILE");
  });

  it("400 BAD_REQUEST naming the query parameter for a zod validation failure", async () => {
    for (const path of ["/backups/latest/link?redirect=yes", "/backups/latest/link?redirect=1&redirect=0", "/backups/errs-2026-01-02T03-04-05-678Z-abcdef.sqlite.gz/link?redirect=2"]) {
      const a = await h.call(w.app, path, h.bearer());
      expectErrorShape(a, 400, "BAD_REQUEST");
      expect(a.json.error.message).toMatch(/^invalid query parameter "redirect": /);
    }
    expect(w.storeCalls).toEqual([]);
  });

  it("401 UNAUTHORIZED and 403 API_DISABLED", async () => {
    const a = await h.call(w.app, "/status");
    expectErrorShape(a, 401, "UNAUTHORIZED");
    expect(a.res.headers.get("www-authenticate")).toBe('Bearer realm="sqlite-edge-backup"');
    const off = await h.wire("errs-off", { apiKey: null });
    expectErrorShape(await h.call(off.app, "/status"), 403, "API_DISABLED");
  });

  it("404 NOT_FOUND for unknown routes and for known paths with another method", async () => {
    for (const [method, path] of [
      ["POST", "/"], // GET / is the status page
      ["GET", "/nope"],
      ["GET", "/backups/"],
      ["GET", "/backups/latest"],
      ["GET", "/backups/latest/link/extra"],
      ["POST", "/health"],
      ["DELETE", "/backups"],
      ["PUT", "/backups/latest/link"],
    ] as const) {
      const a = await h.call(w.app, path, { method, ...h.bearer() });
      expectErrorShape(a, 404, "NOT_FOUND");
      expect(a.json.error.message).toContain(`${method} ${path}`);
    }
  });

  it("404 BACKUP_NOT_FOUND", async () => {
    expectErrorShape(await h.call(w.app, "/backups/latest/link", h.bearer()), 404, "BACKUP_NOT_FOUND");
  });

  it("409 BACKUP_RUNNING carries runningSince", async () => {
    const big = await h.wire("errs-busy", { db: { rows: 100, targetBytes: 4 * 1024 * 1024 } });
    const [first, second] = await Promise.all([h.call(big.app, "/backups", post()), h.call(big.app, "/backups", post())]);
    expect([first!.status, second!.status].sort()).toEqual([201, 409]);
    const busy = (first!.status === 409 ? first : second) as Answer;
    expectErrorShape(busy, 409, "BACKUP_RUNNING");
    expect(busy.json.error.runningSince).toMatch(/Z$/);
  });

  it("413 BODY_TOO_LARGE for a body over 1 KiB, by Content-Length or streamed; small bodies are ignored", async () => {
    const before = (await h.s3.keys("backups/errs/")).length;
    const big = "x".repeat(1025);
    const declared = await h.call(w.app, "/backups", post({ body: big, headers: { "Content-Length": String(big.length) } }));
    expectErrorShape(declared, 413, "BODY_TOO_LARGE");
    const stream = new ReadableStream<Uint8Array>({
      start(controller) {
        for (let i = 0; i < 64; i++) controller.enqueue(new Uint8Array(100).fill(65));
        controller.close();
      },
    });
    const streamed = await h.call(w.app, "/backups", { ...post(), body: stream, duplex: "half" } as RequestInit);
    expectErrorShape(streamed, 413, "BODY_TOO_LARGE");
    const unsized = await h.call(w.app, "/backups", post({ body: "{}".padEnd(5000, " ") }));
    expectErrorShape(unsized, 413, "BODY_TOO_LARGE");
    expect((await h.s3.keys("backups/errs/")).length).toBe(before);

    const small = await h.call(w.app, "/backups", post({ body: JSON.stringify({ ignored: true }), headers: { "Content-Type": "application/json" } }));
    expect(small.status).toBe(201);
    expect((await h.s3.keys("backups/errs/")).length).toBe(before + 1);
  });

  it("500 INTERNAL with a generic message when the service throws a plain Error; the log has the message, no stack", async () => {
    const marker = `disk on fire ${Date.now()}`;
    const broken = await h.wire("errs-broken", {
      override: (s): BackupService => ({
        ...s,
        list: async () => {
          throw new Error(marker);
        },
      }),
    });
    const logStart = h.logLines.length;
    const a = await h.call(broken.app, "/backups", h.bearer());
    expectErrorShape(a, 500, "INTERNAL");
    expect(a.text).not.toContain(marker);
    expect(a.text).not.toContain("Error");
    const logged = h.logLines.slice(logStart).map((l) => JSON.parse(l) as Record<string, unknown>);
    const failure = logged.find((l) => l.msg === "request failed");
    expect(failure).toMatchObject({ level: "error", method: "GET", path: "/backups", status: 500, code: "INTERNAL", error: marker });
    expect(h.logLines.slice(logStart).join("\n")).not.toMatch(/\bat .*\.(ts|js):\d+/);
    expect(logged.filter((l) => l.msg === "request").map((l) => l.status)).toEqual([500]);
  });

  it("a store failure keeps its own code and status (502 STORE_*), logged", async () => {
    const bad = await h.wire("errs-store", { env: { S3_BUCKET: `missing-${Date.now()}` } });
    const logStart = h.logLines.length;
    const a = await h.call(bad.app, "/backups", h.bearer());
    expect(a.status).toBeGreaterThanOrEqual(500);
    expectErrorShape(a, a.status, "STORE_BUCKET_MISSING");
    expect(h.logLines.slice(logStart).some((l) => l.includes('"request failed"') && l.includes("STORE_BUCKET_MISSING"))).toBe(true);
  });
});

describe("secrets", () => {
  it("neither the API key nor the S3 secret appeared in any response or log line of this file", () => {
    h.assertNoSecrets();
  });
});
