/**
 * The bad-input corpus (scripts/make-bad-inputs.ts) and bad sources: every item gets its
 * typed error (stable code, HTTP status: 4xx when the input is wrong, 5xx when the source or
 * store is), a message naming the problem, and nothing reaches the bucket.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createNodeRuntime, NODE_MAX_BYTES, nodeFiles } from "../functions/node-runtime.js";
import { makeBadInputs, type BadInput } from "../scripts/make-bad-inputs.js";
import { createBackupRunner } from "../src/backup.js";
import { parseConfig } from "../src/config.js";
import { BackupError } from "../src/errors.js";
import { silentLogger } from "../src/log.js";
import type { Runtime } from "../src/runtime.js";
import { createSource } from "../src/sources/index.js";
import { createS3Store } from "../src/store/s3.js";
import { makeDatabase } from "./helpers/db.js";
import { startTestStore, type TestStore } from "./helpers/s3.js";
import { backupError } from "./helpers/errors.js";

let s3: TestStore;
let runtime: Runtime;
let dir: string;
let corpus: BadInput[];
let http: Server;
let httpBase: string;
let db: Uint8Array;

beforeAll(async () => {
  s3 = await startTestStore();
  runtime = await createNodeRuntime(silentLogger);
  dir = await mkdtemp(join(tmpdir(), "seb-bad-"));
  corpus = await makeBadInputs(dir);
  db = await makeDatabase({ rows: 50 });
  // A source server that misbehaves in every way a URL source can.
  http = createServer((req, res) => {
    switch (req.url) {
      case "/missing.db":
        res.writeHead(404).end("not found");
        return;
      case "/error.db":
        res.writeHead(500).end("boom");
        return;
      case "/short.db":
        // A wrong Content-Length: announces the whole database, sends half, then closes.
        res.writeHead(200, { "content-length": db.length });
        res.write(Buffer.from(db.subarray(0, db.length / 2)), () => res.socket?.destroy());
        return;
      case "/page.db":
        res.writeHead(200, { "content-type": "text/html" }).end("<!doctype html><h1>Sign in</h1>".repeat(100));
        return;
      default:
        res.writeHead(200, { "content-length": db.length }).end(Buffer.from(db));
    }
  });
  await new Promise<void>((r) => http.listen(0, "127.0.0.1", r));
  httpBase = `http://127.0.0.1:${(http.address() as AddressInfo).port}`;
});
afterAll(async () => {
  await new Promise<void>((r) => http?.close(() => r()));
  await s3?.close();
  await rm(dir, { recursive: true, force: true });
});

async function failedBackup(name: string, env: Record<string, string>): Promise<BackupError> {
  const config = parseConfig(s3.env({ BACKUP_NAME: name, ...env }), { maxBytes: NODE_MAX_BYTES });
  const store = createS3Store(config.s3);
  const source = createSource(config.source, { files: nodeFiles, s3: config.s3 }, { readAttempts: 1 });
  const err = await backupError(createBackupRunner({ config, runtime, store, source }).run(), "the backup must fail");
  // Nothing reached the bucket: no object, no multipart upload.
  expect(await s3.keys(`backups/${name}/`)).toEqual([]);
  expect(await s3.uploads(`backups/${name}/`)).toEqual([]);
  return err;
}

describe("the bad-input corpus", () => {
  it("has every kind of damage the issue lists", () => {
    expect(corpus.map((c) => c.name)).toEqual(
      expect.arrayContaining(["empty", "one-byte", "truncated-header", "missing-pages", "random", "gzip", "encrypted", "page-size", "corrupt-btree", "over-max-bytes"]),
    );
  });

  it("each item fails with its code, status and a message naming the problem; nothing is uploaded", async () => {
    for (const item of corpus) {
      const err = await failedBackup(`bad-${item.name}`, { BACKUP_SOURCE: join(dir, item.file), ...item.env });
      expect({ item: item.name, code: err.code, status: err.status }).toEqual({ item: item.name, code: item.expect.code, status: item.expect.status });
      expect(err.message, item.name).toMatch(item.expect.message);
      expect(err.message, item.name).toContain(join(dir, item.file));
    }
  });
});

describe("bad sources", () => {
  const cases: { name: string; source: () => string; code: string; status: number; message: RegExp }[] = [
    { name: "url-404", source: () => `${httpBase}/missing.db`, code: "SOURCE_NOT_FOUND", status: 502, message: /404/ },
    { name: "url-500", source: () => `${httpBase}/error.db`, code: "SOURCE_UNREADABLE", status: 502, message: /500/ },
    { name: "url-short", source: () => `${httpBase}/short.db`, code: "SOURCE_UNREADABLE", status: 502, message: /\d+ of \d+|ended|closed|short|terminated/i },
    { name: "url-html", source: () => `${httpBase}/page.db`, code: "NOT_SQLITE", status: 422, message: /returned an HTML page/ },
    { name: "s3-missing", source: () => `s3://${s3.bucket}/no/such/key.db`, code: "SOURCE_NOT_FOUND", status: 502, message: /no such object/ },
  ];
  for (const c of cases) {
    it(`${c.name}: ${c.code} ${c.status}, nothing uploaded`, async () => {
      const err = await failedBackup(c.name, { BACKUP_SOURCE: c.source() });
      expect({ code: err.code, status: err.status }).toEqual({ code: c.code, status: c.status });
      expect(err.message).toMatch(c.message);
    });
  }
});
