/**
 * The real file system with a hook after every read: tests land a real change (a write by a
 * live sqlite3, a rename) at an exact point of a file source's read.
 */
import { nodeFiles } from "../../functions/node-runtime.js";
import type { FileAccess } from "../../src/sources/file.js";

export interface ReadEvent {
  path: string;
  /** A read of the file's contents (readInto's chunks), as opposed to a header probe (≤ 100 bytes) or the 1-byte look past the end. */
  copy: boolean;
  /** 1-based count of such reads of this path so far, over all attempts. */
  n: number;
  /** Bytes asked for: 100 for the database header, 32 for the WAL header, 8 for the journal's, 1 past the end. */
  length: number;
}

/** The real file system (nodeFiles), with `after` awaited right after each read call returns: a real change lands between two reads. */
export function filesWith(after: (e: ReadEvent) => unknown): FileAccess {
  const counts = new Map<string, number>();
  return {
    stat: (p) => nodeFiles.stat(p),
    async open(p, flags) {
      const handle = await nodeFiles.open(p, flags);
      return {
        async read(buffer, offset, length, position) {
          const r = await handle.read(buffer, offset, length, position);
          const copy = length > 100;
          const key = `${copy}:${p}`;
          const n = (counts.get(key) ?? 0) + 1;
          counts.set(key, n);
          await after({ path: p, copy, n, length });
          return r;
        },
        close: () => handle.close(),
      };
    },
  };
}
