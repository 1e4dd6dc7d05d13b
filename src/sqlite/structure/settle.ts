/**
 * The end of the structural check: with every page summarised, walk what SQLite's
 * sqlite3BtreeIntegrityCheck walks — the freelist, then every b-tree from its root with its
 * overflow chains — marking each page once, then account for every page. The messages
 * follow SQLite's own where it has one.
 */
import {
  MAX_TREE_DEPTH,
  PTRMAP_BTREE,
  PTRMAP_FREEPAGE,
  PTRMAP_OVERFLOW1,
  PTRMAP_OVERFLOW2,
  PTRMAP_ROOTPAGE,
  isPtrmapPage,
  mix32,
  type Layout,
} from "./format.js";
import { PAGE_PROBLEMS, isFatalProblem } from "./page.js";
import type { Schema, Tree } from "./schema.js";
import { KIND_INDEX_LEAF, KIND_MASK, KIND_NONE, KIND_TABLE_INTERIOR, KIND_TABLE_LEAF, NOT_A_TRUNK, PROBLEM_SHIFT, type PageTable } from "./store.js";

export interface SettleInput {
  layout: Layout;
  pageCount: number;
  table: PageTable;
  freelistTrunk: number;
  freelistCount: number;
  largestRoot: number;
  incrementalVacuum: number;
  schema: Schema;
  /** First four bytes of b-tree-looking pages that could be read as page numbers (huge databases). */
  bigNext: Map<number, number>;
  /** Leaf count and leaf hash of b-tree-looking pages that could be read as freelist trunks. */
  btreeTrunks: Map<number, { n: number; hash: number }>;
  maxFindings: number;
}

class Findings {
  readonly list: string[] = [];
  count = 0;
  constructor(private readonly max: number) {}
  add(message: string): void {
    this.count++;
    if (this.list.length < this.max) this.list.push(message);
  }
  get full(): boolean {
    return this.list.length >= this.max;
  }
}

const LARGEST_KEY = 0x7fffffffffffffffn;

export function settle(input: SettleInput): string[] {
  const { layout: l, pageCount, table: t, schema } = input;
  const findings = new Findings(input.maxFindings);
  const refs = new Uint8Array(pageCount + 1);
  if (l.lockPage <= pageCount) refs[l.lockPage] = 1;
  let prefix = "";

  const checkRef = (p: number): boolean => {
    if (p > pageCount || p === 0) {
      findings.add(`${prefix}invalid page number ${p}`);
      return true;
    }
    if (refs[p]) {
      findings.add(`${prefix}2nd reference to page ${p}`);
      return true;
    }
    refs[p] = 1;
    return false;
  };
  const nextOf = (p: number): number => ((t.kind[p]! & KIND_MASK) === KIND_NONE ? t.a[p]! : (input.bigNext.get(p) ?? 0xffffffff));
  const checkPtrmap = (child: number, type: number, parent: number): void => {
    if (!l.autoVacuum) return;
    const valid = child >= 2 && child <= pageCount && !isPtrmapPage(l, child);
    const gotType = valid ? t.ptrType![child]! : 0;
    if (gotType < 1 || gotType > 5) {
      findings.add(`${prefix}Failed to read ptrmap key=${child}`);
      return;
    }
    const gotParent = t.ptrParent![child]!;
    if (gotType !== type || gotParent !== parent) findings.add(`${prefix}Bad ptr map entry key=${child} expected=(${type},${parent}) got=(${gotType},${gotParent})`);
  };

  // checkList(): an overflow chain (the freelist is walked below, by hash)
  const checkOverflow = (head: number, expected: number): void => {
    const before = findings.count;
    let n = expected;
    let p = head;
    while (p !== 0 && !findings.full) {
      if (checkRef(p)) break;
      n--;
      const next = nextOf(p);
      if (n > 0) checkPtrmap(next, PTRMAP_OVERFLOW2, p);
      p = next;
    }
    if (n !== 0 && findings.count === before) findings.add(`${prefix}overflow list length is ${expected - n} but should be ${expected}`);
  };

  const { partial, checkFreelist } = sqliteChecksPartially(schema.tableHashRoots, schema.tableHashNames);

  // 1. The freelist. Leaf pages are not marked one by one: their numbers are summed through
  // a hash per trunk as the pages streamed past, and compared at the end with the pages no
  // tree uses. A trunk's own page and its chain are walked exactly as SQLite does.
  let leafHash = 0;
  let leafCount = 0;
  {
    prefix = "Freelist: ";
    const before = findings.count;
    let n = input.freelistCount;
    let p = checkFreelist ? input.freelistTrunk : 0;
    while (p !== 0 && !findings.full) {
      if (checkRef(p)) break;
      n--;
      checkPtrmap(p, PTRMAP_FREEPAGE, 0);
      const trunk = (t.kind[p]! & KIND_MASK) === KIND_NONE ? (t.c[p] === NOT_A_TRUNK ? undefined : { n: t.c[p]!, hash: t.b[p]! }) : input.btreeTrunks.get(p);
      if (!trunk) {
        findings.add(`${prefix}freelist leaf count too big on page ${p}`);
        n--;
      } else {
        leafHash = (leafHash + trunk.hash) >>> 0;
        leafCount += trunk.n;
        n -= trunk.n;
      }
      p = nextOf(p);
    }
    if (checkFreelist && n !== 0 && findings.count === before) findings.add(`${prefix}size is ${input.freelistCount - n} but should be ${input.freelistCount}`);
    prefix = "";
  }

  // 2. Every b-tree, from its root (checkTreePage), with the counts quick_check compares.
  const rows = new Map<Tree, number>();
  const rootSet = schema.trees.map((tree) => tree.root);
  if (partial) {
    // SQLite skips these with a partial root list (see sqliteChecksPartially).
  } else if (l.autoVacuum) {
    const max = Math.max(...rootSet);
    if (max !== input.largestRoot) findings.add(`max rootpage (${max}) disagrees with header (${input.largestRoot})`);
  } else if (input.incrementalVacuum !== 0) {
    findings.add("incremental_vacuum enabled with a max rootpage of zero");
  }
  for (const tree of schema.trees) {
    if (findings.full) break;
    if (l.autoVacuum && tree.root > 1 && !partial) checkPtrmap(tree.root, PTRMAP_ROOTPAGE, 0);
    rows.set(tree, walkTree(tree));
  }

  function walkTree(tree: Tree): number {
    let count = 0;
    const rootKind = tree.root <= pageCount ? t.kind[tree.root]! & KIND_MASK : KIND_NONE;
    // A table whose SQL was not understood is WITHOUT ROWID exactly when its root says so.
    const intKey = tree.kindKnown ? tree.intKey : rootKind === KIND_TABLE_INTERIOR || rootKind === KIND_TABLE_LEAF;
    // visit() returns the subtree's depth and leaves its smallest rowid here (no tuple per page:
    // a 1 GiB database has 262 144 of them).
    let low = 0n;
    const visit = (p: number, maxKey: bigint, level: number): number => {
      low = maxKey;
      if (p === 0) return 0;
      prefix = `Tree ${tree.root} page ${p}: `;
      if (checkRef(p)) return 0;
      const kind = t.kind[p]! & KIND_MASK;
      const problem = t.kind[p]! >> PROBLEM_SHIFT;
      if (kind === KIND_NONE) {
        findings.add(`${prefix}btreeInitPage() returns error code 11 (not a b-tree page)`);
        return 0;
      }
      if (problem) findings.add(`${prefix}${PAGE_PROBLEMS[problem]}`);
      if (isFatalProblem(problem)) return 0;
      const pageIntKey = kind === KIND_TABLE_INTERIOR || kind === KIND_TABLE_LEAF;
      const leaf = kind === KIND_TABLE_LEAF || kind === KIND_INDEX_LEAF;
      // What a cursor refuses on its way down (getAndInitPage): quick_check reads every table's rows with one.
      if (tree.isTable && pageIntKey !== intKey) findings.add(`${prefix}a ${pageIntKey ? "table" : "index"} b-tree page inside ${intKey ? "a table" : "an index"} b-tree (${tree.name})`);
      if (tree.isTable && level > 0 && t.c[p] === 0) findings.add(`${prefix}an empty page below the root of ${tree.name}`);
      if (level >= MAX_TREE_DEPTH) {
        findings.add(`${prefix}the b-tree is deeper than SQLite can read (${MAX_TREE_DEPTH} levels)`);
        return 0;
      }
      const nCell = t.c[p]!;
      if (leaf || !pageIntKey) {
        count += nCell;
        const column = tree.isTable ? tree.rightmostColumn : undefined;
        if (column !== undefined && column >= 0 && t.badFrom[p]! <= column) findings.add(`${prefix}malformed record: its header does not match its payload size`);
      }
      const pStart = t.a[p]!;
      const kStart = t.b[p]!;
      const children = leaf ? 0 : nCell + 1;
      const pEnd = pointersEnd(p);
      for (let i = pStart + children; i + 1 < pEnd && !findings.full; i += 2) {
        const head = t.pointers.data[i]!;
        prefix = `Tree ${tree.root} page ${p}: `;
        checkPtrmap(head, PTRMAP_OVERFLOW1, p);
        checkOverflow(head, t.pointers.data[i + 1]!);
      }
      prefix = `Tree ${tree.root} page ${p}: `;
      if (leaf) {
        if (!pageIntKey || nCell === 0 || t.keys.length <= kStart + 1) return 0;
        const first = t.keys.data[kStart]!;
        const last = t.keys.data[kStart + 1]!;
        if (last > maxKey) findings.add(`${prefix}Rowid ${last} out of order`);
        low = first;
        return 0;
      }
      const right = t.pointers.data[pStart + nCell]!;
      checkPtrmap(right, PTRMAP_BTREE, p);
      let depth = visit(right, maxKey, level + 1);
      let below = low;
      for (let i = nCell - 1; i >= 0 && !findings.full; i--) {
        const child = t.pointers.data[pStart + i]!;
        let bound = maxKey;
        if (pageIntKey) {
          const key = t.keys.data[kStart + i]!;
          if (child === 0 && key === 0n) continue; // a cell the page check already skipped
          prefix = `Tree ${tree.root} page ${p} cell ${i}: `;
          if (key >= below) findings.add(`${prefix}Rowid ${key} out of order`);
          bound = key;
        } else if (child === 0) {
          continue;
        }
        checkPtrmap(child, PTRMAP_BTREE, p);
        const d2 = visit(child, bound, level + 1);
        if (d2 !== depth) {
          prefix = `Tree ${tree.root} page ${p} cell ${i}: `;
          findings.add(`${prefix}Child page depth differs`);
          depth = d2;
        }
        below = low;
      }
      low = below;
      return depth + 1;
    };
    visit(tree.root, LARGEST_KEY, 0);
    prefix = "";
    return count;
  }

  /** The end of page p's pointers: where the next b-tree page's begin (pages are logged in order). */
  function pointersEnd(p: number): number {
    for (let q = p + 1; q < t.capacity && q <= pageCount; q++) if ((t.kind[q]! & KIND_MASK) !== KIND_NONE) return t.a[q]!;
    return t.pointers.length;
  }

  for (const problem of schema.problems) findings.add(problem);

  // 3. Every page used exactly once: the pages no tree uses must be exactly the freelist's leaves.
  if (!schema.incomplete && !partial && !findings.full) {
    let unusedHash = 0;
    let unusedCount = 0;
    const unused: number[] = [];
    for (let p = 1; p <= pageCount; p++) {
      const ptrmap = isPtrmapPage(l, p);
      if (refs[p]) {
        if (ptrmap) findings.add(`Page ${p}: pointer map referenced`);
        continue;
      }
      if (ptrmap) continue;
      unusedHash = (unusedHash + mix32(p)) >>> 0;
      unusedCount++;
      if (unused.length < 10) unused.push(p);
    }
    if (unusedCount !== leafCount || unusedHash !== leafHash) {
      if (leafCount === 0) for (const p of unused) findings.add(`Page ${p}: never used`);
      else
        findings.add(
          `Freelist: its trunks list ${leafCount} leaf pages, but ${unusedCount} pages are used by no b-tree, overflow chain or trunk${unusedCount === leafCount ? " (the same number, not the same pages)" : ""}; unused pages include ${unused.join(", ") || "none"}`,
        );
    } else if (l.autoVacuum) {
      prefix = "Freelist: ";
      for (let p = 2; p <= pageCount && !findings.full; p++) if (!refs[p] && !isPtrmapPage(l, p)) checkPtrmap(p, PTRMAP_FREEPAGE, 0);
      prefix = "";
    }
  }

  // 4. Each index without WHERE holds as many entries as its table has rows.
  for (const index of schema.trees) {
    if (index.isTable || index.partial !== false || findings.full) continue;
    const owner = schema.trees.find((tree) => tree.isTable && tree.name.toLowerCase() === index.table.toLowerCase());
    if (!owner || !rows.has(owner) || !rows.has(index)) continue;
    if (rows.get(owner) !== rows.get(index)) findings.add(`wrong # of entries in index ${index.name}`);
  }
  return findings.list;
}

/**
 * Whether SQLite's integrity check runs in its "partial" mode on this schema. quick_check
 * passes sqlite3BtreeIntegrityCheck the root pages of the tables in the order of its schema
 * hash table, views and virtual tables included with root 0 (pragma.c counts them as rowid
 * tables); btree.c reads a first root of 0 as "only some trees are listed" and then skips
 * the freelist (unless the second root is page 1), the page accounting, the pointer-map
 * checks of roots and the header's largest-root check — and answers "ok" without them.
 * Seen with SQLite 3.40 (Debian's CLI) and 3.54 (sql.js) alike; with our stricter
 * accounting, a database with a damaged freelist and a view listed first would be refused
 * where SQLite keeps using it, so the check follows SQLite here.
 *
 * The order is SQLite's hash table's (src/hash.c), replayed: entries are inserted in rowid
 * order after sqlite_master; up to 9 the table is one list with new entries in front; from
 * 10 to 40 entries it has 20 buckets (an entry goes in front of its bucket's first, or of the
 * whole list), whatever the build; beyond that the bucket count depends on the allocator and
 * the pointer size, so any view makes the run count as possibly partial (it may then miss
 * what SQLite catches, never the reverse). SQLite's name hash changed between versions (lower-
 * casing, then masking with 0xdf), so the checks are skipped only when SQLite would skip them
 * under both.
 */
export function sqliteChecksPartially(roots: readonly number[], names: readonly string[]): { partial: boolean; checkFreelist: boolean } {
  if (roots.length > 40) {
    const partial = roots.includes(0);
    return { partial, checkFreelist: !partial };
  }
  const verdicts = NAME_HASHES.map((hash) => {
    const order = hashTableOrder(names, hash);
    const partial = roots[order[0]!] === 0;
    return { partial, checkFreelist: !partial || order[1] === 0 };
  });
  return { partial: verdicts.every((v) => v.partial), checkFreelist: verdicts.some((v) => v.checkFreelist) };
}

const NAME_HASHES: ((byte: number) => number)[] = [
  (c) => (c >= 0x41 && c <= 0x5a ? c + 0x20 : c), // sqlite3UpperToLower (3.40)
  (c) => c & 0xdf, // newer SQLite
];

function nameHash(name: string, fold: (byte: number) => number): number {
  let h = 0;
  for (const c of new TextEncoder().encode(name)) h = Math.imul((h + fold(c)) >>> 0, 0x9e3779b1) >>> 0;
  return h;
}

/** The iteration order of SQLite's Hash after inserting `names` in order (indices into names). */
export function hashTableOrder(names: readonly string[], fold: (byte: number) => number): number[] {
  let list: number[] = [];
  let buckets: { count: number; chain: number }[] = [];
  const insert = (e: number, bucket: { count: number; chain: number } | undefined): void => {
    const head = bucket && bucket.count > 0 ? bucket.chain : undefined;
    if (bucket) {
      bucket.count++;
      bucket.chain = e;
    }
    if (head === undefined) list.unshift(e);
    else list.splice(list.indexOf(head), 0, e);
  };
  names.forEach((name, e) => {
    const count = e + 1;
    if (count >= 10 && count > 2 * buckets.length) {
      const old = list;
      list = [];
      buckets = Array.from({ length: count * 2 }, () => ({ count: 0, chain: -1 }));
      for (const x of old) insert(x, buckets[nameHash(names[x]!, fold) % buckets.length]);
    }
    insert(e, buckets.length ? buckets[nameHash(name, fold) % buckets.length] : undefined);
  });
  return list;
}
