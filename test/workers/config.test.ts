/**
 * An invalid configuration in workerd: every request (public routes included) answers 500
 * with {"error":{"code":"CONFIG_INVALID",…}} naming the variable, the cron trigger fails,
 * nothing touches the bucket, and no secret is echoed.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { WorkerHarness, type TestWorker, type WorkerAnswer } from "./harness.js";

const h = new WorkerHarness();
beforeAll(() => h.start());
afterAll(() => h.close());

const requests = [
  { method: "GET", path: "/health" },
  { method: "GET", path: "/openapi.json" },
  { method: "POST", path: "/backups" },
  { method: "GET", path: "/backups" },
  { method: "GET", path: "/backups/latest/link?redirect=1" },
  { method: "GET", path: "/status" },
  { method: "GET", path: "/no-such-route" },
];

function expectConfigError(a: WorkerAnswer, ...variables: string[]): void {
  expect(a.status, a.text).toBe(500);
  expect(a.res.headers.get("content-type") ?? "").toMatch(/^application\/json/);
  expect(a.res.headers.get("x-content-type-options")).toBe("nosniff");
  expect(Object.keys(a.json ?? {})).toEqual(["error"]);
  expect(Object.keys(a.json.error).sort()).toEqual(["code", "message"]);
  expect(a.json.error.code).toBe("CONFIG_INVALID");
  for (const v of variables) expect(a.json.error.message).toContain(v);
  expect(a.text).not.toMatch(/\n\s+at /);
}

async function everyRequest(w: TestWorker, ...variables: string[]): Promise<void> {
  for (const r of requests) {
    for (const headers of [{}, h.auth("bearer"), h.auth("x-api-key")]) {
      const a = await w.call(r.path, { method: r.method, headers });
      expectConfigError(a, ...variables);
    }
  }
}

describe("an invalid configuration", () => {
  it("MAX_COUNT=abc → every request 500 CONFIG_INVALID naming MAX_COUNT", async () => {
    const w = await h.worker("badcount", { env: { MAX_COUNT: "abc" } });
    await everyRequest(w, "MAX_COUNT");
    const a = await w.call("/status", { headers: h.auth() });
    expect(a.json.error.message).toContain('"abc"'); // a non-secret value is shown
  });

  it("the cron trigger fails too, and nothing reaches the bucket or the source", async () => {
    const w = await h.worker("badcron", { env: { MAX_COUNT: "abc" } });
    const result = await w.scheduled();
    expect(result.outcome).not.toBe("ok");
    expect(await h.s3.keys()).toEqual([]);
    expect(await h.s3.uploads()).toEqual([]);
    expect(h.source.hits).toEqual([]);
  });

  it("several bad variables are all named; a bad secret is named but not shown", async () => {
    const shortKey = "tooshort-9d1e"; // API_KEY needs ≥ 16 characters
    h.secrets.push(shortKey);
    const w = await h.worker("badmany", { env: { MAX_COUNT: "0", LINK_TTL_SECONDS: "604801", API_KEY: shortKey, CHECK: "sometimes" } });
    await everyRequest(w, "MAX_COUNT", "LINK_TTL_SECONDS", "API_KEY", "CHECK");
  });

  it("the error is logged as one JSON line without secrets", async () => {
    const line = await h.waitForLog((l) => l.msg === "configuration invalid", "badcount");
    expect(line.level).toBe("error");
    expect(String(line.error)).toContain("MAX_COUNT");
  });

  it("neither the API key, the S3 secret nor a bad API_KEY value appears in any response or workerd log line", () => {
    expect(h.transcript.length).toBeGreaterThan(40);
    h.assertNoSecrets();
  });
});
