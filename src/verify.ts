/**
 * Prove a stored backup: its size and metadata (HEAD), and optionally its content (read
 * back, gunzip, sha256). Used after every upload and by the `verify` command.
 */
import { hashStream } from "./compress.js";
import { BackupError } from "./errors.js";
import type { Runtime } from "./runtime.js";
import type { BackupStore, ObjectHead } from "./store/store.js";

export const BACKUP_FORMAT = "sqlite3+gzip";

export interface Expected {
  sha256: string;
  bytes: number;
  gzipBytes?: number;
}

export async function verifyHead(store: BackupStore, key: string, expected: Expected): Promise<ObjectHead> {
  const head = await store.head(key);
  if (!head) throw new BackupError("VERIFY_FAILED", `verification failed: ${key} is not in the store after its upload.`, 502);
  const problems: string[] = [];
  if (expected.gzipBytes !== undefined && head.size !== expected.gzipBytes) {
    problems.push(`size is ${head.size} bytes, ${expected.gzipBytes} were sent`);
  }
  if (head.metadata.sha256 !== expected.sha256) problems.push(`sha256 metadata is ${JSON.stringify(head.metadata.sha256 ?? null)}`);
  if (head.metadata.bytes !== String(expected.bytes)) problems.push(`bytes metadata is ${JSON.stringify(head.metadata.bytes ?? null)}`);
  if (problems.length) throw new BackupError("VERIFY_FAILED", `verification of ${key} failed: ${problems.join("; ")}.`, 502);
  return head;
}

/** Download, gunzip and hash; returns the digest and size of the decompressed content. */
export async function readBack(store: BackupStore, runtime: Pick<Runtime, "gunzip" | "sha256">, key: string): Promise<{ sha256: string; bytes: number }> {
  const body = await store.get(key);
  try {
    return await hashStream(body.pipeThrough(runtime.gunzip()), runtime.sha256());
  } catch (err) {
    if (err instanceof BackupError) throw err;
    const detail = err instanceof Error ? err.message : String(err);
    throw new BackupError("VERIFY_FAILED", `${key} does not decompress: ${detail}`, 502, { cause: err });
  }
}

export async function verifyContent(store: BackupStore, runtime: Pick<Runtime, "gunzip" | "sha256">, key: string, expected: Expected): Promise<void> {
  const got = await readBack(store, runtime, key);
  if (got.sha256 !== expected.sha256 || got.bytes !== expected.bytes) {
    throw new BackupError(
      "VERIFY_FAILED",
      `verification of ${key} failed: read back ${got.bytes} bytes with sha256 ${got.sha256}, expected ${expected.bytes} bytes with sha256 ${expected.sha256}.`,
      502,
    );
  }
}
