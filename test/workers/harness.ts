/**
 * The deployed Worker bundle (see worker-bundle.ts) running in workerd through Miniflare,
 * against the real S3 server of test/helpers/s3.ts (in-process s3rver, or S3_TEST_*) and a
 * source database served by a node:http server on 127.0.0.1. Nothing is mocked: the tests
 * talk HTTP to workerd (dispatchFetch), fire the cron trigger (scheduled), and download
 * backups through the signed links with Node's own fetch.
 *
 * Every response and every line workerd's console printed is recorded, so a file can assert
 * at the end that no secret ever left the Worker.
 */
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { once } from "node:events";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { gunzipSync } from "node:zlib";
import { Miniflare } from "miniflare";
import { expect } from "vitest";
import { dumpTables, integrityCheck, sha256 } from "../helpers/db.js";
import { startTestStore, type TestStore } from "../helpers/s3.js";
import type { R2BucketLike } from "../../src/store/r2.js";
import { releaseWorkerBundles, workerBundle, type WorkerBundle, bundleModules } from "./worker-bundle.js";
import { jsonOrUndefined } from "../helpers/json.js";
import { capture, registerSecret } from "../helpers/log-capture.js";

export const CRON = "0 3 * * *";

// ------------------------------------------------------------------------- source server

export type Route = (req: IncomingMessage, res: ServerResponse) => void;

/** Ways the source server can answer. */
export const serve = {
  /** 200 with Content-Length and the whole database. */
  db:
    (bytes: Uint8Array): Route =>
    (_req, res) => {
      res.writeHead(200, { "Content-Type": "application/vnd.sqlite3", "Content-Length": bytes.length });
      res.end(bytes);
    },
  /** 200 without Content-Length (chunked transfer encoding). */
  chunked:
    (bytes: Uint8Array): Route =>
    (_req, res) => {
      res.writeHead(200, { "Content-Type": "application/octet-stream" });
      for (let at = 0; at < bytes.length; at += 256 * 1024) res.write(bytes.subarray(at, at + 256 * 1024));
      res.end();
    },
  status:
    (code: number, body = "error"): Route =>
    (_req, res) => {
      res.writeHead(code, { "Content-Type": "text/plain" });
      res.end(body);
    },
  /** Announce the whole database, send half of it, then close the connection. */
  short:
    (bytes: Uint8Array): Route =>
    (req, res) => {
      res.writeHead(200, { "Content-Type": "application/octet-stream", "Content-Length": bytes.length });
      res.write(bytes.subarray(0, Math.floor(bytes.length / 2)), () => req.socket.destroy());
    },
  body:
    (bytes: Uint8Array | string, contentType = "application/octet-stream"): Route =>
    (_req, res) => {
      const data = typeof bytes === "string" ? Buffer.from(bytes) : bytes;
      res.writeHead(200, { "Content-Type": contentType, "Content-Length": data.length });
      res.end(data);
    },
};

export class SourceServer {
  private server!: Server;
  base = "";
  readonly routes = new Map<string, Route>();
  /** Paths requested, in order. */
  readonly hits: string[] = [];

  async start(): Promise<this> {
    this.server = createServer((req, res) => {
      const path = new URL(req.url ?? "/", "http://x").pathname;
      this.hits.push(path);
      const route = this.routes.get(path);
      if (route) route(req, res);
      else res.writeHead(404, { "Content-Type": "text/plain" }).end("no such route");
    });
    this.server.listen(0, "127.0.0.1");
    await once(this.server, "listening");
    this.base = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    return this;
  }

  set(path: string, route: Route): string {
    this.routes.set(path, route);
    return `${this.base}${path}`;
  }

  async close(): Promise<void> {
    if (!this.server) return;
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

// ---------------------------------------------------------------------------- the Worker

export interface WorkerAnswer {
  /** Miniflare's Response (undici); typed as the global one for the shared assertions. */
  res: Response;
  status: number;
  text: string;
  /** The parsed body, or undefined when it is not JSON. */
  json: any;
}

export interface LogLine {
  worker: string;
  level: string;
  message: string;
}

export interface WorkerOptions {
  /** Variables over the defaults (wrangler.toml [vars], the store, BACKUP_SOURCE, BACKUP_NAME, API_KEY); null removes one. */
  env?: Record<string, string | null>;
  /** The source route this Worker reads (default /src/<name>.sqlite); set it with h.source.set(w.sourcePath, …). */
  sourcePath?: string;
  bundle?: WorkerBundle;
  /** R2 buckets bound under these names (Miniflare's R2, persisted in `r2Persist` for uploadsInProgress). */
  r2Buckets?: string[];
}

export interface ScheduledOutcome {
  outcome: string;
  noRetry: boolean;
}

export class TestWorker {
  constructor(
    private readonly h: WorkerHarness,
    readonly name: string,
    readonly mf: Miniflare,
    readonly env: Record<string, string>,
    readonly sourcePath: string,
  ) {}

  /** The key prefix of this Worker's backups. */
  get prefix(): string {
    return `${this.env.S3_PREFIX ?? "backups/"}${this.name}/`;
  }

  /** dispatchFetch, with the answer read and recorded. */
  async call(path: string, init: { method?: string; headers?: Record<string, string>; redirect?: "manual" | "follow"; body?: string } = {}): Promise<WorkerAnswer> {
    const res = await this.mf.dispatchFetch(`http://localhost${path}`, { redirect: "manual", ...init });
    const text = await res.text();
    const json = jsonOrUndefined(text);
    this.h.transcript.push(`${this.name}: ${res.status} ${init.method ?? "GET"} ${path}\n${[...res.headers].map(([k, v]) => `${k}: ${v}`).join("\n")}\n\n${text}`);
    return { res: res as unknown as Response, status: res.status, text, json };
  }

  /** POST /backups with the API key. */
  backup(): Promise<WorkerAnswer> {
    return this.call("/backups", { method: "POST", headers: this.h.auth() });
  }

  /** The R2 bucket bound as `name`, reached from Node (Miniflare's R2, the one the Worker's binding uses). */
  async r2(name: string): Promise<R2BucketLike> {
    return (await this.mf.getR2Bucket(name)) as unknown as R2BucketLike;
  }

  /** Fire the cron trigger; resolves with workerd's outcome ("ok", "exception", …). */
  async scheduled(cron = CRON, scheduledTime?: Date): Promise<ScheduledOutcome> {
    const worker = await this.mf.getWorker();
    const result = (await worker.scheduled({ cron, ...(scheduledTime ? { scheduledTime } : {}) })) as unknown as ScheduledOutcome;
    this.h.transcript.push(`${this.name}: scheduled ${cron} → ${JSON.stringify(result)}`);
    return result;
  }
}

export class WorkerHarness {
  readonly apiKey = registerSecret("API_KEY", `api-${randomBytes(18).toString("hex")}`);
  readonly transcript: string[] = [];
  readonly logs: LogLine[] = [];
  /** More values that must never appear (e.g. a source token); the API key and S3 secret always count. */
  readonly secrets = secretList();
  s3!: TestStore;
  source!: SourceServer;
  bundle!: WorkerBundle;
  private readonly instances: Miniflare[] = [];

  private r2Dir: string | undefined;
  /** The directory Miniflare keeps each Worker's R2 buckets in (`<dir>/<worker name>`). */
  r2Persist(): string {
    return (this.r2Dir ??= mkdtempSync(join(tmpdir(), "seb-worker-r2-")));
  }

  async start(): Promise<this> {
    [this.s3, this.source, this.bundle] = await Promise.all([startTestStore(), new SourceServer().start(), workerBundle()]);
    return this;
  }

  async close(): Promise<void> {
    await Promise.allSettled(this.instances.map((mf) => mf.dispose()));
    await Promise.allSettled([this.source?.close(), this.s3?.close()]);
    if (this.r2Dir) rmSync(this.r2Dir, { recursive: true, force: true });
    releaseWorkerBundles();
  }

  auth(kind: "bearer" | "x-api-key" = "bearer", key = this.apiKey): Record<string, string> {
    return kind === "bearer" ? { Authorization: `Bearer ${key}` } : { "X-API-Key": key };
  }

  /** A Miniflare instance running the bundle for BACKUP_NAME `name`, reading http://127.0.0.1:…/src/<name>.sqlite. */
  async worker(name: string, options: WorkerOptions = {}): Promise<TestWorker> {
    const bundle = options.bundle ?? this.bundle;
    const sourcePath = options.sourcePath ?? `/src/${name}.sqlite`;
    const env: Record<string, string> = {
      ...bundle.vars,
      ...this.s3.env(),
      BACKUP_SOURCE: `${this.source.base}${sourcePath}`,
      BACKUP_NAME: name,
      API_KEY: this.apiKey,
    };
    for (const [k, v] of Object.entries(options.env ?? {})) {
      if (v === null) delete env[k];
      else env[k] = v;
    }
    const mf = new Miniflare({
      ...bundleModules(bundle),
      bindings: env,
      ...(options.r2Buckets ? { r2Buckets: options.r2Buckets, r2Persist: join(this.r2Persist(), name) } : {}),
      handleStructuredLogs: ({ level, message }: { level: string; message: string }) => {
        this.logs.push({ worker: name, level, message });
        capture(`workerd ${name} ${level}`, message);
      },
    });
    this.instances.push(mf);
    try {
      await mf.ready;
    } catch (err) {
      // workerd's reason went to the captured log, not to the console: put it in the error.
      await new Promise((r) => setTimeout(r, 100));
      const said = this.logs.filter((l) => l.worker === name).map((l) => l.message);
      throw new Error(`workerd did not start the bundle for "${name}": ${err instanceof Error ? err.message : String(err)}\nworkerd said:\n${said.join("\n")}`, { cause: err });
    }
    return new TestWorker(this, name, mf, env, sourcePath);
  }

  async dispose(worker: TestWorker): Promise<void> {
    await worker.mf.dispose();
    const i = this.instances.indexOf(worker.mf);
    if (i >= 0) this.instances.splice(i, 1);
  }

  /** Log lines that are JSON objects (the Worker's own logger), optionally of one worker. */
  jsonLogs(worker?: string): Record<string, unknown>[] {
    const out: Record<string, unknown>[] = [];
    for (const l of this.logs) {
      if (worker && l.worker !== worker) continue;
      try {
        const parsed = JSON.parse(l.message) as unknown;
        if (parsed && typeof parsed === "object") out.push(parsed as Record<string, unknown>);
      } catch {
        // workerd's own lines (uncaught exceptions) are plain text
      }
    }
    return out;
  }

  /** Console output reaches Node through workerd's stdout pipe, shortly after the response. */
  async waitForLog(predicate: (line: Record<string, unknown>) => boolean, worker?: string, timeoutMs = 3000): Promise<Record<string, unknown>> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.jsonLogs(worker).find(predicate);
      if (found) return found;
      if (Date.now() > deadline) throw new Error(`no such log line within ${timeoutMs} ms; saw:\n${this.logs.filter((l) => !worker || l.worker === worker).map((l) => l.message).join("\n")}`);
      await new Promise((r) => setTimeout(r, 25));
    }
  }

  /**
   * Neither the API key nor the S3 secret appears in any response or log line. With the
   * embedded server the secret equals the access key id, which signed URLs carry by design
   * (X-Amz-Credential); those occurrences are removed before searching for the secret.
   */
  assertNoSecrets(): void {
    const everything = [...this.transcript, ...this.logs.map((l) => `${l.worker} ${l.level} ${l.message}`)].join("\n");
    expect(everything).not.toContain(this.apiKey);
    for (const s of this.secrets) expect(everything).not.toContain(s);
    const secret = this.s3.secretAccessKey;
    let searched = everything;
    if (secret === this.s3.accessKeyId) {
      for (const credential of [`X-Amz-Credential=${secret}`, `X-Amz-Credential=${encodeURIComponent(secret)}`]) searched = searched.split(credential).join("");
    }
    expect(searched).not.toContain(secret);
  }
}

// -------------------------------------------------------------------------- assertions

/** A list of extra secrets whose every value is also registered for the run's log scan. */
function secretList(): string[] {
  const list: string[] = [];
  list.push = (...values: string[]) => {
    for (const v of values) registerSecret("worker test secret", v);
    return Array.prototype.push.apply(list, values);
  };
  return list;
}

/** GET a signed URL with Node's fetch and gunzip it with node:zlib. */
export async function download(url: string): Promise<{ gzip: Uint8Array; bytes: Uint8Array }> {
  const res = await fetch(url);
  expect(res.status, `GET ${url.split("?")[0]}`).toBe(200);
  const gzip = new Uint8Array(await res.arrayBuffer());
  return { gzip, bytes: new Uint8Array(gunzipSync(gzip)) };
}

/** Same bytes, same rows in every table, and SQLite's integrity_check says ok. */
export async function expectSameDatabase(restored: Uint8Array, source: Uint8Array): Promise<void> {
  expect(restored.length).toBe(source.length);
  expect(sha256(restored)).toBe(sha256(source));
  expect(await dumpTables(restored)).toEqual(await dumpTables(source));
  expect(await integrityCheck(restored)).toBe("ok");
}

export const KEY_PATTERN = (prefix: string, name: string): RegExp =>
  new RegExp(`^${prefix.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}${name}-\\d{4}-\\d{2}-\\d{2}T\\d{2}-\\d{2}-\\d{2}-\\d{3}Z-[0-9a-f]{6}\\.sqlite\\.gz$`);
