/**
 * SQL text → complete statements, as the text arrives (a D1 export is a dump of any size:
 * only the statement being read is held). Where a statement ends follows SQLite's own
 * `sqlite3_complete()` (sql.js does not expose it): a `;` outside strings, quoted names and
 * comments ends a statement, except inside `CREATE [TEMP] TRIGGER … BEGIN … END;`, where only
 * `END ;` does. The state machine below is the one in SQLite's complete.c.
 */

/** Tokens sqlite3_complete() tells apart; everything else is OTHER. */
const enum Tk {
  SEMI = 0,
  WS = 1,
  OTHER = 2,
  EXPLAIN = 3,
  CREATE = 4,
  TEMP = 5,
  TRIGGER = 6,
  END = 7,
}

// complete.c's trans[state][token]. States: 0 INVALID, 1 START, 2 NORMAL, 3 EXPLAIN,
// 4 CREATE, 5 TRIGGER, 6 SEMI (a `;` inside a trigger body), 7 END (`END` after such a `;`).
const TRANS: readonly (readonly number[])[] = [
  /* 0 INVALID */ [1, 0, 2, 3, 4, 2, 2, 2],
  /* 1 START   */ [1, 1, 2, 3, 4, 2, 2, 2],
  /* 2 NORMAL  */ [1, 2, 2, 2, 2, 2, 2, 2],
  /* 3 EXPLAIN */ [1, 3, 3, 2, 4, 2, 2, 2],
  /* 4 CREATE  */ [1, 4, 2, 2, 2, 4, 5, 2],
  /* 5 TRIGGER */ [6, 5, 5, 5, 5, 5, 5, 5],
  /* 6 SEMI    */ [6, 6, 5, 5, 5, 5, 5, 7],
  /* 7 END     */ [1, 7, 5, 5, 5, 5, 5, 5],
];

const KEYWORDS: Record<string, Tk> = {
  explain: Tk.EXPLAIN,
  create: Tk.CREATE,
  temp: Tk.TEMP,
  temporary: Tk.TEMP,
  trigger: Tk.TRIGGER,
  end: Tk.END,
};

/** SQLite's IdChar: letters, digits, `_`, `$` and every non-ASCII character. */
function isIdChar(code: number): boolean {
  return (code >= 0x30 && code <= 0x39) || (code >= 0x41 && code <= 0x5a) || (code >= 0x61 && code <= 0x7a) || code === 0x5f || code === 0x24 || code >= 0x80;
}

function isSpace(code: number): boolean {
  return code === 0x20 || code === 0x09 || code === 0x0a || code === 0x0c || code === 0x0d;
}

export interface StatementSplitter {
  /** Add text; returns the statements it completed (each ending with its `;`). */
  push(text: string): string[];
  /**
   * The end of the text: what is left (whitespace and comments aside) is an incomplete
   * statement, returned for the caller to report (undefined when nothing is left).
   */
  end(): string | undefined;
  /** Characters held for the statement not yet complete. */
  readonly pendingLength: number;
}

export function createStatementSplitter(): StatementSplitter {
  let buf = "";
  /** Where scanning resumes in `buf` (always at a token's start). */
  let at = 0;
  let state = 0;
  /** Whether the pending statement has any token besides whitespace and comments. */
  let substantive = false;

  /** The end of the token starting at `i`, or -1 when it runs past the text seen so far. */
  function tokenEnd(i: number, final: boolean): { end: number; tk: Tk } | undefined {
    const c = buf.charCodeAt(i);
    const n = buf.length;
    switch (c) {
      case 0x3b: // ;
        return { end: i + 1, tk: Tk.SEMI };
      case 0x2f: // / — a comment only as /*
        if (i + 1 >= n) return final ? { end: n, tk: Tk.OTHER } : undefined;
        if (buf.charCodeAt(i + 1) !== 0x2a) return { end: i + 1, tk: Tk.OTHER };
        {
          const close = buf.indexOf("*/", i + 2);
          if (close < 0) return final ? { end: n, tk: Tk.WS } : undefined;
          return { end: close + 2, tk: Tk.WS };
        }
      case 0x2d: // - — a comment only as --
        if (i + 1 >= n) return final ? { end: n, tk: Tk.OTHER } : undefined;
        if (buf.charCodeAt(i + 1) !== 0x2d) return { end: i + 1, tk: Tk.OTHER };
        {
          const nl = buf.indexOf("\n", i + 2);
          if (nl < 0) return final ? { end: n, tk: Tk.WS } : undefined;
          return { end: nl + 1, tk: Tk.WS };
        }
      case 0x5b: {
        // [quoted name]
        const close = buf.indexOf("]", i + 1);
        if (close < 0) return final ? { end: n, tk: Tk.OTHER } : undefined;
        return { end: close + 1, tk: Tk.OTHER };
      }
      case 0x27: // '
      case 0x22: // "
      case 0x60: {
        // ` — a doubled quote inside is an escaped quote, not the end
        const q = buf[i]!;
        let j = i + 1;
        for (;;) {
          const close = buf.indexOf(q, j);
          if (close < 0) return final ? { end: n, tk: Tk.OTHER } : undefined;
          if (close + 1 >= n && !final) return undefined; // the next chunk may double it
          if (buf[close + 1] === q) {
            j = close + 2;
            continue;
          }
          return { end: close + 1, tk: Tk.OTHER };
        }
      }
    }
    if (isSpace(c)) {
      let j = i + 1;
      while (j < n && isSpace(buf.charCodeAt(j))) j++;
      return { end: j, tk: Tk.WS };
    }
    if (isIdChar(c)) {
      let j = i + 1;
      while (j < n && isIdChar(buf.charCodeAt(j))) j++;
      if (j >= n && !final) return undefined; // the word may go on in the next chunk
      // Keywords only where a word starts with a letter (complete.c checks IdChar words only).
      const tk = j - i <= 9 ? KEYWORDS[buf.slice(i, j).toLowerCase()] : undefined;
      return { end: j, tk: tk ?? Tk.OTHER };
    }
    return { end: i + 1, tk: Tk.OTHER };
  }

  function scan(final: boolean): string[] {
    const out: string[] = [];
    let start = 0;
    while (at < buf.length) {
      const t = tokenEnd(at, final);
      if (!t) break;
      state = TRANS[state]![t.tk]!;
      if (t.tk !== Tk.WS && t.tk !== Tk.SEMI) substantive = true;
      at = t.end;
      if (t.tk === Tk.SEMI && state === 1) {
        // A lone `;` (an empty statement) is no statement.
        if (substantive) out.push(buf.slice(start, at).trim());
        start = at;
        substantive = false;
      }
    }
    if (start > 0) {
      buf = buf.slice(start);
      at -= start;
    }
    return out;
  }

  return {
    push(text) {
      buf += text;
      return scan(false);
    },
    end() {
      scan(true);
      const rest = buf.trim();
      buf = "";
      at = 0;
      state = 0;
      const left = substantive ? rest : undefined;
      substantive = false;
      return left;
    },
    get pendingLength() {
      return buf.length;
    },
  };
}

/** The statements of a whole text (tests, small inputs); an incomplete tail is returned last, as is. */
export function splitStatements(sql: string): string[] {
  const s = createStatementSplitter();
  const out = s.push(sql);
  const rest = s.end();
  if (rest !== undefined) out.push(rest);
  return out;
}
