/**
 * Alerts and metrics inside workerd: the deployed bundle posts run outcomes with workerd's own
 * fetch to a receiver on 127.0.0.1 (a failed cron run, and a POST /backups heartbeat that is
 * delivered after the response, kept alive by ctx.waitUntil), and GET /metrics answers in the
 * Prometheus text format. The NOTIFY_URL token must never leave the Worker anywhere else.
 */
import { randomBytes } from "node:crypto";
import parsePrometheus from "parse-prometheus-text-format";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { version } from "../../package.json";
import { makeDatabase } from "../helpers/db.js";
import { registerSecret } from "../helpers/log-capture.js";
import { Receiver } from "../helpers/receiver.js";
import { serve, WorkerHarness, type TestWorker } from "./harness.js";

const TOKEN = registerSecret("NOTIFY_URL path token", `hc${randomBytes(16).toString("hex")}`);
const h = new WorkerHarness();
h.secrets.push(TOKEN);
const receiver = new Receiver();
let w: TestWorker;
let db: Uint8Array;

beforeAll(async () => {
  [, , db] = await Promise.all([h.start(), receiver.start(), makeDatabase({ rows: 500 })]);
  w = await h.worker("notified", { env: { NOTIFY_URL: `${receiver.base}/hook/${TOKEN}`, NOTIFY_ON: "always" } });
});
afterAll(async () => {
  await h.close();
  await receiver.close();
});
beforeEach(() => receiver.reset());

/** Deliveries may land after the response (waitUntil): wait for them, without asserting on time. */
async function received(count: number, timeoutMs = 10_000): Promise<Record<string, unknown>[]> {
  const deadline = Date.now() + timeoutMs;
  while (receiver.received.length < count && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  expect(receiver.received).toHaveLength(count);
  return receiver.json();
}

function metric(text: string, family: string, labels: Record<string, string>): number | undefined {
  const f = parsePrometheus(text).find((x) => x.name === family);
  const s = f?.metrics.find((m) => JSON.stringify(m.labels ?? {}) === JSON.stringify(labels));
  return s ? Number(s.value) : undefined;
}

describe("alerts from workerd", () => {
  it("a failed cron run posts the failure to the receiver before the invocation ends", async () => {
    h.source.set(w.sourcePath, serve.status(500, "boom"));
    const result = await w.scheduled();
    expect(result.outcome).toBe("exception");
    const [body] = await received(1, 0); // awaited by scheduled() itself: already there
    expect(body).toMatchObject({ name: "notified", status: "failed", error: { code: "SOURCE_UNREADABLE" } });
    expect((body!.error as { message: string }).message).toMatch(/HTTP 500/);
    const [req] = receiver.received;
    expect(req!.url).toBe(`/hook/${TOKEN}`);
    expect(req!.headers["content-type"]).toBe("application/json");
    expect(req!.headers["user-agent"]).toBe(`sqlite-edge-backup/${version}`);

    const status = await w.call("/status", { headers: h.auth() });
    expect(status.json.lastNotify).toMatchObject({ delivered: true, run: "failed", attempts: 1, httpStatus: 200 });
  });

  it("POST /backups answers 201 and the heartbeat (NOTIFY_ON=always) arrives with its key", async () => {
    h.source.set(w.sourcePath, serve.db(db));
    const a = await w.backup();
    expect(a.status, a.text).toBe(201);
    const [body] = await received(1);
    expect(body).toMatchObject({ name: "notified", status: "ok", key: a.json.key, bytes: db.length, gzipBytes: a.json.gzipBytes });
  });

  it("a receiver answering 503 then 200 gets the alert on the 2nd attempt", async () => {
    receiver.script = [503, 200];
    h.source.set(w.sourcePath, serve.status(404));
    const result = await w.scheduled();
    expect(result.outcome).toBe("exception");
    await received(2, 0);
    const status = await w.call("/status", { headers: h.auth() });
    expect(status.json.lastNotify).toMatchObject({ delivered: true, attempts: 2, httpStatus: 200 });
    expect(status.json.lastRun).toMatchObject({ ok: false, error: { code: "SOURCE_NOT_FOUND" } });
  });
});

describe("GET /metrics in workerd", () => {
  it("401 without the key; with it, the runs of this isolate in the text format", async () => {
    const none = await w.call("/metrics");
    expect(none.status).toBe(401);
    const a = await w.call("/metrics", { headers: h.auth() });
    expect(a.status, a.text).toBe(200);
    expect(a.res.headers.get("content-type")).toBe("text/plain; version=0.0.4; charset=utf-8");
    expect(metric(a.text, "sqlite_backup_runs_total", { name: "notified", result: "failure" })).toBe(2);
    expect(metric(a.text, "sqlite_backup_runs_total", { name: "notified", result: "success" })).toBe(1);
    expect(metric(a.text, "sqlite_backup_last_bytes", { name: "notified" })).toBe(db.length);
    expect(metric(a.text, "sqlite_backup_running", { name: "notified" })).toBe(0);
  });

  it("a new isolate seeds the last success from the bucket", async () => {
    const other = await h.worker("notified", { env: { NOTIFY_URL: `${receiver.base}/hook/${TOKEN}` } });
    const newest = (await other.call("/backups", { headers: h.auth() })).json.backups[0];
    const a = await other.call("/metrics", { headers: h.auth() });
    expect(a.status, a.text).toBe(200);
    expect(metric(a.text, "sqlite_backup_runs_total", { name: "notified", result: "success" })).toBe(0);
    expect(metric(a.text, "sqlite_backup_last_success_timestamp_seconds", { name: "notified" })).toBe(Date.parse(newest.lastModified) / 1000);
    await h.dispose(other);
  });
});

describe("secrets", () => {
  it("the NOTIFY_URL token, the API key and the S3 secret appear in no response and no workerd log line", async () => {
    await h.waitForLog((l) => l.msg === "notification sent", "notified");
    expect(h.jsonLogs("notified").find((l) => l.msg === "notification sent")).toMatchObject({ notify: `${receiver.base}/…` });
    h.assertNoSecrets();
    for (const r of receiver.received) expect(r.body).not.toContain(TOKEN);
  });
});
