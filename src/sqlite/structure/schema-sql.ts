/**
 * Just enough of a CREATE statement to know what SQLite's quick_check does with a table or
 * index: whether a table is WITHOUT ROWID, the right-most stored column it reads from every
 * row, and whether an index is partial (its entry count is then not compared). When the SQL
 * is not understood the answer is "unknown" and those checks are skipped: this may miss a
 * damaged record but never raises a false alarm.
 */

export interface TableShape {
  withoutRowid: boolean;
  /** The column index quick_check reads from every row (-1: none), as pragma.c computes mxCol. */
  rightmostColumn: number;
}

type Token = { text: string; upper: string; word: boolean };

/** SQL tokens at nesting depth 0 inside the first parenthesis and after it. */
function tokenize(sql: string): Token[] | undefined {
  const tokens: Token[] = [];
  let i = 0;
  while (i < sql.length) {
    const ch = sql[i]!;
    if (/\s/.test(ch)) {
      i++;
    } else if (ch === "-" && sql[i + 1] === "-") {
      const nl = sql.indexOf("\n", i);
      i = nl < 0 ? sql.length : nl + 1;
    } else if (ch === "/" && sql[i + 1] === "*") {
      const close = sql.indexOf("*/", i + 2);
      i = close < 0 ? sql.length : close + 2;
    } else if (ch === "'" || ch === '"' || ch === "`" || ch === "[") {
      const closeCh = ch === "[" ? "]" : ch;
      let j = i + 1;
      for (;;) {
        const k = sql.indexOf(closeCh, j);
        if (k < 0) return undefined;
        if (closeCh !== "]" && sql[k + 1] === closeCh) {
          j = k + 2;
          continue;
        }
        j = k + 1;
        break;
      }
      tokens.push({ text: sql.slice(i, j), upper: "", word: false });
      i = j;
    } else if (/[A-Za-z_\u0080-\uffff]/.test(ch)) {
      let j = i + 1;
      while (j < sql.length && /[A-Za-z0-9_$\u0080-\uffff]/.test(sql[j]!)) j++;
      const text = sql.slice(i, j);
      tokens.push({ text, upper: text.toUpperCase(), word: true });
      i = j;
    } else {
      tokens.push({ text: ch, upper: ch, word: false });
      i++;
    }
  }
  return tokens;
}

/** Split the tokens inside the first top-level parenthesis at depth-1 commas; also return what follows it. */
function parenthesized(tokens: Token[]): { items: Token[][]; after: Token[]; before: Token[] } | undefined {
  const open = tokens.findIndex((t) => t.text === "(");
  if (open < 0) return undefined;
  const items: Token[][] = [[]];
  let depth = 0;
  for (let i = open; i < tokens.length; i++) {
    const t = tokens[i]!;
    if (t.text === "(") {
      depth++;
      if (depth === 1) continue;
    } else if (t.text === ")") {
      depth--;
      if (depth === 0) return { items, after: tokens.slice(i + 1), before: tokens.slice(0, open) };
    } else if (t.text === "," && depth === 1) {
      items.push([]);
      continue;
    }
    items[items.length - 1]!.push(t);
  }
  return undefined;
}

const TABLE_CONSTRAINTS = new Set(["CONSTRAINT", "PRIMARY", "UNIQUE", "CHECK", "FOREIGN"]);
const COLUMN_CONSTRAINT_START = new Set(["CONSTRAINT", "PRIMARY", "NOT", "NULL", "UNIQUE", "CHECK", "DEFAULT", "COLLATE", "REFERENCES", "GENERATED", "AS"]);

function unquote(text: string): string {
  const q = text[0];
  if (q === '"' || q === "`" || q === "'") return text.slice(1, -1).replaceAll(q + q, q);
  if (q === "[") return text.slice(1, -1);
  return text;
}

/** The shape of a CREATE TABLE, or undefined when the SQL is not understood (or is a virtual table). */
export function tableShape(sql: string): TableShape | undefined {
  const tokens = tokenize(sql);
  if (!tokens || tokens[0]?.upper !== "CREATE") return undefined;
  if (tokens.some((t, i) => i < 4 && t.upper === "VIRTUAL")) return undefined;
  const parts = parenthesized(tokens);
  if (!parts) return undefined;
  const withoutRowid = parts.after.some((t, i) => t.upper === "WITHOUT" && parts.after[i + 1]?.upper === "ROWID");
  let stored = 0;
  let columns = 0;
  let ipk = -1;
  const typeOf = new Map<string, string>();
  let tablePk: string[] | undefined;
  for (const item of parts.items) {
    const first = item[0];
    if (!first) return undefined;
    if (first.word && TABLE_CONSTRAINTS.has(first.upper)) {
      const pk = item.findIndex((t) => t.upper === "PRIMARY");
      if (pk >= 0 && item[pk + 1]?.upper === "KEY") {
        const inner = parenthesized(item.slice(pk + 2));
        if (inner && inner.items.length === 1) tablePk = inner.items[0]!.filter((t) => t.text !== ",").map((t) => t.text);
      }
      continue;
    }
    const name = unquote(first.text).toLowerCase();
    let typeEnd = 1;
    while (typeEnd < item.length && !(item[typeEnd]!.word && COLUMN_CONSTRAINT_START.has(item[typeEnd]!.upper))) typeEnd++;
    const declared = item
      .slice(1, typeEnd)
      .map((t) => t.upper)
      .join(" ");
    typeOf.set(name, declared);
    const rest = item.slice(typeEnd);
    const asAt = rest.findIndex((t) => t.upper === "AS");
    const generated = asAt >= 0 && rest[asAt + 1]?.text === "(";
    const virtual = generated && !rest.some((t) => t.upper === "STORED");
    const pkAt = rest.findIndex((t, i) => t.upper === "PRIMARY" && rest[i + 1]?.upper === "KEY");
    if (pkAt >= 0 && declared === "INTEGER" && rest[pkAt + 2]?.upper !== "DESC") ipk = columns;
    if (!virtual) stored++;
    columns++;
  }
  if (columns === 0) return undefined;
  if (tablePk && tablePk.length === 1 && ipk < 0) {
    const pkName = unquote(tablePk[0]!).toLowerCase();
    if (typeOf.get(pkName) === "INTEGER") ipk = [...typeOf.keys()].indexOf(pkName);
  }
  if (withoutRowid) return { withoutRowid, rightmostColumn: stored - 1 };
  let rightmost = stored - 1;
  if (rightmost === ipk) rightmost--;
  return { withoutRowid, rightmostColumn: rightmost };
}

/** Whether a CREATE INDEX has a WHERE clause; undefined when the SQL is not understood. */
export function isPartialIndex(sql: string): boolean | undefined {
  const tokens = tokenize(sql);
  if (!tokens || tokens[0]?.upper !== "CREATE") return undefined;
  const parts = parenthesized(tokens);
  if (!parts) return undefined;
  return parts.after.some((t) => t.upper === "WHERE");
}

/** Whether the SQL begins with the keyword CREATE (SQLite refuses a schema row whose SQL does not). */
export function startsWithCreate(sql: string): boolean {
  return tokenize(sql)?.[0]?.upper === "CREATE";
}
