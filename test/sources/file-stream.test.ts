/**
 * The file source's streamed image (Source.open) against its whole-image read (Source.read),
 * which the WAL and race suites prove against SQLite: the same bytes for every WAL fixture
 * and for a database larger than one stream chunk with its WAL pages spread over many
 * chunks; and a file changed under the streamed read is caught when the stream has ended.
 */
import { execFileSync } from "node:child_process";
import { appendFile, copyFile, mkdtemp, open as openFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { nodeFiles } from "../../functions/node-runtime.js";
import { fileSource, STREAM_CHUNK_BYTES } from "../../src/sources/file.js";
import { SourceChanged, type SourceStream } from "../../src/sources/source.js";
import { sha256 } from "../helpers/db.js";
import { fixtureIndex, loadWalFixture } from "../helpers/wal.js";

const MAX = 1e10;
let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "seb-file-stream-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function drain(opened: SourceStream): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  const reader = opened.stream.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    parts.push(value);
  }
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

describe("file source, streamed", () => {
  for (const name of Object.keys(fixtureIndex.fixtures)) {
    it(`streams the same image as the whole read: WAL fixture ${name}`, async () => {
      const f = loadWalFixture(name);
      const path = join(dir, `${name}.db`);
      await writeFile(path, f.db);
      await writeFile(`${path}-wal`, f.wal);
      const source = fileSource(nodeFiles, path);
      const whole = await source.read({ maxBytes: MAX });
      const opened = await source.open({ maxBytes: MAX });
      expect(opened.bytes).toBe(whole.bytes.length);
      const streamed = await drain(opened);
      const settled = await opened.settled();
      expect(sha256(streamed)).toBe(sha256(whole.bytes));
      expect(settled.wal).toEqual(whole.wal);
    });
  }

  it("substitutes WAL pages across many chunks of a database larger than one chunk", async () => {
    const path = join(dir, "multi.db");
    // A writer that keeps its connection open leaves its commits in the WAL (no checkpoint on close).
    const sql = [
      "PRAGMA page_size=4096; PRAGMA journal_mode=WAL; PRAGMA wal_autocheckpoint=0;",
      "CREATE TABLE t(id INTEGER PRIMARY KEY, b BLOB);",
      "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c WHERE i<1500) INSERT INTO t(b) SELECT randomblob(3000) FROM c;",
      "PRAGMA wal_checkpoint(TRUNCATE);",
      "UPDATE t SET b=randomblob(3000) WHERE id % 37 = 0;",
      "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c WHERE i<300) INSERT INTO t(b) SELECT randomblob(3000) FROM c;",
      // Keep the WAL: copy the files while the connection still holds them.
      `.shell cp ${path} ${path}.copy; cp ${path}-wal ${path}.copy-wal`,
    ].join("\n");
    execFileSync("sqlite3", [path], { input: sql });
    const copy = `${path}.copy`;
    const source = fileSource(nodeFiles, copy);
    const whole = await source.read({ maxBytes: MAX });
    expect(whole.wal?.committedFrames ?? 0).toBeGreaterThan(100);
    expect(whole.bytes.length).toBeGreaterThan(3 * STREAM_CHUNK_BYTES);
    const opened = await source.open({ maxBytes: MAX });
    const streamed = await drain(opened);
    await opened.settled();
    expect(sha256(streamed)).toBe(sha256(whole.bytes));
  });

  it("a file rewritten during the streamed read: settled() rejects with SourceChanged", async () => {
    const path = join(dir, "torn.db");
    execFileSync("sqlite3", [path, "PRAGMA page_size=4096; CREATE TABLE t(b); WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c WHERE i<1200) INSERT INTO t SELECT randomblob(3000) FROM c;"]);
    const source = fileSource(nodeFiles, path);
    const opened = await source.open({ maxBytes: MAX });
    const reader = opened.stream.getReader();
    expect((await reader.read()).done).toBe(false);
    // A writer changes a page the read has already passed (as a rollback-journal commit does).
    const fh = await openFile(path, "r+");
    await fh.write(new Uint8Array([0xff, 0xee]), 0, 2, 4096 + 200);
    await fh.close();
    while (!(await reader.read()).done);
    const err = await opened.settled().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(SourceChanged);
    expect((err as SourceChanged).reason).toMatch(/modified during the read/);
  });

  it("a file that grows during the streamed read is caught too", async () => {
    const path = join(dir, "grow.db");
    execFileSync("sqlite3", [path, "CREATE TABLE t(b); INSERT INTO t VALUES (randomblob(10000));"]);
    const opened = await fileSource(nodeFiles, path).open({ maxBytes: MAX });
    await appendFile(path, new Uint8Array(4096));
    await drain(opened);
    await expect(opened.settled()).rejects.toBeInstanceOf(SourceChanged);
  });

  it("a live rollback journal refuses the read before it starts", async () => {
    const path = join(dir, "hot.db");
    execFileSync("sqlite3", [path, "CREATE TABLE t(b);"]);
    await copyFile(path, `${path}-journal`);
    const fh = await openFile(`${path}-journal`, "r+");
    await fh.write(new Uint8Array([0xd9, 0xd5, 0x05, 0xf9, 0x20, 0xa1, 0x63, 0xd7]), 0, 8, 0);
    await fh.close();
    const err = await fileSource(nodeFiles, path)
      .open({ maxBytes: MAX })
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    expect(err).toBeInstanceOf(SourceChanged);
    expect((err as SourceChanged).hotJournal).toBe(true);
  });
});
