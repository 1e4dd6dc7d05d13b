/**
 * Torn reads for real: a separate sqlite3 process keeps inserting rows into a counter table
 * (each insert its own transaction) while 20 backups of the same file run one after the
 * other through the whole pipeline (file source → snapshot → gzip → S3 → verify). Every
 * uploaded backup must pass integrity_check and hold the counter rows 1..max with no gap:
 * a torn copy would show up as a broken b-tree, a missing row, or a row from a transaction
 * the copy only half saw. The reads that did see a change are retried; the test prints one
 * `live-writer <mode>:` line per journal mode with what happened.
 */
import { execFileSync } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { gunzipSync } from "node:zlib";
import { GetObjectCommand } from "@aws-sdk/client-s3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createNodeRuntime, NODE_MAX_BYTES, nodeFiles } from "../../functions/node-runtime.js";
import { createBackupRunner, type Manifest } from "../../src/backup.js";
import { parseConfig } from "../../src/config.js";
import { jsonLogger } from "../../src/log.js";
import type { Runtime } from "../../src/runtime.js";
import type { FileAccess } from "../../src/sources/file.js";
import { createSource } from "../../src/sources/index.js";
import { createS3Store } from "../../src/store/s3.js";
import { integrityCheck, sha256, sqlJs, sqliteCli } from "../helpers/db.js";
import { startTestStore, type TestStore } from "../helpers/s3.js";
import { openSqliteSession, type SqliteSession } from "../helpers/sqlite-session.js";
import { capture } from "../helpers/log-capture.js";

const BACKUPS = 20;
/**
 * READ_ATTEMPTS for this test (the default is 5). In rollback mode about half the reads see a
 * commit (the file changed, or the journal was hot): at the default, a backup would give up
 * with probability ~0.5^5 ≈ 3 %, so about one run in two of 20 backups would fail on bad luck
 * rather than on a torn image. At 20 that is ~1e-6 per backup. The waits grow to 3 s, so the
 * rare backup that needs 8+ reads costs seconds, not minutes. Giving up itself
 * (SOURCE_CHANGED / HOT_JOURNAL after READ_ATTEMPTS) is covered by file.test.ts.
 */
const READ_ATTEMPTS = 20;
const FILLER_ROWS = 750; // × 4000 random bytes: a 3 MiB file, so that a copy takes a few ms
const INITIAL_ROWS = 100;
const INSERT = "INSERT INTO counter(n, pad) VALUES ((SELECT coalesce(max(n),0)+1 FROM counter), randomblob(200))";
const RETRY_LOG = "source changed during the read; reading again";

const modes = [
  // WAL mode, writer at full speed (each insert sent as soon as the previous one is done), with
  // sqlite3's default wal_autocheckpoint of 1000 pages: checkpoints write the main file during
  // reads, which is fine (the WAL read after covers them); only a WAL restart during a read tears it.
  { mode: "wal", journal: "WAL", pauseMs: 0 },
  // Rollback mode: every commit rewrites the main file, with a hot journal for the length of its
  // fsyncs (3 ms on an idle disk here, 10-15 ms while the backups upload). Back to back, the file
  // is nearly always changing: with a 2 ms pause, one backup in five needed 11 reads. An
  // application does other work between writes; this one pauses 15 ms after each insert
  // (about 30 commits/s here), which still tears about half of the reads.
  { mode: "rollback", journal: "DELETE", pauseMs: 15 },
] as const;

let s3: TestStore;
let dir: string;
let runtime: Runtime;
const retryLogs: { name: string; attempt: number; reason: string }[] = [];

beforeAll(async () => {
  if (!sqliteCli()) throw new Error("the live-writer test needs the sqlite3 CLI (apt-get install sqlite3)");
  s3 = await startTestStore();
  dir = await mkdtemp(join(tmpdir(), "seb-live-"));
  runtime = await createNodeRuntime(
    jsonLogger({
      level: "warn",
      write: (line) => {
        capture("backup log", line);
        const entry = JSON.parse(line) as { msg: string; name: string; attempt: number; reason: string };
        if (entry.msg === RETRY_LOG) retryLogs.push({ name: entry.name, attempt: entry.attempt, reason: entry.reason });
      },
    }),
  );
});
afterAll(async () => {
  await s3?.close();
  await rm(dir, { recursive: true, force: true });
});

interface Writer {
  /** Inserts sent to sqlite3: no committed row can be above this. */
  started: number;
  /** Inserts sqlite3 reported done: every row up to this is committed. */
  committed: number;
  stop(): Promise<void>;
}

/**
 * Insert counter rows one transaction at a time until stopped; runs beside the backups, not
 * awaited by them. The inserts are sent from this process's event loop, so the writer stalls
 * while a backup or its check here holds the loop, and resumes the moment it is free, which is
 * when the next backup starts reading: first reads collide with a commit more often than later
 * ones (the summary line counts both).
 */
function startWriter(session: SqliteSession, pauseMs: number, initial: number): Writer {
  let stopping = false;
  let failed: unknown;
  const w = {
    started: initial,
    committed: initial,
    async stop() {
      stopping = true;
      await loop;
      if (failed) throw failed;
    },
  };
  const loop = (async () => {
    while (!stopping) {
      w.started++;
      await session.exec(INSERT);
      w.committed++;
      if (pauseMs > 0) await sleep(pauseMs);
    }
  })().catch((err: unknown) => {
    failed = err;
  });
  return w;
}

/**
 * nodeFiles, watching the main file without changing what the source does: counts the read
 * attempts during which the main file was written between the look before the copy and the
 * look after it (rollback mode: a commit, always a torn read; WAL mode: a checkpoint, accepted
 * unless the WAL was also restarted), and how long that window was (the longer, the likelier a
 * commit lands in it). A lower bound: file timestamps are coarse.
 */
function watchedFiles(path: string): { files: FileAccess; writtenDuringRead: () => number; windowsMs: number[] } {
  let last: { size: number; mtimeMs: number; at: number } | undefined;
  let copied = false;
  let walLookAfterCopy = false;
  let written = 0;
  const windowsMs: number[] = [];
  const files: FileAccess = {
    async stat(p) {
      if (p === `${path}-wal` && copied) walLookAfterCopy = true;
      const st = await nodeFiles.stat(p);
      if (p === path) {
        // The look after a copy: a copy of the main file, then the look at the WAL, then this.
        const at = performance.now();
        if (copied && walLookAfterCopy && last) {
          if (st.size !== last.size || st.mtimeMs !== last.mtimeMs) written++;
          windowsMs.push(at - last.at);
        }
        last = { size: st.size, mtimeMs: st.mtimeMs, at };
        copied = walLookAfterCopy = false;
      }
      return st;
    },
    async open(p, flags) {
      const handle = await nodeFiles.open(p, flags);
      if (p !== path) return handle;
      return {
        async read(buffer, offset, length, position) {
          if (length > 100) copied = true;
          return handle.read(buffer, offset, length, position);
        },
        close: () => handle.close(),
      };
    },
  };
  return { files, writtenDuringRead: () => written, windowsMs };
}

async function counterRange(bytes: Uint8Array): Promise<{ count: number; min: number; max: number; filler: number }> {
  const SQL = await sqlJs();
  const db = new SQL.Database(bytes);
  try {
    const [count, min, max] = db.exec("SELECT count(*), min(n), max(n) FROM counter")[0]!.values[0]!.map(Number) as [number, number, number];
    const filler = Number(db.exec("SELECT count(*) FROM filler")[0]!.values[0]![0]);
    return { count, min, max, filler };
  } finally {
    db.close();
  }
}

async function download(key: string): Promise<Uint8Array> {
  const got = await s3.client.send(new GetObjectCommand({ Bucket: s3.bucket, Key: key }));
  return new Uint8Array(gunzipSync(await got.Body!.transformToByteArray()));
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;

const histogram = (xs: number[]) =>
  [...new Set(xs)]
    .sort((a, b) => a - b)
    .map((x) => `${x}×${xs.filter((y) => y === x).length}`)
    .join(" ");

describe("backups while a live writer inserts rows", () => {
  for (const { mode, journal, pauseMs } of modes) {
    it(`${mode} mode (journal_mode=${journal}): ${BACKUPS} backups all pass integrity_check and hold a gap-free prefix of the counter`, { timeout: 60_000 }, async () => {
      const name = `live-${mode}`;
      const path = join(dir, `${name}.db`);
      execFileSync("sqlite3", [
        path,
        `PRAGMA journal_mode=${journal};
         CREATE TABLE counter(n INTEGER PRIMARY KEY, pad BLOB);
         CREATE TABLE filler(id INTEGER PRIMARY KEY, data BLOB);
         WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < ${FILLER_ROWS}) INSERT INTO filler(data) SELECT randomblob(4000) FROM c;
         WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < ${INITIAL_ROWS}) INSERT INTO counter(n, pad) SELECT i, randomblob(200) FROM c;`,
      ]);

      const config = parseConfig(s3.env({ BACKUP_SOURCE: path, BACKUP_NAME: name, READ_ATTEMPTS: String(READ_ATTEMPTS), MAX_COUNT: String(BACKUPS) }), {
        maxBytes: NODE_MAX_BYTES,
      });
      expect(config.readAttempts).toBe(READ_ATTEMPTS);
      const watched = watchedFiles(path);
      const runner = createBackupRunner({
        config,
        runtime,
        store: createS3Store(config.s3),
        source: createSource(config.source, { files: watched.files }, { readAttempts: config.readAttempts }),
      });

      const session = openSqliteSession(path);
      let writer: Writer | undefined;
      let stopped = false;
      try {
        expect((await session.exec(`PRAGMA busy_timeout = 5000; PRAGMA journal_mode`)).trim()).toMatch(new RegExp(`${journal}$`, "i"));
        writer = startWriter(session, pauseMs, INITIAL_ROWS);
        while (writer.committed < INITIAL_ROWS + 10) await sleep(5);

        const manifests: Manifest[] = [];
        const maxima: number[] = [];
        const windowStart = { rows: writer.committed, at: performance.now() };
        for (let i = 0; i < BACKUPS; i++) {
          const committedBefore = writer.committed;
          const manifest = await runner.run().catch((err: Error) => {
            throw new Error(`backup ${i + 1} of ${BACKUPS} failed: ${err.message}`, { cause: err });
          });
          const startedAfter = writer.started;
          manifests.push(manifest);

          const bytes = await download(manifest.key);
          expect(sha256(bytes)).toBe(manifest.sha256);
          expect(await integrityCheck(bytes), `backup ${i + 1}`).toBe("ok");
          const { count, min, max, filler } = await counterRange(bytes);
          expect(filler).toBe(FILLER_ROWS);
          // 1..max, no gap: every transaction in the copy is whole, none is half there.
          expect(min).toBe(1);
          expect(count).toBe(max);
          // Every row committed before the backup started is in it (in WAL mode: the WAL was
          // applied), and nothing the writer had not yet sent.
          expect(max).toBeGreaterThanOrEqual(committedBefore);
          expect(max).toBeLessThanOrEqual(startedAfter);
          expect(max).toBeGreaterThanOrEqual(maxima.at(-1) ?? 1);
          maxima.push(max);
        }
        const windowEnd = { rows: writer.committed, at: performance.now() };
        await writer.stop();
        stopped = true;

        const inserted = windowEnd.rows - windowStart.rows;
        const seconds = (windowEnd.at - windowStart.at) / 1000;
        // The writer really wrote while the backups ran, and the last backup is no newer than it.
        expect(inserted).toBeGreaterThanOrEqual(100);
        expect(maxima.at(-1)!).toBeGreaterThan(windowStart.rows);
        expect(maxima.at(-1)!).toBeLessThanOrEqual(writer.committed);
        expect(await session.exec("SELECT count(*) || ' ' || max(n) FROM counter")).toBe(`${writer.committed} ${writer.committed}\n`);
        expect(await s3.keys(`backups/${name}/`)).toHaveLength(BACKUPS);

        const attempts = manifests.map((m) => m.readAttempts);
        const walFrames = manifests.map((m) => m.walFrames);
        const retries = retryLogs.filter((r) => r.name === name);
        expect(retries).toHaveLength(attempts.reduce((sum, a) => sum + a - 1, 0));
        if (mode === "wal") expect(Math.min(...walFrames)).toBeGreaterThan(0);
        else expect(walFrames.every((f) => f === 0)).toBe(true);

        const totalReads = attempts.reduce((a, b) => a + b, 0);
        const firstTorn = attempts.filter((a) => a > 1).length;
        const reasons = new Map<string, number>();
        for (const r of retries) {
          const reason = r.reason.replaceAll(path, "DB");
          reasons.set(reason, (reasons.get(reason) ?? 0) + 1);
        }
        console.log(
          `live-writer ${mode}: ${BACKUPS} backups, ${retries.length} torn reads retried, max attempts ${Math.max(...attempts)}, ` +
            `first reads torn ${firstTorn}/${BACKUPS}, later reads torn ${retries.length - firstTorn}/${totalReads - BACKUPS}, ` +
            `attempts per backup [${histogram(attempts)}], READ_ATTEMPTS ${READ_ATTEMPTS}, ` +
            `WAL frames applied ${walFrames.reduce((a, b) => a + b, 0)} (per backup ${Math.min(...walFrames)}-${Math.max(...walFrames)}), ` +
            `writer ${inserted} inserts in ${seconds.toFixed(1)} s (${Math.round(inserted / seconds)}/s, pause ${pauseMs} ms), ` +
            `backup run ${Math.round(manifests.reduce((a, m) => a + m.durationMs, 0) / BACKUPS)} ms on average, ` +
            `read window median ${median(watched.windowsMs).toFixed(1)} ms (max ${Math.max(...watched.windowsMs).toFixed(1)}), ` +
            `main file written during ${watched.writtenDuringRead()} read attempts, ` +
            `counter in backups ${maxima[0]}..${maxima.at(-1)}, ` +
            `reasons {${[...reasons].map(([r, n]) => `${n}× ${r}`).join("; ")}}`,
        );
      } finally {
        if (!stopped) {
          // A failure: let the writer finish its insert and stop (killing sqlite3 under a pending
          // write would raise EPIPE), but not for long; then kill the process, which ends a stuck loop.
          await Promise.race([writer?.stop().catch(() => undefined), sleep(2000)]);
          await session.kill();
          await writer?.stop().catch(() => undefined);
        } else await session.close();
      }
    });
  }
});
