/**
 * Source bytes → a checked, consistent database image and what describes it.
 */
import type { CheckMode } from "./config.js";
import { sha256Of } from "./compress.js";
import { checkImage } from "./sqlite/check.js";
import { markRollbackJournal, readHeader } from "./sqlite/header.js";
import type { Runtime } from "./runtime.js";
import type { SourceImage } from "./sources/source.js";

export interface Snapshot {
  bytes: Uint8Array;
  origin: string;
  sha256: string;
  pageSize: number;
  pageCount: number;
  sqliteVersion: string;
  tables: number;
  /** The source was a WAL-mode file; the image is marked rollback-journal (see markRollbackJournal). */
  fromWalMode: boolean;
}

export async function takeSnapshot(image: SourceImage, runtime: Pick<Runtime, "sqlite" | "sha256">, check: CheckMode): Promise<Snapshot> {
  const { bytes, origin } = image;
  const header = readHeader(bytes, origin);
  const fromWalMode = markRollbackJournal(bytes);
  const info = checkImage(runtime.sqlite, bytes, check, origin);
  // Hash after the check so the digest covers exactly the bytes that get compressed.
  const sha256 = await sha256Of(bytes, runtime.sha256());
  return {
    bytes,
    origin,
    sha256,
    pageSize: header.pageSize,
    pageCount: info.pageCount,
    sqliteVersion: info.sqliteVersion,
    tables: info.tables,
    fromWalMode,
  };
}
