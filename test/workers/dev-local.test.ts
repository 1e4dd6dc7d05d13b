/**
 * `npm run dev:local` (scripts/dev-local.ts) as a user runs it, minus the build (the suite's
 * bundle is the same `wrangler deploy --dry-run` output): a copy of wrangler.toml with a
 * .dev.vars beside it, workerd listening on 127.0.0.1, real HTTP from Node's fetch. A backup
 * through the authenticated API lands in the bucket and gunzips to the source; both cron
 * URLs fire the scheduled handler and report its failure; close() frees the port.
 */
import { GetObjectCommand } from "@aws-sdk/client-s3";
import { copyFile, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gunzipSync } from "node:zlib";
import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startDevLocal, type DevLocal } from "../../scripts/dev-local.js";
import { makeDatabase, sha256 } from "../helpers/db.js";
import { capture, registerSecret } from "../helpers/log-capture.js";
import { startTestStore, type TestStore } from "../helpers/s3.js";
import { CRON, KEY_PATTERN, serve, SourceServer } from "./harness.js";
import { REPO_ROOT, releaseWorkerBundles, workerBundle } from "./worker-bundle.js";

const NAME = "devlocal";
const PREFIX = `backups/${NAME}/`;
const apiKey = registerSecret("API_KEY", `api-${randomBytes(18).toString("hex")}`);
let s3: TestStore;
let source: SourceServer;
let dir: string;
let dev: DevLocal | undefined;
let db: Uint8Array;
let base: string;
const workerLines: string[] = [];

beforeAll(async () => {
  let bundle;
  [s3, source, bundle, db, dir] = await Promise.all([
    startTestStore(),
    new SourceServer().start(),
    workerBundle(),
    makeDatabase({ rows: 800, targetBytes: 1024 * 1024 }),
    mkdtemp(join(tmpdir(), "seb-dev-local-")),
  ]);
  const sourceUrl = source.set("/app.db", serve.db(db));
  // What a user does: wrangler.toml as it is, secrets and local settings in .dev.vars.
  await copyFile(join(REPO_ROOT, "wrangler.toml"), join(dir, "wrangler.toml"));
  const devVars = { ...s3.env(), BACKUP_SOURCE: sourceUrl, BACKUP_NAME: NAME, API_KEY: apiKey };
  await writeFile(join(dir, ".dev.vars"), Object.entries(devVars).map(([k, v]) => `${k}=${v}\n`).join(""));
  dev = await startDevLocal({
    configPath: join(dir, "wrangler.toml"),
    bundle: { dir: bundle.dir, scriptPath: bundle.scriptPath },
    port: 0,
    onWorkerLog: ({ level, message }) => {
      workerLines.push(message);
      capture(`workerd dev-local ${level}`, message);
    },
  });
  base = dev.url.href.replace(/\/$/, "");
}, 120_000);

afterAll(async () => {
  await dev?.close();
  await Promise.allSettled([source?.close(), s3?.close()]);
  if (dir) await rm(dir, { recursive: true, force: true });
  releaseWorkerBundles();
});

async function object(key: string): Promise<Uint8Array> {
  const r = await s3.client.send(new GetObjectCommand({ Bucket: s3.bucket, Key: key }));
  return r.Body!.transformToByteArray();
}

describe("npm run dev:local", () => {
  it("listens on 127.0.0.1 and serves the API with the variables of wrangler.toml and .dev.vars", async () => {
    expect(dev!.url.hostname).toBe("127.0.0.1");
    expect(Number(dev!.url.port)).toBeGreaterThan(0);
    const health = await fetch(`${base}/health`);
    expect(health.status, await health.text()).toBe(200);
    expect((await fetch(`${base}/backups`, { method: "POST" })).status).toBe(401);
  });

  it("POST /backups with the API key stores a backup that gunzips to the source bytes", async () => {
    const res = await fetch(`${base}/backups`, { method: "POST", headers: { Authorization: `Bearer ${apiKey}` } });
    const text = await res.text();
    expect(res.status, text).toBe(201);
    const manifest = JSON.parse(text) as { key: string; bytes: number; sha256: string };
    // S3_PREFIX from wrangler.toml [vars], BACKUP_NAME and the rest from .dev.vars.
    expect(manifest.key).toMatch(KEY_PATTERN(PREFIX, NAME));
    expect(manifest.bytes).toBe(db.length);
    expect(await s3.keys(PREFIX)).toEqual([manifest.key]);
    const restored = new Uint8Array(gunzipSync(await object(manifest.key)));
    expect(restored.length).toBe(db.length);
    expect(sha256(restored)).toBe(sha256(db));
    expect(await s3.uploads(PREFIX)).toEqual([]);
    // The Worker's own log lines reach the log handler (the terminal, by default).
    expect(workerLines.some((l) => l.includes("backup finished"))).toBe(true);
  });

  it("fires the cron trigger on /__scheduled and /cdn-cgi/handler/scheduled; a failed run answers 500", async () => {
    const cron = encodeURIComponent(CRON);
    const before = (await s3.keys(PREFIX)).length;
    const first = await fetch(`${base}/__scheduled?cron=${cron}`);
    expect(first.status, await first.text()).toBe(200);
    const second = await fetch(`${base}/cdn-cgi/handler/scheduled?cron=${cron}`);
    expect(second.status, await second.text()).toBe(200);
    const keys = await s3.keys(PREFIX);
    expect(keys).toHaveLength(before + 2);
    for (const key of keys) expect(sha256(new Uint8Array(gunzipSync(await object(key))))).toBe(sha256(db));

    source.set("/app.db", serve.status(500));
    const failed = await fetch(`${base}/__scheduled?cron=${cron}`);
    expect(failed.status).toBe(500);
    expect(await failed.text()).toContain("exception");
    expect(await s3.keys(PREFIX)).toEqual(keys);
    source.set("/app.db", serve.db(db));
  });

  it("close() stops workerd: the port no longer answers", async () => {
    await dev!.close();
    dev = undefined;
    await expect(fetch(`${base}/health`, { signal: AbortSignal.timeout(5000) })).rejects.toThrow();
  });
});
