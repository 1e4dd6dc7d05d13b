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
import type { SourceImage } from "./sources/source.js";

export interface StreamFacts {
  bytes: number;
  sha256: string;
  pageSize: number;
  pageCount: number;
  /** Tables counted by the structural check (undefined with CHECK=none). */
  tables: number | undefined;
  /** The source was a WAL-mode file; the image is marked rollback-journal (as markRollbackJournal does). */
  fromWalMode: boolean;
  wal: SourceImage["wal"];
}

export interface InspectOptions {
  check: Extract<CheckMode, "structure" | "none">;
  origin: string;
  maxBytes: number;
  sha256: Sha256;
  /** After the last byte, before the verdict: the source's own consistency check (SourceStream.settled). */
  settled: () => Promise<Pick<SourceImage, "wal">>;
  onProgress?: (bytes: number) => void;
}

/** A length that passes readHeader's length checks, for the header alone (a multiple of every page size). */
const ANY_LENGTH = 2 ** 48;

export function inspectImage(options: InspectOptions): { transform: TransformStream<Uint8Array, Uint8Array>; facts: Promise<StreamFacts> } {
  const { origin, maxBytes, sha256 } = options;
  const structure = options.check === "structure" ? new StructureCheck() : undefined;
  let head: Uint8Array | undefined = new Uint8Array(0);
  let firstHeader: Uint8Array | undefined;
  let fromWalMode = false;
  let total = 0;
  let resolve!: (f: StreamFacts) => void;
  let reject!: (e: unknown) => void;
  const facts = new Promise<StreamFacts>((res, rej) => ((resolve = res), (reject = rej)));
  facts.catch(() => undefined);

  const pass = (chunk: Uint8Array, controller: TransformStreamDefaultController<Uint8Array>): void => {
    total += chunk.byteLength;
    if (total > maxBytes) throw new BackupError("SOURCE_TOO_LARGE", `${origin} is more than MAX_BYTES (${maxBytes}) bytes; the read was stopped.`, 413);
    sha256.update(chunk);
    structure?.update(chunk);
    options.onProgress?.(total);
    controller.enqueue(chunk);
  };

  const transform = new TransformStream<Uint8Array, Uint8Array>(
    {
      transform(chunk, controller) {
        try {
          if (head) {
            // Hold the first bytes until the header is whole: it is checked, and marked, at once.
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
            return;
          }
          pass(chunk, controller);
        } catch (err) {
          reject(err);
          throw err;
        }
      },
      async flush(controller) {
        try {
          if (head && head.length > 0) pass(head, controller); // shorter than a header: readHeader says how
          const header = readHeader(firstHeader ?? head ?? new Uint8Array(0), origin, total);
          const wal = await options.settled();
          let tables: number | undefined;
          if (structure) {
            const report = structure.finish();
            if (report.findings.length) throw structureError(origin, report.findings);
            if (report.pageCount !== header.pageCount) {
              throw new BackupError("SQLITE_CORRUPT", `${origin}: its header describes ${header.pageCount} pages, but the structural check read ${report.pageCount}.`, 422);
            }
            tables = report.tables;
          }
          resolve({ bytes: total, sha256: await sha256.digest(), pageSize: header.pageSize, pageCount: header.pageCount, tables, fromWalMode, wal: wal.wal });
        } catch (err) {
          reject(err);
          throw err;
        }
      },
    },
    // One chunk waiting on each side: backpressure reaches the source.
    { highWaterMark: 1 },
    { highWaterMark: 1 },
  );
  return { transform, facts };
}
