/**
 * Memory stays flat: `restore` and `verify` of a backup larger than restore's in-memory limit
 * (RESTORE_SQLITE_CHECK_MAX_BYTES) stream it — download → gunzip → sha256, size and the
 * structural check (→ the temp file) — so the CLI's peak RSS grows by far less than the
 * database's size. Holding the image would grow it by at least the image (288 MiB here).
 *
 * The database is made by the sqlite3 CLI (skipped without it, unless REQUIRE_SQLITE_CLI=1):
 * blobs of 1–20 KiB (overflow chains), one in eight random, the rest zeros, so the gzip is
 * small and inflates fast, the hardest case for backpressure. Peaks are the child process's own
 * high-water mark (test/helpers/rss-probe.mjs), compared with the same command on a tiny backup.
 */
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { createReadStream, createWriteStream } from "node:fs";
import { mkdir, mkdtemp, readFile, readdir, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pipeline } from "node:stream/promises";
import { createGzip } from "node:zlib";
import { PutObjectCommand } from "@aws-sdk/client-s3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildKey } from "../../src/keys.js";
import { RESTORE_SQLITE_CHECK_MAX_BYTES } from "../../src/restore.js";
import { putBackup } from "../helpers/backups.js";
import { cli, type Run } from "../helpers/cli.js";
import { makeDatabase, sqliteCli } from "../helpers/db.js";
import { startTestStore, type TestStore } from "../helpers/s3.js";

const MiB = 1024 * 1024;
/** Over the in-memory limit, so that the streaming path is the one measured. */
const DB_BYTES = RESTORE_SQLITE_CHECK_MAX_BYTES + 32 * MiB;
/** Generous: the streaming path measured ~5–25 MiB; holding the image would be ≥ DB_BYTES. */
const MAX_GROWTH = 96 * MiB;
const PROBE = new URL("../helpers/rss-probe.mjs", import.meta.url).pathname;

const sqlite3 = sqliteCli();
let s3: TestStore;
let dir: string;
let big: { path: string; bytes: number; sha256: string };

async function sha256File(path: string): Promise<string> {
  const hash = createHash("sha256");
  for await (const chunk of createReadStream(path, { highWaterMark: 4 * MiB })) hash.update(chunk as Buffer);
  return hash.digest("hex");
}

/** A ~DB_BYTES database made by the sqlite3 CLI in a few seconds. */
function makeBigDatabase(path: string): void {
  const rows = Math.ceil(DB_BYTES / 11_000);
  execFileSync("sqlite3", [
    path,
    `PRAGMA page_size = 4096; PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF;
     CREATE TABLE items (id INTEGER PRIMARY KEY, k TEXT NOT NULL, data BLOB);
     WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < ${rows})
       INSERT INTO items SELECT x, printf('%08x', (x * 2654435761) % 4294967296),
         CASE WHEN x % 8 = 0 THEN randomblob((x * 7919) % 19000 + 1000) ELSE zeroblob((x * 7919) % 19000 + 1000) END FROM c;
     CREATE INDEX items_k ON items(k);`,
  ]);
}

/** Gzip `path` (level 1) and upload it as a backup of `name` with the contract's metadata, streaming both ways. */
async function uploadBackup(name: string, path: string, bytes: number, sha256: string): Promise<string> {
  const gz = `${path}.gz`;
  await pipeline(createReadStream(path, { highWaterMark: 4 * MiB }), createGzip({ level: 1 }), createWriteStream(gz));
  const { key } = buildKey("backups/", name, new Date(), 0xabc);
  const metadata = { sha256, bytes: String(bytes), "page-size": "4096", "page-count": String(bytes / 4096), "sqlite-version": "3.40.1", format: "sqlite3+gzip" };
  await s3.client.send(
    new PutObjectCommand({ Bucket: s3.bucket, Key: key, Body: createReadStream(gz), ContentLength: (await stat(gz)).size, ContentType: "application/gzip", Metadata: metadata }),
  );
  await rm(gz);
  return key;
}

async function peakOf(args: string[], name: string): Promise<{ run: Run; peak: number }> {
  const out = join(dir, `rss-${name}-${args[0]}.json`);
  const run = await cli(args, s3.env({ BACKUP_SOURCE: join(dir, `${name}.db`), BACKUP_NAME: name, RSS_PROBE_OUT: out }), ["--import", PROBE]);
  expect(run.code, run.stderr).toBe(0);
  const { peakRssBytes } = JSON.parse(await readFile(out, "utf8")) as { peakRssBytes: number };
  return { run, peak: peakRssBytes };
}

const mib = (n: number) => `${(n / MiB).toFixed(1)} MiB`;

describe.skipIf(!sqlite3)("memory of restore and verify at a size over the in-memory limit", () => {
  beforeAll(async () => {
    s3 = await startTestStore();
    dir = await mkdtemp(join(tmpdir(), "seb-restore-memory-"));
    const path = join(dir, "big.db");
    makeBigDatabase(path);
    const bytes = (await stat(path)).size;
    expect(bytes).toBeGreaterThan(RESTORE_SQLITE_CHECK_MAX_BYTES);
    big = { path, bytes, sha256: await sha256File(path) };
    await uploadBackup("big", path, bytes, big.sha256);
    await putBackup(s3, { name: "tiny", image: await makeDatabase({ rows: 20 }) });
  }, 120_000);
  afterAll(async () => {
    await s3?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("restore streams to the temp file: RSS grows by less than 96 MiB, the file is exact", { timeout: 120_000 }, async () => {
    const tiny = await peakOf(["restore", "--to", join(dir, "tiny-restored.db")], "tiny");
    const target = join(dir, "out", "big-restored.db");
    await mkdir(join(dir, "out"));
    const large = await peakOf(["restore", "--to", target], "big");
    const growth = large.peak - tiny.peak;
    console.log(`restore of ${mib(big.bytes)}: peak RSS ${mib(large.peak)}, tiny backup ${mib(tiny.peak)}, growth ${mib(growth)}`);
    expect(large.run.stderr).toContain('"check":"structure"');
    expect(growth).toBeLessThan(MAX_GROWTH);
    expect((await stat(target)).size).toBe(big.bytes);
    expect(await sha256File(target)).toBe(big.sha256);
    expect(await readdir(join(dir, "out"))).toEqual(["big-restored.db"]);
  });

  it("verify streams: RSS grows by less than 96 MiB", { timeout: 120_000 }, async () => {
    const tiny = await peakOf(["verify"], "tiny");
    const large = await peakOf(["verify"], "big");
    const growth = large.peak - tiny.peak;
    console.log(`verify of ${mib(big.bytes)}: peak RSS ${mib(large.peak)}, tiny backup ${mib(tiny.peak)}, growth ${mib(growth)}`);
    expect(large.run.stdout).toMatch(new RegExp(`^ok backups/big/.*: ${big.bytes} bytes, sha256 ${big.sha256} matches, ${big.bytes / 4096} pages of 4096 bytes, structural check ok\\n$`));
    expect(growth).toBeLessThan(MAX_GROWTH);
  });
});
