/**
 * The streamed image on its way to gzip: every byte passes through here once, and is
 * hashed, counted and (CHECK=structure) checked page by page; nothing is kept. The stream
 * ends only after the verdict: a damaged image, a wrong length or a source that changed
 * under the read fails the stream at its end, so the upload that reads it is aborted
 * before anything is committed.
 */
import type { CheckMode } from "./config.js";
import { BackupError } from "./errors.js";
import type { Sha256 } from "./runtime.js";
import { structureError } from "./sqlite/check.js";
import { HEADER_BYTES, readHeader } from "./sqlite/header.js";
import { StructureCheck } from "./sqlite/structure.js";
import { SourceChanged, type SourceImage } from "./sources/source.js";

export interface StreamFacts {
  bytes: number;
  sha256: string;
  pageSize: number;
  pageCount: number;
  /** Tables counted by the structural check (undefined with CHECK=none). */
  tables: number | undefined;
  /** False when the structural check could not read every schema row in one pass (StructureReport.complete). */
  checkComplete: boolean;
  /** The source was a WAL-mode file; the image is marked rollback-journal (as markRollbackJournal does). */
  fromWalMode: boolean;
  wal: SourceImage["wal"];
  d1Bookmark?: string;
}

export interface InspectOptions {
  check: Extract<CheckMode, "structure" | "none">;
  origin: string;
  maxBytes: number;
  sha256: Sha256;
  /** After the last byte, before the verdict: the source's own consistency check (SourceStream.settled). */
  settled: () => Promise<Pick<SourceImage, "wal" | "d1Bookmark">>;
  onProgress?: (bytes: number) => void;
  /** The sha256 an earlier read of the same source gave: any other digest fails the stream (SourceChanged) before it ends. */
  expectSha256?: string;
}

/** A length that passes readHeader's length checks, for the header alone (a multiple of every page size). */
const ANY_LENGTH = 2 ** 48;

export function inspectImage(source: ReadableStream<Uint8Array>, options: InspectOptions): { stream: ReadableStream<Uint8Array>; facts: Promise<StreamFacts> } {
  const { origin, maxBytes, sha256 } = options;
  const structure = options.check === "structure" ? new StructureCheck() : undefined;
  const reader = source.getReader();
  let head: Uint8Array | undefined = new Uint8Array(0);
  let firstHeader: Uint8Array | undefined;
  let fromWalMode = false;
  let total = 0;
  let resolve!: (f: StreamFacts) => void;
  let reject!: (e: unknown) => void;
  const facts = new Promise<StreamFacts>((res, rej) => ((resolve = res), (reject = rej)));
  facts.catch(() => undefined);

  const pass = (chunk: Uint8Array, controller: ReadableStreamDefaultController<Uint8Array>): void => {
    total += chunk.byteLength;
    if (total > maxBytes) throw new BackupError("SOURCE_TOO_LARGE", `${origin} is more than MAX_BYTES (${maxBytes}) bytes; the read was stopped.`, 413);
    sha256.update(chunk);
    structure?.update(chunk);
    options.onProgress?.(total);
    controller.enqueue(chunk);
  };

  /** One chunk from the source; the first bytes are held until the header is whole, then checked and marked at once. */
  const take = (chunk: Uint8Array, controller: ReadableStreamDefaultController<Uint8Array>): void => {
    if (!head) return pass(chunk, controller);
    const joined = new Uint8Array(head.length + chunk.byteLength);
    joined.set(head);
    joined.set(chunk, head.length);
    if (joined.length < HEADER_BYTES) {
      head = joined;
      return;
    }
    head = undefined;
    readHeader(joined.subarray(0, HEADER_BYTES), origin, ANY_LENGTH);
    // As markRollbackJournal: the image is complete, it needs no -wal file.
    if (joined[18] !== 1 || joined[19] !== 1) {
      fromWalMode = true;
      joined[18] = 1;
      joined[19] = 1;
    }
    firstHeader = joined.slice(0, HEADER_BYTES);
    pass(joined, controller);
  };

  /** After the last byte: lengths, the source's consistency, the structural verdict, the digest. */
  const end = async (controller: ReadableStreamDefaultController<Uint8Array>): Promise<StreamFacts> => {
    if (head && head.length > 0) pass(head, controller); // shorter than a header: readHeader says how
    const header = readHeader(firstHeader ?? head ?? new Uint8Array(0), origin, total);
    const { wal, d1Bookmark } = await options.settled();
    let tables: number | undefined;
    let checkComplete = true;
    if (structure) {
      const report = structure.finish();
      if (report.findings.length) throw structureError(origin, report.findings);
      if (report.pageCount !== header.pageCount) {
        throw new BackupError("SQLITE_CORRUPT", `${origin}: its header describes ${header.pageCount} pages, but the structural check read ${report.pageCount}.`, 422);
      }
      tables = report.tables;
      checkComplete = report.complete;
    }
    const digest = await sha256.digest();
    if (options.expectSha256 !== undefined && digest !== options.expectSha256) {
      throw new SourceChanged(`${origin} changed between the read that checked it (sha256 ${options.expectSha256}) and the read that uploads it (sha256 ${digest})`);
    }
    return { bytes: total, sha256: digest, pageSize: header.pageSize, pageCount: header.pageCount, tables, checkComplete, fromWalMode, wal, ...(d1Bookmark ? { d1Bookmark } : {}) };
  };

  const stream = new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        try {
          const { done, value } = await reader.read();
          if (!done) return take(value, controller);
          const result = await end(controller);
          controller.close();
          resolve(result);
        } catch (err) {
          // A failure of the source itself (a cut connection) ends up here as well as ours.
          reject(err);
          controller.error(err);
          await reader.cancel(err).catch(() => undefined);
        }
      },
      async cancel(reason) {
        reject(reason ?? new Error("the image stream was cancelled"));
        await reader.cancel(reason);
      },
    },
    // Nothing waits here beyond the chunk being passed on: backpressure reaches the source.
    { highWaterMark: 0 },
  );
  return { stream, facts };
}
