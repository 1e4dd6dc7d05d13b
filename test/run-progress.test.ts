/**
 * The progress a run reports for the status page (RunOptions.onProgress), on both pipelines,
 * against the in-process S3 server with real SQLite files: the phases in order, and bytes
 * that only grow and end at the image's size.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createNodeRuntime, NODE_MAX_BYTES, nodeFiles } from "../functions/node-runtime.js";
import { createBackupRunner } from "../src/backup.js";
import { parseConfig } from "../src/config.js";
import { silentLogger } from "../src/log.js";
import type { RunProgress } from "../src/runs.js";
import type { Runtime } from "../src/runtime.js";
import { createSource } from "../src/sources/index.js";
import { createS3Store } from "../src/store/s3.js";
import { writeDatabase } from "./helpers/db.js";
import { startTestStore, type TestStore } from "./helpers/s3.js";

let s3: TestStore;
let dir: string;
let runtime: Runtime;

beforeAll(async () => {
  s3 = await startTestStore();
  dir = await mkdtemp(join(tmpdir(), "seb-progress-"));
  runtime = await createNodeRuntime(silentLogger);
});
afterAll(async () => {
  await s3?.close();
  await rm(dir, { recursive: true, force: true });
});

async function phasesOf(name: string, check: string): Promise<{ seen: RunProgress[]; size: number }> {
  const path = join(dir, `${name}.db`);
  const bytes = await writeDatabase(path, { rows: 500, targetBytes: 2 * 1024 * 1024 });
  const config = parseConfig(s3.env({ BACKUP_SOURCE: path, BACKUP_NAME: name, CHECK: check }), { maxBytes: NODE_MAX_BYTES });
  const source = createSource(config.source, { files: nodeFiles });
  const seen: RunProgress[] = [];
  await createBackupRunner({ config, runtime, store: createS3Store(config.s3), source }).run({ onProgress: (p) => seen.push({ ...p }) });
  return { seen, size: bytes.length };
}

/** Consecutive equal phases collapsed. */
const phases = (seen: RunProgress[]) => seen.map((p) => p.phase).filter((p, i, all) => p !== all[i - 1]);

describe("run progress", () => {
  it("in memory (CHECK=quick): reading → checking → uploading → verifying → pruning, the read ending at the image's size", async () => {
    const { seen, size } = await phasesOf("progquick", "quick");
    expect(phases(seen)).toEqual(["reading", "checking", "uploading", "verifying", "pruning"]);
    const reads = seen.filter((p) => p.phase === "reading").map((p) => p.bytesDone!);
    expect(reads).toEqual([...reads].sort((a, b) => a - b));
    expect(reads.at(-1)).toBe(size);
    const sent = seen.filter((p) => p.phase === "uploading").map((p) => p.uploadedBytes!);
    expect(sent).toEqual([...sent].sort((a, b) => a - b));
    expect(sent.at(-1)).toBeGreaterThan(0);
  });

  it("streamed (CHECK=structure): hashing → uploading (image bytes of the total) → verifying → pruning", async () => {
    const { seen, size } = await phasesOf("progstream", "structure");
    expect(phases(seen)).toEqual(["hashing", "uploading", "verifying", "pruning"]);
    for (const phase of ["hashing", "uploading"] as const) {
      const of = seen.filter((p) => p.phase === phase);
      const done = of.map((p) => p.bytesDone!);
      expect(done).toEqual([...done].sort((a, b) => a - b));
      expect(done.at(-1), phase).toBe(size);
      expect(of.every((p) => p.bytesTotal === size), phase).toBe(true);
    }
  });
});
