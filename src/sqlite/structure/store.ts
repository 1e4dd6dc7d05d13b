/**
 * What the structural check keeps about every page while the pages stream past: a fixed
 * 14 bytes per page in typed arrays, plus the page's outgoing pointers (children, overflow
 * chains) and, for table b-tree pages, rowids, in two append-only logs. Nothing per row.
 *
 * A page's role (b-tree page, overflow page, freelist trunk or leaf) is only known once
 * whoever points at it has been read, which may be later in the file. So each page is
 * summarised for every role it could play: as a b-tree page when its first byte says so,
 * otherwise by its first four bytes (the next page of an overflow chain or freelist trunk)
 * and, as a freelist trunk, by its leaf count and a sum-hash of its leaf page numbers.
 */

export class GrowableU32 {
  data: Uint32Array;
  length = 0;
  constructor(capacity = 1024) {
    this.data = new Uint32Array(capacity);
  }
  push(v: number): void {
    if (this.length === this.data.length) this.grow(this.length * 2);
    this.data[this.length++] = v;
  }
  grow(capacity: number): void {
    const next = new Uint32Array(capacity);
    next.set(this.data.subarray(0, this.length));
    this.data = next;
  }
  get byteLength(): number {
    return this.data.byteLength;
  }
}

export class GrowableI64 {
  data: BigInt64Array;
  length = 0;
  constructor(capacity = 1024) {
    this.data = new BigInt64Array(capacity);
  }
  push(v: number | bigint): void {
    if (this.length === this.data.length) {
      const next = new BigInt64Array(this.length * 2);
      next.set(this.data);
      this.data = next;
    }
    this.data[this.length++] = typeof v === "bigint" ? v : BigInt(v);
  }
  get byteLength(): number {
    return this.data.byteLength;
  }
}

/** Low 3 bits of `kind`: the page's b-tree type, if its first header byte names one. */
export const KIND_NONE = 0;
export const KIND_INDEX_INTERIOR = 1;
export const KIND_TABLE_INTERIOR = 2;
export const KIND_INDEX_LEAF = 3;
export const KIND_TABLE_LEAF = 4;
export const KIND_MASK = 7;
/** Bits 3–6: the first problem found inside the page when read as a b-tree page (see PAGE_PROBLEMS). */
export const PROBLEM_SHIFT = 3;
/** Trunk leaf count stored for pages that cannot be freelist trunks. */
export const NOT_A_TRUNK = 0xffff;
/** badFrom for pages whose records no column count makes malformed. */
export const NEVER = 0xffff;

export class PageTable {
  /** Type and problem bits. */
  kind: Uint8Array;
  /** B-tree pages: start in the pointer log. Other pages: the first 4 bytes (next page). */
  a: Uint32Array;
  /** B-tree pages: start in the key log. Other pages: the sum-hash of the leaves, read as a trunk. */
  b: Uint32Array;
  /** B-tree pages: the cell count. Other pages: the leaf count read as a trunk, or NOT_A_TRUNK. */
  c: Uint16Array;
  /** B-tree pages with records: the smallest column count for which a record is malformed (see record.ts). */
  badFrom: Uint16Array;
  /** Pointer-map entry of each page (auto-vacuum databases only). */
  ptrType: Uint8Array | undefined;
  ptrParent: Uint32Array | undefined;
  /** Pointers out of b-tree pages: children, then right child, then overflow (head, page count) pairs. */
  readonly pointers = new GrowableU32(4096);
  /** Table b-tree keys: interior dividers; leaves their first and last rowid. */
  readonly keys = new GrowableI64(4096);
  /** Pages held so far, by page number (index 0 unused). */
  capacity: number;

  constructor(pages: number, autoVacuum: boolean) {
    this.capacity = Math.max(pages + 1, 16);
    this.kind = new Uint8Array(this.capacity);
    this.a = new Uint32Array(this.capacity);
    this.b = new Uint32Array(this.capacity);
    this.c = new Uint16Array(this.capacity);
    this.badFrom = new Uint16Array(this.capacity);
    if (autoVacuum) {
      this.ptrType = new Uint8Array(this.capacity);
      this.ptrParent = new Uint32Array(this.capacity);
    }
  }

  /** Room for page `pgno` (only needed when the header's page count was not usable). */
  ensure(pgno: number): void {
    if (pgno < this.capacity) return;
    let capacity = this.capacity;
    while (capacity <= pgno) capacity *= 2;
    const grow = <T extends Uint8Array | Uint16Array | Uint32Array>(old: T, make: (n: number) => T): T => {
      const next = make(capacity);
      next.set(old);
      return next;
    };
    this.kind = grow(this.kind, (n) => new Uint8Array(n));
    this.a = grow(this.a, (n) => new Uint32Array(n));
    this.b = grow(this.b, (n) => new Uint32Array(n));
    this.c = grow(this.c, (n) => new Uint16Array(n));
    this.badFrom = grow(this.badFrom, (n) => new Uint16Array(n));
    if (this.ptrType) this.ptrType = grow(this.ptrType, (n) => new Uint8Array(n));
    if (this.ptrParent) this.ptrParent = grow(this.ptrParent, (n) => new Uint32Array(n));
    this.capacity = capacity;
  }

  get byteLength(): number {
    return (
      this.kind.byteLength +
      this.a.byteLength +
      this.b.byteLength +
      this.c.byteLength +
      this.badFrom.byteLength +
      (this.ptrType?.byteLength ?? 0) +
      (this.ptrParent?.byteLength ?? 0) +
      this.pointers.byteLength +
      this.keys.byteLength
    );
  }
}
