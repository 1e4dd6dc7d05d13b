/**
 * End to end with a URL source: a full backup of a database served over HTTP (with an API
 * key header and a token in the query), downloaded through the signed link and compared.
 */
import { once } from "node:events";
import { mkdtemp, rm } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gunzipSync } from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createNodeRuntime, NODE_MAX_BYTES, nodeFiles } from "../../functions/node-runtime.js";
import { createBackupRunner } from "../../src/backup.js";
import { createLink } from "../../src/catalog.js";
import { parseConfig } from "../../src/config.js";
import { jsonLogger } from "../../src/log.js";
import type { Runtime } from "../../src/runtime.js";
import { createSource } from "../../src/sources/index.js";
import { createS3Store } from "../../src/store/s3.js";
import { integrityCheck, sha256, writeDatabase } from "../helpers/db.js";
import { startTestStore, type TestStore } from "../helpers/s3.js";
import { backupError } from "../helpers/errors.js";
import { capturedLines, registerSecret } from "../helpers/log-capture.js";

const TOKEN = registerSecret("BACKUP_SOURCE query token", "secret123");
const API_KEY = registerSecret("BACKUP_SOURCE_HEADERS value", "hdr-secret-456");

let s3: TestStore;
let server: Server;
let base: string;
let dir: string;
let db: Uint8Array;
let runtime: Runtime;
const logLines = capturedLines("backup log");
let requests = 0;

beforeAll(async () => {
  s3 = await startTestStore();
  dir = await mkdtemp(join(tmpdir(), "seb-url-backup-"));
  db = await writeDatabase(join(dir, "served.db"), { rows: 500, targetBytes: 2 * 1024 * 1024 });
  server = createServer((req, res) => {
    requests++;
    const url = new URL(req.url ?? "/", "http://x");
    if (url.pathname !== "/db.sqlite") return void res.writeHead(404).end();
    if (req.headers["x-api-key"] !== API_KEY || url.searchParams.get("token") !== TOKEN) return void res.writeHead(401).end();
    res.writeHead(200, { "Content-Type": "application/octet-stream", "Content-Length": db.length });
    res.end(db);
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  // No secrets given to the logger: the source itself must keep them out of every line.
  runtime = await createNodeRuntime(jsonLogger({ write: (line) => logLines.push(line), level: "debug" }));
});
afterAll(async () => {
  server?.closeAllConnections();
  await new Promise((resolve) => server?.close(resolve));
  await s3?.close();
  await rm(dir, { recursive: true, force: true });
});

function setup(extra: Record<string, string> = {}) {
  const env = s3.env({
    BACKUP_SOURCE: `${base}/db.sqlite?token=${TOKEN}`,
    BACKUP_SOURCE_HEADERS: JSON.stringify({ "X-API-Key": API_KEY }),
    CHECK: "full",
    VERIFY: "full",
    ...extra,
  });
  const config = parseConfig(env, { maxBytes: NODE_MAX_BYTES });
  const store = createS3Store(config.s3);
  const source = createSource(config.source, { files: nodeFiles, s3: config.s3 });
  return { config, store, source, runner: createBackupRunner({ config, runtime, store, source }) };
}

describe("backup of a URL source", () => {
  it("backs up the served database; the signed link downloads exactly it", async () => {
    const { config, store, source, runner } = setup();
    expect(config.name).toBe("db");
    expect(source.origin).toBe(`${base}/db.sqlite?[redacted]`);

    const manifest = await runner.run();
    expect(manifest.name).toBe("db");
    expect(manifest.key).toMatch(/^backups\/db\/db-\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}-\d{3}Z-[0-9a-f]{6}\.sqlite\.gz$/);
    expect(manifest.bytes).toBe(db.length);
    expect(manifest.sha256).toBe(sha256(db));

    const link = await createLink(store, config, "latest", new Date());
    expect(link.key).toBe(manifest.key);
    const response = await fetch(link.url);
    expect(response.status).toBe(200);
    const restored = new Uint8Array(gunzipSync(new Uint8Array(await response.arrayBuffer())));
    expect(sha256(restored)).toBe(sha256(db));
    expect(await integrityCheck(restored)).toBe("ok");

    const log = logLines.join("\n");
    expect(log).toContain("backup started");
    expect(log).toContain(`${base}/db.sqlite?[redacted]`);
    expect(log).not.toContain(TOKEN);
    expect(log).not.toContain(API_KEY);
  });

  it("a failing source fails the run with the source's error and nothing stored", async () => {
    const before = await s3.keys("backups/db/");
    const seen = requests;
    const { runner } = setup({ BACKUP_SOURCE_HEADERS: JSON.stringify({ "X-API-Key": "wrong-key-0000" }) });
    const err = await backupError(runner.run());
    expect(err.code).toBe("SOURCE_UNREADABLE");
    expect(err.message).toMatch(/HTTP 401.*BACKUP_SOURCE_HEADERS/);
    expect(requests).toBe(seen + 1);
    expect(await s3.keys("backups/db/")).toEqual(before);
    const log = logLines.join("\n");
    expect(log).toContain("backup failed");
    for (const secret of [TOKEN, API_KEY, "wrong-key-0000"]) expect(log).not.toContain(secret);
  });
});
