/**
 * D1 as a source, end to end with real components: a local D1 database with a varied schema
 * is made and exported by the real wrangler (`d1 execute --local`, `d1 export --local`); the
 * export API's protocol (start, polls with the bookmark, signed URL, failures) is played by
 * the local server of test/helpers/d1-api.ts; backups go to the in-process S3 server. The
 * image built from the dump must hold the D1 database's rows (sqlite3 `.dump` of both), and
 * `restore --format sql` must recreate them in a fresh local D1 through `wrangler d1 execute`.
 */
import { execFileSync } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createNodeRuntime, NODE_MAX_BYTES, nodeFiles } from "../../functions/node-runtime.js";
import { createBackupRunner, D1_BOOKMARK_METADATA } from "../../src/backup.js";
import { parseConfig } from "../../src/config.js";
import { jsonLogger } from "../../src/log.js";
import type { Runtime } from "../../src/runtime.js";
import { d1Source, type D1SourceOptions } from "../../src/sources/d1.js";
import { createSource } from "../../src/sources/index.js";
import { splitStatements } from "../../src/sqlite/sql-split.js";
import { createS3Store } from "../../src/store/s3.js";
import { cli } from "../helpers/cli.js";
import { startFakeD1Api, type FakeD1Api } from "../helpers/d1-api.js";
import { integrityCheck } from "../helpers/db.js";
import { backupError } from "../helpers/errors.js";
import { localD1, type LocalD1 } from "../helpers/local-d1.js";
import { capturedLines, registerSecret } from "../helpers/log-capture.js";
import { startTestStore, type TestStore } from "../helpers/s3.js";

const MiB = 1024 * 1024;

/** Everything that makes a dump hard to load: WITHOUT ROWID, blobs, views, triggers, generated columns, AUTOINCREMENT, FKs, `;` in data. */
const SEED = `
CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL, note TEXT, avatar BLOB, score REAL);
CREATE INDEX users_name ON users(name COLLATE NOCASE);
CREATE UNIQUE INDEX users_note ON users(note) WHERE note IS NOT NULL;
CREATE TABLE kv (k TEXT PRIMARY KEY, v ANY) STRICT, WITHOUT ROWID;
CREATE TABLE log (id INTEGER PRIMARY KEY AUTOINCREMENT, user_id INTEGER REFERENCES users(id) ON DELETE CASCADE, msg TEXT, at REAL);
CREATE TABLE items (id INTEGER PRIMARY KEY, price REAL, qty INTEGER, total REAL GENERATED ALWAYS AS (price * qty) STORED, label TEXT GENERATED ALWAYS AS ('#' || id) VIRTUAL);
CREATE TABLE "odd; name" ("a""b" TEXT, [c d] INTEGER);
CREATE TABLE files (id INTEGER PRIMARY KEY, data BLOB);
CREATE VIEW named AS SELECT id, name FROM users WHERE name <> ';';
CREATE TRIGGER users_log AFTER INSERT ON users BEGIN
  INSERT INTO log(user_id, msg, at) VALUES (new.id, 'hello; ''world'' END;', 1.5);
  UPDATE users SET note = CASE WHEN new.note IS NULL THEN NULL ELSE new.note END WHERE id = new.id;
END;
INSERT INTO users VALUES (1, 'ann', 'semi;colon', X'00FF103B', 0.1 + 0.2);
INSERT INTO users VALUES (2, 'bob', 'line
break -- not a comment /* nor this */', NULL, -1e300);
INSERT INTO users VALUES (3, 'çé 🎉', NULL, X'', 9007199254740993);
INSERT INTO kv VALUES ('a', 'BEGIN'), ('b', 'END;'), ('c', 42), ('d', X'0102'), ('e', 2.5);
INSERT INTO items (price, qty) VALUES (0.1, 3), (2.5, 2);
INSERT INTO "odd; name" VALUES ('x"y', 7);
INSERT INTO files (data) SELECT randomblob(3000) FROM (WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 600) SELECT i FROM n);
`;

let s3: TestStore;
let api: FakeD1Api;
let d1: LocalD1;
let dump: Uint8Array;
let dir: string;
let runtime: Runtime;
const logLines = capturedLines("d1 backup log");

beforeAll(async () => {
  [s3, d1, dir] = await Promise.all([startTestStore(), localD1("src"), mkdtemp(join(tmpdir(), "seb-d1-test-"))]);
  await writeFile(join(d1.dir, "seed.sql"), SEED);
  await d1.execute(join(d1.dir, "seed.sql"));
  dump = await d1.exportSql();
  api = await startFakeD1Api(dump);
  registerSecret("CLOUDFLARE_API_TOKEN", api.token);
  runtime = await createNodeRuntime(jsonLogger({ write: (line) => logLines.push(line), level: "debug" }));
}, 60_000);
afterAll(async () => {
  await api?.close();
  await s3?.close();
  await rm(dir, { recursive: true, force: true });
  if (d1) await rm(d1.dir, { recursive: true, force: true });
});

function source(extra: Partial<D1SourceOptions> = {}) {
  return d1Source((input, init) => fetch(input, init), runtime.sqlite, {
    accountId: api.accountId,
    databaseId: api.databaseId,
    token: api.token,
    apiBase: api.base,
    maxDumpBytes: 64 * MiB,
    // Polls back to back here; the default floor of 1 s between polls is what the backups below use.
    minPollIntervalMs: 0,
    ...extra,
  });
}

/**
 * sqlite3 `.dump` of a file as its sorted statements, without D1's own tables (`_cf_…`), which
 * an export leaves out: the schema objects come in sqlite_schema order, which D1's export
 * does not keep (it writes triggers before views), and the order is no part of the content.
 */
function dumpOf(path: string): string {
  const statements = splitStatements(execFileSync("sqlite3", [path, ".dump"], { encoding: "utf8", maxBuffer: 256 * MiB }));
  return statements.filter((st) => !/_cf_/.test(st)).sort().join("\n");
}

async function d1Dump(db: LocalD1): Promise<string> {
  return dumpOf(await db.sqliteFile());
}

describe("the D1 export protocol", () => {
  it("starts an export, polls with its bookmark until the signed URL, and builds an image with the D1 database's rows", async () => {
    api.set({ activePolls: 3 });
    const before = api.requests.length;
    const image = await source().read({ maxBytes: NODE_MAX_BYTES });
    const requests = api.requests.slice(before);

    const posts = requests.filter((r) => r.method === "POST");
    expect(posts).toHaveLength(4); // the start and three polls that were still active… the fourth completes
    expect(posts[0]!.body).toEqual({ output_format: "polling" });
    for (const p of posts.slice(1)) expect(p.body).toEqual({ output_format: "polling", current_bookmark: api.bookmarks.at(-1) });
    for (const p of posts) expect(p.authorization).toBe(`Bearer ${api.token}`);
    const gets = requests.filter((r) => r.method === "GET");
    expect(gets).toHaveLength(1);
    expect(gets[0]!.path).toMatch(/^\/signed\//);
    expect(gets[0]!.authorization).toBeUndefined(); // the token never goes to the signed URL's host

    expect(image.origin).toBe(`d1://${api.accountId}/${api.databaseId}`);
    expect(image.d1Bookmark).toBe(api.bookmarks.at(-1));
    expect(await integrityCheck(image.bytes)).toBe("ok");
    const path = join(dir, "built.db");
    await writeFile(path, image.bytes);
    const expected = await d1Dump(d1);
    expect(expected).toContain("WITHOUT ROWID");
    expect(expected).toContain("CREATE TRIGGER users_log");
    expect(dumpOf(path)).toBe(expected);
  });

  const failures: { label: string; setup: () => Partial<D1SourceOptions>; code: string; message: RegExp }[] = [
    { label: "a token the API refuses (401)", setup: () => ({ token: "wrong-token-0123456789" }), code: "SOURCE_UNREADABLE", message: /refused CLOUDFLARE_API_TOKEN \(HTTP 401: Authentication error \(code 10000\)\)\. Use an API token of account \w+ with its D1 permission/ },
    { label: "a database that does not exist (404)", setup: () => ({ databaseId: "00000000-0000-4000-8000-00000000dead" }), code: "SOURCE_NOT_FOUND", message: /there is no D1 database 00000000-0000-4000-8000-00000000dead in account .*HTTP 404/ },
    {
      label: "an export that fails",
      setup: () => (api.set({ activePolls: 2, outcome: "error" }), {}),
      code: "SOURCE_UNREADABLE",
      message: /the D1 export failed: Export failed: the database was reset during the export\./,
    },
    {
      label: "an export that never finishes (a clock that advances a minute per poll)",
      setup: () => {
        api.set({ outcome: "never" });
        let t = 0;
        return { now: () => (t += 60_000), exportTimeoutMs: 10 * 60_000 };
      },
      code: "SOURCE_UNREADABLE",
      message: /did not finish within 600 s \(\d+ polls; D1 does not serve queries while an export runs/,
    },
    {
      label: "a dump over the runtime's limit, announced by Content-Length (refused before loading)",
      setup: () => (api.set({ activePolls: 0, announce: 80 * MiB }), {}),
      code: "SOURCE_TOO_LARGE",
      message: /the D1 export is 83886080 bytes of SQL, over the 67108864 bytes a D1 backup can load in this runtime/,
    },
    {
      label: "a dump over the runtime's limit without Content-Length (stopped while streaming)",
      setup: () => (api.set({ activePolls: 0, chunked: true }), { maxDumpBytes: 256 * 1024 }),
      code: "SOURCE_TOO_LARGE",
      message: /the D1 export is more than 262144 bytes of SQL/,
    },
  ];
  for (const f of failures) {
    it(`fails clearly on ${f.label}`, async () => {
      api.set({});
      const err = await backupError(source(f.setup()).read({ maxBytes: NODE_MAX_BYTES }));
      expect(err.code).toBe(f.code);
      expect(err.message).toMatch(f.message);
      expect(err.message).not.toContain(api.token);
      expect(err.message).not.toContain("X-Amz-Signature");
    });
  }

  it("refuses a dump that ends inside a statement (a truncated export), not a half image", async () => {
    const text = new TextDecoder().decode(dump);
    const cut = new TextEncoder().encode(text.slice(0, text.indexOf("CREATE TRIGGER users_log") + 60));
    api.set({ activePolls: 0 }, cut);
    try {
      const err = await backupError(source().read({ maxBytes: NODE_MAX_BYTES }));
      expect(err.code).toBe("SOURCE_UNREADABLE");
      expect(err.message).toMatch(/ends inside a statement .*incomplete/);
    } finally {
      api.set({}, dump);
    }
  });
});

describe("backup and restore of a D1 database", () => {
  let env: Record<string, string>;
  beforeAll(() => {
    env = s3.env({
      BACKUP_SOURCE: `d1://${api.accountId}/${api.databaseId}`,
      CLOUDFLARE_API_TOKEN: api.token,
      CLOUDFLARE_API_BASE_URL: api.base,
      BACKUP_NAME: "d1-app",
      VERIFY: "full",
      LOCK: "off",
    });
  });

  it("backs up through the normal pipeline with the bookmark in the manifest and metadata; restore gives back the D1 rows, as SQLite and as SQL that wrangler d1 execute loads", async () => {
    api.set({ activePolls: 1 }, dump);
    const config = parseConfig(env, { maxBytes: NODE_MAX_BYTES });
    expect(config.source).toEqual({ kind: "d1", accountId: api.accountId, databaseId: api.databaseId });
    const store = createS3Store(config.s3);
    const src = createSource(config.source, { files: nodeFiles, s3: config.s3, sqlite: runtime.sqlite, d1: { ...config.cloudflare, maxDumpBytes: 64 * MiB } });
    const manifest = await createBackupRunner({ config, runtime, store, source: src }).run();
    expect(manifest.d1Bookmark).toBe(api.bookmarks.at(-1));
    expect(manifest.verified).toBe("full");
    const head = await store.head(manifest.key);
    expect(head?.metadata[D1_BOOKMARK_METADATA]).toBe(manifest.d1Bookmark);
    expect(head?.metadata.sha256).toBe(manifest.sha256);
    expect(logLines.join("\n")).toContain('"msg":"image checked"');

    // As a SQLite file (the CLI, as a user runs it).
    const restored = join(dir, "restored.db");
    const asFile = await cli(["restore", manifest.file, "--to", restored], env);
    expect(asFile.code, asFile.stderr).toBe(0);
    const expected = await d1Dump(d1);
    expect(dumpOf(restored)).toBe(expected);

    // As SQL, loaded into a fresh local D1 by the real wrangler.
    const sqlPath = join(dir, "restore.sql");
    const asSql = await cli(["restore", manifest.file, "--to", sqlPath, "--format", "sql"], env);
    expect(asSql.code, asSql.stderr).toBe(0);
    expect(asSql.stdout).toMatch(/as SQL \(\d+ bytes; load it with wrangler d1 execute DB --remote --file /);
    const sql = await readFile(sqlPath, "utf8");
    expect(sql.startsWith("PRAGMA defer_foreign_keys=TRUE;\n")).toBe(true);
    expect(sql).not.toMatch(/^(BEGIN|COMMIT)/m);
    const fresh = await localD1("dst");
    try {
      await fresh.execute(sqlPath);
      expect(await d1Dump(fresh)).toBe(expected);
    } finally {
      await rm(fresh.dir, { recursive: true, force: true });
    }
  }, 300_000);

  it("keeps the bookmark on the streamed path too (CHECK=structure, as Workers take for images over 16 MiB)", async () => {
    api.set({ activePolls: 0 }, dump);
    const config = parseConfig({ ...env, CHECK: "structure", BACKUP_NAME: "d1-streamed" }, { maxBytes: NODE_MAX_BYTES });
    const store = createS3Store(config.s3);
    const src = createSource(config.source, { s3: config.s3, sqlite: runtime.sqlite, d1: { ...config.cloudflare, maxDumpBytes: 64 * MiB } });
    const manifest = await createBackupRunner({ config, runtime, store, source: src }).run();
    expect(manifest.d1Bookmark).toBe(api.bookmarks.at(-1));
    expect((await store.head(manifest.key))?.metadata[D1_BOOKMARK_METADATA]).toBe(manifest.d1Bookmark);
    expect(await s3.keys("backups/d1-streamed/")).toEqual([manifest.key]); // no .partial left
  });

  it("says what is missing when CLOUDFLARE_API_TOKEN is not set, and never echoes the token", () => {
    const { CLOUDFLARE_API_TOKEN: _, ...without } = env;
    expect(() => parseConfig(without, { maxBytes: NODE_MAX_BYTES })).toThrow(/CLOUDFLARE_API_TOKEN is required for a d1:\/\/ source/);
    expect(() => parseConfig({ ...env, BACKUP_SOURCE: "d1://acct/../x" }, { maxBytes: NODE_MAX_BYTES })).toThrow(/must look like d1:\/\/ACCOUNT_ID\/DATABASE_ID/);
    expect(() => parseConfig({ ...env, CLOUDFLARE_API_BASE_URL: "ftp://x" }, { maxBytes: NODE_MAX_BYTES })).toThrow(/CLOUDFLARE_API_BASE_URL must be an http\(s\) URL/);
  });
});
