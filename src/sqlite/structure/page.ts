/**
 * One b-tree page on its own: what btreeInitPage, btreeComputeFreeSpace and the per-page
 * part of checkTreePage (SQLite's src/btree.c) verify, recorded in the page table instead
 * of reported, because whether the page belongs to a tree at all (rather than being a
 * freed page that still holds old cells) is only known at the end.
 */
import { INDEX_INTERIOR, INDEX_LEAF, TABLE_INTERIOR, TABLE_LEAF, payloadVarint, u16, u32, varint64, varintEnd, type Layout } from "./format.js";
import { malformedFrom } from "./record.js";
import { KIND_INDEX_INTERIOR, KIND_INDEX_LEAF, KIND_NONE, KIND_TABLE_INTERIOR, KIND_TABLE_LEAF, NEVER, PROBLEM_SHIFT, type PageTable } from "./store.js";

/** Problems found inside one page; the first found is kept. */
export const PAGE_PROBLEMS = [
  "",
  "btreeInitPage() returns error code 11 (more cells than fit the page)",
  "free space corruption (the freeblock list or cell content offset is invalid)",
  "a cell pointer is out of range",
  "a cell extends off the end of the page",
  "rowids out of order",
  "cells or freeblocks overlap",
  "the fragmented byte count in the page header is wrong",
] as const;
export const PROBLEM_INIT = 1;
export const PROBLEM_FREE_SPACE = 2;
const PROBLEM_OFFSET = 3;
const PROBLEM_EXTENDS = 4;
const PROBLEM_ROWID = 5;
const PROBLEM_OVERLAP = 6;
const PROBLEM_FRAG = 7;
/** Problems after which SQLite looks at no cell of the page (so no child or overflow is followed). */
export function isFatalProblem(problem: number): boolean {
  return problem === PROBLEM_INIT || problem === PROBLEM_FREE_SPACE;
}

export function kindOfType(type: number): number {
  switch (type) {
    case INDEX_INTERIOR:
      return KIND_INDEX_INTERIOR;
    case TABLE_INTERIOR:
      return KIND_TABLE_INTERIOR;
    case INDEX_LEAF:
      return KIND_INDEX_LEAF;
    case TABLE_LEAF:
      return KIND_TABLE_LEAF;
    default:
      return KIND_NONE;
  }
}

/** A cell of the schema table, for the caller to decode (schema pages only). */
export type CellVisitor = (payloadAt: number, local: number, payload: number, overflowHead: number, rowid: number | bigint) => void;

/** Cell extents as (start << 16 | end), sorted to find overlaps and count fragments. */
let extents = new Uint32Array(1024);

/**
 * Parse page `pgno` (its bytes in `d`, padded with zeros past the page) as a b-tree page of
 * the type its header names. Appends its pointers and keys to the logs and sets kind, c and
 * badFrom. `visit` sees every well-formed cell (leaf pages of the schema table).
 */
export function parseBtreePage(d: Uint8Array, pgno: number, l: Layout, t: PageTable, visit?: CellVisitor): void {
  const hdr = pgno === 1 ? 100 : 0;
  const type = d[hdr]!;
  const kind = kindOfType(type);
  const leaf = type === INDEX_LEAF || type === TABLE_LEAF;
  const intKey = type === TABLE_INTERIOR || type === TABLE_LEAF;
  const usable = l.usable;
  t.a[pgno] = t.pointers.length;
  t.b[pgno] = t.keys.length;
  t.badFrom[pgno] = NEVER;
  const nCell = u16(d, hdr + 3);
  t.c[pgno] = nCell;
  // The first problem found; written with the kind at the end (no closure: this runs per page).
  let problem = 0;

  // btreeInitPage
  if (nCell > l.maxCells) return setKind(t, pgno, kind, PROBLEM_INIT);
  // btreeComputeFreeSpace
  const childPtrSize = leaf ? 0 : 4;
  const top = u16(d, hdr + 5) || 65536;
  const cellFirst = hdr + 8 + childPtrSize + 2 * nCell;
  let pc = u16(d, hdr + 1);
  let nFree = d[hdr + 7]! + top;
  if (pc > 0) {
    if (pc < top) return setKind(t, pgno, kind, PROBLEM_FREE_SPACE);
    let next: number, size: number;
    for (;;) {
      if (pc > usable - 4) return setKind(t, pgno, kind, PROBLEM_FREE_SPACE);
      next = u16(d, pc);
      size = u16(d, pc + 2);
      nFree += size;
      if (next <= pc + size + 3) break;
      pc = next;
    }
    if (next > 0 || pc + size > usable) return setKind(t, pgno, kind, PROBLEM_FREE_SPACE);
  }
  if (nFree > usable || nFree < cellFirst) return setKind(t, pgno, kind, PROBLEM_FREE_SPACE);

  // checkTreePage's cell loop (in cell order here; the keys are compared in order below)
  const maxLocal = intKey ? l.maxLeaf : l.maxLocal;
  const minLocal = intKey ? l.minLeaf : l.minLocal;
  const cellStart = hdr + 8 + childPtrSize;
  if (extents.length < nCell + 2 * 1024) extents = new Uint32Array(nCell + 2 * 1024);
  let n = 0;
  let coverage = true;
  let badFrom = NEVER;
  let firstKey: number | bigint = 0;
  let lastKey: number | bigint = 0;
  let keyed = 0;
  const overflow: number[] = [];
  for (let i = 0; i < nCell; i++) {
    const at = u16(d, cellStart + 2 * i);
    let size: number;
    let key: number | bigint = 0;
    let payloadAt = 0;
    let payload = 0;
    let local = 0;
    if (at < top || at > usable - 4) {
      problem ||= PROBLEM_OFFSET;
      size = -1;
    } else if (type === TABLE_INTERIOR) {
      let p = at + 4;
      const end = at + 13;
      while (d[p++]! & 0x80 && p < end);
      size = p - at;
      key = varint64(d, at + 4);
    } else {
      payloadAt = at + childPtrSize;
      payload = d[payloadAt]!;
      if (payload < 0x80) payloadAt++;
      else {
        payload = payloadVarint(d, payloadAt);
        payloadAt = varintEnd;
      }
      if (intKey) {
        key = d[payloadAt]!;
        if (key < 0x80) payloadAt++;
        else {
          key = varint64(d, payloadAt);
          payloadAt = varintEnd;
        }
      }
      if (payload <= maxLocal) {
        local = payload;
        size = Math.max(payload + (payloadAt - at), 4);
      } else {
        const surplus = minLocal + ((payload - minLocal) % (usable - 4));
        local = surplus <= maxLocal ? surplus : minLocal;
        size = payloadAt - at + local + 4;
      }
      if (at + size > usable) {
        problem ||= PROBLEM_EXTENDS;
        size = -1;
      }
    }
    if (size < 0) {
      // SQLite skips the cell (and stops checking coverage); keep child i at index i.
      coverage = false;
      if (!leaf) t.pointers.push(0);
      if (!leaf && intKey) t.keys.push(0);
      continue;
    }
    if (type !== TABLE_INTERIOR) {
      const head = payload > local ? u32(d, at + size - 4) : 0;
      if (payload > local) overflow.push(head, Math.floor((payload - local + usable - 5) / (usable - 4)));
      const bad = malformedFrom(d, payloadAt, local, payload);
      if (bad < badFrom) badFrom = bad;
      visit?.(payloadAt, local, payload, head, key);
    }
    if (intKey) {
      if (leaf) {
        if (keyed > 0 && !(key > lastKey)) problem ||= PROBLEM_ROWID;
        if (keyed === 0) firstKey = key;
        lastKey = key;
        keyed++;
      } else {
        t.keys.push(key);
      }
    }
    if (!leaf) t.pointers.push(u32(d, at));
    extents[n++] = at * 65536 + (at + size - 1);
  }
  if (!leaf) t.pointers.push(u32(d, hdr + 8));
  for (const v of overflow) t.pointers.push(v);
  if (intKey && leaf && keyed > 0) {
    t.keys.push(firstKey);
    t.keys.push(lastKey);
  }
  t.badFrom[pgno] = badFrom;

  if (coverage) {
    for (let f = u16(d, hdr + 1); f > 0; f = u16(d, f)) {
      if (n === extents.length) break; // cannot happen: freeblocks are in ascending order
      extents[n++] = f * 65536 + (f + u16(d, f + 2) - 1);
    }
    const sorted = extents.subarray(0, n).sort();
    let prev = top - 1;
    let frag = 0;
    let overlap = false;
    for (let i = 0; i < n; i++) {
      const x = sorted[i]!;
      if ((prev & 0xffff) >= x >>> 16) {
        problem ||= PROBLEM_OVERLAP;
        overlap = true;
        break;
      }
      frag += (x >>> 16) - (prev & 0xffff) - 1;
      prev = x;
    }
    if (!overlap) {
      frag += usable - (prev & 0xffff) - 1;
      if (frag !== d[hdr + 7]) problem ||= PROBLEM_FRAG;
    }
  }
  setKind(t, pgno, kind, problem);
}

function setKind(t: PageTable, pgno: number, kind: number, problem: number): void {
  t.kind[pgno] = kind | (problem << PROBLEM_SHIFT);
}
