/**
 * The Worker exactly as `wrangler deploy` would upload it: wrangler bundles `main` of
 * wrangler.toml with its [alias] table and the .wasm module rules into a temporary
 * directory (`wrangler deploy --dry-run --outdir`, about 2–3 s), and the tests run that
 * bundle in workerd through Miniflare.
 *
 * Built once per test process (a module-level promise), or once per vitest run when
 * test/workers/global-setup.ts is registered as a globalSetup (it provides the directory).
 */
import { execFile } from "node:child_process";
import { existsSync, rmSync } from "node:fs";
import { mkdtemp, readFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

export const REPO_ROOT = resolve(fileURLToPath(new URL("../..", import.meta.url)));

export interface WorkerBundle {
  /** Directory holding the bundle (the Miniflare modulesRoot). */
  dir: string;
  /** The bundled main module. */
  scriptPath: string;
  /** wrangler.toml [vars]: the defaults a deployed Worker gets. */
  vars: Record<string, string>;
  /** wrangler.toml compatibility_date. */
  compatibilityDate: string;
}

declare module "vitest" {
  interface ProvidedContext {
    /** JSON of a WorkerBundle built by test/workers/global-setup.ts. */
    workerBundle?: string;
  }
}

let build: Promise<WorkerBundle> | undefined;
const ownDirs: string[] = [];

export function workerBundle(): Promise<WorkerBundle> {
  if (!build) {
    build = fromGlobalSetup().then((provided) => provided ?? buildWorker());
    build.catch(() => (build = undefined));
  }
  return build;
}

async function fromGlobalSetup(): Promise<WorkerBundle | undefined> {
  if (!process.env.VITEST) return undefined; // e.g. the bench script
  const { inject } = await import("vitest");
  const provided = inject("workerBundle");
  if (!provided) return undefined;
  const bundle = JSON.parse(provided) as WorkerBundle;
  return existsSync(bundle.scriptPath) ? bundle : undefined;
}

/** How Miniflare loads the bundle: the main module, the sql.js .wasm as a compiled module, wrangler.toml's date. */
export function bundleModules(bundle: WorkerBundle) {
  return {
    scriptPath: bundle.scriptPath,
    modulesRoot: bundle.dir,
    modules: true,
    modulesRules: [{ type: "CompiledWasm" as const, include: ["**/*.wasm"] }],
    compatibilityDate: bundle.compatibilityDate,
  };
}

/** Build into a fresh temporary directory, removed by releaseWorkerBundles() (or at exit) unless `keep`. */
export async function buildWorker(options: { keep?: boolean } = {}): Promise<WorkerBundle> {
  const root = await mkdtemp(join(tmpdir(), "seb-worker-"));
  if (!options.keep) ownDirs.push(root);
  const outdir = join(root, "out");
  const args = ["wrangler", "deploy", "--dry-run", "--config", join(REPO_ROOT, "wrangler.toml"), "--outdir", outdir];
  const scriptName = "worker.js";
  const started = Date.now();
  await new Promise<void>((resolvePromise, reject) => {
    execFile(
      "npx",
      args,
      {
        cwd: REPO_ROOT,
        env: { ...process.env, WRANGLER_SEND_METRICS: "false", NO_COLOR: "1", FORCE_COLOR: "0", CI: "1" },
        maxBuffer: 16 * 1024 * 1024,
        timeout: 120_000,
      },
      (err, stdout, stderr) => (err ? reject(new Error(`wrangler build failed:\n${stdout}\n${stderr}`, { cause: err })) : resolvePromise()),
    );
  });
  const scriptPath = join(outdir, scriptName);
  if (!existsSync(scriptPath)) throw new Error(`wrangler wrote no ${scriptName} in ${outdir}`);
  const toml = await readFile(join(REPO_ROOT, "wrangler.toml"), "utf8");
  const bundle: WorkerBundle = { dir: outdir, scriptPath, vars: tomlVars(toml), compatibilityDate: tomlString(toml, "compatibility_date") ?? "2026-04-20" };
  if (process.env.WORKER_BUNDLE_VERBOSE) console.error(`worker bundle built in ${Date.now() - started} ms: ${scriptPath}`);
  return bundle;
}

/**
 * Remove the bundles this process built (call it in afterAll, after disposing Miniflare):
 * vitest ends its fork processes without running "exit" handlers. Bundles provided by the
 * globalSetup are left to its teardown.
 */
export function releaseWorkerBundles(): void {
  for (const dir of ownDirs.splice(0)) rmSync(dir, { recursive: true, force: true });
  build = undefined;
}

process.on("exit", releaseWorkerBundles);

/** Top-level `key = "value"` of wrangler.toml (before any table). */
function tomlString(toml: string, key: string): string | undefined {
  const head = toml.split(/^\s*\[/m)[0] ?? "";
  return new RegExp(`^\\s*${key}\\s*=\\s*"([^"]*)"`, "m").exec(head)?.[1];
}

/** The uncommented `KEY = "value"` lines of the [vars] table. */
function tomlVars(toml: string): Record<string, string> {
  const vars: Record<string, string> = {};
  const section = /^\[vars\]\s*$([\s\S]*?)(?=^\[|(?![\s\S]))/m.exec(toml)?.[1] ?? "";
  for (const line of section.split("\n")) {
    const m = /^\s*([A-Z0-9_]+)\s*=\s*"([^"]*)"\s*(#.*)?$/.exec(line);
    if (m) vars[m[1]!] = m[2]!;
  }
  return vars;
}
