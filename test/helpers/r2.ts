/**
 * Miniflare's R2 (the real local implementation workerd's bindings use), from Node: a
 * Miniflare instance with the given R2 buckets persisted to a temporary directory, so that
 * tests can also look at what the binding API cannot show — multipart uploads still in
 * progress — in Miniflare's own bookkeeping (its SQLite tables, read with the sqlite3 CLI).
 */
import { execFileSync } from "node:child_process";
import { existsSync, readdirSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Miniflare } from "miniflare";
import type { R2BucketLike } from "../../src/store/r2.js";

export interface TestR2 {
  mf: Miniflare;
  /** Where Miniflare keeps the buckets (pass as r2Persist to share them with a Worker). */
  persist: string;
  bucket(name: string): Promise<R2BucketLike>;
  close(): Promise<void>;
}

export async function startTestR2(buckets: string[]): Promise<TestR2> {
  const persist = await mkdtemp(join(tmpdir(), "seb-r2-"));
  const mf = new Miniflare({ modules: true, script: "export default { fetch() { return new Response('') } }", r2Buckets: buckets, r2Persist: persist });
  await mf.ready;
  return {
    mf,
    persist,
    bucket: async (name) => (await mf.getR2Bucket(name)) as unknown as R2BucketLike,
    async close() {
      await mf.dispose();
      await rm(persist, { recursive: true, force: true });
    },
  };
}

/**
 * Multipart uploads Miniflare has in progress (neither completed nor aborted), over every
 * bucket persisted in `persist`: what R2's dashboard would list as unfinished uploads.
 */
export function uploadsInProgress(persist: string): { key: string; uploadId: string }[] {
  return multipartUploads(persist)
    .filter((u) => u.state === "in progress")
    .map(({ key, uploadId }) => ({ key, uploadId }));
}

/** Every multipart upload Miniflare has a record of, with its state. */
export function multipartUploads(persist: string): { key: string; uploadId: string; state: "in progress" | "completed" | "aborted" }[] {
  const dir = join(persist, "miniflare-R2BucketObject");
  if (!existsSync(dir)) return [];
  const out: { key: string; uploadId: string; state: "in progress" | "completed" | "aborted" }[] = [];
  for (const file of readdirSync(dir).filter((f) => f.endsWith(".sqlite") && f !== "metadata.sqlite")) {
    // state 0 = in progress, 1 completed, 2 aborted: miniflare's MultipartUploadState.
    const rows = execFileSync("sqlite3", ["-readonly", "-separator", "\t", join(dir, file), "SELECT key, upload_id, state FROM _mf_multipart_uploads"], { encoding: "utf8" }).trim();
    for (const line of rows ? rows.split("\n") : []) {
      const [key, uploadId, state] = line.split("\t");
      out.push({ key: key!, uploadId: uploadId!, state: (["in progress", "completed", "aborted"] as const)[Number(state)]! });
    }
  }
  return out;
}

/** Every key in `bucket` under `prefix`. */
export async function r2Keys(bucket: R2BucketLike, prefix = ""): Promise<string[]> {
  const out: string[] = [];
  let cursor: string | undefined;
  do {
    const page = await bucket.list({ prefix, ...(cursor ? { cursor } : {}) });
    out.push(...page.objects.map((o) => o.key));
    cursor = page.truncated ? page.cursor : undefined;
  } while (cursor);
  return out.sort();
}
