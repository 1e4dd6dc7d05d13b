/**
 * The Node adapter over real HTTP: @hono/node-server on 127.0.0.1 serving the same app as
 * the Worker, with the scheduler's next run in /status.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gunzipSync } from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startServer, type RunningServer } from "../functions/node-server.js";
import type { FleetRun } from "../src/fleet.js";
import type { ScheduledResult } from "../src/service.js";
import { silentLogger } from "../src/log.js";
import { dumpTables, sha256, writeDatabase } from "./helpers/db.js";
import { registerSecret } from "./helpers/log-capture.js";
import { closedPort as freePort } from "./helpers/receiver.js";
import { startTestStore, type TestStore } from "./helpers/s3.js";

const API_KEY = registerSecret("API_KEY", "node-server-test-key-0123456789");
let s3: TestStore;
let dir: string;
let server: RunningServer;
let source: Uint8Array;


beforeAll(async () => {
  s3 = await startTestStore();
  dir = await mkdtemp(join(tmpdir(), "seb-node-server-"));
  const path = join(dir, "served.db");
  source = await writeDatabase(path, { rows: 200, targetBytes: 500_000 });
  server = await startServer(s3.env({ BACKUP_SOURCE: path, API_KEY, PORT: String(await freePort()), SCHEDULE: "0 4 * * *" }), { logger: silentLogger });
  firstStart = only(await server.catchUp);
});
let firstStart: ScheduledResult;

/** The one database's result of a scheduler run. */
function only(runs: FleetRun[] | undefined): ScheduledResult {
  expect(runs).toHaveLength(1);
  const run = runs![0]!;
  if (!run.ok) throw run.error;
  return run.result;
}
afterAll(async () => {
  await server?.stop();
  await s3?.close();
  await rm(dir, { recursive: true, force: true });
});

const auth = { Authorization: `Bearer ${API_KEY}` };

describe("schedule awareness at start", () => {
  it("a first start with no backup in the bucket backs up at once for the last tick (no missed day)", async () => {
    expect(firstStart.ran).toBe(true);
    const keys = await s3.keys("backups/served/");
    expect(keys).toHaveLength(1);
    if (firstStart.ran) expect(firstStart.manifest.sha256).toBe(sha256(source));
  });

  it("restarting (twice) with that backup in place does not back up again (no burst)", async () => {
    for (let restart = 0; restart < 2; restart++) {
      const again = await startServer(s3.env({ BACKUP_SOURCE: join(dir, "served.db"), API_KEY, PORT: String(await freePort()), SCHEDULE: "0 4 * * *" }), { logger: silentLogger });
      const result = only(await again.catchUp);
      await again.stop();
      expect(result.ran).toBe(false);
      if (!result.ran) expect(result.reason).toMatch(/window starting .*T04:00:00\.000Z exists already/);
    }
    expect(await s3.keys("backups/served/")).toHaveLength(1);
  });

  it("a process that was down over a tick catches up once: the newest backup is older than the last tick", async () => {
    // Every second is a tick: the backup above is older than the last one by the time this runs.
    await new Promise((r) => setTimeout(r, 1100));
    const env = s3.env({ BACKUP_SOURCE: join(dir, "served.db"), API_KEY, PORT: String(await freePort()), SCHEDULE: "* * * * * *" });
    const late = await startServer(env, { logger: silentLogger, catchUp: true });
    const result = only(await late.catchUp);
    await late.stop();
    expect(result.ran).toBe(true);
  });
});

describe("node server", () => {
  it("binds to 127.0.0.1 and serves health without auth", async () => {
    expect(server.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    const r = await fetch(`${server.url}/health`);
    expect(r.status).toBe(200);
    expect(await r.json()).toEqual({ status: "ok" });
    expect(r.headers.get("x-content-type-options")).toBe("nosniff");
  });

  it("backs up on POST and the link route redirects to a download of exactly the source", async () => {
    const post = await fetch(`${server.url}/backups`, { method: "POST", headers: auth });
    expect(post.status).toBe(201);
    const manifest = (await post.json()) as { key: string; sha256: string };
    expect(manifest.sha256).toBe(sha256(source));

    const redirect = await fetch(`${server.url}/backups/latest/link?redirect=1`, { headers: auth, redirect: "manual" });
    expect(redirect.status).toBe(302);
    const download = await fetch(redirect.headers.get("location") ?? "");
    const restored = new Uint8Array(gunzipSync(new Uint8Array(await download.arrayBuffer())));
    expect(sha256(restored)).toBe(sha256(source));
    expect(await dumpTables(restored)).toEqual(await dumpTables(source));
  });

  it("reports the scheduler's next run and the last run in /status", async () => {
    const r = await fetch(`${server.url}/status`, { headers: { "X-API-Key": API_KEY } });
    const status = (await r.json()) as { nextRun: string; lastRun: { ok: boolean } | null };
    expect(new Date(status.nextRun).getUTCHours()).toBe(4);
    expect(new Date(status.nextRun).getTime()).toBeGreaterThan(Date.now());
    expect(status.lastRun?.ok).toBe(true);
  });

  it("answers 401 with WWW-Authenticate and JSON without a key, and JSON 404 for unknown routes", async () => {
    const r = await fetch(`${server.url}/backups`);
    expect(r.status).toBe(401);
    expect(r.headers.get("www-authenticate")).toMatch(/^Bearer/);
    expect(((await r.json()) as { error: { code: string } }).error.code).toBe("UNAUTHORIZED");
    const nf = await fetch(`${server.url}/nope`);
    expect(nf.status).toBe(404);
    expect(((await nf.json()) as { error: { code: string } }).error.code).toBe("NOT_FOUND");
  });
});
