/**
 * CHECK=structure (src/sqlite/structure.ts) on hand-made cases: real databases are sound and
 * described as sql.js describes them; the streaming API gives the same report whatever the
 * chunk sizes; damage aimed at one page (located with the corpus script's page parser) gives
 * a finding naming that page, and SQLite agrees the file is damaged.
 * The differential corpus is test/sqlite/structure-corpus.test.ts.
 */
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { parseImage, type BtreePage, type ParsedDb } from "../../scripts/structure-corpus.js";
import { checkStructureOf, StructureCheck, type StructureReport } from "../../src/sqlite/structure.js";
import { corruptIndexPage, makeDatabase, sqlJs } from "../helpers/db.js";
import { mulberry32 } from "../helpers/random.js";

const sample = (): Uint8Array => new Uint8Array(readFileSync(new URL("../../sample/sample.db", import.meta.url)));

/** What sql.js says of an image: quick_check, page size, page count, tables. */
async function sqliteSays(bytes: Uint8Array): Promise<{ quickCheck: string; pageSize: number; pageCount: number; tables: number }> {
  const SQL = await sqlJs();
  const db = new SQL.Database(bytes);
  try {
    const one = (sql: string) => db.exec(sql)[0]?.values[0]?.[0];
    let quickCheck: string;
    try {
      quickCheck = (db.exec("PRAGMA quick_check")[0]?.values ?? []).map((r) => String(r[0])).join("\n");
    } catch (err) {
      quickCheck = String((err as Error).message);
    }
    if (quickCheck !== "ok") return { quickCheck, pageSize: 0, pageCount: 0, tables: 0 };
    return {
      quickCheck,
      pageSize: Number(one("PRAGMA page_size")),
      pageCount: Number(one("PRAGMA page_count")),
      tables: Number(one("SELECT count(*) FROM sqlite_schema WHERE type = 'table'")),
    };
  } finally {
    db.close();
  }
}

/** The image fed in chunks whose sizes cycle through `sizes`. */
function inChunks(bytes: Uint8Array, sizes: number[]): StructureReport {
  const check = new StructureCheck();
  let at = 0;
  for (let i = 0; at < bytes.length; i++) {
    const n = sizes[i % sizes.length]!;
    check.update(bytes.subarray(at, at + n));
    at += n;
  }
  return check.finish();
}

/** The page numbers a finding names ("Page 7: …", "Tree 3 page 7 cell 2: …", "On tree page 7 …"). */
const pagesNamed = (findings: string[]): number[] => findings.flatMap((f) => [...f.matchAll(/\bpage (\d+)\b/gi)].map((m) => Number(m[1])));

function withUser(bytes: Uint8Array, change: (out: Uint8Array) => void): Uint8Array {
  const out = bytes.slice();
  change(out);
  return out;
}
const put16 = (b: Uint8Array, at: number, v: number) => b.set([(v >>> 8) & 0xff, v & 0xff], at);
const put32 = (b: Uint8Array, at: number, v: number) => b.set([(v >>> 24) & 0xff, (v >>> 16) & 0xff, (v >>> 8) & 0xff, v & 0xff], at);

describe("checkStructureOf on sound databases", () => {
  it("finds nothing wrong with the bundled sample database and describes it as SQLite does", async () => {
    const bytes = sample();
    const report = checkStructureOf(bytes);
    const sqlite = await sqliteSays(bytes);
    expect(sqlite.quickCheck).toBe("ok");
    expect(report.findings).toEqual([]);
    expect({ pageSize: report.pageSize, pageCount: report.pageCount, tables: report.tables }).toEqual({ pageSize: sqlite.pageSize, pageCount: sqlite.pageCount, tables: sqlite.tables });
    expect(report.pageCount).toBe(bytes.length / 4096);
  });

  it("reports page size, page count and tables as sql.js does, from 512-byte to 64 KiB pages", async () => {
    const SQL = await sqlJs();
    const images: [string, Uint8Array][] = [];
    for (const pageSize of [512, 1024, 8192, 65536]) images.push([`makeDatabase page ${pageSize}`, await makeDatabase({ pageSize, rows: 300, targetBytes: 200_000 })]);
    for (const [name, sql] of [
      ["empty (user_version only)", "PRAGMA user_version = 7;"],
      ["auto_vacuum full", "PRAGMA page_size = 1024; PRAGMA auto_vacuum = FULL; CREATE TABLE a (x); CREATE TABLE b (y); CREATE VIEW v AS SELECT * FROM a; INSERT INTO a SELECT zeroblob(3000) FROM (SELECT 1 UNION ALL SELECT 2);"],
      ["incremental, freelist left", "PRAGMA page_size = 512; PRAGMA auto_vacuum = INCREMENTAL; CREATE TABLE t (v); WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 400) INSERT INTO t SELECT printf('%0200d', i) FROM n; DELETE FROM t WHERE rowid % 2 = 0; PRAGMA incremental_vacuum(10);"],
    ] as const) {
      const db = new SQL.Database();
      db.exec(sql);
      images.push([name, db.export()]);
      db.close();
    }
    for (const [name, bytes] of images) {
      const sqlite = await sqliteSays(bytes);
      const report = checkStructureOf(bytes);
      expect({ name, quickCheck: sqlite.quickCheck, findings: report.findings }).toEqual({ name, quickCheck: "ok", findings: [] });
      expect({ name, pageSize: report.pageSize, pageCount: report.pageCount, tables: report.tables }).toEqual({ name, pageSize: sqlite.pageSize, pageCount: sqlite.pageCount, tables: sqlite.tables });
    }
    expect(checkStructureOf(images[4]![1]).pageCount).toBe(1);
  });
});

describe("StructureCheck fed in chunks", () => {
  it("gives the report it gives at once, for chunks of 1 byte, 1000 bytes, a page and a byte, and random sizes", async () => {
    const small = await makeDatabase({ rows: 150, pageSize: 1024 });
    const atOnce = checkStructureOf(small);
    expect(atOnce.findings).toEqual([]);
    expect(inChunks(small, [1])).toEqual(atOnce);

    const bytes = sample();
    const whole = checkStructureOf(bytes);
    const random = mulberry32(20_261_206);
    const randomSizes = Array.from({ length: 97 }, () => 1 + Math.floor(random() * 3 * whole.pageSize));
    for (const sizes of [[1000], [whole.pageSize + 1], [whole.pageSize - 1, 1], [7, 4096 * 3 + 5], randomSizes]) {
      expect(inChunks(bytes, sizes)).toEqual(whole);
    }
    // And with findings to report: the same findings in the same order.
    const bad = await corruptIndexPage(await makeDatabase({ rows: 3000 }));
    const badWhole = checkStructureOf(bad);
    expect(badWhole.findings.length).toBeGreaterThan(0);
    for (const sizes of [[1], [1000], [4097], randomSizes]) expect(inChunks(bad, sizes)).toEqual(badWhole);
  });

  it("accepts empty chunks and reports an empty or short file instead of throwing", () => {
    const check = new StructureCheck();
    check.update(new Uint8Array(0));
    expect(check.finish().findings.length).toBeGreaterThan(0);
    expect(checkStructureOf(new Uint8Array(0)).findings.length).toBeGreaterThan(0);
    expect(checkStructureOf(sample().subarray(0, 60)).findings.length).toBeGreaterThan(0);
  });
});

describe("checkStructureOf on damage aimed at one page", () => {
  /** A 3000-row makeDatabase with 64 KiB blobs (overflow chains), parsed. */
  async function target(): Promise<{ bytes: Uint8Array; parsed: ParsedDb; tree: (name: string) => BtreePage[] }> {
    const bytes = await makeDatabase({ rows: 3000, targetBytes: 300_000 });
    const parsed = await parseImage(bytes);
    return { bytes, parsed, tree: (name) => parsed.btree.filter((p) => p.tree === name) };
  }

  /** SQLite rejects `bad`; ours has a finding naming one of `pages`. */
  async function expectNamed(bad: Uint8Array, pages: number | number[], what: string): Promise<string[]> {
    const sqlite = await sqliteSays(bad);
    expect(sqlite.quickCheck, `${what}: SQLite must see the damage`).not.toBe("ok");
    const { findings } = checkStructureOf(bad);
    expect(findings.length, `${what}: no finding (SQLite: ${sqlite.quickCheck})`).toBeGreaterThan(0);
    const named = pagesNamed(findings);
    expect([pages].flat().some((p) => named.includes(p)), `${what}: wanted page ${String(pages)} named in: ${findings.join(" | ")}`).toBe(true);
    return findings;
  }

  it("an index page with an impossible cell count", async () => {
    const { bytes, parsed } = await target();
    const root = parsed.btree.find((p) => p.tree === "events_user" && p.depth === 0)!;
    await expectNamed(await corruptIndexPage(bytes), root.page, "cell count 0xffff");
  });

  it("a cell pointer past the end of a table leaf", async () => {
    const { bytes, tree } = await target();
    const leaf = tree("events").find((p) => p.type === 13 && p.ncell > 3)!;
    const bad = withUser(bytes, (b) => put16(b, leaf.ptrs + 2, 4095));
    await expectNamed(bad, leaf.page, "cell pointer 4095");
  });

  it("a fragmented-byte count that disagrees with the page", async () => {
    const { bytes, tree } = await target();
    const leaf = tree("users").find((p) => p.type === 13)!;
    const bad = withUser(bytes, (b) => (b[leaf.hdr + 7] = (leaf.frag + 9) & 0xff));
    await expectNamed(bad, leaf.page, "frag count");
  });

  it("an overflow pointer out of range", async () => {
    const { bytes, parsed } = await target();
    const cell = parsed.btree.flatMap((p) => p.cells.map((c) => ({ p, c }))).find(({ c }) => c.overflowAt !== undefined)!;
    const bad = withUser(bytes, (b) => put32(b, cell.c.overflowAt!, parsed.header.pageCount + 50));
    await expectNamed(bad, cell.p.page, "first overflow page past the end");
  });

  it("an interior page whose right child is its own parent's child", async () => {
    const { bytes, parsed } = await target();
    const interior = parsed.interior.find((p) => p.tree === "events" && p.ncell >= 2)!;
    const bad = withUser(bytes, (b) => put32(b, interior.rightChildAt!, interior.cells[0]!.child!));
    await expectNamed(bad, [interior.page, interior.cells[0]!.child!, interior.rightChild!], "right child = first child");
  });

  it("two leaves of one table swapped (rowids out of their parent's bounds)", async () => {
    const { bytes, parsed, tree } = await target();
    const [a, b] = tree("events").filter((p) => p.type === 13 && p.depth > 0);
    const size = parsed.header.pageSize;
    const bad = withUser(bytes, (out) => {
      out.set(bytes.subarray((a!.page - 1) * size, a!.page * size), (b!.page - 1) * size);
      out.set(bytes.subarray((b!.page - 1) * size, b!.page * size), (a!.page - 1) * size);
    });
    await expectNamed(bad, [a!.page, b!.page, a!.parent, b!.parent], "two leaves swapped");
  });

  it("stops at maxFindings", async () => {
    const { bytes, parsed } = await target();
    const size = parsed.header.pageSize;
    const bad = bytes.slice();
    // Zero every third page from page 3 on: dozens of problems.
    for (let p = 3; p <= parsed.header.pageCount; p += 3) bad.fill(0, (p - 1) * size, p * size);
    const all = checkStructureOf(bad, { maxFindings: 1000 }).findings;
    expect(all.length).toBeGreaterThan(10);
    expect(checkStructureOf(bad).findings).toHaveLength(10);
    expect(checkStructureOf(bad, { maxFindings: 3 }).findings).toEqual(all.slice(0, 3));
  });
});
