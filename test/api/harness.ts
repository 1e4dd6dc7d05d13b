/**
 * A real backup service behind the HTTP app, for the API tests: the in-process S3 server
 * (or S3_TEST_*), real SQLite files, the Node runtime and parseConfig — no mocks. Every
 * response the tests see and every log line is captured, so a file can assert at the end
 * that no secret ever left the app.
 */
import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { OpenAPIHono } from "@hono/zod-openapi";
import { expect } from "vitest";
import { createNodeRuntime, NODE_MAX_BYTES, nodeFiles } from "../../functions/node-runtime.js";
import { createApp, downloadsOf } from "../../src/api/app.js";
import { parseConfig, type Config } from "../../src/config.js";
import { jsonLogger, type Logger } from "../../src/log.js";
import type { Runtime } from "../../src/runtime.js";
import { createBackupService, type BackupService } from "../../src/service.js";
import { createSource } from "../../src/sources/index.js";
import { createS3Store } from "../../src/store/s3.js";
import type { BackupStore } from "../../src/store/store.js";
import { writeDatabase, type MakeOptions } from "../helpers/db.js";
import { startTestStore, type TestStore } from "../helpers/s3.js";
import { jsonOrUndefined } from "../helpers/json.js";
import { capturedLines, registerSecret } from "../helpers/log-capture.js";

export interface Answer {
  res: Response;
  status: number;
  text: string;
  /** The parsed body, or undefined when it is not JSON. */
  json: any;
}

export interface Wired {
  config: Config;
  service: BackupService;
  /** Calls that reached the real store (head, list, presign, get, read, upload, delete). */
  storeCalls: string[];
  /** Calls of service.link (the API must validate {file} before it). */
  linkCalls: string[];
  app: OpenAPIHono;
  dbPath: string;
  source: Uint8Array;
}

export interface WireOptions {
  db?: MakeOptions;
  env?: Record<string, string>;
  /** Give the app this API key (default: the harness's key); null = API_KEY unset. */
  apiKey?: string | null;
  /** The clock the app checks /download links against (default: the system's). */
  now?: () => Date;
  /** Replace parts of the real service (to provoke failures). */
  override?: (service: BackupService) => BackupService;
}

export class Harness {
  readonly apiKey = registerSecret("API_KEY", `api-${randomBytes(18).toString("hex")}`);
  readonly logLines = capturedLines("api log");
  /** Status line, headers and body of every response seen. */
  readonly transcript: string[] = [];
  readonly logger: Logger = jsonLogger({ write: (line) => this.logLines.push(line), level: "debug" });
  s3!: TestStore;
  dir!: string;
  runtime!: Runtime;

  async start(): Promise<this> {
    this.s3 = await startTestStore();
    this.dir = await mkdtemp(join(tmpdir(), "seb-api-"));
    this.runtime = await createNodeRuntime(this.logger);
    return this;
  }

  async close(): Promise<void> {
    await this.s3?.close();
    if (this.dir) await rm(this.dir, { recursive: true, force: true });
  }

  /** A service for BACKUP_NAME `name` over a fresh real database, and the app in front of it. */
  async wire(name: string, options: WireOptions = {}): Promise<Wired> {
    const dbPath = join(this.dir, `${name}.db`);
    const source = await writeDatabase(dbPath, options.db ?? { rows: 50 });
    const config = parseConfig(this.s3.env({ BACKUP_SOURCE: dbPath, BACKUP_NAME: name, ...options.env }), { maxBytes: NODE_MAX_BYTES });
    const storeCalls: string[] = [];
    const store = countingStore(createS3Store(config.s3), storeCalls);
    const real = createBackupService({ config, runtime: this.runtime, store, source: createSource(config.source, { files: nodeFiles }) });
    const linkCalls: string[] = [];
    const counted: BackupService = { ...real, status: () => real.status(), link: (which, opts) => (linkCalls.push(which), real.link(which, opts)) };
    const service = options.override ? options.override(counted) : counted;
    const apiKey = options.apiKey === null ? undefined : (options.apiKey ?? this.apiKey);
    const app = createApp({ services: [service], logger: this.logger, corsOrigins: config.corsOrigins, ...(apiKey ? { apiKey } : {}), ...downloadsOf(config), ...(options.now ? { now: options.now } : {}) });
    return { config, service, storeCalls, linkCalls, app, dbPath, source };
  }

  /** app.request, with the answer read and recorded. */
  async call(app: OpenAPIHono, path: string, init: RequestInit = {}): Promise<Answer> {
    const res = await app.request(path, init);
    const text = await res.text();
    const json = jsonOrUndefined(text);
    this.transcript.push(`${res.status} ${path}\n${[...res.headers].map(([k, v]) => `${k}: ${v}`).join("\n")}\n\n${text}`);
    return { res, status: res.status, text, json };
  }

  bearer(key = this.apiKey): RequestInit {
    return { headers: { Authorization: `Bearer ${key}` } };
  }

  /**
   * Neither the API key nor the S3 secret appears in any response or log line. With the
   * embedded server the secret equals the access key id, which signed URLs carry by design
   * (X-Amz-Credential); those occurrences are removed before searching for the secret.
   */
  assertNoSecrets(): void {
    const everything = [...this.transcript, ...this.logLines].join("\n");
    expect(everything).not.toContain(this.apiKey);
    const secret = this.s3.secretAccessKey;
    let searched = everything;
    if (secret === this.s3.accessKeyId) {
      for (const credential of [`X-Amz-Credential=${secret}`, `X-Amz-Credential=${encodeURIComponent(secret)}`]) searched = searched.split(credential).join("");
    }
    expect(searched).not.toContain(secret);
  }
}

export function countingStore(store: BackupStore, calls: string[]): BackupStore {
  return {
    description: store.description,
    ...(store.canPresign === undefined ? {} : { canPresign: store.canPresign }),
    upload: (key, body, options) => (calls.push(`upload ${key}`), store.upload(key, body, options)),
    copy: (from, to, size, options) => (calls.push(`copy ${from} ${to}`), store.copy(from, to, size, options)),
    head: (key) => (calls.push(`head ${key}`), store.head(key)),
    list: (prefix) => (calls.push(`list ${prefix}`), store.list(prefix)),
    get: (key) => (calls.push(`get ${key}`), store.get(key)),
    read: (key, options) => (calls.push(`read ${key}${options?.range ? ` ${options.range.offset}+${options.range.length}` : ""}`), store.read(key, options)),
    delete: (keys) => (calls.push(`delete ${keys.join(",")}`), store.delete(keys)),
    presign: (key, ttl, filename) => (calls.push(`presign ${key}`), store.presign(key, ttl, filename)),
    listUploads: (prefix) => (calls.push(`listUploads ${prefix}`), store.listUploads(prefix)),
    abortUpload: (upload) => (calls.push(`abortUpload ${upload.key}`), store.abortUpload(upload)),
    abortUploads: (key) => (calls.push(`abortUploads ${key}`), store.abortUploads(key)),
    putSmall: (key, body, options) => (calls.push(`putSmall ${key}`), store.putSmall(key, body, options)),
    getSmall: (key) => (calls.push(`getSmall ${key}`), store.getSmall(key)),
  };
}

/** Every error body is exactly {"error":{"code","message"}} (plus runningSince for 409), JSON, nosniff, no-store. */
export function expectErrorShape(a: Answer, status: number, code: string): void {
  expect(a.status, a.text).toBe(status);
  expect(a.res.headers.get("content-type") ?? "").toMatch(/^application\/json/);
  expect(a.res.headers.get("x-content-type-options")).toBe("nosniff");
  expect(a.res.headers.get("cache-control")).toBe("no-store");
  expect(Object.keys(a.json ?? {})).toEqual(["error"]);
  const error = a.json.error as Record<string, unknown>;
  expect(error.code).toBe(code);
  expect(typeof error.message).toBe("string");
  expect((error.message as string).length).toBeGreaterThan(10);
  const allowed = code === "BACKUP_RUNNING" ? ["code", "message", "runningSince"] : ["code", "message"];
  for (const k of Object.keys(error)) expect(allowed).toContain(k);
  expect(a.text).not.toMatch(/\n\s+at /); // no stack traces
}
