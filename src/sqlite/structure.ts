/**
 * CHECK=structure: SQLite's b-tree checks (what `PRAGMA quick_check` verifies of the file's
 * structure, from SQLite's src/btree.c and the schema and row checks of src/pragma.c) over
 * the pages of a database read once, in file order, in memory that grows by about 14 bytes
 * per page plus a few bytes per pointer and rowid bound — nothing per row, no page kept.
 *
 * A parent can come after its child in the file, so each page is summarised as it passes
 * (structure/page.ts, structure/store.ts) and the claims pages make on each other are
 * settled at the end (structure/settle.ts). Proved against SQLite itself on a differential
 * corpus (scripts/structure-corpus.ts); see docs/checks.md.
 */
import { isPtrmapPage, layoutOf, mix32, ptrmapPageOf, u16, u32, type Layout } from "./structure/format.js";
import { kindOfType, parseBtreePage } from "./structure/page.js";
import { readSchema, textDecoderFor, type SchemaRowBytes } from "./structure/schema.js";
import { settle } from "./structure/settle.js";
import { KIND_MASK, KIND_NONE, KIND_TABLE_INTERIOR, KIND_TABLE_LEAF, NOT_A_TRUNK, PageTable } from "./structure/store.js";

export interface StructureReport {
  /** What is wrong, in quick_check's style ("Tree 3 page 7: ..."), at most `maxFindings`; empty when sound. */
  findings: string[];
  pageSize: number;
  pageCount: number;
  /** Rows of type 'table' in sqlite_schema. */
  tables: number;
  /**
   * False when a sqlite_schema row could not be read in one pass (its overflow page came
   * before it in the file): the trees it declares were not walked and unused pages were not
   * accounted. Never seen in databases SQLite writes in the usual way; reported, not failed.
   */
  complete: boolean;
  /** Bytes the check held for the whole database (its page summaries and pointer logs). */
  stateBytes: number;
}

export interface StructureCheckOptions {
  /** Stop collecting findings after this many (quick_check(10) reports 10). Default 10. */
  maxFindings?: number;
}

const MAGIC = "SQLite format 3\0";
/** Schema rows larger than this are not captured (SQLite's own limit on a value is 1 GB; no schema row comes near). */
const MAX_SCHEMA_ROW = 64 * 1024 * 1024;

interface Header {
  layout: Layout;
  /** Pages the header declares, when its "version-valid-for" makes the count valid; else undefined. */
  declaredPages: number | undefined;
  freelistTrunk: number;
  freelistCount: number;
  largestRoot: number;
  incrementalVacuum: number;
  textEncoding: number;
}

export class StructureCheck {
  private readonly maxFindings: number;
  private readonly head = new Uint8Array(100);
  private headFill = 0;
  private header: Header | undefined;
  private fatal: string | undefined;
  private page: Uint8Array | undefined;
  private fill = 0;
  private pages = 0;
  private table: PageTable | undefined;
  private readonly schemaPages = new Set<number>([1]);
  private schemaLost = false;
  private readonly schemaRows: SchemaRowBytes[] = [];
  private readonly captures = new Map<number, SchemaRowBytes>();
  private readonly bigNext = new Map<number, number>();
  private readonly btreeTrunks = new Map<number, { n: number; hash: number }>();
  private finished = false;

  constructor(options: StructureCheckOptions = {}) {
    this.maxFindings = options.maxFindings ?? 10;
  }

  /** The next bytes of the database, in file order, in chunks of any size. */
  update(chunk: Uint8Array): void {
    if (this.finished) throw new Error("StructureCheck.update after finish");
    let at = 0;
    while (at < chunk.length && this.fatal === undefined) {
      if (!this.page) {
        const take = Math.min(100 - this.headFill, chunk.length - at);
        this.head.set(chunk.subarray(at, at + take), this.headFill);
        this.headFill += take;
        at += take;
        if (this.headFill === 100) this.start();
        continue;
      }
      const size = this.header!.layout.pageSize;
      const take = Math.min(size - this.fill, chunk.length - at);
      this.page.set(chunk.subarray(at, at + take), this.fill);
      this.fill += take;
      at += take;
      if (this.fill === size) {
        this.fill = 0;
        this.onPage(++this.pages, this.page);
      }
    }
  }

  /** After the last byte: settle every page's claims and return the verdict. */
  finish(): StructureReport {
    this.finished = true;
    const report = (findings: string[], pageCount = 0, tables = 0, complete = true): StructureReport => ({
      findings,
      pageSize: this.header?.layout.pageSize ?? 0,
      pageCount,
      tables,
      complete,
      stateBytes: this.table?.byteLength ?? 0,
    });
    if (this.fatal !== undefined) return report([this.fatal]);
    if (!this.header) {
      return report([this.headFill === 0 ? "the file is empty" : `the file is ${this.headFill} bytes, shorter than the 100-byte database header`]);
    }
    if (this.fill > 0) {
      // SQLite reads a short last page as if zero-filled.
      this.page!.fill(0, this.fill);
      this.onPage(++this.pages, this.page!);
    }
    const h = this.header;
    const declared = h.declaredPages;
    if (declared !== undefined && declared > this.pages) {
      return report([`the header says the database has ${declared} pages, but the file holds ${this.pages}: it is truncated (database disk image is malformed)`]);
    }
    const pageCount = declared ?? this.pages;
    const table = this.table!;
    table.ensure(pageCount);
    const schema = readSchema(this.schemaRows, pageCount, textDecoderFor(h.textEncoding));
    if (this.schemaLost) schema.incomplete = true;
    const findings = settle({
      layout: h.layout,
      pageCount,
      table,
      freelistTrunk: h.freelistTrunk,
      freelistCount: h.freelistCount,
      largestRoot: h.largestRoot,
      incrementalVacuum: h.incrementalVacuum,
      schema,
      bigNext: this.bigNext,
      btreeTrunks: this.btreeTrunks,
      maxFindings: this.maxFindings,
    });
    return report(findings, pageCount, schema.tables, !schema.incomplete);
  }

  /** The 100-byte header: lockBtree's and sqlite3InitOne's checks, then the page layout. */
  private start(): void {
    const b = this.head;
    for (let i = 0; i < MAGIC.length; i++) {
      if (b[i] !== MAGIC.charCodeAt(i)) {
        this.fatal = 'file is not a database (it does not start with "SQLite format 3")';
        return;
      }
    }
    const pageSize = (b[16]! << 8) | (b[17]! << 16);
    if ((pageSize & (pageSize - 1)) !== 0 || pageSize > 65536 || pageSize <= 256) {
      this.fatal = `file is not a database (invalid page size ${u16(b, 16)} in the header)`;
      return;
    }
    if (b[19]! > 2) {
      this.fatal = `file is not a database (unknown read format version ${b[19]})`;
      return;
    }
    if (b[21] !== 64 || b[22] !== 32 || b[23] !== 32) {
      this.fatal = "file is not a database (the payload fractions in the header are not 64, 32, 32)";
      return;
    }
    if (pageSize - b[20]! < 480) {
      this.fatal = `file is not a database (${b[20]} reserved bytes leave fewer than 480 usable bytes per page)`;
      return;
    }
    if ((u32(b, 44) & 0xff) > 4) {
      this.fatal = `unsupported file format (schema format ${u32(b, 44) & 0xff} in the header)`;
      return;
    }
    const headerPages = u32(b, 28);
    const valid = headerPages > 0 && u32(b, 24) === u32(b, 92);
    const largestRoot = u32(b, 52);
    const layout = layoutOf(pageSize, b[20]!, largestRoot !== 0);
    this.header = {
      layout,
      declaredPages: valid ? headerPages : undefined,
      freelistTrunk: u32(b, 32),
      freelistCount: u32(b, 36),
      largestRoot,
      incrementalVacuum: u32(b, 64),
      textEncoding: u32(b, 56),
    };
    // Preallocate for the declared size, within reason: a damaged count must not allocate GiBs.
    this.table = new PageTable(valid ? Math.min(headerPages, 1 << 22) : 1024, layout.autoVacuum);
    this.page = new Uint8Array(pageSize + 32); // zeros past the page, as a varint may run over
    this.page.set(b);
    this.fill = 100;
  }

  private onPage(pgno: number, d: Uint8Array): void {
    const h = this.header!;
    const l = h.layout;
    if (h.declaredPages !== undefined && pgno > h.declaredPages) return; // past the database: SQLite ignores it
    if (pgno === l.lockPage) return; // the page of byte 2^30 holds no data
    const t = this.table!;
    t.ensure(pgno);
    const row = this.captures.get(pgno);
    if (row) this.capture(pgno, d, row);
    if (l.autoVacuum && isPtrmapPage(l, pgno)) this.readPtrmap(pgno, d);
    const first = u32(d, 0);
    const kind = kindOfType(d[pgno === 1 ? 100 : 0]!);
    const maxLeaves = Math.floor(l.usable / 4) - 2;
    const leaves = u32(d, 4);
    if (kind === KIND_NONE) {
      t.a[pgno] = first;
      if (leaves <= maxLeaves) {
        t.c[pgno] = leaves;
        t.b[pgno] = leafHash(d, leaves);
      } else {
        t.c[pgno] = NOT_A_TRUNK;
      }
      return;
    }
    const schemaPage = this.schemaPages.has(pgno);
    const visit = schemaPage && kind === KIND_TABLE_LEAF ? this.schemaCellVisitor(pgno, d) : undefined;
    parseBtreePage(d, pgno, l, t, visit);
    // A b-tree page's first bytes, read as a page number, are at least 2^25: record them only
    // where a database is that large, for the rare corrupt chain that points at such a page.
    if (h.declaredPages === undefined || first <= h.declaredPages) this.bigNext.set(pgno, first);
    if (leaves <= maxLeaves) this.btreeTrunks.set(pgno, { n: leaves, hash: leafHash(d, leaves) });
    if (schemaPage && (t.kind[pgno]! & KIND_MASK) === KIND_TABLE_INTERIOR) {
      const start = t.a[pgno]!;
      for (let i = start; i < t.pointers.length; i++) {
        const child = t.pointers.data[i]!;
        if (child === 0) continue;
        if (child <= pgno) this.schemaLost = true;
        else this.schemaPages.add(child);
      }
    }
  }

  private schemaCellVisitor(pgno: number, d: Uint8Array) {
    return (payloadAt: number, local: number, payload: number, overflowHead: number, rowid: number | bigint): void => {
      if (payload > MAX_SCHEMA_ROW) {
        this.schemaLost = true;
        return;
      }
      const row: SchemaRowBytes = { page: pgno, rowid, payload: new Uint8Array(payload), have: local, lost: false };
      row.payload.set(d.subarray(payloadAt, payloadAt + local));
      if (payload > local) {
        if (overflowHead > pgno) this.captures.set(overflowHead, row);
        else row.lost = true;
      }
      this.schemaRows.push(row);
    };
  }

  private capture(pgno: number, d: Uint8Array, row: SchemaRowBytes): void {
    this.captures.delete(pgno);
    const take = Math.min(row.payload.length - row.have, this.header!.layout.usable - 4);
    row.payload.set(d.subarray(4, 4 + take), row.have);
    row.have += take;
    if (row.have < row.payload.length) {
      const next = u32(d, 0);
      if (next > pgno) this.captures.set(next, row);
      else row.lost = true;
    }
  }

  private readPtrmap(pgno: number, d: Uint8Array): void {
    const l = this.header!.layout;
    const t = this.table!;
    for (let off = 0; off + 5 <= l.usable; off += 5) {
      const child = pgno + 1 + off / 5;
      if (ptrmapPageOf(l, child) !== pgno) break;
      t.ensure(child);
      t.ptrType![child] = d[off]!;
      t.ptrParent![child] = u32(d, off + 1);
    }
  }
}

function leafHash(d: Uint8Array, n: number): number {
  let hash = 0;
  for (let i = 0; i < n; i++) hash = (hash + mix32(u32(d, 8 + 4 * i))) >>> 0;
  return hash;
}

/** The whole image at once (today's pipeline). */
export function checkStructureOf(image: Uint8Array, options: StructureCheckOptions = {}): StructureReport {
  const check = new StructureCheck(options);
  check.update(image);
  return check.finish();
}
