/**
 * CHECK=structure past 1 GiB (the long suite, not `npm test`): a database of about 1.1 GiB made
 * by the sqlite3 CLI with zeroblob rows, so the lock-byte page (the page holding byte
 * 0x40000000, which SQLite never uses) lies inside the file with overflow chains, b-tree pages
 * and freelist pages on both sides of it. Streamed through StructureCheck in 8 MiB chunks it is
 * sound, as quick_check says; an overflow pointer bent onto the lock-byte page is caught, as
 * quick_check catches it. Needs about 2.3 GB of free space in the temp directory (removed after).
 */
import { execFileSync } from "node:child_process";
import { closeSync, copyFileSync, mkdtempSync, openSync, readFileSync, readSync, rmSync, statSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseDb, type OverflowPage } from "../../scripts/structure-corpus.js";
import { StructureCheck, type StructureReport } from "../../src/sqlite/structure.js";

const PAGE = 4096;
const LOCK_BYTE_PAGE = 0x40000000 / PAGE + 1; // 262145
const ROWS = 1100; // 1 MiB each

let dir: string;
let dbPath: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "structure-1gib-"));
  dbPath = join(dir, "big.db");
  // Rows 1000-1015 and 1025-1040 deleted: free pages just before and after the lock-byte page,
  // while the chain of a row near 1020 still crosses it.
  execFileSync("sqlite3", ["-batch", "-bail", dbPath], {
    input: `PRAGMA page_size = ${PAGE};
PRAGMA synchronous = OFF;
PRAGMA journal_mode = OFF;
CREATE TABLE big (id INTEGER PRIMARY KEY, name TEXT, data BLOB);
CREATE INDEX big_name ON big(name);
INSERT INTO big (id, name, data) SELECT value, printf('row %05d', value), zeroblob(1048576) FROM generate_series(1, ${ROWS});
CREATE TABLE after (id INTEGER PRIMARY KEY, v TEXT);
INSERT INTO after (v) SELECT printf('%.200c', 'x') FROM generate_series(1, 5000);
DELETE FROM big WHERE id BETWEEN 1000 AND 1015 OR id BETWEEN 1025 AND 1040;
PRAGMA journal_mode = DELETE;
`,
    stdio: ["pipe", "ignore", "pipe"],
  });
}, 600_000);

afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** The file through StructureCheck in 8 MiB reads. */
function checkFile(path: string): StructureReport {
  const check = new StructureCheck();
  const fd = openSync(path, "r");
  try {
    const buf = new Uint8Array(8 * 1024 * 1024);
    for (let n = readSync(fd, buf); n > 0; n = readSync(fd, buf)) check.update(buf.subarray(0, n));
  } finally {
    closeSync(fd);
  }
  return check.finish();
}

const quickCheck = (path: string): string => {
  try {
    return execFileSync("sqlite3", ["-readonly", path, "PRAGMA quick_check"], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] }).trim();
  } catch (err) {
    return `error: ${String((err as { stderr?: string }).stderr ?? err)}`;
  }
};

describe("CHECK=structure on a database past 1 GiB", () => {
  it("is sound across the lock-byte page, as quick_check says; a pointer onto that page is caught", () => {
    const size = statSync(dbPath).size;
    const pages = size / PAGE;
    expect(Number.isInteger(pages)).toBe(true);
    expect(pages).toBeGreaterThan(LOCK_BYTE_PAGE + 1000);

    expect(quickCheck(dbPath)).toBe("ok");
    const report = checkFile(dbPath);
    expect(report.findings).toEqual([]);
    expect({ pageSize: report.pageSize, pageCount: report.pageCount, tables: report.tables }).toEqual({ pageSize: PAGE, pageCount: pages, tables: 2 });

    // Where the pages around the lock-byte page went: the corpus script's parser, on the image.
    const image = new Uint8Array(readFileSync(dbPath));
    const roots = execFileSync("sqlite3", ["-readonly", dbPath, "SELECT name || '|' || rootpage FROM sqlite_schema WHERE rootpage > 0"], { encoding: "utf8" })
      .trim()
      .split("\n")
      .map((line) => ({ name: line.split("|")[0]!, root: Number(line.split("|")[1]) }));
    const parsed = parseDb(image, roots);
    expect(parsed.pages.get(LOCK_BYTE_PAGE)?.role).toBe("lockbyte");
    const near = (role: string, from: number, to: number) => [...parsed.pages.values()].some((p) => p.role === role && p.page >= from && p.page <= to);
    expect(near("freeleaf", LOCK_BYTE_PAGE - 5000, LOCK_BYTE_PAGE - 1) && near("freeleaf", LOCK_BYTE_PAGE + 1, LOCK_BYTE_PAGE + 10_000)).toBe(true);
    expect(near("btree", LOCK_BYTE_PAGE + 1, pages)).toBe(true);
    // An overflow chain steps over the lock-byte page: page L-1's next is L+1.
    const crossing = [...parsed.pages.values()].find((p): p is OverflowPage => p.role === "overflow" && p.next === LOCK_BYTE_PAGE + 1);
    expect(crossing?.page).toBe(LOCK_BYTE_PAGE - 1);

    // The damage: that chain now runs onto the lock-byte page.
    const badPath = join(dir, "bad.db");
    copyFileSync(dbPath, badPath);
    const fd = openSync(badPath, "r+");
    try {
      const next = new Uint8Array(4);
      new DataView(next.buffer).setUint32(0, LOCK_BYTE_PAGE);
      writeSync(fd, next, 0, 4, (crossing!.page - 1) * PAGE);
    } finally {
      closeSync(fd);
    }
    const sqliteSays = quickCheck(badPath);
    expect(sqliteSays).not.toBe("ok");
    const bad = checkFile(badPath);
    console.log(`page ${crossing!.page}'s next ${LOCK_BYTE_PAGE + 1} → ${LOCK_BYTE_PAGE} (lock-byte page). quick_check: ${sqliteSays.replace(/\n/g, " / ")}; ours: ${bad.findings.join(" / ")}`);
    expect(bad.findings.length).toBeGreaterThan(0);
    const named = bad.findings.flatMap((f) => [...f.matchAll(/\bpage (\d+)\b/gi)].map((m) => Number(m[1])));
    expect(named.some((p) => p === LOCK_BYTE_PAGE || p === LOCK_BYTE_PAGE + 1 || p === crossing!.page), bad.findings.join(" | ")).toBe(true);
    rmSync(badPath);
  }, 900_000);
});
