/**
 * src/sqlite/wal.ts on WALs written by real SQLite (test/fixtures/wal, see its README) and on
 * damaged copies of them. Each result is judged three ways: the state the writing SQLite
 * recorded after each transaction (fixtures.json), the dump stored with the fixture, and —
 * when the sqlite3 CLI is installed — real SQLite reading the very same (damaged) files.
 */
import { describe, expect, it } from "vitest";
import { checksum, toBigEndianWal, walkWal, WAL_MAGIC_BE, type WalkedWal } from "../../scripts/make-wal-fixtures.js";
import { markRollbackJournal } from "../../src/sqlite/header.js";
import { applyWal, readWalHeader, scanWal, walChecksum, WAL_FRAME_HEADER_BYTES, WAL_HEADER_BYTES } from "../../src/sqlite/wal.js";
import { dumpTables, integrityCheck, sha256, sqliteCli } from "../helpers/db.js";
import { mulberry32 } from "../helpers/random.js";
import { fingerprintOf, fixtureIndex, loadWalFixture, replay, sqliteDumpOfImage, sqliteReads, tablesOfDump, type WalFixture } from "../helpers/wal.js";

const cli = sqliteCli();
const FIXTURES = Object.keys(fixtureIndex.fixtures);

const u32 = (b: Uint8Array, at: number) => new DataView(b.buffer, b.byteOffset, b.byteLength).getUint32(at, false);
const putU32 = (b: Uint8Array, at: number, v: number) => new DataView(b.buffer, b.byteOffset, b.byteLength).setUint32(at, v >>> 0, false);

/** Frame indexes (0-based) of the k-th committed transaction (1-based). */
function framesOfTransaction(walked: WalkedWal, k: number): number[] {
  const commitIndexes = walked.frames.flatMap((f, i) => (f.valid && f.commit !== 0 ? [i] : []));
  const from = k === 1 ? 0 : commitIndexes[k - 2]! + 1;
  const to = commitIndexes[k - 1]!;
  return Array.from({ length: to - from + 1 }, (_, i) => from + i);
}

/**
 * Recompute the header checksum and (unless `headerOnly`) every frame's cumulative checksum,
 * so that only a structural change remains.
 */
function reseal(wal: Uint8Array, headerOnly = false): Uint8Array {
  const out = wal.slice();
  const bigEndian = u32(out, 0) === WAL_MAGIC_BE;
  const pageSize = u32(out, 8);
  let sum = checksum(out, 0, 24, bigEndian, [0, 0]);
  putU32(out, 24, sum[0]);
  putU32(out, 28, sum[1]);
  if (headerOnly) return out;
  for (let at = WAL_HEADER_BYTES; at + WAL_FRAME_HEADER_BYTES + pageSize <= out.length; at += WAL_FRAME_HEADER_BYTES + pageSize) {
    sum = checksum(out, at, 8, bigEndian, sum);
    sum = checksum(out, at + WAL_FRAME_HEADER_BYTES, pageSize, bigEndian, sum);
    putU32(out, at + 16, sum[0]);
    putU32(out, at + 20, sum[1]);
  }
  return out;
}

function mutate(wal: Uint8Array, change: (copy: Uint8Array) => void): Uint8Array {
  const copy = wal.slice();
  change(copy);
  return copy;
}

/**
 * The main result of these tests: replaying `wal` onto `fixture.db` gives the state after
 * exactly `commits` transactions — the state the writer recorded, a sound database, and
 * (with the CLI) byte for byte the dump of what SQLite itself reads from the same files.
 */
async function expectState(fixture: WalFixture, wal: Uint8Array, commits: number): Promise<void> {
  const { image, scan } = replay(fixture.db, wal);
  expect(scan.commits).toBe(commits);
  expect(await fingerprintOf(image)).toBe(fixture.entry.states[commits]);
  expect(await integrityCheck(image)).toBe("ok");
  if (cli) {
    const sqlite = sqliteReads(fixture.db, wal);
    if ("error" in sqlite) throw new Error(`SQLite could not read the files: ${sqlite.error}`);
    expect(sqlite.integrity).toBe("ok");
    // Same dump: same schema and rows, so SQLite's state has the writer's fingerprint too.
    const ours = sqliteDumpOfImage(image);
    expect(ours.integrity).toBe("ok");
    expect(ours.dump).toBe(sqlite.dump);
  }
}

describe("walChecksum", () => {
  it("reproduces the header checksum SQLite stored in every fixture, in both byte orders", () => {
    for (const name of FIXTURES) {
      const { wal, entry } = loadWalFixture(name);
      expect(walChecksum(wal, 0, 24, entry.bigEndian, 0, 0), name).toEqual([u32(wal, 24), u32(wal, 28)]);
      expect(walChecksum(wal, 0, 24, !entry.bigEndian, 0, 0), name).not.toEqual([u32(wal, 24), u32(wal, 28)]);
    }
  });

  it("equals an independent implementation on random data, continued from a seed", () => {
    const random = mulberry32(0x3a1);
    for (let round = 0; round < 50; round++) {
      const data = Uint8Array.from({ length: 8 * (1 + Math.floor(random() * 200)) }, () => Math.floor(random() * 256));
      const seed: [number, number] = [Math.floor(random() * 2 ** 32), Math.floor(random() * 2 ** 32)];
      const offset = 8 * Math.floor(random() * 4);
      const length = data.length - offset;
      for (const bigEndian of [false, true]) {
        expect(walChecksum(data, offset, length, bigEndian, ...seed)).toEqual(checksum(data, offset, length, bigEndian, seed));
      }
      // A view into a larger buffer reads the right bytes.
      const shifted = new Uint8Array(data.length + 3);
      shifted.set(data, 3);
      expect(walChecksum(shifted.subarray(3), offset, length, true, ...seed)).toEqual(checksum(data, offset, length, true, seed));
    }
  });
});

describe("readWalHeader", () => {
  it("reads page size, byte order, checkpoint sequence and salts", () => {
    const committed = loadWalFixture("committed");
    const walked = walkWal(committed.wal);
    expect(readWalHeader(committed.wal)).toEqual({
      header: { pageSize: 1024, bigEndianChecksums: false, checkpointSequence: u32(committed.wal, 12), salt1: walked.salt1, salt2: walked.salt2 },
    });
    expect(readWalHeader(loadWalFixture("big-endian").wal).header).toMatchObject({ pageSize: 1024, bigEndianChecksums: true, salt1: walked.salt1 });
    // 65536 does not fit the database header's 16 bits (stored there as 1); the WAL header has 32.
    const big = loadWalFixture("page64k");
    expect([big.db[16], big.db[17]]).toEqual([0, 1]);
    expect(readWalHeader(big.wal).header?.pageSize).toBe(65536);
  });

  it("ignores the whole WAL, as SQLite does, when the header is short, or its magic, page size or checksum is wrong", async () => {
    const fixture = loadWalFixture("committed");
    const cases: Array<{ what: string; wal: Uint8Array; problem: RegExp }> = [
      { what: "empty", wal: new Uint8Array(0), problem: /^empty$/ },
      { what: "short", wal: fixture.wal.slice(0, 31), problem: /only 31 bytes/ },
      { what: "checksum", wal: mutate(fixture.wal, (w) => (w[17]! ^= 0x40)), problem: /header checksum mismatch/ },
      { what: "stored checksum", wal: mutate(fixture.wal, (w) => (w[31]! ^= 0x01)), problem: /header checksum mismatch/ },
      { what: "magic", wal: reseal(mutate(fixture.wal, (w) => putU32(w, 0, 0x377f0681)), true), problem: /bad magic 0x377f0681/ },
      { what: "zero magic", wal: mutate(fixture.wal, (w) => w.fill(0, 0, 32)), problem: /bad magic 0x0/ },
      // Page sizes SQLite rejects; the header is resealed, so the page size alone is wrong.
      { what: "page size 1000", wal: reseal(mutate(fixture.wal, (w) => putU32(w, 8, 1000)), true), problem: /invalid page size 1000/ },
      { what: "page size 256", wal: reseal(mutate(fixture.wal, (w) => putU32(w, 8, 256)), true), problem: /invalid page size 256/ },
      { what: "page size 131072", wal: reseal(mutate(fixture.wal, (w) => putU32(w, 8, 131072)), true), problem: /invalid page size 131072/ },
      // A wrong version behind a wrong checksum: SQLite looks at the checksum first and ignores the file.
      { what: "version and checksum", wal: mutate(fixture.wal, (w) => putU32(w, 4, 3007001)), problem: /./ },
    ];
    for (const c of cases) {
      expect(readWalHeader(c.wal).problem, c.what).toMatch(c.problem);
      const scan = scanWal(c.wal);
      expect(scan, c.what).toEqual({ header: undefined, headerProblem: readWalHeader(c.wal).problem, committedFrames: 0, commits: 0, databasePages: 0, uncommittedFrames: 0, invalidTailBytes: c.wal.length });
      expect(applyWal(fixture.db.slice(), c.wal, scan)).toBe(0);
      await expectState(fixture, c.wal, 0);
    }
  });

  it("never applies a WAL of an unknown format version (SQLite refuses to open the database then)", () => {
    const fixture = loadWalFixture("committed");
    const wal = reseal(mutate(fixture.wal, (w) => putU32(w, 4, 3007001)), true);
    expect(readWalHeader(wal)).toMatchObject({ problem: "unknown WAL format version 3007001", unsupported: true });
    expect(readWalHeader(wal).header).toBeUndefined();
    expect(scanWal(wal)).toMatchObject({ committedFrames: 0, unsupported: true });
    // Behind a broken header checksum the version is never looked at: the file is just ignored.
    expect(readWalHeader(mutate(fixture.wal, (w) => putU32(w, 4, 3007001)))).toEqual({ problem: "header checksum mismatch" });
    if (cli) {
      const sqlite = sqliteReads(fixture.db, wal);
      expect("error" in sqlite && sqlite.error).toMatch(/unable to open database file/);
      // The same file with the right version opens: it is the version SQLite refuses.
      expect(sqliteReads(fixture.db, reseal(fixture.wal, true))).toEqual({ dump: fixture.expectedSql, integrity: "ok" });
    }
  });
});

describe("the committed state of WALs written by SQLite", () => {
  for (const name of FIXTURES) {
    it(`${name}: every committed frame applied, nothing else; the same database SQLite reads`, async () => {
      const fixture = loadWalFixture(name);
      const { entry, db, wal } = fixture;
      const { image, scan, applied } = replay(db, wal);
      const frameBytes = WAL_FRAME_HEADER_BYTES + entry.pageSize;
      const walked = walkWal(wal);
      expect(scan).toEqual({
        header: expect.objectContaining({ pageSize: entry.pageSize, bigEndianChecksums: entry.bigEndian }),
        committedFrames: entry.committedFrames,
        commits: entry.transactions.length,
        databasePages: entry.committedPages,
        uncommittedFrames: entry.uncommittedFrames,
        invalidTailBytes: wal.length - WAL_HEADER_BYTES - (entry.committedFrames + entry.uncommittedFrames) * frameBytes,
      });
      expect(applied).toBe(walked.frames.slice(0, entry.committedFrames).filter((f) => f.page <= entry.committedPages).length);
      expect(image.length).toBe(entry.committedPages * entry.pageSize);

      expect(await fingerprintOf(image)).toBe(entry.states.at(-1));
      expect(await integrityCheck(image)).toBe("ok");
      expect(await dumpTables(image)).toEqual(await tablesOfDump(fixture.expectedSql));
      // The main file alone is an older state: the newest rows are only in the WAL.
      const mainOnly = db.slice();
      markRollbackJournal(mainOnly);
      expect(await fingerprintOf(mainOnly)).toBe(entry.states[0]);
      expect(entry.states[0]).not.toBe(entry.states.at(-1));

      if (cli) {
        const ours = sqliteDumpOfImage(image);
        expect(ours.integrity).toBe("ok");
        expect(ours.dump).toBe(fixture.expectedSql);
        const sqlite = sqliteReads(db, wal);
        expect(sqlite).toEqual({ dump: fixture.expectedSql, integrity: "ok" });
      }
    });
  }

  it("committed: a transaction that grew the database past the main file adds zero-based pages from the WAL", () => {
    const { db, wal, entry } = loadWalFixture("committed");
    expect(entry.committedPages).toBeGreaterThan(entry.mainFilePages);
    const { image } = replay(db, wal);
    // Every page past the main file comes from a committed frame (none is left zero).
    const written = new Set(walkWal(wal).frames.slice(0, entry.committedFrames).map((f) => f.page));
    for (let page = entry.mainFilePages + 1; page <= entry.committedPages; page++) expect(written.has(page), `page ${page}`).toBe(true);
    // The header's in-file size (valid: version-valid-for equals the change counter) says so too.
    expect([u32(image, 28), u32(image, 92)]).toEqual([entry.committedPages, u32(image, 24)]);
  });

  it("shrunk: a commit smaller than the main file truncates the image to the committed size and skips frames past it", async () => {
    const fixture = loadWalFixture("shrunk");
    const { entry } = fixture;
    expect(entry.committedPages).toBeLessThan(entry.mainFilePages);
    const walked = walkWal(fixture.wal);
    const beyond = walked.frames.slice(0, entry.committedFrames).filter((f) => f.page > entry.committedPages);
    const { image, scan, applied } = replay(fixture.db, fixture.wal);
    expect(scan.databasePages).toBe(entry.committedPages);
    expect(image.length).toBe(entry.committedPages * 1024);
    expect(applied).toBe(entry.committedFrames - beyond.length);
    // The database header agrees with the truncated size.
    expect(u32(image, 28)).toBe(entry.committedPages);
    expect(await integrityCheck(image)).toBe("ok");
    // Cut before the shrinking transaction: the state after transaction 1.
    await expectState(fixture, fixture.wal.slice(0, WAL_HEADER_BYTES + framesOfTransaction(walked, 2)[0]! * (WAL_FRAME_HEADER_BYTES + 1024)), 1);
  });

  it("big-endian checksums (magic 0x377f0683) give exactly the image little-endian ones give, for every fixture", async () => {
    const be = loadWalFixture("big-endian");
    const le = loadWalFixture("committed");
    expect(u32(be.wal, 0)).toBe(WAL_MAGIC_BE);
    expect(sha256(replay(be.db, be.wal).image)).toBe(sha256(replay(le.db, le.wal).image));
    expect(be.expectedSql).toBe(le.expectedSql);
    for (const name of FIXTURES.filter((n) => n !== "big-endian")) {
      const fixture = loadWalFixture(name);
      const converted = toBigEndianWal(fixture.wal);
      const a = replay(fixture.db, fixture.wal);
      const b = replay(fixture.db, converted);
      expect(b.scan.header?.bigEndianChecksums, name).toBe(true);
      expect({ ...b.scan, header: undefined }, name).toEqual({ ...a.scan, header: undefined });
      expect(sha256(b.image), name).toBe(sha256(a.image));
      // A little-endian reading of the big-endian file fails at the header checksum.
      expect(readWalHeader(mutate(converted, (w) => putU32(w, 0, 0x377f0682))).problem).toBe("header checksum mismatch");
    }
  });
});

describe("damaged and unfinished WALs: exactly the committed state before the damage", () => {
  for (const name of ["committed", "checkpointed-then-more", "shrunk", "page64k", "big-endian"]) {
    it(`${name}: a flipped byte in any frame of transaction k leaves transactions 1..k-1`, async () => {
      const fixture = loadWalFixture(name);
      const walked = walkWal(fixture.wal);
      const frameBytes = WAL_FRAME_HEADER_BYTES + fixture.entry.pageSize;
      for (let k = 1; k <= fixture.entry.transactions.length; k++) {
        const frames = framesOfTransaction(walked, k);
        const first = WAL_HEADER_BYTES + frames[0]! * frameBytes;
        const commit = WAL_HEADER_BYTES + frames.at(-1)! * frameBytes;
        // A byte of the first frame's page; the commit frame's stored checksum; its page number.
        for (const at of [first + WAL_FRAME_HEADER_BYTES + Math.floor(fixture.entry.pageSize / 3), commit + 19, commit + 3]) {
          const damaged = mutate(fixture.wal, (w) => (w[at]! ^= 0x20));
          const scan = scanWal(damaged);
          expect(scan.committedFrames, `${name} k=${k} @${at}`).toBe(frames[0]);
          await expectState(fixture, damaged, k - 1);
        }
      }
    });
  }

  it("uncommitted-tail: frames of the open transaction are valid but not applied; damaging them changes nothing", async () => {
    const fixture = loadWalFixture("uncommitted-tail");
    const { entry } = fixture;
    expect(entry.uncommittedFrames).toBeGreaterThan(0);
    expect(entry.invalidFrames).toBeGreaterThan(0);
    const commits = entry.transactions.length;
    const { scan, image } = replay(fixture.db, fixture.wal);
    expect(scan.uncommittedFrames).toBe(entry.uncommittedFrames);
    // The open transaction's rows (txn 9) are absent.
    expect(await fingerprintOf(image)).not.toMatch(/ 9:/);
    await expectState(fixture, fixture.wal, commits);
    const frameBytes = WAL_FRAME_HEADER_BYTES + 1024;
    const firstUncommitted = WAL_HEADER_BYTES + entry.committedFrames * frameBytes;
    const damaged = mutate(fixture.wal, (w) => (w[firstUncommitted + 100]! ^= 0xff));
    expect(scanWal(damaged)).toMatchObject({ committedFrames: entry.committedFrames, uncommittedFrames: 0 });
    await expectState(fixture, damaged, commits);
    // Marking the open transaction's last valid frame as a commit (and resealing) would make it committed: the mark is what counts.
    const lastUncommitted = firstUncommitted + (entry.uncommittedFrames - 1) * frameBytes;
    const forged = reseal(mutate(fixture.wal, (w) => putU32(w, lastUncommitted + 4, entry.committedPages + 50)));
    expect(scanWal(forged)).toMatchObject({ commits: commits + 1, committedFrames: entry.committedFrames + entry.uncommittedFrames });
  });

  it("checkpointed-then-more: the stale frames of the previous WAL generation after the new ones are ignored", async () => {
    const fixture = loadWalFixture("checkpointed-then-more");
    const walked = walkWal(fixture.wal);
    const stale = walked.frames.filter((f) => !f.valid);
    expect(stale.length).toBe(fixture.entry.invalidFrames);
    // They are whole, well-checksummed frames of the older generation: only their salts end the log.
    expect(stale[0]!.salt1).not.toBe(walked.salt1);
    expect(stale.some((f) => f.commit !== 0)).toBe(true);
    const scan = scanWal(fixture.wal);
    expect(scan.invalidTailBytes).toBe(stale.length * (WAL_FRAME_HEADER_BYTES + 1024));
    await expectState(fixture, fixture.wal, fixture.entry.transactions.length);
  });

  it("a frame whose salts differ from the header's ends the log there, though its checksum is intact", async () => {
    for (const name of ["committed", "big-endian"]) {
      const fixture = loadWalFixture(name);
      const walked = walkWal(fixture.wal);
      const frameBytes = WAL_FRAME_HEADER_BYTES + 1024;
      for (const [k, saltOffset] of [[2, 8], [4, 12]] as const) {
        const frame = framesOfTransaction(walked, k).at(-1)!;
        const damaged = mutate(fixture.wal, (w) => putU32(w, WAL_HEADER_BYTES + frame * frameBytes + saltOffset, u32(w, 16 + saltOffset - 8) + 1));
        expect(scanWal(damaged)).toMatchObject({ commits: k - 1, uncommittedFrames: framesOfTransaction(walked, k).length - 1 });
        await expectState(fixture, damaged, k - 1);
      }
    }
  });

  it("a frame for page 0 ends the log even when every checksum is recomputed", async () => {
    const fixture = loadWalFixture("committed");
    const walked = walkWal(fixture.wal);
    const frame = framesOfTransaction(walked, 3)[1]!;
    const damaged = reseal(mutate(fixture.wal, (w) => putU32(w, WAL_HEADER_BYTES + frame * (WAL_FRAME_HEADER_BYTES + 1024), 0)));
    expect(readWalHeader(damaged).header).toBeDefined();
    expect(scanWal(damaged)).toMatchObject({ commits: 2, uncommittedFrames: 1 });
    await expectState(fixture, damaged, 2);
    // Resealing alone changes nothing.
    await expectState(fixture, reseal(fixture.wal), fixture.entry.transactions.length);
  });

  it("a WAL cut in the middle of a frame (a torn write) ignores the partial frame and its transaction", async () => {
    for (const name of ["committed", "page64k"]) {
      const fixture = loadWalFixture(name);
      const frameBytes = WAL_FRAME_HEADER_BYTES + fixture.entry.pageSize;
      const walked = walkWal(fixture.wal);
      const last = fixture.entry.transactions.length;
      const commitFrame = framesOfTransaction(walked, last).at(-1)!;
      for (const cut of [WAL_HEADER_BYTES + (commitFrame + 1) * frameBytes - 1, WAL_HEADER_BYTES + commitFrame * frameBytes + 10]) {
        const torn = fixture.wal.slice(0, cut);
        const scan = scanWal(torn);
        expect(scan.commits).toBe(last - 1);
        expect(scan.invalidTailBytes).toBe(cut - WAL_HEADER_BYTES - commitFrame * frameBytes);
        await expectState(fixture, torn, last - 1);
      }
      // Cut exactly after the commit frame: nothing lost.
      await expectState(fixture, fixture.wal.slice(0, WAL_HEADER_BYTES + (commitFrame + 1) * frameBytes), last);
    }
  });

  it("an empty WAL or one with a header and no frames applies nothing", async () => {
    const fixture = loadWalFixture("committed");
    const empty = scanWal(new Uint8Array(0));
    expect(empty).toEqual({ header: undefined, headerProblem: "empty", committedFrames: 0, commits: 0, databasePages: 0, uncommittedFrames: 0, invalidTailBytes: 0 });
    const headerOnly = fixture.wal.slice(0, WAL_HEADER_BYTES);
    expect(scanWal(headerOnly)).toMatchObject({ header: expect.objectContaining({ pageSize: 1024 }), committedFrames: 0, commits: 0, databasePages: 0, invalidTailBytes: 0 });
    const image = fixture.db.slice();
    expect(applyWal(image, headerOnly, scanWal(headerOnly))).toBe(0);
    expect(image).toEqual(fixture.db);
    await expectState(fixture, new Uint8Array(0), 0);
    await expectState(fixture, headerOnly, 0);
  });

  it("applyWal refuses an image that is not exactly the committed size", () => {
    const { db, wal, entry } = loadWalFixture("committed");
    const scan = scanWal(wal);
    for (const pages of [entry.mainFilePages, entry.committedPages - 1, entry.committedPages + 1]) {
      expect(() => applyWal(new Uint8Array(pages * 1024), wal, scan)).toThrow(RangeError);
    }
    expect(() => applyWal(new Uint8Array(entry.committedPages * 1024 + 1), wal, scan)).toThrow(`the committed WAL state is ${entry.committedPages} pages of 1024 bytes`);
    const image = new Uint8Array(entry.committedPages * 1024);
    image.set(db);
    expect(applyWal(image, wal, scan)).toBe(entry.committedFrames);
  });

  it("property: a WAL cut at any byte gives what SQLite reads from the same cut files, and a sound database", async () => {
    const random = mulberry32(0x5eed_0a1);
    for (const name of ["committed", "uncommitted-tail", "checkpointed-then-more", "shrunk", "big-endian"]) {
      const fixture = loadWalFixture(name);
      const frameBytes = WAL_FRAME_HEADER_BYTES + fixture.entry.pageSize;
      const cuts = [0, 1, WAL_HEADER_BYTES, fixture.wal.length, ...Array.from({ length: 20 }, () => Math.floor(random() * (fixture.wal.length + 1)))];
      for (const cut of cuts) {
        const wal = fixture.wal.slice(0, cut);
        // The commits that fit whole in the cut file, counted by the independent walk.
        const commits = cut < WAL_HEADER_BYTES ? 0 : walkWal(wal).commits;
        const scan = scanWal(wal);
        expect(scan.commits, `${name} cut at ${cut}`).toBe(commits);
        if (scan.header) expect(WAL_HEADER_BYTES + (scan.committedFrames + scan.uncommittedFrames) * frameBytes + scan.invalidTailBytes).toBe(cut);
        await expectState(fixture, wal, commits);
      }
    }
  });
});
