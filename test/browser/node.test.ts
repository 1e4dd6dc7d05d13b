/**
 * The status page in Chromium against the Node server (`serve`, functions/node-server.ts):
 * the HTTP source server and the in-process S3 server on 127.0.0.1, nothing mocked.
 */
import { afterAll, beforeAll, expect, it } from "vitest";
import { startServer, type RunningServer } from "../../functions/node-server.js";
import { silentLogger } from "../../src/log.js";
import { makeDatabase } from "../helpers/db.js";
import { registerSecret } from "../helpers/log-capture.js";
import { closedPort as freePort } from "../helpers/receiver.js";
import { startTestStore, type TestStore } from "../helpers/s3.js";
import { SourceServer } from "../workers/harness.js";
import { exerciseStatusPage, HeldSource } from "./scenario.js";

const API_KEY = registerSecret("API_KEY", "browser-node-test-key-0123456789");
const NAME = "pagenode";
let s3: TestStore;
let sources: SourceServer;
let server: RunningServer;
let source: HeldSource;
let made: [Uint8Array, Uint8Array];

beforeAll(async () => {
  [s3, sources] = await Promise.all([startTestStore(), new SourceServer().start()]);
  const dbs = await Promise.all([
    makeDatabase({ rows: 400, targetBytes: 150_000 }),
    makeDatabase({ rows: 3000, targetBytes: 200_000 }),
  ]);
  made = [dbs[0], dbs[1]];
  source = new HeldSource(made[0]);
  const url = sources.set(`/src/${NAME}.sqlite`, source.route);
  server = await startServer(s3.env({ BACKUP_SOURCE: url, BACKUP_NAME: NAME, API_KEY, PORT: String(await freePort()), SCHEDULE: "0 4 * * *" }), { logger: silentLogger, catchUp: false });
  for (const bytes of made) {
    source.bytes = bytes;
    const res = await fetch(`${server.url}/backups`, { method: "POST", headers: { Authorization: `Bearer ${API_KEY}` } });
    expect(res.status).toBe(201);
  }
});

afterAll(async () => {
  await server?.stop();
  await Promise.allSettled([sources?.close(), s3?.close()]);
});

it("a person opens the page with the key, sees the databases, charts and backups, downloads one, watches a run and triggers one", async () => {
  const next = await Promise.all([makeDatabase({ rows: 6000, targetBytes: 400_000 }), makeDatabase({ rows: 8000, targetBytes: 250_000 })]);
  const figures = await exerciseStatusPage(
    { label: "node", base: server.url, name: NAME, apiKey: API_KEY, source, made, next: [next[0], next[1]], nextRunKnown: true },
    { keyPromptShot: true },
  );
  // The page's weight on first load, for the docs (headers + bodies, uncompressed: the app does not gzip).
  console.log(`status page weight (node): first load ${figures.firstLoadBytes} bytes ${JSON.stringify(figures.firstLoad)}; data after the key ${figures.dataBytes} bytes`);
  expect(figures.firstLoadBytes).toBeLessThan(64 * 1024);
}, 180_000);
