/**
 * NOTIFY_URL alerts, end to end on Node: the real backup service (real SQLite files, the
 * in-process S3 server) posts each run's outcome to a real HTTP receiver on 127.0.0.1. The
 * receiver fails, stalls or is absent on purpose: the backup's own result never changes, the
 * delivery is retried only where that can help, and neither the URL's token nor any other
 * secret reaches a body or a log line. The logger here does no redaction of its own, so the
 * notifier itself must keep the URL out of its lines.
 */
import { randomBytes } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { createNodeRuntime, NODE_MAX_BYTES, nodeFiles } from "../functions/node-runtime.js";
import { version } from "../package.json";
import { parseConfig, secretsOf } from "../src/config.js";
import { jsonLogger } from "../src/log.js";
import { createNotifier, describeNotifyUrl, notifyTarget, notifyUrlSecrets, shouldNotify, USER_AGENT, type NotifierOptions } from "../src/notify.js";
import type { Runtime } from "../src/runtime.js";
import { createBackupService } from "../src/service.js";
import { createSource } from "../src/sources/index.js";
import { createS3Store } from "../src/store/s3.js";
import { cli } from "./helpers/cli.js";
import { writeDatabase } from "./helpers/db.js";
import { backupError } from "./helpers/errors.js";
import { capturedLines, registerSecret } from "./helpers/log-capture.js";
import { closedPort, Receiver } from "./helpers/receiver.js";
import { startTestStore, type TestStore } from "./helpers/s3.js";

const TOKEN = registerSecret("NOTIFY_URL path token", `hc${randomBytes(16).toString("hex")}`);
const QUERY_TOKEN = registerSecret("NOTIFY_URL query token", `q${randomBytes(12).toString("hex")}`);
const API_KEY = registerSecret("API_KEY", `api-${randomBytes(18).toString("hex")}`);
const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

let s3: TestStore;
let receiver: Receiver;
let dir: string;
let dbPath: string;
let runtime: Runtime;
const logLines = capturedLines("notify log");
const logger = jsonLogger({ write: (line) => logLines.push(line), level: "debug" });
const logged = () => logLines.map((l) => JSON.parse(l) as Record<string, unknown>);

beforeAll(async () => {
  [s3, receiver, dir] = await Promise.all([startTestStore(), new Receiver().start(), mkdtemp(join(tmpdir(), "seb-notify-"))]);
  runtime = await createNodeRuntime(logger);
  dbPath = join(dir, "app.db");
  await writeDatabase(dbPath, { rows: 200 });
});
afterAll(async () => {
  await Promise.all([s3?.close(), receiver?.close()]);
  if (dir) await rm(dir, { recursive: true, force: true });
});
beforeEach(() => receiver.reset());

const notifyUrl = () => `${receiver.base}/ping/${TOKEN}?key=${QUERY_TOKEN}`;

/** The real service for BACKUP_NAME `name`, with a notifier whose timeout and backoff are short. */
function wire(name: string, options: { env?: Record<string, string>; source?: string; notifier?: Partial<NotifierOptions> } = {}) {
  const config = parseConfig(s3.env({ BACKUP_SOURCE: options.source ?? dbPath, BACKUP_NAME: name, API_KEY, NOTIFY_URL: notifyUrl(), ...options.env }), { maxBytes: NODE_MAX_BYTES });
  const notifier = createNotifier(config.notify!, { fetch, logger, now: () => new Date(), secrets: secretsOf(config), timeoutMs: 2000, backoffMs: () => 10, ...options.notifier });
  const source = createSource(config.source, { files: nodeFiles, s3: config.s3 });
  const service = createBackupService({ config, runtime, store: createS3Store(config.s3), source }, { notifier });
  return { config, notifier, service };
}

/** Everything that left the process towards the receiver, and every log line. */
function expectNoSecrets(extra: string[] = []): void {
  const everything = [...receiver.received.map((r) => `${r.url}\n${r.body}`), ...logLines].join("\n");
  // The token travels in the request's own URL by design; it must not appear anywhere else.
  const outside = [...receiver.received.map((r) => r.body), ...logLines].join("\n");
  for (const s of [TOKEN, QUERY_TOKEN, API_KEY, ...extra]) expect(outside).not.toContain(s);
  expect(everything).not.toContain(API_KEY);
  if (s3.secretAccessKey !== s3.accessKeyId) expect(everything).not.toContain(s3.secretAccessKey);
}

describe("delivery", () => {
  it("a failed backup (missing source) POSTs the failure as JSON, with the headers, and /status records it", async () => {
    const { service, notifier } = wire("fail-missing", { source: join(dir, "missing.db") });
    const err = await backupError(service.backup());
    expect(err.code).toBe("SOURCE_NOT_FOUND");
    await notifier.idle();

    expect(receiver.received).toHaveLength(1);
    const [req] = receiver.received;
    expect(req!.method).toBe("POST");
    expect(req!.url).toBe(`/ping/${TOKEN}?key=${QUERY_TOKEN}`);
    expect(req!.headers["content-type"]).toBe("application/json");
    expect(req!.headers["user-agent"]).toBe(`sqlite-edge-backup/${version}`);
    expect(USER_AGENT).toBe(`sqlite-edge-backup/${version}`);

    const body = receiver.json()[0]!;
    expect(Object.keys(body).sort()).toEqual(["durationMs", "error", "finishedAt", "name", "startedAt", "status"]);
    expect(body).toMatchObject({ name: "fail-missing", status: "failed", error: { code: "SOURCE_NOT_FOUND", message: err.message } });
    expect(body.startedAt).toMatch(ISO);
    expect(body.finishedAt).toMatch(ISO);
    expect(Date.parse(body.finishedAt as string)).toBeGreaterThanOrEqual(Date.parse(body.startedAt as string));
    expect(body.durationMs).toBe(Date.parse(body.finishedAt as string) - Date.parse(body.startedAt as string));

    const status = service.status();
    expect(status.lastRun).toMatchObject({ ok: false, error: { code: "SOURCE_NOT_FOUND" } });
    expect(status.lastNotify).toMatchObject({ delivered: true, run: "failed", attempts: 1, httpStatus: 200 });
    expect(status.lastNotify!.at).toMatch(ISO);
    expect(logged().find((l) => l.msg === "notification sent")).toMatchObject({ name: "fail-missing", status: "failed", attempts: 1, notify: `${receiver.base}/…` });
    expectNoSecrets();
  });

  it("with the default NOTIFY_ON=failure a successful backup sends nothing", async () => {
    const { service, notifier, config } = wire("ok-quiet");
    expect(config.notify?.on).toBe("failure");
    const m = await service.backup();
    await notifier.idle();
    expect(m.bytes).toBeGreaterThan(0);
    expect(receiver.received).toEqual([]);
    expect(service.status().lastNotify).toBeNull();
  });

  it("with NOTIFY_ON=always a successful backup sends a heartbeat with its key and sizes", async () => {
    const { service, notifier } = wire("ok-heartbeat", { env: { NOTIFY_ON: "always" } });
    const m = await service.backup();
    await notifier.idle();
    expect(receiver.json()).toEqual([
      {
        name: "ok-heartbeat",
        status: "ok",
        key: m.key,
        bytes: m.bytes,
        gzipBytes: m.gzipBytes,
        durationMs: expect.any(Number),
        startedAt: expect.stringMatching(ISO),
        finishedAt: expect.stringMatching(ISO),
      },
    ]);
    expect(service.status().lastNotify).toMatchObject({ delivered: true, run: "ok", attempts: 1 });
  });

  it("a receiver answering 500, 500, then 200 gets the same body three times; delivered on the 3rd attempt", async () => {
    receiver.script = [500, 500, 200];
    const { service, notifier } = wire("retry-5xx", { source: join(dir, "missing.db") });
    await backupError(service.backup());
    await notifier.idle();
    expect(receiver.received).toHaveLength(3);
    expect(new Set(receiver.received.map((r) => r.body)).size).toBe(1);
    expect(service.status().lastNotify).toMatchObject({ delivered: true, attempts: 3, httpStatus: 200 });
    const retries = logged().filter((l) => l.msg === "notification attempt failed; retrying" && l.name === "retry-5xx");
    expect(retries.map((l) => l.attempt)).toEqual([1, 2]);
    expect(retries[0]!.error).toBe("the receiver answered HTTP 500");
  });

  it("429 is retried like a 5xx", async () => {
    receiver.script = [429, 204];
    const { service, notifier } = wire("retry-429", { source: join(dir, "missing.db") });
    await backupError(service.backup());
    await notifier.idle();
    expect(receiver.received).toHaveLength(2);
    expect(service.status().lastNotify).toMatchObject({ delivered: true, attempts: 2, httpStatus: 204 });
  });

  it("a 4xx is not retried: one request, not delivered, logged as an error", async () => {
    receiver.fallback = 404;
    const { service, notifier } = wire("no-retry-4xx", { source: join(dir, "missing.db") });
    await backupError(service.backup());
    await notifier.idle();
    expect(receiver.received).toHaveLength(1);
    expect(service.status().lastNotify).toMatchObject({ delivered: false, attempts: 1, httpStatus: 404, error: "the receiver answered HTTP 404" });
    expect(logged().find((l) => l.msg === "notification failed" && l.name === "no-retry-4xx")).toMatchObject({ level: "error", attempts: 1 });
  });
});

describe("a failing receiver never changes the backup's result", () => {
  it("always 500: the backup succeeds, 3 attempts, the error is logged without the URL's token", async () => {
    receiver.fallback = 500;
    const { service, notifier } = wire("always-500", { env: { NOTIFY_ON: "always" } });
    const m = await service.backup();
    expect(m.key).toContain("always-500/");
    await notifier.idle();
    expect(receiver.received).toHaveLength(3);
    expect(service.status().lastRun).toMatchObject({ ok: true, key: m.key });
    expect(service.status().lastNotify).toMatchObject({ delivered: false, run: "ok", attempts: 3, httpStatus: 500 });
    const failed = logged().find((l) => l.msg === "notification failed" && l.name === "always-500");
    expect(failed).toMatchObject({ level: "error", attempts: 3, error: "the receiver answered HTTP 500", notify: `${receiver.base}/…` });
    expectNoSecrets();
  });

  it("a closed port: the backup's own failure is what the caller sees; the delivery gives up after 3 attempts", async () => {
    const port = await closedPort();
    const { service, notifier } = wire("closed-port", { source: join(dir, "missing.db"), env: { NOTIFY_URL: `http://127.0.0.1:${port}/hook/${TOKEN}` } });
    const err = await backupError(service.backup());
    expect(err.code).toBe("SOURCE_NOT_FOUND");
    await notifier.idle();
    const last = service.status().lastNotify!;
    expect(last).toMatchObject({ delivered: false, attempts: 3 });
    expect(last.httpStatus).toBeUndefined();
    expect(last.error).toMatch(/could not reach the receiver.*ECONNREFUSED/);
    const failed = logged().find((l) => l.msg === "notification failed" && l.name === "closed-port");
    expect(failed).toMatchObject({ notify: `http://127.0.0.1:${port}/…` });
    expectNoSecrets();
  });

  it("a receiver that never answers: each attempt ends at the (injected) timeout; the backup is unaffected", async () => {
    receiver.fallback = "hang";
    const { service, notifier } = wire("hang", { env: { NOTIFY_ON: "always" }, notifier: { timeoutMs: 300 } });
    const m = await service.backup();
    // backup() has resolved while the delivery still waits for an answer: it ran in the background.
    expect(service.status().lastNotify).toBeNull();
    expect(service.status().lastRun).toMatchObject({ ok: true, key: m.key });
    await notifier.idle();
    expect(receiver.received).toHaveLength(3);
    expect(service.status().lastNotify).toMatchObject({ delivered: false, attempts: 3, error: "no answer within 0.3 s" });
    expectNoSecrets();
  });
});

describe("secrets", () => {
  it("a URL source's query token and header token, the API key and the S3 secret are absent from the webhook body and the logs", async () => {
    const srcQuery = registerSecret("source query token", `sq${randomBytes(12).toString("hex")}`);
    const srcHeader = registerSecret("source header token", `sh${randomBytes(12).toString("hex")}`);
    const sourceServer = await new Receiver().start();
    sourceServer.fallback = 500;
    try {
      const { service, notifier } = wire("secret-src", {
        source: `${sourceServer.base}/db/app.sqlite?token=${srcQuery}`,
        env: { BACKUP_SOURCE_HEADERS: JSON.stringify({ "X-Token": srcHeader }) },
      });
      const err = await backupError(service.backup());
      expect(err.code).toBe("SOURCE_UNREADABLE");
      expect(sourceServer.received[0]!.headers["x-token"]).toBe(srcHeader); // the token was really used
      await notifier.idle();
      const body = receiver.json()[0]!;
      expect(body).toMatchObject({ status: "failed", error: { code: "SOURCE_UNREADABLE", message: err.message } });
      expect((body.error as { message: string }).message).toMatch(/HTTP 500/);
      expectNoSecrets([srcQuery, srcHeader]);
    } finally {
      await sourceServer.close();
    }
  });

  it("a secret inside a run's error message is masked in the body (last line of defence)", async () => {
    const config = parseConfig(s3.env({ BACKUP_SOURCE: dbPath, API_KEY, NOTIFY_URL: notifyUrl() }), { maxBytes: NODE_MAX_BYTES });
    const notifier = createNotifier(config.notify!, { fetch, logger, now: () => new Date(), secrets: secretsOf(config) });
    const now = new Date().toISOString();
    notifier.notify("leaky", { ok: false, startedAt: now, finishedAt: now, durationMs: 0, error: { code: "INTERNAL", message: `failed with key ${API_KEY} at ${notifyUrl()}` } });
    await notifier.idle();
    const message = (receiver.json()[0]!.error as { message: string }).message;
    expect(message).toContain("[redacted]");
    expect(message).not.toContain(API_KEY);
    expect(message).not.toContain(TOKEN);
    expect(message).not.toContain(QUERY_TOKEN);
  });

  it("the URL is described by its origin only, and its token-like parts are secrets", () => {
    expect(describeNotifyUrl(`https://hc-ping.com/${TOKEN}`)).toBe("https://hc-ping.com/…");
    expect(describeNotifyUrl("https://example.com")).toBe("https://example.com");
    const secrets = notifyUrlSecrets(`https://user:pw-${TOKEN}@hooks.example.com/services/T0123ABCD/${TOKEN}?sig=${QUERY_TOKEN}`);
    expect(secrets).toEqual(expect.arrayContaining([TOKEN, QUERY_TOKEN, `pw-${TOKEN}`, "T0123ABCD"]));
    expect(secrets).not.toContain("services");
  });
});

describe("NOTIFY_FORMAT=healthchecks", () => {
  it("defaults NOTIFY_ON to always; a success pings the URL, a failure pings URL/fail, both with the JSON body", async () => {
    const url = `${receiver.base}/ping/${TOKEN}`;
    const good = wire("hc-good", { env: { NOTIFY_URL: url, NOTIFY_FORMAT: "healthchecks" } });
    expect(good.config.notify).toEqual({ url, on: "always", format: "healthchecks" });
    await good.service.backup();
    await good.notifier.idle();
    const bad = wire("hc-bad", { source: join(dir, "missing.db"), env: { NOTIFY_URL: url, NOTIFY_FORMAT: "healthchecks" } });
    await backupError(bad.service.backup());
    await bad.notifier.idle();

    expect(receiver.received.map((r) => r.url)).toEqual([`/ping/${TOKEN}`, `/ping/${TOKEN}/fail`]);
    expect(receiver.json().map((b) => [b.name, b.status])).toEqual([
      ["hc-good", "ok"],
      ["hc-bad", "failed"],
    ]);
  });

  it("keeps the query string when appending /fail, and a trailing slash does not double", () => {
    expect(notifyTarget({ url: "https://hc.example/ping/abc/?rid=1", on: "always", format: "healthchecks" }, "failed")).toBe("https://hc.example/ping/abc/fail?rid=1");
    expect(notifyTarget({ url: "https://hc.example/ping/abc", on: "always", format: "healthchecks" }, "ok")).toBe("https://hc.example/ping/abc");
    expect(notifyTarget({ url: "https://hc.example/ping/abc", on: "always", format: "json" }, "failed")).toBe("https://hc.example/ping/abc");
  });
});

describe("shouldNotify", () => {
  const base = { startedAt: "", finishedAt: "", durationMs: 1 };
  it("failure mode: failed runs and successes with a warning (pruning failed); always: every run", () => {
    expect(shouldNotify("failure", { ...base, ok: false })).toBe(true);
    expect(shouldNotify("failure", { ...base, ok: true })).toBe(false);
    expect(shouldNotify("failure", { ...base, ok: true, error: { code: "PRUNE_FAILED", message: "x" } })).toBe(true);
    expect(shouldNotify("always", { ...base, ok: true })).toBe(true);
  });
});

describe("CLI", () => {
  it("`backup` with a failing source exits 1 only after the alert was delivered (the retry after a 503 included)", async () => {
    // Without the CLI waiting for the notifier, the process exits during the 1 s backoff and
    // the second attempt never comes.
    receiver.script = [503, 200];
    const run = await cli(["backup"], s3.env({ BACKUP_SOURCE: join(dir, "missing.db"), BACKUP_NAME: "cli-alert", NOTIFY_URL: notifyUrl() }));
    expect(run.code).toBe(1);
    expect(run.stderr).toContain("SOURCE_NOT_FOUND");
    expect(receiver.received).toHaveLength(2);
    expect(receiver.json()[1]).toMatchObject({ name: "cli-alert", status: "failed", error: { code: "SOURCE_NOT_FOUND" } });
    expect(run.stderr).not.toContain(TOKEN);
    expect(run.stderr).not.toContain(QUERY_TOKEN);
    expect(run.stderr).toContain('"msg":"notification sent"');
  });
});
