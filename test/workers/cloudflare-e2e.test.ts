/**
 * Issue 17's "done when", end to end in workerd: the deployed bundle with nothing but
 * Cloudflare pieces — an R2 binding as the store (R2_BUCKET), LINK_SECRET (so links are the
 * Worker's own /download URLs), and BACKUP_SOURCES with a D1 database (exported through the
 * fake export API; its dump is the real `wrangler d1 export --local` of a local D1) and a
 * database file in a second R2 binding. One cron run backs up both; the HTTP API with the API
 * key lists them, hands out links, and the links download exactly the stored bytes (and
 * ranges of them), which gunzip to a database whose sqlite3 `.dump` is the source's.
 * Failures through the same Worker: a D1 token the API refuses fails that database only and
 * leaves nothing half-written in R2; a tampered link is refused with 403.
 */
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gunzipSync } from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { UPLOAD_MARKER_SUFFIX, type R2BucketLike } from "../../src/store/r2.js";
import { startFakeD1Api, type FakeD1Api } from "../helpers/d1-api.js";
import { makeDatabase, sha256 } from "../helpers/db.js";
import { localD1, type LocalD1 } from "../helpers/local-d1.js";
import { registerSecret } from "../helpers/log-capture.js";
import { r2Keys, uploadsInProgress } from "../helpers/r2.js";
import { expectErrorShape } from "../api/harness.js";
import { KEY_PATTERN, WorkerHarness, type TestWorker } from "./harness.js";

const MiB = 1024 * 1024;
const h = new WorkerHarness();
const LINK_SECRET = registerSecret("LINK_SECRET", `link-${randomBytes(24).toString("hex")}`);
const NO_S3 = { S3_ENDPOINT: null, S3_BUCKET: null, S3_ACCESS_KEY_ID: null, S3_SECRET_ACCESS_KEY: null, S3_REGION: null, BACKUP_SOURCE: null, BACKUP_NAME: null };
// The D1 table user rows are compared on (D1's own file also holds its internal _cf_ tables).
const D1_TABLES = ["notes", "tags"];

let api: FakeD1Api;
let d1: LocalD1;
let dir: string;
let app: Uint8Array;

/** sqlite3 CLI `.dump` of a database file (only the given tables, if any). */
const dump = (file: string, tables: string[] = []): string => execFileSync("sqlite3", ["-readonly", file, [".dump", ...tables].join(" ")], { encoding: "utf8", maxBuffer: 256 * MiB });

/** The Worker with both databases in BACKUP_SOURCES; `token` is the CLOUDFLARE_API_TOKEN it is given. */
function cloudflareWorker(name: string, token: string): Promise<TestWorker> {
  return h.worker(name, {
    r2Buckets: ["BACKUPS", "SOURCES"],
    env: {
      ...NO_S3,
      R2_BUCKET: "BACKUPS",
      LINK_SECRET,
      BACKUP_SOURCES: JSON.stringify([
        { name: "d1db", source: `d1://${api.accountId}/${api.databaseId}` },
        { name: "app", source: "r2://SOURCES/app.db" },
      ]),
      CLOUDFLARE_API_TOKEN: token,
      CLOUDFLARE_API_BASE_URL: api.base,
    },
  });
}

beforeAll(async () => {
  [, d1, dir, app] = await Promise.all([
    h.start(),
    localD1("cfsrc"),
    mkdtemp(join(tmpdir(), "seb-cf-e2e-")),
    makeDatabase({ rows: 3000, targetBytes: 3 * MiB }),
  ]);
  // ~2 MiB of D1 rows: blobs (hex in the dump), text with quotes and semicolons, a trigger, a WITHOUT ROWID table.
  await writeFile(
    join(d1.dir, "seed.sql"),
    `CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT, data BLOB);
     CREATE TABLE tags (name TEXT PRIMARY KEY, n INTEGER) WITHOUT ROWID;
     CREATE TRIGGER notes_tag AFTER INSERT ON notes BEGIN INSERT OR REPLACE INTO tags VALUES ('it''s; all', new.id); END;
     INSERT INTO notes (body, data) SELECT 'note ' || i || '; "ok"', randomblob(1000) FROM (WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2000) SELECT i FROM n);`,
  );
  await d1.execute(join(d1.dir, "seed.sql"));
  api = await startFakeD1Api(await d1.exportSql());
  h.secrets.push(api.token, LINK_SECRET);
}, 90_000);
afterAll(async () => {
  h.assertNoSecrets();
  await h.close();
  await api?.close();
  await rm(dir, { recursive: true, force: true });
  if (d1) await rm(d1.dir, { recursive: true, force: true });
});

describe("R2 store, D1 + R2 sources, Worker-served links: one cron run, then the HTTP API", () => {
  let w: TestWorker;
  let backups: R2BucketLike;
  const links: Record<string, URL> = {};
  const objects: Record<string, Uint8Array> = {};

  beforeAll(async () => {
    w = await cloudflareWorker("cf", api.token);
    await (await w.r2("SOURCES")).put("app.db", app);
    backups = await w.r2("BACKUPS");
  });

  const get = async (u: URL, headers: Record<string, string> = {}) => {
    const res = await w.mf.dispatchFetch(`http://localhost${u.pathname}${u.search}`, { headers, redirect: "manual" });
    return { res, status: res.status, body: new Uint8Array(await res.arrayBuffer()) };
  };

  it("the cron run backs up both databases into the BACKUPS binding, each under its own name", async () => {
    const result = await w.scheduled();
    expect(result.outcome).toBe("ok");
    const keys = await r2Keys(backups);
    expect(keys).toHaveLength(2);
    expect(keys.filter((k) => KEY_PATTERN("backups/d1db/", "d1db").test(k))).toHaveLength(1);
    expect(keys.filter((k) => KEY_PATTERN("backups/app/", "app").test(k))).toHaveLength(1);
    for (const k of keys) objects[k] = new Uint8Array(await new Response(((await backups.get(k)) as { body: ReadableStream }).body).arrayBuffer());
    // The export went through the API with the token (3 POSTs: start + 2 "active" polls by default).
    expect(api.requests.filter((r) => r.method === "POST").every((r) => r.authorization === `Bearer ${api.token}`)).toBe(true);
  });

  it("GET /backups?name= lists each; GET /backups/latest/link?name= answers the Worker's own /download URL", async () => {
    for (const name of ["d1db", "app"]) {
      const list = await w.call(`/backups?name=${name}`, { headers: h.auth() });
      expect(list.status, list.text).toBe(200);
      const listed = list.json.backups as { key: string; size: number }[];
      expect(listed).toHaveLength(1);
      expect(listed[0]!.size).toBe(objects[listed[0]!.key]!.length);
      const link = await w.call(`/backups/latest/link?name=${name}`, { headers: h.auth() });
      expect(link.status, link.text).toBe(200);
      const url = new URL(link.json.url);
      expect(url.origin).toBe("http://localhost");
      expect(url.pathname).toBe(`/download/${listed[0]!.key.split("/").pop()}`);
      expect(url.searchParams.get("name")).toBe(name);
      links[name] = url;
    }
    const unnamed = await w.call("/backups/latest/link", { headers: h.auth() });
    expectErrorShape(unnamed, 400, "NAME_REQUIRED");
  });

  it("each link downloads exactly the stored object, and a byte range of it", async () => {
    for (const name of ["d1db", "app"]) {
      const key = Object.keys(objects).find((k) => KEY_PATTERN(`backups/${name}/`, name).test(k))!;
      const object = objects[key]!;
      const d = await get(links[name]!);
      expect(d.status).toBe(200);
      expect(d.res.headers.get("content-length")).toBe(String(object.length));
      expect(sha256(d.body)).toBe(sha256(object));
      const r = await get(links[name]!, { Range: "bytes=100-4195" });
      expect(r.status).toBe(206);
      expect(r.res.headers.get("content-range")).toBe(`bytes 100-4195/${object.length}`);
      expect(Buffer.from(r.body).equals(Buffer.from(object.subarray(100, 4196)))).toBe(true);
    }
  });

  it("the r2:// backup gunzips to exactly app.db; sqlite3 .dump of it equals the source's", async () => {
    const bytes = new Uint8Array(gunzipSync((await get(links.app!)).body));
    expect(sha256(bytes)).toBe(sha256(app));
    await writeFile(join(dir, "app-source.db"), app);
    await writeFile(join(dir, "app-restored.db"), bytes);
    const restored = dump(join(dir, "app-restored.db"));
    expect(restored).toContain("CREATE TABLE");
    expect(restored).toBe(dump(join(dir, "app-source.db")));
  });

  it("the d1:// backup gunzips to a database whose .dump of the user tables equals the D1 database's own", async () => {
    const bytes = new Uint8Array(gunzipSync((await get(links.d1db!)).body));
    await writeFile(join(dir, "d1-restored.db"), bytes);
    const restored = join(dir, "d1-restored.db");
    expect(execFileSync("sqlite3", [restored, "PRAGMA integrity_check"], { encoding: "utf8" }).trim()).toBe("ok");
    const fromBackup = dump(restored, D1_TABLES);
    expect(fromBackup).toContain("INSERT INTO notes VALUES(2000,'note 2000; \"ok\"',X'");
    expect(fromBackup).toBe(dump(await d1.sqliteFile(), D1_TABLES));
    expect(execFileSync("sqlite3", [restored, "SELECT count(*), sum(length(data)) FROM notes; SELECT name FROM sqlite_schema WHERE type = 'trigger'"], { encoding: "utf8" }).trim()).toBe("2000|2000000\nnotes_tag");
  });

  it("a tampered link is refused with 403 through the same Worker", async () => {
    const u = new URL(links.app!);
    const sig = u.searchParams.get("sig")!;
    u.searchParams.set("sig", `${sig.slice(0, -1)}${sig.endsWith("A") ? "B" : "A"}`);
    expectErrorShape(await w.call(`${u.pathname}${u.search}`), 403, "LINK_INVALID");
    const other = new URL(links.app!);
    other.searchParams.set("name", "d1db");
    expectErrorShape(await w.call(`${other.pathname}${other.search}`), 403, "LINK_INVALID");
  });
});

describe("a D1 token the export API refuses", () => {
  it("fails the cron run for the D1 database only: the r2:// one is backed up, nothing half-written in R2", async () => {
    const refused = `refused-${randomBytes(12).toString("hex")}`;
    h.secrets.push(refused); // a wrong token is still a secret: never in a response or log line
    const bad = await cloudflareWorker("cf-refused", refused);
    await (await bad.r2("SOURCES")).put("app.db", app);
    const result = await bad.scheduled();
    expect(result.outcome).toBe("exception");
    const status = await bad.call("/status", { headers: h.auth() });
    expect(status.status, status.text).toBe(200);
    const runs = status.json.databases as { name: string; lastRun: { ok: boolean; error?: { code: string; message: string } } }[];
    expect(runs.map((d) => [d.name, d.lastRun.ok])).toEqual([
      ["d1db", false],
      ["app", true],
    ]);
    expect(runs[0]!.lastRun.error).toMatchObject({ code: "SOURCE_UNREADABLE", message: expect.stringMatching(/refused CLOUDFLARE_API_TOKEN \(HTTP 401/) });
    const keys = await r2Keys(await bad.r2("BACKUPS"));
    expect(keys).toHaveLength(1);
    expect(keys[0]).toMatch(KEY_PATTERN("backups/app/", "app"));
    expect(keys.some((k) => k.endsWith(".partial") || k.endsWith(UPLOAD_MARKER_SUFFIX))).toBe(false);
    expect(uploadsInProgress(join(h.r2Persist(), "cf-refused"))).toEqual([]);
  });
});
