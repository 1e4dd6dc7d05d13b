/**
 * The rows of sqlite_schema as SQLite's schema loader (sqlite3InitCallback) reads them,
 * and the b-trees they declare. Rows are captured while their pages stream past (the pages
 * of the schema table are found by following page 1's child pointers forward) and decoded
 * at the end, once any overflow pages have been seen.
 */
import { decodeRecord, type SqlValue } from "./record.js";
import { isPartialIndex, startsWithCreate, tableShape } from "./schema-sql.js";

export interface SchemaRowBytes {
  /** The page the row was read from. */
  page: number;
  rowid: number | bigint;
  payload: Uint8Array;
  /** Bytes of payload captured so far (local part, then overflow pages as they arrive). */
  have: number;
  /** Some overflow page came before the row's page in the file and could not be captured. */
  lost: boolean;
}

export interface Tree {
  root: number;
  name: string;
  table: string;
  /** Rowid tables have table b-trees; indexes and WITHOUT ROWID tables have index b-trees. */
  intKey: boolean;
  /** False when the SQL was not understood: the root page's own type then says which. */
  kindKnown: boolean;
  /** Tables are read row by row by quick_check (a cursor), indexes are not. */
  isTable: boolean;
  /** The right-most column quick_check reads from every row; undefined when not known. */
  rightmostColumn: number | undefined;
  /** Indexes: whether the index has a WHERE clause (undefined when not known). */
  partial: boolean | undefined;
}

export interface Schema {
  trees: Tree[];
  tables: number;
  problems: string[];
  /** Some row could not be read whole: the roots may be incomplete, so page accounting is skipped. */
  incomplete: boolean;
  /**
   * Root pages of the entries of SQLite's table hash (sqlite_schema first, then every table,
   * view and virtual table in rowid order): views and virtual tables have 0. See settle.ts
   * for why their order matters.
   */
  tableHashRoots: number[];
  /** The names of those entries, in the same order ("sqlite_master" first). */
  tableHashNames: string[];
}

const decoders: Record<number, TextDecoder> = {
  1: new TextDecoder("utf-8"),
  2: new TextDecoder("utf-16le"),
  3: new TextDecoder("utf-16be"),
};

/** The text encoding SQLite uses for a header value (the low two bits; 0 means UTF-8). */
export function textDecoderFor(headerEncoding: number): TextDecoder {
  return decoders[headerEncoding & 3] ?? decoders[1]!;
}

function asText(v: SqlValue | undefined): string | undefined {
  return typeof v === "string" ? v : v instanceof Uint8Array ? new TextDecoder().decode(v) : undefined;
}

export function readSchema(rows: readonly SchemaRowBytes[], pageCount: number, text: TextDecoder): Schema {
  const schema: Schema = { trees: [], tables: 0, problems: [], incomplete: false, tableHashRoots: [1], tableHashNames: ["sqlite_master"] };
  // SQLite loads the schema in rowid order (SELECT * FROM sqlite_schema ORDER BY rowid).
  rows = [...rows].sort((a, b) => (a.rowid < b.rowid ? -1 : a.rowid > b.rowid ? 1 : 0));
  schema.trees.push({ root: 1, name: "sqlite_schema", table: "sqlite_schema", intKey: true, kindKnown: true, isTable: true, rightmostColumn: 4, partial: undefined });
  for (const row of rows) {
    if (row.lost || row.have < row.payload.length) {
      schema.incomplete = true;
      continue;
    }
    const values = decodeRecord(row.payload, text);
    if (!values) {
      schema.problems.push(`Page ${row.page}: malformed database schema (a row of sqlite_schema has a damaged record)`);
      continue;
    }
    const [type, name, tblName, rootpage, sqlValue] = values;
    if (values.length >= 1 && asText(type) === "table") schema.tables++;
    const sql = asText(sqlValue);
    const where = `Page ${row.page}: malformed database schema (${asText(name) ?? "?"})`;
    if (rootpage === null || rootpage === undefined) {
      schema.problems.push(`${where}: no root page`);
      continue;
    }
    if (sql && sql.length > 0) {
      if (!/^cr/i.test(sql) || !startsWithCreate(sql)) {
        schema.problems.push(`${where}: its SQL is not a CREATE statement`);
        continue;
      }
      if (typeof rootpage !== "number" || rootpage < 0 || (rootpage > pageCount && pageCount > 0)) {
        schema.problems.push(`${where}: invalid rootpage ${String(rootpage)}`);
        continue;
      }
      const kind = /^\s*create\s+(?:temp\w*\s+)?(?:unique\s+)?(\w+)/i.exec(sql)?.[1]?.toLowerCase();
      if (kind === "table" || kind === "view" || kind === "virtual") {
        schema.tableHashRoots.push(kind === "table" ? rootpage : 0);
        schema.tableHashNames.push(asText(name) ?? "");
      }
      if (rootpage === 0) continue; // views, triggers, virtual tables
      if (kind === "table") {
        const shape = tableShape(sql);
        schema.trees.push({
          root: rootpage,
          name: asText(name) ?? "?",
          table: asText(tblName) ?? "?",
          intKey: shape ? !shape.withoutRowid : true,
          kindKnown: shape !== undefined,
          isTable: true,
          rightmostColumn: shape?.rightmostColumn,
          partial: undefined,
        });
      } else if (kind === "index") {
        schema.trees.push({ root: rootpage, name: asText(name) ?? "?", table: asText(tblName) ?? "?", intKey: false, kindKnown: true, isTable: false, rightmostColumn: undefined, partial: isPartialIndex(sql) });
      }
      continue;
    }
    // No SQL: an index SQLite made for a PRIMARY KEY or UNIQUE constraint.
    if (asText(name) === undefined) {
      schema.problems.push(`${where}: a row without name or SQL`);
      continue;
    }
    if (typeof rootpage !== "number" || rootpage < 2 || rootpage > pageCount) {
      schema.problems.push(`${where}: invalid rootpage ${String(rootpage)}`);
      continue;
    }
    schema.trees.push({ root: rootpage, name: asText(name)!, table: asText(tblName) ?? "?", intKey: false, kindKnown: true, isTable: false, rightmostColumn: undefined, partial: false });
  }
  return schema;
}
