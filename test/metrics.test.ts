/**
 * GET /metrics: real backups (a success and a failure) through the HTTP app against the real
 * S3 server, scraped with the API key and read back with a Prometheus text-format parser
 * (parse-prometheus-text-format) plus a strict line check of the exposition format 0.0.4.
 */
import { rm } from "node:fs/promises";
import parsePrometheus, { type PrometheusFamily } from "parse-prometheus-text-format";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Manifest } from "../src/backup.js";
import { createRunMetrics, escapeLabelValue, METRICS_CONTENT_TYPE } from "../src/metrics.js";
import { expectErrorShape, Harness, type Wired } from "./api/harness.js";
import { writeDatabase } from "./helpers/db.js";

const h = new Harness();
beforeAll(() => h.start());
afterAll(() => h.close());

const FAMILIES = {
  sqlite_backup_runs_total: "counter",
  sqlite_backup_last_success_timestamp_seconds: "gauge",
  sqlite_backup_last_run_timestamp_seconds: "gauge",
  sqlite_backup_last_duration_seconds: "gauge",
  sqlite_backup_last_bytes: "gauge",
  sqlite_backup_last_compressed_bytes: "gauge",
  sqlite_backup_running: "gauge",
  sqlite_backup_deleted_total: "counter",
} as const;

// ------------------------------------------------------------------------ strict reading

const LABEL = String.raw`[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*"`;
const SAMPLE = new RegExp(String.raw`^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(?:${LABEL}(?:,${LABEL})*)?\})? (\S+)$`);
const FLOAT = /^(?:[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|NaN|[+-]Inf)$/;

/** Every line is HELP, TYPE or a sample of a family declared above it; the text ends with a newline. */
function strictCheck(text: string): void {
  expect(text.endsWith("\n")).toBe(true);
  const typed = new Map<string, string>();
  const helped = new Set<string>();
  for (const line of text.slice(0, -1).split("\n")) {
    const help = /^# HELP ([a-zA-Z_:][a-zA-Z0-9_:]*) (.+)$/.exec(line);
    const type = /^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge)$/.exec(line);
    if (help) {
      expect(helped.has(help[1]!), `second HELP for ${help[1]}`).toBe(false);
      helped.add(help[1]!);
    } else if (type) {
      expect(helped.has(type[1]!), `TYPE before HELP for ${type[1]}`).toBe(true);
      typed.set(type[1]!, type[2]!);
    } else {
      const m = SAMPLE.exec(line);
      expect(m, `not a sample line: ${JSON.stringify(line)}`).not.toBeNull();
      expect(typed.has(m![1]!), `sample before its TYPE: ${line}`).toBe(true);
      expect(m![2], line).toMatch(FLOAT);
    }
  }
  expect(Object.fromEntries(typed)).toEqual(FAMILIES);
}

function parse(text: string): PrometheusFamily[] {
  strictCheck(text);
  return parsePrometheus(text);
}

/** The sample of `family` with exactly these labels, as a number; undefined when absent. */
function sample(families: PrometheusFamily[], family: string, labels: Record<string, string>): number | undefined {
  const f = families.find((x) => x.name === family);
  expect(f, `family ${family}`).toBeDefined();
  const found = f!.metrics.filter((s) => JSON.stringify(s.labels ?? {}) === JSON.stringify(labels));
  expect(found.length, `${family} ${JSON.stringify(labels)}`).toBeLessThanOrEqual(1);
  return found[0] ? Number(found[0].value) : undefined;
}

async function scrape(w: Wired): Promise<{ text: string; families: PrometheusFamily[] }> {
  const a = await h.call(w.app, "/metrics", h.bearer());
  expect(a.status, a.text).toBe(200);
  expect(a.res.headers.get("content-type")).toBe(METRICS_CONTENT_TYPE);
  expect(a.res.headers.get("content-type")).toBe("text/plain; version=0.0.4; charset=utf-8");
  expect(a.res.headers.get("x-content-type-options")).toBe("nosniff");
  return { text: a.text, families: parse(a.text) };
}

// -------------------------------------------------------------------------------- tests

describe("GET /metrics after real runs", () => {
  let w: Wired;
  let manifest: Manifest;
  let success: { finishedAt: string };
  let failure: { finishedAt: string; durationMs: number };

  beforeAll(async () => {
    w = await h.wire("metered");
    const ok = await h.call(w.app, "/backups", { method: "POST", ...h.bearer() });
    expect(ok.status, ok.text).toBe(201);
    manifest = ok.json;
    success = (await h.call(w.app, "/status", h.bearer())).json.lastRun;
    await rm(w.dbPath); // the next run fails: SOURCE_NOT_FOUND
    const bad = await h.call(w.app, "/backups", { method: "POST", ...h.bearer() });
    expectErrorShape(bad, 502, "SOURCE_NOT_FOUND");
    failure = (await h.call(w.app, "/status", h.bearer())).json.lastRun;
  });

  it("401 without the API key, 401 with a wrong one (WWW-Authenticate: Bearer)", async () => {
    const none = await h.call(w.app, "/metrics");
    expectErrorShape(none, 401, "UNAUTHORIZED");
    expect(none.res.headers.get("www-authenticate")).toMatch(/^Bearer/);
    expect(none.text).not.toContain("sqlite_backup");
    expectErrorShape(await h.call(w.app, "/metrics", h.bearer(`api-${"0".repeat(36)}`)), 401, "UNAUTHORIZED");
  });

  it("counts one success and one failure, with the last success's sizes and the failed run's time and duration", async () => {
    const { families } = await scrape(w);
    const name = { name: "metered" };
    expect(sample(families, "sqlite_backup_runs_total", { ...name, result: "success" })).toBe(1);
    expect(sample(families, "sqlite_backup_runs_total", { ...name, result: "failure" })).toBe(1);
    expect(sample(families, "sqlite_backup_last_success_timestamp_seconds", name)).toBe(Date.parse(success.finishedAt) / 1000);
    expect(sample(families, "sqlite_backup_last_run_timestamp_seconds", name)).toBe(Date.parse(failure.finishedAt) / 1000);
    expect(sample(families, "sqlite_backup_last_duration_seconds", name)).toBe(failure.durationMs / 1000);
    expect(sample(families, "sqlite_backup_last_bytes", name)).toBe(manifest.bytes);
    expect(sample(families, "sqlite_backup_last_compressed_bytes", name)).toBe(manifest.gzipBytes);
    expect(sample(families, "sqlite_backup_running", name)).toBe(0);
    expect(families.find((f) => f.name === "sqlite_backup_runs_total")!.help).toMatch(/runs/);
  });

  it("a success after the failure counts on and moves the last-success time", async () => {
    await h.call(w.app, "/backups", { method: "POST", ...h.bearer() }); // still no file: a second failure
    await writeDatabase(w.dbPath, { rows: 10 });
    const ok = await h.call(w.app, "/backups", { method: "POST", ...h.bearer() });
    expect(ok.status, ok.text).toBe(201);
    const last = (await h.call(w.app, "/status", h.bearer())).json.lastRun;
    const { families } = await scrape(w);
    expect(sample(families, "sqlite_backup_runs_total", { name: "metered", result: "success" })).toBe(2);
    expect(sample(families, "sqlite_backup_runs_total", { name: "metered", result: "failure" })).toBe(2);
    expect(sample(families, "sqlite_backup_last_success_timestamp_seconds", { name: "metered" })).toBe(Date.parse(last.finishedAt) / 1000);
    expect(sample(families, "sqlite_backup_last_bytes", { name: "metered" })).toBe(ok.json.bytes);
  });

  it("is in /openapi.json as a protected GET with a text/plain response", async () => {
    const doc = (await h.call(w.app, "/openapi.json")).json;
    const op = doc.paths["/metrics"].get;
    expect(op.security).toEqual([{ bearerAuth: [] }, { apiKeyHeader: [] }]);
    expect(Object.keys(op.responses["200"].content)).toEqual(["text/plain"]);
    expect(Object.keys(op.responses)).toEqual(expect.arrayContaining(["401", "403"]));
  });

  it("leaks no secret", () => {
    h.assertNoSecrets();
  });
});

describe("a fresh instance", () => {
  it("reports zero runs and seeds the last success from the newest backup in the bucket", async () => {
    const first = await h.wire("seeded");
    const ok = await h.call(first.app, "/backups", { method: "POST", ...h.bearer() });
    expect(ok.status, ok.text).toBe(201);

    const fresh = await h.wire("seeded"); // a restarted process or a new isolate: same bucket, no runs
    const newest = (await h.call(fresh.app, "/backups", h.bearer())).json.backups[0];
    expect(newest.key).toBe(ok.json.key);
    const { families } = await scrape(fresh);
    const name = { name: "seeded" };
    expect(sample(families, "sqlite_backup_runs_total", { ...name, result: "success" })).toBe(0);
    expect(sample(families, "sqlite_backup_runs_total", { ...name, result: "failure" })).toBe(0);
    expect(sample(families, "sqlite_backup_last_success_timestamp_seconds", name)).toBe(Date.parse(newest.lastModified) / 1000);
    // Unknown here: no sample rather than a misleading 0.
    expect(sample(families, "sqlite_backup_last_run_timestamp_seconds", name)).toBeUndefined();
    expect(sample(families, "sqlite_backup_last_bytes", name)).toBeUndefined();
    expect(sample(families, "sqlite_backup_running", name)).toBe(0);
  });

  it("with an empty bucket: no last-success sample, and the scrape still answers 200", async () => {
    const empty = await h.wire("never-backed-up");
    const { families } = await scrape(empty);
    expect(sample(families, "sqlite_backup_last_success_timestamp_seconds", { name: "never-backed-up" })).toBeUndefined();
    expect(sample(families, "sqlite_backup_runs_total", { name: "never-backed-up", result: "success" })).toBe(0);
  });
});

describe("createRunMetrics (pure)", () => {
  const run = (ok: boolean, finishedAt: string, extra: object = {}) => ({ ok, startedAt: finishedAt, finishedAt, durationMs: 1500, ...extra });

  it("running is 1 between started and finished", () => {
    const m = createRunMetrics();
    m.started("db");
    expect(sample(parse(m.render()), "sqlite_backup_running", { name: "db" })).toBe(1);
    m.finished("db", run(true, "2026-01-02T03:04:05.678Z", { bytes: 4096, gzipBytes: 100 }));
    const families = parse(m.render());
    expect(sample(families, "sqlite_backup_running", { name: "db" })).toBe(0);
    expect(sample(families, "sqlite_backup_last_success_timestamp_seconds", { name: "db" })).toBe(1767323045.678);
    expect(sample(families, "sqlite_backup_last_duration_seconds", { name: "db" })).toBe(1.5);
  });

  it("a seed never replaces a success observed here, and a failure keeps the last success's sizes", () => {
    const m = createRunMetrics();
    m.finished("db", run(true, "2026-01-02T00:00:00.000Z", { bytes: 4096, gzipBytes: 100 }));
    m.seedLastSuccess("db", new Date("2025-01-01T00:00:00.000Z"));
    m.finished("db", run(false, "2026-01-03T00:00:00.000Z"));
    const families = parse(m.render());
    expect(sample(families, "sqlite_backup_last_success_timestamp_seconds", { name: "db" })).toBe(Date.parse("2026-01-02T00:00:00.000Z") / 1000);
    expect(sample(families, "sqlite_backup_last_run_timestamp_seconds", { name: "db" })).toBe(Date.parse("2026-01-03T00:00:00.000Z") / 1000);
    expect(sample(families, "sqlite_backup_last_bytes", { name: "db" })).toBe(4096);
  });

  it("several names, and label values with backslash, quote and newline survive the round trip", () => {
    const odd = 'we"ird\\na\nme';
    expect(escapeLabelValue(odd)).toBe('we\\"ird\\\\na\\nme');
    const m = createRunMetrics(["app", odd]);
    m.finished(odd, run(false, "2026-01-02T00:00:00.000Z"));
    const families = parse(m.render());
    expect(sample(families, "sqlite_backup_runs_total", { name: odd, result: "failure" })).toBe(1);
    expect(sample(families, "sqlite_backup_runs_total", { name: "app", result: "failure" })).toBe(0);
  });
});
