/**
 * HTTP Range requests (RFC 9110 §14) for downloads served by the Worker, pure. One range
 * only: `bytes=a-b`, `bytes=a-` and `bytes=-n`. Anything else (several ranges, another unit,
 * a malformed header) is ignored and the whole object is served with 200, which the RFC
 * allows ("a server MAY ignore the Range header field"); a single range that lies wholly
 * past the end is unsatisfiable (416).
 */
import type { ByteRange } from "./store/store.js";

/** A single range as asked for, before the object's size is known. */
export type RangeSpec = { start: number; end?: number } | { suffix: number };

// Digits only, at most 15 (well inside Number.MAX_SAFE_INTEGER), optional spaces around '-'.
const SINGLE = /^bytes=[ \t]*(?:(\d{1,15})[ \t]*-[ \t]*(\d{1,15})?|-[ \t]*(\d{1,15}))[ \t]*$/i;

/** The one range of a Range header; undefined when there is none or it is to be ignored. */
export function parseRange(header: string | null | undefined): RangeSpec | undefined {
  if (!header) return undefined;
  const m = SINGLE.exec(header.trim());
  if (!m) return undefined; // several ranges, another unit, or not a range at all
  if (m[3] !== undefined) return { suffix: Number(m[3]) };
  const start = Number(m[1]);
  if (m[2] === undefined) return { start };
  const end = Number(m[2]);
  // "bytes=5-2" is invalid syntax (last < first): ignored, not unsatisfiable.
  return end < start ? undefined : { start, end };
}

/** The bytes of an object of `size` a range selects, or "unsatisfiable" (416). */
export function resolveRange(spec: RangeSpec, size: number): ByteRange | "unsatisfiable" {
  if ("suffix" in spec) {
    if (spec.suffix === 0 || size === 0) return "unsatisfiable";
    const length = Math.min(spec.suffix, size);
    return { offset: size - length, length };
  }
  if (spec.start >= size) return "unsatisfiable";
  const last = Math.min(spec.end ?? size - 1, size - 1);
  return { offset: spec.start, length: last - spec.start + 1 };
}

/** The Content-Range of a 206 ("bytes 0-99/1234") or of a 416 ("bytes *\/1234"). */
export function contentRange(range: ByteRange | undefined, size: number): string {
  return range ? `bytes ${range.offset}-${range.offset + range.length - 1}/${size}` : `bytes */${size}`;
}

/**
 * If-Range (RFC 9110 §13.1.5): the range applies only when the validator still names this
 * object — a strong entity tag equal to `etag`, or an HTTP date equal to `lastModified`
 * (to the second). Without If-Range it always applies.
 */
export function ifRangeHolds(ifRange: string | null | undefined, etag: string | undefined, lastModified: Date | undefined): boolean {
  if (ifRange === null || ifRange === undefined || ifRange.trim() === "") return true;
  const v = ifRange.trim();
  if (v.startsWith('"')) return etag !== undefined && v === etag; // weak tags (W/"…") never match
  if (v.startsWith("W/")) return false;
  const date = Date.parse(v);
  return lastModified !== undefined && !Number.isNaN(date) && Math.floor(lastModified.getTime() / 1000) === Math.floor(date / 1000);
}
