/**
 * Record headers (https://www.sqlite.org/fileformat2.html#record_format), judged the way
 * SQLite's OP_Column judges them when quick_check reads a row's right-most column.
 */
import { NEVER } from "./store.js";
import { serialTypeLength, varint32, varintEnd } from "./format.js";

/**
 * The smallest right-most column index `m` for which OP_Column(m) calls this record
 * corrupt, or NEVER. Only the header is read, and only when it lies in the local payload
 * (`at`..`at + local`); SQLite would read the rest from overflow pages, so such records are
 * not judged here (a miss is possible, a false alarm is not).
 *
 * OP_Column parses field types up to field m or the end of the header and declares the
 * record corrupt when (a) the header size exceeds 98307 or the payload, (b) the header was
 * used up and either overran its declared size or the field sizes do not add up to the
 * payload exactly, or (c) the sizes so far exceed the payload. Sizes only grow with m, so
 * once corrupt for m, corrupt for every larger m: one number per record says it all.
 */
export function malformedFrom(page: Uint8Array, at: number, local: number, payload: number): number {
  let headerSize = page[at]!;
  let p = at + 1;
  if (headerSize >= 0x80) {
    headerSize = varint32(page, at);
    p = varintEnd;
  }
  if (headerSize === 0) return NEVER; // SQLite reads such a record as having no columns
  if (headerSize > 98307 || headerSize > payload) return 0;
  if (headerSize > local) return NEVER;
  const end = at + headerSize;
  let sum = headerSize;
  let field = 0;
  for (;;) {
    let t = page[p]!;
    if (t < 0x80) p++;
    else {
      t = varint32(page, p);
      p = varintEnd;
    }
    sum += t >= 12 ? (t - 12) >>> 1 : serialTypeLength(t);
    field++;
    if (p >= end) return p > end || sum !== payload ? Math.min(field - 1, NEVER) : NEVER;
    if (sum > payload) return Math.min(field - 1, NEVER);
    if (field >= NEVER) return NEVER;
  }
}

export type SqlValue = null | number | bigint | string | Uint8Array;

/** Every field of a complete record, texts decoded with the database's encoding. */
export function decodeRecord(payload: Uint8Array, text: TextDecoder): SqlValue[] | undefined {
  if (payload.length === 0) return [];
  const headerSize = varint32(payload, 0);
  if (headerSize > payload.length || headerSize === 0) return undefined;
  let p = varintEnd;
  let body = headerSize;
  const values: SqlValue[] = [];
  while (p < headerSize) {
    const t = varint32(payload, p);
    p = varintEnd;
    const len = serialTypeLength(t);
    if (body + len > payload.length) return undefined;
    values.push(valueOf(payload, body, t, len, text));
    body += len;
  }
  if (p !== headerSize || body !== payload.length) return undefined;
  return values;
}

function valueOf(b: Uint8Array, at: number, t: number, len: number, text: TextDecoder): SqlValue {
  switch (t) {
    case 0:
    case 10:
    case 11:
      return null;
    case 8:
      return 0;
    case 9:
      return 1;
    case 7:
      return new DataView(b.buffer, b.byteOffset + at, 8).getFloat64(0);
    case 1:
    case 2:
    case 3:
    case 4:
    case 5:
    case 6: {
      let v = 0n;
      for (let i = 0; i < len; i++) v = (v << 8n) | BigInt(b[at + i]!);
      v = BigInt.asIntN(len * 8, v);
      return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
    }
    default: {
      const bytes = b.subarray(at, at + len);
      return t % 2 === 1 ? text.decode(bytes) : bytes;
    }
  }
}
