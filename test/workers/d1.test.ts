/**
 * A d1:// source inside workerd: the deployed bundle exports a D1 database through the export
 * API (the local server of test/helpers/d1-api.ts, via CLOUDFLARE_API_BASE_URL), builds the
 * image with sql.js in the isolate and stores it like any backup, with the export's bookmark
 * in its metadata. The dump is the real `wrangler d1 export --local` of a local D1.
 */
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { HeadObjectCommand } from "@aws-sdk/client-s3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Manifest } from "../../src/backup.js";
import { startFakeD1Api, type FakeD1Api } from "../helpers/d1-api.js";
import { integrityCheck, sqlJs } from "../helpers/db.js";
import { localD1, type LocalD1 } from "../helpers/local-d1.js";
import { download, WorkerHarness, type TestWorker } from "./harness.js";

const h = new WorkerHarness();
let api: FakeD1Api;
let d1: LocalD1;
let w: TestWorker;
let dir: string;

beforeAll(async () => {
  [, d1, dir] = await Promise.all([h.start(), localD1("src"), mkdtemp(join(tmpdir(), "seb-d1-worker-"))]);
  await writeFile(
    join(d1.dir, "seed.sql"),
    `CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT, data BLOB);
     CREATE TABLE tags (name TEXT PRIMARY KEY, n INTEGER) WITHOUT ROWID;
     CREATE TRIGGER notes_tag AFTER INSERT ON notes BEGIN INSERT OR REPLACE INTO tags VALUES ('all; of them', new.id); END;
     INSERT INTO notes (body, data) SELECT 'note ' || i || '; ok', randomblob(100) FROM (WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 300) SELECT i FROM n);`,
  );
  await d1.execute(join(d1.dir, "seed.sql"));
  api = await startFakeD1Api(await d1.exportSql());
  h.secrets.push(api.token);
  w = await h.worker("d1-app", {
    env: { BACKUP_SOURCE: `d1://${api.accountId}/${api.databaseId}`, CLOUDFLARE_API_TOKEN: api.token, CLOUDFLARE_API_BASE_URL: api.base, LOCK: "off" },
  });
}, 60_000);
afterAll(async () => {
  await h.close();
  await api?.close();
  await rm(dir, { recursive: true, force: true });
  if (d1) await rm(d1.dir, { recursive: true, force: true });
});

describe("a D1 database backed up by the Worker", () => {
  it("exports, polls, builds the image in workerd and stores it with d1-bookmark; the backup holds the D1 rows", async () => {
    api.set({ activePolls: 2 });
    const answer = await w.backup();
    expect(answer.status, answer.text).toBe(201);
    const manifest = answer.json as Manifest;
    expect(manifest.d1Bookmark).toBe(api.bookmarks.at(-1));
    expect(api.requests.filter((r) => r.method === "POST")).toHaveLength(3);
    expect(api.requests.filter((r) => r.method === "GET").every((r) => r.authorization === undefined)).toBe(true);

    const head = await h.s3.client.send(new HeadObjectCommand({ Bucket: h.s3.bucket, Key: manifest.key }));
    expect(head.Metadata?.["d1-bookmark"]).toBe(manifest.d1Bookmark);

    const link = await w.call(`/backups/${manifest.file}/link`, { headers: h.auth() });
    const { bytes } = await download((link.json as { url: string }).url);
    expect(await integrityCheck(bytes)).toBe("ok");
    const db = new (await sqlJs()).Database(bytes);
    try {
      const notes = db.exec("SELECT count(*), max(body), sum(length(data)) FROM notes")[0]!.values[0];
      expect(notes).toEqual([300, "note 9; ok", 300 * 100]); // text order: ";" sorts after "9"
      expect(db.exec("SELECT * FROM tags")[0]!.values).toEqual([["all; of them", 300]]);
      expect(db.exec("SELECT name FROM sqlite_schema WHERE type = 'trigger'")[0]!.values).toEqual([["notes_tag"]]);
    } finally {
      db.close();
    }
    h.assertNoSecrets();
  });

  it("answers a refused token with SOURCE_UNREADABLE and stores nothing", async () => {
    const refused = await h.worker("d1-refused", {
      env: { BACKUP_SOURCE: `d1://${api.accountId}/${api.databaseId}`, CLOUDFLARE_API_TOKEN: "not-the-token-0123456789", CLOUDFLARE_API_BASE_URL: api.base, LOCK: "off" },
    });
    const answer = await refused.backup();
    expect(answer.status).toBe(502);
    expect((answer.json as { error: { code: string; message: string } }).error).toMatchObject({ code: "SOURCE_UNREADABLE", message: expect.stringMatching(/refused CLOUDFLARE_API_TOKEN \(HTTP 401/) });
    expect(await h.s3.keys(refused.prefix)).toEqual([]);
    h.assertNoSecrets();
  });
});
