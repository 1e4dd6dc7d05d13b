/**
 * CHECK=structure proved against SQLite itself: the differential corpus of
 * scripts/structure-corpus.ts (fixed seed) — 33 real databases written by the sqlite3 CLI and by
 * sql.js, each damaged by one aimed mutation at a time — judged by `PRAGMA quick_check` in both
 * (a file is sound only when both say `ok`). Ours must accept every sound file and reject at
 * least 99 % of the files SQLite rejects. The agreement table, every false positive and every
 * miss (seed + case index: `npm run structure-corpus -- --case N --out f.db` writes the file)
 * are printed.
 */
import { beforeAll, describe, expect, it } from "vitest";
import { DEFAULT_SEED, SHAPES, describeCase, markdownReport, runCorpus, type CaseResult, type Corpus } from "../../scripts/structure-corpus.js";

let corpus: Corpus;
let results: CaseResult[];

beforeAll(async () => {
  const run = await runCorpus(DEFAULT_SEED);
  corpus = run.corpus;
  results = run.results;
  console.log(markdownReport(run.corpus, run.results, run.ms));
  console.log(`corpus: SQLite verdicts ${(run.ms.sqlite / 1000).toFixed(1)} s, ours ${((run.ms.ours ?? 0) / 1000).toFixed(1)} s`);
}, 300_000);

const list = (rs: CaseResult[], show: (r: CaseResult) => string) => rs.map((r) => `${describeCase(r.case, corpus.seed)} — ${show(r)}`);
const sqliteSays = (r: CaseResult) => `CLI: ${r.cli.messages.join(" / ")}; sql.js: ${r.sqljs.messages.join(" / ")}`;

describe("the differential corpus", () => {
  it("is made of the shapes the issue asks for, written by both SQLites", () => {
    const bases = corpus.bases;
    expect(new Set(bases.map((b) => b.shape.name)).size).toBe(SHAPES.length);
    expect(SHAPES.length).toBeGreaterThanOrEqual(10);
    for (const shape of SHAPES) {
      const writers = bases.filter((b) => b.shape === shape).map((b) => b.writer);
      expect(writers, shape.name).toEqual(shape.cliOnly ? ["sqlite3-cli"] : ["sqlite3-cli", "sql.js"]);
    }
    const headers = bases.map((b) => b.parsed.header);
    expect([...new Set(headers.map((h) => h.pageSize))].sort((a, b) => a - b)).toEqual([512, 1024, 2048, 4096, 8192, 16384, 32768, 65536]);
    // auto_vacuum full and incremental, with more than one pointer-map page
    expect(bases.some((b) => b.parsed.header.largestRoot > 0 && b.parsed.header.incremental === 0 && b.parsed.ptrmaps.length >= 2)).toBe(true);
    expect(bases.some((b) => b.parsed.header.incremental === 1 && b.parsed.ptrmaps.length >= 2 && b.parsed.trunks.length >= 1)).toBe(true);
    // freelists of several trunks; an empty (one-page) database from each writer
    expect(bases.some((b) => b.parsed.trunks.length >= 2)).toBe(true);
    expect(bases.filter((b) => b.parsed.header.pageCount === 1).map((b) => b.writer).sort()).toEqual(["sql.js", "sql.js", "sqlite3-cli", "sqlite3-cli"]);
    // long overflow chains
    const longestChain = Math.max(
      ...bases.map((b) => {
        let best = 0;
        for (const c of b.parsed.btree.flatMap((p) => p.cells)) {
          let n = 0;
          for (let p = c.overflow ?? 0; p !== 0 && n < 1e6; n++) {
            const info = b.parsed.pages.get(p);
            p = info?.role === "overflow" ? info.next : 0;
          }
          best = Math.max(best, n);
        }
        return best;
      }),
    );
    expect(longestChain).toBeGreaterThanOrEqual(20);
    // fragmented pages (freeblocks and fragmented bytes), trees three levels deep, reserved bytes, UTF-16
    expect(bases.some((b) => b.parsed.btree.filter((p) => p.frag > 0).length >= 5 && b.parsed.btree.filter((p) => p.freeblocks.length > 0).length >= 5)).toBe(true);
    expect(Math.max(...bases.flatMap((b) => b.parsed.btree.map((p) => p.depth)))).toBeGreaterThanOrEqual(2);
    expect(headers.some((h) => h.reserved > 0)).toBe(true);
    expect(headers.some((h) => h.encoding === 2)).toBe(true);
    // WITHOUT ROWID tables, rowid tables, indexes: page types 2, 5, 10, 13 all present
    expect([...new Set(bases.flatMap((b) => b.parsed.btree.map((p) => p.type)))].sort((a, b) => a - b)).toEqual([2, 5, 10, 13]);
  });

  it("holds at least 1000 damaged files, most of them rejected by SQLite, and sound bases", () => {
    const damaged = results.filter((r) => r.case.kind !== "none");
    const rejected = results.filter((r) => !r.sound);
    console.log(`corpus: ${results.length} files, ${damaged.length} mutated, SQLite rejects ${rejected.length}, accepts ${results.length - rejected.length}`);
    expect(damaged.length).toBeGreaterThanOrEqual(1000);
    expect(rejected.length).toBeGreaterThanOrEqual(1000);
    expect(results.length - rejected.length).toBeGreaterThanOrEqual(300);
    expect(list(results.filter((r) => r.case.kind === "none" && !r.sound), sqliteSays)).toEqual([]);
    // Every structural kind produced files SQLite rejects.
    for (const kind of ["page.type", "page.freeblock", "page.ncell", "page.content", "page.frag", "cell.pointer", "cell.child", "page.rightchild", "overflow.pointer", "freelist.trunk", "freelist.count", "freelist.leaf", "ptrmap.entry", "db.pagesize", "db.pagecount", "db.freetrunk", "db.freecount", "db.schemaformat", "db.encoding", "db.reserved", "db.fractions", "page.zero", "page.swap", "file.truncate", "byte.random", "cell.drop"]) {
      expect(results.filter((r) => r.case.kind === kind && !r.sound).length, kind).toBeGreaterThanOrEqual(5);
    }
  });

  it("changes only bytes SQLite never reads in the files meant to stay sound (the generator's own check)", () => {
    const meantSound = results.filter((r) => ["page.unused", "db.validfor", "db.ignored", "file.extend", "freeleaf.garbage"].includes(r.case.kind));
    expect(meantSound.length).toBeGreaterThanOrEqual(200);
    expect(list(meantSound.filter((r) => !r.sound), sqliteSays)).toEqual([]);
  });
});

describe("CHECK=structure against SQLite's verdict", () => {
  it("never rejects a file SQLite accepts (no false positive)", () => {
    const fps = results.filter((r) => r.outcome === "false-positive");
    expect(list(fps, (r) => (r.ours?.error ? `threw ${r.ours.error}` : r.ours!.findings.join(" / ")))).toEqual([]);
    expect(results.filter((r) => r.outcome === "agree-ok").length).toBe(results.filter((r) => r.sound).length);
  });

  it("never throws, and describes every sound file as sql.js does", () => {
    expect(list(results.filter((r) => r.ours?.error !== undefined), (r) => `threw ${r.ours!.error}`)).toEqual([]);
    expect(list(results.filter((r) => r.metaMismatch), (r) => r.metaMismatch!)).toEqual([]);
  });

  it("rejects at least 99 % of the files SQLite rejects", () => {
    const rejected = results.filter((r) => !r.sound);
    const misses = rejected.filter((r) => r.outcome === "miss");
    const detection = (rejected.length - misses.length) / rejected.length;
    console.log(`detection: ${rejected.length - misses.length} of ${rejected.length} (${(100 * detection).toFixed(2)} %), ${misses.length} misses`);
    expect(detection, `${misses.length} misses:\n${list(misses, sqliteSays).join("\n")}`).toBeGreaterThanOrEqual(0.99);
  });
});
