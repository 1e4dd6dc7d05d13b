/**
 * vitest globalSetup: build the Worker bundle once per run instead of once per test file
 * (each file runs in its own process with pool "forks"). Without it, test/workers/worker-bundle.ts builds the bundle in each test process. A failed
 * build here provides nothing, so the tests build again and report wrangler's error.
 */
import { rm } from "node:fs/promises";
import { dirname } from "node:path";
import type { TestProject } from "vitest/node";
import { buildWorker } from "./worker-bundle.js";

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const bundle = await buildWorker({ keep: true }).catch(() => undefined);
  if (bundle) project.provide("workerBundle", JSON.stringify(bundle));
  return async () => {
    // out/ lives inside the build's own temporary directory.
    if (bundle) await rm(dirname(bundle.dir), { recursive: true, force: true });
  };
}
