/**
 * The status page's server side: the assets at / (no key, no data, strict headers), the
 * listing's details, and the run history and progress in /status, against a real service
 * (real SQLite files, the in-process S3 server). The page itself runs in Chromium in
 * test/browser/.
 */
import { rm } from "node:fs/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CONTENT_SECURITY_POLICY } from "../../src/api/headers.js";
import { PAGE_ASSETS } from "../../src/api/page/index.js";
import { pushRun, RUN_HISTORY_LIMIT, type RunRecord } from "../../src/runs.js";
import { sha256 } from "../helpers/db.js";
import { expectErrorShape, Harness } from "./harness.js";

const h = new Harness();
beforeAll(() => h.start());
afterAll(() => {
  h.assertNoSecrets();
  return h.close();
});

describe("the page's assets", () => {
  it("/, /page/app.js and /page/app.css answer without a key, with the strict policy, and carry no data", async () => {
    const { app } = await h.wire("pageassets");
    const types: Record<string, string> = { "/": "text/html; charset=utf-8", "/page/app.js": "text/javascript; charset=utf-8", "/page/app.css": "text/css; charset=utf-8" };
    for (const [path, type] of Object.entries(types)) {
      const a = await h.call(app, path);
      expect(a.status, path).toBe(200);
      expect(a.res.headers.get("content-type")).toBe(type);
      expect(a.res.headers.get("content-security-policy")).toBe(CONTENT_SECURITY_POLICY);
      expect(a.res.headers.get("x-frame-options")).toBe("DENY");
      expect(a.res.headers.get("x-content-type-options")).toBe("nosniff");
      expect(a.res.headers.get("referrer-policy")).toBe("no-referrer");
      expect(a.text).not.toContain("pageassets");
    }
    expect(Object.keys(PAGE_ASSETS).sort()).toEqual(Object.keys(types).sort());
  });

  it("the policy covers the API's answers and errors too", async () => {
    const { app } = await h.wire("pagepolicy");
    for (const path of ["/health", "/status", "/nope"]) {
      const a = await h.call(app, path);
      expect(a.res.headers.get("content-security-policy"), path).toBe(CONTENT_SECURITY_POLICY);
      expect(a.res.headers.get("x-frame-options"), path).toBe("DENY");
    }
  });

  it("the document has no inline script or style and links only the page's own files; the script talks only to its origin", () => {
    const html = PAGE_ASSETS["/"]![1];
    expect(html).not.toMatch(/<script(?![^>]*\bsrc=)[^>]*>/);
    expect(html).not.toMatch(/<style|\sstyle=|\son[a-z]+=/i);
    expect([...html.matchAll(/(?:src|href)="([^"]+)"/g)].map((m) => m[1])).toEqual(["data:,", "page/app.css", "page/app.js"]);
    const js = PAGE_ASSETS["/page/app.js"]![1];
    // The SVG namespace is a name, not a request.
    expect([...js.matchAll(/https?:\/\/[^\s"']+/g)].map((m) => m[0])).toEqual(["http://www.w3.org/2000/svg"]);
    expect(js).not.toMatch(/localStorage|document\.cookie|innerHTML|eval\(|new Function/);
    expect(js).toContain("sessionStorage");
  });
});

describe("GET /backups?details=1 and the run history in /status", () => {
  it("lists sha256, image size and how each backup was verified; /status keeps the runs newest first", async () => {
    const w = await h.wire("pagedetails", { db: { rows: 300, targetBytes: 64 * 1024 } });
    const first = await h.call(w.app, "/backups", { method: "POST", ...h.bearer() });
    const second = await h.call(w.app, "/backups", { method: "POST", ...h.bearer() });
    expect([first.status, second.status]).toEqual([201, 201]);

    const plain = await h.call(w.app, "/backups", h.bearer());
    expect(plain.json.backups.map((b: Record<string, unknown>) => Object.keys(b).sort())).toEqual([
      ["file", "key", "lastModified", "size"],
      ["file", "key", "lastModified", "size"],
    ]);
    const detailed = await h.call(w.app, "/backups?details=1", h.bearer());
    expect(detailed.status).toBe(200);
    expect(detailed.json.backups).toEqual(
      [second.json, first.json].map((m) => expect.objectContaining({ key: m.key, file: m.file, size: m.gzipBytes, sha256: sha256(w.source), bytes: w.source.length, encrypted: false, verified: "head" })),
    );
    expectErrorShape(await h.call(w.app, "/backups?details=yes", h.bearer()), 400, "BAD_REQUEST");

    const status = (await h.call(w.app, "/status", h.bearer())).json;
    expect(status.progress).toBeUndefined();
    expect(status.runs).toEqual(
      [second.json, first.json].map((m) =>
        expect.objectContaining({ result: "ok", trigger: "api", key: m.key, bytes: m.bytes, gzipBytes: m.gzipBytes, sha256: m.sha256, verified: "head" }),
      ),
    );
  });

  it("a covered schedule window is a skipped run with its reason (lastRun stays the backup); a failure is a failed run with its code", async () => {
    const w = await h.wire("pageskips", { db: { rows: 50 } });
    const made = await h.call(w.app, "/backups", { method: "POST", ...h.bearer() });
    expect(made.status).toBe(201);
    const skipped = await w.service.scheduled(new Date(Date.parse(made.json.startedAt) - 60_000));
    expect(skipped.ran).toBe(false);
    let status = w.service.status();
    expect(status.runs[0]).toMatchObject({ result: "skipped", trigger: "schedule", reason: expect.stringMatching(/exists already/) });
    expect(status.runs[0]!.key).toBeUndefined();
    expect(status.lastRun).toMatchObject({ ok: true, key: made.json.key });

    await rm(w.dbPath);
    const failed = await h.call(w.app, "/backups", { method: "POST", ...h.bearer() });
    expect(failed.status).toBeGreaterThanOrEqual(400);
    status = w.service.status();
    expect(status.runs.map((r) => r.result)).toEqual(["failed", "skipped", "ok"]);
    expect(status.runs[0]!.error?.code).toBe(failed.json.error.code);
  });

  it("the history keeps the newest RUN_HISTORY_LIMIT runs", () => {
    let runs: RunRecord[] = [];
    for (let i = 0; i < RUN_HISTORY_LIMIT + 10; i++) {
      runs = pushRun(runs, { startedAt: String(i), finishedAt: String(i), durationMs: i, result: "ok", trigger: "api" });
    }
    expect(runs).toHaveLength(RUN_HISTORY_LIMIT);
    expect(runs[0]!.durationMs).toBe(RUN_HISTORY_LIMIT + 9);
    expect(runs.at(-1)!.durationMs).toBe(10);
  });
});
