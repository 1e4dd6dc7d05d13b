/**
 * One gzip member (RFC 1952) of a block of the image, in which stretches of bytes that
 * deflate cannot shrink (random or already-compressed blobs: images, encrypted tokens,
 * gzipped payloads) are written as stored blocks (RFC 1951 §3.2.4) instead of being deflated.
 *
 * Why: zlib at level 1 spends 3× longer per byte on random data (~31 MiB/s on this machine
 * kind) than on a database's usual pages (~96 MiB/s), to save under 1 % of their size.
 * Storing them costs a copy-free view and a CRC. Text and b-tree pages are deflated as before.
 *
 * How: the block is cut into stretches. Each compressible stretch is deflated on its own
 * (raw deflate ended by a sync flush: byte-aligned, not final, no reference before its own
 * start), each incompressible one is framed as stored blocks, and one empty final stored block
 * ends the member. Any gzip reader decodes it as the block, byte for byte.
 *
 * Pure: the deflate and CRC-32 functions are passed in (node:zlib on Node).
 */

/** The unit of the decision: SQLite pages are 4 KiB by default, and blobs fill whole pages. */
export const UNIT_BYTES = 4096;
const SAMPLES = 512;
/**
 * Among 512 bytes of uniformly random data about 222 distinct values show up; deflate-able
 * content (text, JSON, b-tree pages with their headers and small integers) shows far fewer.
 * Above this, deflate would not gain even 1 % on the unit.
 */
const DISTINCT_ABOVE = 200;
const HALF = SAMPLES / 2 - 1;
const HALF_DISTINCT_BELOW = 128;
/** A stored block holds at most 65535 bytes (LEN is 16 bits). */
export const MAX_STORED_BLOCK = 65535;

export interface Segment {
  store: boolean;
  start: number;
  end: number;
}

export interface MemberCodec {
  /** Raw deflate of `data`, ended by a sync flush (byte-aligned, no final block). */
  deflateRaw(data: Uint8Array, level: number): Promise<Uint8Array>;
  /** A whole gzip member of `data`: the path for blocks with nothing to store. */
  gzip(data: Uint8Array, level: number): Promise<Uint8Array>;
  /** CRC-32 (the gzip one), continued from `value`. */
  crc32(data: Uint8Array, value?: number): number;
}

const seen = new Uint8Array(256);
let stamp = 0;

/** Whether bytes[start, end) look like random data, from 512 samples spread over them. */
export function looksIncompressible(bytes: Uint8Array, start: number, end: number): boolean {
  const length = end - start;
  if (length < SAMPLES * 2) return false;
  // A stamp per call instead of clearing the table: 255 calls per clear.
  if (++stamp === 256) {
    seen.fill(0);
    stamp = 1;
  }
  const stride = Math.floor(length / SAMPLES);
  let distinct = 0;
  for (let i = 0, at = start; i < SAMPLES; i++, at += stride) {
    const value = bytes[at]!;
    if (seen[value] !== stamp) {
      seen[value] = stamp;
      if (++distinct > DISTINCT_ABOVE) return true;
    }
    // Random data shows ~162 distinct values in its first 256 samples: far fewer settles it.
    if (i === HALF && distinct < HALF_DISTINCT_BELOW) return false;
  }
  return false;
}

/**
 * Fewest consecutive incompressible units worth storing. Storing a unit saves ~120 µs of
 * deflate at level 1, but each stored stretch splits the deflated ones around it, and each
 * of those costs a zlib call (~100–300 µs with node:zlib, most of it set-up): a short run of random pages
 * is cheaper to deflate with its neighbours.
 */
export const MIN_STORED_UNITS = 4;

/** The block as alternating stretches to deflate and to store, in order, covering it exactly. */
export function planSegments(block: Uint8Array, unitBytes = UNIT_BYTES, minStoredUnits = MIN_STORED_UNITS): Segment[] {
  const segments: Segment[] = [];
  const add = (store: boolean, start: number, end: number) => {
    const last = segments.at(-1);
    if (last && last.store === store) last.end = end;
    else segments.push({ store, start, end });
  };
  let runStart = 0; // the first of the incompressible units seen in a row, not yet added
  let runUnits = 0;
  const endRun = () => {
    if (runUnits > 0) add(runUnits >= minStoredUnits, runStart, Math.min(runStart + runUnits * unitBytes, block.length));
    runUnits = 0;
  };
  for (let start = 0; start < block.length; start += unitBytes) {
    const end = Math.min(start + unitBytes, block.length);
    if (looksIncompressible(block, start, end)) {
      if (runUnits++ === 0) runStart = start;
    } else {
      endRun();
      add(false, start, end);
    }
  }
  endRun();
  return segments;
}

const GZIP_HEADER = new Uint8Array([0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3]); // deflate, no name, no mtime, Unix
const FINAL_EMPTY_STORED_BLOCK = new Uint8Array([1, 0, 0, 0xff, 0xff]);

/** `data` framed as stored blocks: a 5-byte header (BFINAL 0, BTYPE 00, LEN, NLEN) then a view of the bytes. */
export function storedBlocks(data: Uint8Array): Uint8Array[] {
  const parts: Uint8Array[] = [];
  for (let at = 0; at < data.length; at += MAX_STORED_BLOCK) {
    const chunk = data.subarray(at, Math.min(at + MAX_STORED_BLOCK, data.length));
    const n = chunk.length;
    parts.push(new Uint8Array([0, n & 0xff, n >>> 8, ~n & 0xff, (~n >>> 8) & 0xff]), chunk);
  }
  return parts;
}

function trailer(crc: number, length: number): Uint8Array {
  const bytes = new Uint8Array(8);
  const view = new DataView(bytes.buffer);
  view.setUint32(0, crc >>> 0, true);
  view.setUint32(4, length >>> 0, true); // ISIZE is the length modulo 2^32
  return bytes;
}

/**
 * The block as one gzip member, in parts to be written in order. Stored stretches are views
 * of `block`: it must not change until the parts are written.
 */
export async function gzipMember(block: Uint8Array, level: number, codec: MemberCodec): Promise<Uint8Array[]> {
  const segments = planSegments(block);
  if (!segments.some((s) => s.store)) return [await codec.gzip(block, level)];
  // Deflated stretches are independent: all are started at once, and the codec decides how
  // many run together.
  const pieces = await Promise.all(
    segments.map(async (s) => {
      const data = block.subarray(s.start, s.end);
      return s.store ? storedBlocks(data) : [await codec.deflateRaw(data, level)];
    }),
  );
  return [GZIP_HEADER, ...pieces.flat(), FINAL_EMPTY_STORED_BLOCK, trailer(codec.crc32(block), block.length)];
}
