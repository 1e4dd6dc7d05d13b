/**
 * The status page in Chromium against the deployed Worker bundle in workerd (Miniflare,
 * listening on 127.0.0.1), the in-process S3 server and an HTTP source, nothing mocked.
 * The first backup comes from the cron trigger, so /status knows the next scheduled run.
 */
import { afterAll, beforeAll, expect, it } from "vitest";
import { makeDatabase } from "../helpers/db.js";
import { CRON, WorkerHarness, type TestWorker } from "../workers/harness.js";
import { exerciseStatusPage, HeldSource } from "./scenario.js";

const NAME = "pageworker";
let h: WorkerHarness;
let w: TestWorker;
let base: string;
let source: HeldSource;
let made: [Uint8Array, Uint8Array];

beforeAll(async () => {
  h = await new WorkerHarness().start();
  const dbs = await Promise.all([
    makeDatabase({ rows: 400, targetBytes: 150_000 }),
    makeDatabase({ rows: 3000, targetBytes: 200_000 }),
  ]);
  made = [dbs[0], dbs[1]];
  source = new HeldSource(made[0]);
  w = await h.worker(NAME);
  h.source.set(w.sourcePath, source.route);
  base = (await w.mf.ready).origin;
  expect(new URL(base).hostname).toBe("127.0.0.1");

  // Before any trigger the isolate cannot know the schedule (wrangler.toml is not readable there).
  expect((await w.call("/status", { headers: h.auth() })).json.nextRun).toBeNull();
  expect((await w.scheduled(CRON)).outcome).toBe("ok");
  source.bytes = made[1];
  expect((await w.backup()).status).toBe(201);
  const status = (await w.call("/status", { headers: h.auth() })).json;
  expect(status.runs.map((r: { trigger: string; result: string }) => `${r.trigger}:${r.result}`)).toEqual(["api:ok", "schedule:ok"]);
  // The next 03:00 UTC after now, from the trigger's cron.
  const next = new Date(status.nextRun);
  expect(next.getUTCHours()).toBe(3);
  expect(next.getTime() - Date.now()).toBeGreaterThan(0);
  expect(next.getTime() - Date.now()).toBeLessThanOrEqual(24 * 3600_000);
});

afterAll(async () => {
  await h?.close();
});

it("a person opens the page with the key, sees the databases, charts and backups, downloads one, watches a run and triggers one", async () => {
  const next = await Promise.all([makeDatabase({ rows: 6000, targetBytes: 400_000 }), makeDatabase({ rows: 8000, targetBytes: 250_000 })]);
  const figures = await exerciseStatusPage({ label: "worker", base, name: NAME, apiKey: h.apiKey, source, made, next: [next[0], next[1]], nextRunKnown: true });
  console.log(`status page weight (worker): first load ${figures.firstLoadBytes} bytes ${JSON.stringify(figures.firstLoad)}; data after the key ${figures.dataBytes} bytes`);
  expect(figures.firstLoadBytes).toBeLessThan(64 * 1024);
  h.assertNoSecrets();
}, 180_000);
