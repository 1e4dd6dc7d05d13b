/**
 * The write-ahead log (https://www.sqlite.org/fileformat2.html#the_write_ahead_log).
 * A database in WAL mode keeps committed transactions in `DB-wal` until a checkpoint copies
 * them into the main file; the main file alone is an older state. These functions find the
 * committed part of a WAL exactly as SQLite's recovery does, and apply it onto an image.
 *
 * Pure: bytes in, bytes out. No file system, no SQLite.
 */

export const WAL_HEADER_BYTES = 32;
export const WAL_FRAME_HEADER_BYTES = 24;
const WAL_MAGIC_LE = 0x377f0682;
const WAL_MAGIC_BE = 0x377f0683;
const WAL_VERSION = 3007000;

export interface WalHeader {
  pageSize: number;
  /** Checksums are computed on big-endian words (magic 0x377f0683) or little-endian ones (0x377f0682). */
  bigEndianChecksums: boolean;
  checkpointSequence: number;
  salt1: number;
  salt2: number;
}

export interface WalScan {
  /** Undefined when the WAL is empty or its header is invalid: SQLite then ignores the file. */
  header: WalHeader | undefined;
  /** Why the header was not accepted, for logs. */
  headerProblem?: string;
  /** The header is valid but of a WAL format this code (and the SQLite it knows) cannot read. */
  unsupported?: boolean;
  /** Frames up to and including the last valid commit frame: these are committed data. */
  committedFrames: number;
  /** Transactions (commit frames) among them. */
  commits: number;
  /** Database size in pages after the last commit; 0 when there is no commit. */
  databasePages: number;
  /** Valid frames after the last commit (an unfinished transaction), ignored. */
  uncommittedFrames: number;
  /** Bytes from the first frame that is not valid (bad checksum, salt, torn write, stale generation) to the end, ignored. */
  invalidTailBytes: number;
}

function u32be(b: Uint8Array, at: number): number {
  return ((b[at]! << 24) | (b[at + 1]! << 16) | (b[at + 2]! << 8) | b[at + 3]!) >>> 0;
}

/**
 * SQLite's WAL checksum (walChecksumBytes): a Fibonacci-weighted sum over 32-bit words,
 * continued from `s0`/`s1`. `length` is a multiple of 8.
 */
export function walChecksum(data: Uint8Array, offset: number, length: number, bigEndian: boolean, s0: number, s1: number): [number, number] {
  const view = new DataView(data.buffer, data.byteOffset + offset, length);
  const little = !bigEndian;
  let a = s0 >>> 0;
  let b = s1 >>> 0;
  for (let i = 0; i < length; i += 8) {
    a = (a + view.getUint32(i, little) + b) >>> 0;
    b = (b + view.getUint32(i + 4, little) + a) >>> 0;
  }
  return [a, b];
}

export function readWalHeader(wal: Uint8Array): { header?: WalHeader; problem?: string; unsupported?: boolean } {
  if (wal.length < WAL_HEADER_BYTES) return { problem: wal.length === 0 ? "empty" : `only ${wal.length} bytes, shorter than the 32-byte WAL header` };
  const magic = u32be(wal, 0);
  if (magic !== WAL_MAGIC_LE && magic !== WAL_MAGIC_BE) return { problem: `bad magic 0x${magic.toString(16)}` };
  const bigEndianChecksums = magic === WAL_MAGIC_BE;
  const pageSize = u32be(wal, 8);
  if (pageSize < 512 || pageSize > 65536 || (pageSize & (pageSize - 1)) !== 0) return { problem: `invalid page size ${pageSize}` };
  const [c1, c2] = walChecksum(wal, 0, 24, bigEndianChecksums, 0, 0);
  if (c1 !== u32be(wal, 24) || c2 !== u32be(wal, 28)) return { problem: "header checksum mismatch" };
  // In SQLite's order: a well-formed header of a newer format makes SQLite refuse the
  // database rather than ignore the log, so it must not be read as "no WAL" here either.
  const version = u32be(wal, 4);
  if (version !== WAL_VERSION) return { problem: `unknown WAL format version ${version}`, unsupported: true };
  return { header: { pageSize, bigEndianChecksums, checkpointSequence: u32be(wal, 12), salt1: u32be(wal, 16), salt2: u32be(wal, 20) } };
}

/**
 * Walk the frames as SQLite's recovery (walIndexRecover) does: a frame is valid when its
 * salts equal the header's and its checksum continues the running checksum; the log ends
 * at the first frame that is not. Only frames up to the last valid commit frame count.
 */
export function scanWal(wal: Uint8Array): WalScan {
  const { header, problem, unsupported } = readWalHeader(wal);
  if (!header) {
    return { header, ...(problem ? { headerProblem: problem } : {}), ...(unsupported ? { unsupported } : {}), committedFrames: 0, commits: 0, databasePages: 0, uncommittedFrames: 0, invalidTailBytes: wal.length };
  }
  const frameBytes = WAL_FRAME_HEADER_BYTES + header.pageSize;
  let [s0, s1] = [u32be(wal, 24), u32be(wal, 28)];
  let frames = 0;
  let committedFrames = 0;
  let commits = 0;
  let databasePages = 0;
  for (let at = WAL_HEADER_BYTES; at + frameBytes <= wal.length; at += frameBytes) {
    const pageNumber = u32be(wal, at);
    if (pageNumber === 0) break;
    if (u32be(wal, at + 8) !== header.salt1 || u32be(wal, at + 12) !== header.salt2) break;
    // The checksum covers the first 8 bytes of the frame header, then the page.
    [s0, s1] = walChecksum(wal, at, 8, header.bigEndianChecksums, s0, s1);
    [s0, s1] = walChecksum(wal, at + WAL_FRAME_HEADER_BYTES, header.pageSize, header.bigEndianChecksums, s0, s1);
    if (s0 !== u32be(wal, at + 16) || s1 !== u32be(wal, at + 20)) break;
    frames++;
    const pagesAfterCommit = u32be(wal, at + 4);
    if (pagesAfterCommit !== 0) {
      committedFrames = frames;
      commits++;
      databasePages = pagesAfterCommit;
    }
  }
  return {
    header,
    committedFrames,
    commits,
    databasePages,
    uncommittedFrames: frames - committedFrames,
    invalidTailBytes: wal.length - WAL_HEADER_BYTES - frames * frameBytes,
  };
}

/**
 * Copy every committed frame's page over `image`, in log order so that the newest version
 * of each page wins. `image` must hold exactly `scan.databasePages` pages, with the main
 * file's pages in front; pages past the committed size (a transaction that shrank the
 * database) are not written. Returns the number of frames applied.
 */
export function applyWal(image: Uint8Array, wal: Uint8Array, scan: WalScan): number {
  const header = scan.header;
  if (!header || scan.committedFrames === 0) return 0;
  const { pageSize } = header;
  if (image.length !== scan.databasePages * pageSize) {
    throw new RangeError(`image is ${image.length} bytes; the committed WAL state is ${scan.databasePages} pages of ${pageSize} bytes`);
  }
  const frameBytes = WAL_FRAME_HEADER_BYTES + pageSize;
  let applied = 0;
  for (let i = 0; i < scan.committedFrames; i++) {
    const at = WAL_HEADER_BYTES + i * frameBytes;
    const pageNumber = u32be(wal, at);
    if (pageNumber > scan.databasePages) continue;
    image.set(wal.subarray(at + WAL_FRAME_HEADER_BYTES, at + frameBytes), (pageNumber - 1) * pageSize);
    applied++;
  }
  return applied;
}

/**
 * Where each page's newest committed version sits in the WAL: page number → offset of its
 * content, for pages within the committed database size. What applyWal copies, as an index,
 * so that a stream of the main file can substitute pages as they pass.
 */
export function walPageIndex(wal: Uint8Array, scan: WalScan): Map<number, number> {
  const index = new Map<number, number>();
  const header = scan.header;
  if (!header || scan.committedFrames === 0) return index;
  const frameBytes = WAL_FRAME_HEADER_BYTES + header.pageSize;
  for (let i = 0; i < scan.committedFrames; i++) {
    const at = WAL_HEADER_BYTES + i * frameBytes;
    const pageNumber = u32be(wal, at);
    if (pageNumber <= scan.databasePages) index.set(pageNumber, at + WAL_FRAME_HEADER_BYTES);
  }
  return index;
}
