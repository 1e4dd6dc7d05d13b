/**
 * The numbers of SQLite's file format that the structural check needs, and byte readers.
 * References: https://www.sqlite.org/fileformat2.html and SQLite's src/btree.c (the
 * functions named in comments below), whose arithmetic is reproduced exactly, overflow
 * included, because a check that rounds differently from SQLite raises false alarms.
 */

export const PENDING_BYTE = 0x40000000;
/** SQLite's BTCURSOR_MAX_DEPTH: a cursor refuses a tree deeper than this, so a sound one never is. */
export const MAX_TREE_DEPTH = 20;

/** Page types (the first byte of a b-tree page header). */
export const INDEX_INTERIOR = 2;
export const TABLE_INTERIOR = 5;
export const INDEX_LEAF = 10;
export const TABLE_LEAF = 13;

/** Pointer-map entry types (btreeInt.h). */
export const PTRMAP_ROOTPAGE = 1;
export const PTRMAP_FREEPAGE = 2;
export const PTRMAP_OVERFLOW1 = 3;
export const PTRMAP_OVERFLOW2 = 4;
export const PTRMAP_BTREE = 5;

export interface Layout {
  pageSize: number;
  /** Page size minus the reserved bytes at the end of every page. */
  usable: number;
  /** Local payload limits (BtShared maxLocal/minLocal for indexes, maxLeaf/minLeaf for table leaves). */
  maxLocal: number;
  minLocal: number;
  maxLeaf: number;
  minLeaf: number;
  /** MX_CELL: more cells than this cannot fit a page. */
  maxCells: number;
  /** The page holding byte 2^30 (never used by SQLite), or 0 when the database has none. */
  lockPage: number;
  autoVacuum: boolean;
  /** Pages described by one pointer-map page, plus the map page itself. */
  ptrmapSpan: number;
}

export function layoutOf(pageSize: number, reserved: number, autoVacuum: boolean): Layout {
  const usable = pageSize - reserved;
  return {
    pageSize,
    usable,
    maxLocal: Math.floor(((usable - 12) * 64) / 255) - 23,
    minLocal: Math.floor(((usable - 12) * 32) / 255) - 23,
    maxLeaf: usable - 35,
    minLeaf: Math.floor(((usable - 12) * 32) / 255) - 23,
    maxCells: Math.floor((pageSize - 8) / 6),
    lockPage: Math.floor(PENDING_BYTE / pageSize) + 1,
    autoVacuum,
    ptrmapSpan: Math.floor(usable / 5) + 1,
  };
}

/** ptrmapPageno(): the pointer-map page that describes page `pgno` (0 for pages 0 and 1). */
export function ptrmapPageOf(l: Layout, pgno: number): number {
  if (pgno < 2) return 0;
  const group = Math.floor((pgno - 2) / l.ptrmapSpan);
  let page = group * l.ptrmapSpan + 2;
  if (page === l.lockPage) page++;
  return page;
}

export function isPtrmapPage(l: Layout, pgno: number): boolean {
  return l.autoVacuum && pgno >= 2 && ptrmapPageOf(l, pgno) === pgno;
}

export function u16(b: Uint8Array, at: number): number {
  return (b[at]! << 8) | b[at + 1]!;
}

export function u32(b: Uint8Array, at: number): number {
  return ((b[at]! << 24) | (b[at + 1]! << 16) | (b[at + 2]! << 8) | b[at + 3]!) >>> 0;
}

/**
 * A payload-size varint as btreeParseCellPtr reads it: at most 9 bytes, 7 bits from each
 * (the ninth too, unlike a true varint), kept in 32 bits. Returns the value; `varintEnd`
 * holds the offset after it.
 */
export let varintEnd = 0;
export function payloadVarint(b: Uint8Array, at: number): number {
  let v = b[at]!;
  if (v < 0x80) {
    varintEnd = at + 1;
    return v;
  }
  v &= 0x7f;
  const end = at + 8;
  let i = at;
  let x: number;
  do {
    x = b[++i]!;
    v = ((v << 7) | (x & 0x7f)) >>> 0;
  } while (x >= 0x80 && i < end);
  varintEnd = i + 1;
  return v;
}

/** sqlite3GetVarint32: a varint clamped to 0xffffffff. Sets varintEnd. */
export function varint32(b: Uint8Array, at: number): number {
  const first = b[at]!;
  if (first < 0x80) {
    varintEnd = at + 1;
    return first;
  }
  const v = varint64(b, at);
  return typeof v === "bigint" ? (v < 0n || v > 0xffffffffn ? 0xffffffff : Number(v)) : v > 0xffffffff ? 0xffffffff : v;
}

/**
 * A 64-bit signed varint (a rowid): a number while it is exact (up to 7 bytes), else a bigint.
 * Numbers and bigints compare correctly with < and >. Sets varintEnd.
 */
export function varint64(b: Uint8Array, at: number): number | bigint {
  let v = 0;
  for (let i = 0; i < 7; i++) {
    const x = b[at + i]!;
    v = v * 128 + (x & 0x7f);
    if (x < 0x80) {
      varintEnd = at + i + 1;
      return v;
    }
  }
  let big = BigInt(v);
  const x7 = b[at + 7]!;
  big = (big << 7n) | BigInt(x7 & 0x7f);
  if (x7 < 0x80) {
    varintEnd = at + 8;
    return big;
  }
  big = (big << 8n) | BigInt(b[at + 8]!);
  varintEnd = at + 9;
  return BigInt.asIntN(64, big);
}

/** sqlite3VdbeSerialTypeLen. */
export function serialTypeLength(t: number): number {
  if (t >= 12) return Math.floor((t - 12) / 2);
  return SMALL_TYPE_LENGTH[t]!;
}
const SMALL_TYPE_LENGTH = [0, 1, 2, 3, 4, 6, 8, 8, 0, 0, 0, 0];

/** A 32-bit mixer (murmur3's finalizer): page-number sets are compared by the sum of it. */
export function mix32(x: number): number {
  x = Math.imul(x ^ (x >>> 16), 0x85ebca6b);
  x = Math.imul(x ^ (x >>> 13), 0xc2b2ae35);
  return (x ^ (x >>> 16)) >>> 0;
}
