/**
 * The bundle `wrangler deploy` would upload — main of wrangler.toml, aliases and the .wasm
 * rule applied — is accepted by workerd and answers. workerd (locally and at upload)
 * rejects a main module whose named exports are not handlers or classes.
 */
import { readdir, readFile } from "node:fs/promises";
import { gzipSync } from "node:zlib";
import { join } from "node:path";
import { Miniflare } from "miniflare";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { releaseWorkerBundles, workerBundle, type WorkerBundle, bundleModules } from "./worker-bundle.js";

let bundle: WorkerBundle;
let mf: Miniflare | undefined;
const logs: string[] = [];

beforeAll(async () => {
  bundle = await workerBundle();
});
afterAll(async () => {
  // After a failed start, dispose() rethrows the start error; the test already reported it.
  await mf?.dispose().catch(() => undefined);
  releaseWorkerBundles();
});

describe("the deployable bundle", () => {
  it("is built from wrangler.toml's main with the xml-builder alias and the sql.js .wasm as a separate module", async () => {
    const files = await readdir(bundle.dir);
    expect(files).toContain("worker.js");
    expect(files.filter((f) => f.endsWith(".wasm"))).toHaveLength(1);
    const js = await readFile(bundle.scriptPath, "utf8");
    // The browser build of @aws-sdk/xml-builder needs DOMParser, which workerd lacks.
    expect(js).not.toMatch(/new DOMParser\b/);
    expect(js).toMatch(/from "\.\/[0-9a-f]+-sql-wasm-browser\.wasm"/);
  });

  it("fits the Workers Free plan's 3 MB compressed size limit", async () => {
    let total = 0;
    for (const f of await readdir(bundle.dir)) {
      if (f.endsWith(".js") || f.endsWith(".wasm")) total += gzipSync(await readFile(join(bundle.dir, f))).length;
    }
    expect(total).toBeGreaterThan(100_000);
    expect(total).toBeLessThan(3 * 1000 * 1000);
  });

  it("starts in workerd and serves GET /health (workerd accepts only handlers and classes as named exports of the main module)", async () => {
    mf = new Miniflare({
      ...bundleModules(bundle),
      bindings: { ...bundle.vars, BACKUP_SOURCE: "https://db.example.invalid/app.sqlite", S3_BUCKET: "startup" },
      handleStructuredLogs: ({ message }: { message: string }) => {
        logs.push(message);
      },
    });
    let status: number | undefined;
    let failure: unknown;
    try {
      const res = await mf.dispatchFetch("http://localhost/health");
      status = res.status;
      await res.text();
    } catch (err) {
      failure = err;
    }
    const why = failure ? `workerd did not start the bundle: ${failure instanceof Error ? failure.message : String(failure)}\nworkerd said:\n${logs.join("\n")}` : "";
    expect(failure === undefined, why).toBe(true);
    expect(status).toBe(200);
  });
});
