/**
 * Encryption at rest in workerd: the deployed bundle (typage on WebCrypto and pure JS) backs
 * up with AGE_RECIPIENTS through Miniflare, to the real S3 server; the object the signed link
 * downloads decrypts, with the age CLI and with typage in Node, to the gzip of the database.
 * A multipart-sized backup and the cron trigger go the same way.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gunzipSync } from "node:zlib";
import { Decrypter } from "age-encryption";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Manifest } from "../../src/backup.js";
import { ageTool, type AgeKey } from "../helpers/age.js";
import { makeDatabase, sha256 } from "../helpers/db.js";
import { expectSameDatabase, serve, WorkerHarness, type TestWorker } from "./harness.js";

const MiB = 1024 * 1024;
const age = ageTool();
const h = new WorkerHarness();
let dir: string;
let alice: AgeKey;
let bob: AgeKey;
let w: TestWorker;
let db: Uint8Array;
let large: Uint8Array;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "seb-worker-age-"));
  [, db, large, alice, bob] = await Promise.all([
    h.start(),
    makeDatabase({ rows: 1000, targetBytes: 1 * MiB }),
    // Random blobs: the age file stays > 5 MiB, so the upload is multipart.
    makeDatabase({ rows: 200, targetBytes: 12 * MiB }),
    age.keygen(join(dir, "alice.txt")),
    age.keygen(join(dir, "bob.txt")),
  ]);
  h.secrets.push(alice.identity, bob.identity);
  w = await h.worker("sealed", { env: { AGE_RECIPIENTS: `${alice.recipient} ${bob.recipient}`, VERIFY: "full" } });
});
afterAll(async () => {
  await h.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** The object behind a signed link, decrypted by the age CLI (alice) and by typage (bob): both must give the same gzip. */
async function openedBoth(url: string): Promise<Uint8Array> {
  const res = await fetch(url);
  expect(res.status).toBe(200);
  expect(res.headers.get("content-type")).toBe("application/octet-stream");
  const cipher = new Uint8Array(await res.arrayBuffer());
  expect(Buffer.from(cipher.subarray(0, 22)).toString()).toBe("age-encryption.org/v1\n");
  const byCli = await age.decrypt(cipher, alice.path);
  const d = new Decrypter();
  d.addIdentity(bob.identity);
  const byLibrary = await d.decrypt(cipher);
  expect(sha256(byLibrary)).toBe(sha256(byCli));
  return byCli;
}

describe("a Worker with AGE_RECIPIENTS", () => {
  it("POST /backups stores an age file the CLI and typage decrypt to the gzip of the database (VERIFY=full in workerd)", async () => {
    h.source.set(w.sourcePath, serve.db(db));
    const a = await w.backup();
    expect(a.status, a.text).toBe(201);
    const m = a.json as Manifest;
    expect(m.key).toMatch(/^backups\/sealed\/sealed-.*-[0-9a-f]{6}\.sqlite\.gz\.age$/);
    expect(m.encrypted).toBe(true);
    expect(m.verified).toBe("full");
    expect(m.sha256).toBe(sha256(db));

    const link = await w.call(`/backups/${m.file}/link`, { headers: h.auth() });
    expect(link.status, link.text).toBe(200);
    const gzip = await openedBoth(link.json.url);
    await expectSameDatabase(new Uint8Array(gunzipSync(gzip)), db);
  });

  it("a multipart-sized database, by the cron trigger, the same way", async () => {
    h.source.set(w.sourcePath, serve.db(large));
    const result = await w.scheduled();
    expect(result.outcome).toBe("ok");
    const link = await w.call("/backups/latest/link", { headers: h.auth() });
    expect(link.status, link.text).toBe(200);
    expect(link.json.key).toMatch(/\.sqlite\.gz\.age$/);
    expect(link.json.size).toBeGreaterThan(5 * MiB);
    const gzip = await openedBoth(link.json.url);
    await expectSameDatabase(new Uint8Array(gunzipSync(gzip)), large);
  });

  it("lists both encrypted backups, and no identity or other secret left the Worker", async () => {
    const list = await w.call("/backups", { headers: h.auth() });
    expect(list.status, list.text).toBe(200);
    const files = (list.json.backups as { file: string }[]).map((b) => b.file);
    expect(files).toHaveLength(2);
    for (const f of files) expect(f).toMatch(/\.sqlite\.gz\.age$/);
    h.assertNoSecrets();
  });
});
