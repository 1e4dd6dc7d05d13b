/**
 * Memory of the real CLI on Node (issue 15): `npx tsx bench/node-memory.ts [MiB ...]`
 * (default 256 1024). For each size it makes (or finds) the mixed benchmark database
 * (bench/make-db.ts), starts the embedded S3 server (functions/embedded-s3.ts) in this
 * process, and runs `node --import tsx functions/cli.ts` as child processes:
 *
 *   list (the baseline), backup, backup with VERIFY=full, restore latest --to …, verify latest
 *
 * each NODE_MEMORY_RUNS times (default 1; the table gives the median and the range).
 * A worker thread samples the child's /proc/<pid>/status every NODE_MEMORY_SAMPLE_MS (default
 * 25) ms, VmRSS and VmHWM (the kernel's own peak, so a spike between samples is not missed).
 *
 * Definitions (as the Node memory figures in docs/performance.md):
 * - peak = the child's VmHWM at its last sample (worker threads included);
 * - baseline = the peak of `list` with the same environment: a process that parsed the config,
 *   loaded the SDK, compiled sql.js and made an S3 request, and did nothing else;
 * - growth = peak − baseline. Also shown: `start`, the VmRSS when the command's first log line
 *   appeared (work about to start), and the peak growth over it.
 * - MiB/s = database bytes / the command's own duration (its JSON `durationMs`; process wall
 *   time for restore/verify, which do not report one).
 *
 * NODE_MEMORY_TRACE=1 adds bench/memory-probe.mjs to the children (process.memoryUsage()
 * every 20 ms: heap, external, arrayBuffers) and prints, per command, those fields at the RSS
 * peak and their maxima; traces are kept in the work directory (NODE_MEMORY_KEEP=1 keeps it).
 * NODE_MEMORY_ROOT runs the CLI of another checkout (A/B against an earlier commit).
 * Environment passed on: GZIP_LEVEL (default 1), CHECK, NODE_MEMORY_COMMANDS (a comma list of
 * backup,backup-full,restore,verify; default all).
 */
import { spawn } from "node:child_process";
import { mkdtemp, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Worker } from "node:worker_threads";
import { startEmbeddedS3 } from "../functions/embedded-s3.js";
import { benchDatabase } from "./make-db.js";

const MiB = 1024 * 1024;
const root = new URL("..", import.meta.url).pathname;
/** The tree whose functions/cli.ts runs (NODE_MEMORY_ROOT: e.g. a checkout of an earlier commit, for A/B runs). */
const cliRoot = process.env.NODE_MEMORY_ROOT ?? root;
const sizes = process.argv.slice(2).map(Number);
if (!sizes.length) sizes.push(256, 1024);
const runs = Number(process.env.NODE_MEMORY_RUNS ?? "1");
const sampleMs = Number(process.env.NODE_MEMORY_SAMPLE_MS ?? "25");
const trace = process.env.NODE_MEMORY_TRACE === "1";
const level = process.env.GZIP_LEVEL ?? "1";
const commands = (process.env.NODE_MEMORY_COMMANDS ?? "backup,backup-full,restore,verify").split(",");

/** Samples /proc/<pid>/status on its own thread, so this process's S3 server cannot delay it. */
const SAMPLER = `
const { parentPort, workerData } = require("node:worker_threads");
const { readFileSync } = require("node:fs");
const { pid, ms } = workerData;
const kib = (text, field) => { const m = new RegExp(field + ":\\\\s+(\\\\d+) kB").exec(text); return m ? Number(m[1]) * 1024 : undefined; };
const samples = [];
let hwm = 0;
const t0 = performance.now();
const timer = setInterval(() => {
  let text;
  try { text = readFileSync("/proc/" + pid + "/status", "utf8"); } catch { return; }
  const rss = kib(text, "VmRSS"), h = kib(text, "VmHWM");
  if (rss === undefined) return;
  if (h !== undefined) hwm = Math.max(hwm, h);
  samples.push([Math.round(performance.now() - t0), rss]);
}, ms);
parentPort.on("message", () => { clearInterval(timer); parentPort.postMessage({ samples, hwm }); });
`;

interface RunResult {
  peak: number;
  startRss: number | undefined;
  firstLine: string | undefined;
  /** First time (s since spawn) of each log message. */
  phases: string[];
  wallMs: number;
  durationMs: number | undefined;
  stdout: string;
  probe?: string;
}

async function runCli(args: string[], env: NodeJS.ProcessEnv, probeFile?: string): Promise<RunResult> {
  const nodeArgs = [...(probeFile ? ["--import", join(root, "bench/memory-probe.mjs")] : []), "--import", "tsx", join(cliRoot, "functions/cli.ts"), ...args];
  const t0 = performance.now();
  const child = spawn(process.execPath, nodeArgs, { cwd: cliRoot, env: { ...env, ...(probeFile ? { MEMORY_PROBE_FILE: probeFile } : {}) }, stdio: ["ignore", "pipe", "pipe"] });
  const sampler = new Worker(SAMPLER, { eval: true, workerData: { pid: child.pid, ms: sampleMs } });
  let stdout = "";
  let stderr = "";
  let firstAt: number | undefined;
  const phases: string[] = [];
  child.stdout.on("data", (d) => (stdout += d));
  child.stderr.on("data", (d) => {
    firstAt ??= performance.now() - t0;
    stderr += d;
    for (const line of String(d).split("\n")) {
      const msg = /"msg":"([^"]+)"/.exec(line)?.[1];
      if (msg && !phases.some((p) => p.endsWith(` ${msg}`))) phases.push(`${((performance.now() - t0) / 1000).toFixed(1)}s ${msg}`);
    }
  });
  // The last sample must be taken while the child still exists: stop sampling at "exit" is
  // too late for /proc, so VmHWM (monotonic) carries the peak of the final milliseconds too.
  const code = await new Promise<number | null>((resolve) => child.on("close", resolve));
  const wallMs = performance.now() - t0;
  const { samples, hwm } = await new Promise<{ samples: [number, number][]; hwm: number }>((resolve) => {
    sampler.once("message", resolve);
    sampler.postMessage("stop");
  });
  await sampler.terminate();
  if (code !== 0) throw new Error(`cli ${args.join(" ")} exited ${code}:\n${stderr.slice(-3000)}`);
  const startRss = firstAt === undefined ? undefined : samples.find(([ms]) => ms >= firstAt!)?.[1];
  let durationMs: number | undefined;
  try {
    const json = JSON.parse(stdout) as { durationMs?: number };
    durationMs = typeof json.durationMs === "number" ? json.durationMs : undefined;
  } catch {
    /* not JSON */
  }
  const peak = Math.max(hwm, ...samples.map(([, r]) => r));
  return { peak, startRss, firstLine: stderr.split("\n")[0]?.slice(0, 120), phases, wallMs, durationMs, stdout, ...(probeFile ? { probe: probeFile } : {}) };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)]!;
const mib = (b: number) => (b / MiB).toFixed(0);

async function probeSummary(file: string): Promise<string> {
  const lines = (await readFile(file, "utf8")).trim().split("\n").map((l) => JSON.parse(l) as Record<string, number>);
  const atPeak = lines.reduce((a, b) => (b.rss! > a.rss! ? b : a));
  const max = (k: string) => Math.max(...lines.map((l) => l[k]!));
  const step = Math.max(1, Math.floor(lines.length / 16));
  const timeline = lines.filter((_, i) => i % step === 0).map((l) => `${(l.ms! / 1000).toFixed(1)}s ${mib(l.rss!)}/${mib(l.heapTotal!)}/${mib(l.arrayBuffers!)}`).join(" ");
  return `RSS/heapTotal/arrayBuffers MiB over time: ${timeline}\n  at RSS peak ${mib(atPeak.rss!)} MiB (t=${atPeak.ms} ms): heapUsed ${mib(atPeak.heapUsed!)}, heapTotal ${mib(atPeak.heapTotal!)}, external ${mib(atPeak.external!)}, arrayBuffers ${mib(atPeak.arrayBuffers!)}; maxima: heapTotal ${mib(max("heapTotal"))}, external ${mib(max("external"))}, arrayBuffers ${mib(max("arrayBuffers"))}`;
}

const rows: string[] = [];
for (const size of sizes) {
  const db = await benchDatabase(size);
  const bytes = (await stat(db)).size;
  const dir = await mkdtemp(join(tmpdir(), "node-memory-"));
  const s3 = await startEmbeddedS3({ directory: join(dir, "s3"), bucket: "bench" });
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH ?? "",
    HOME: process.env.HOME ?? "",
    AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: "true",
    BACKUP_SOURCE: db,
    S3_ENDPOINT: s3.endpoint,
    S3_REGION: s3.region,
    S3_BUCKET: s3.bucket,
    S3_ACCESS_KEY_ID: s3.accessKeyId,
    S3_SECRET_ACCESS_KEY: s3.secretAccessKey,
    GZIP_LEVEL: level,
    MAX_COUNT: "3",
    ...(process.env.CHECK ? { CHECK: process.env.CHECK } : {}),
    // Diagnostics only (allocator and V8 flags), never set in the reported runs.
    ...Object.fromEntries(Object.entries(process.env).filter(([k]) => k.startsWith("MALLOC_") || k === "NODE_OPTIONS")),
  };
  const results: Record<string, RunResult[]> = {};
  const baselines: number[] = [];
  try {
    for (let run = 0; run < runs; run++) {
      for (const command of commands) {
        const args =
          command === "restore" ? ["restore", "latest", "--to", join(dir, "restored.db"), "--force"] : command === "verify" ? ["verify", "latest"] : ["backup"];
        const e = command === "backup-full" ? { ...env, VERIFY: "full" } : env;
        const r = await runCli(args, e, trace ? join(dir, `${command}-${run}.jsonl`) : undefined);
        (results[command] ??= []).push(r);
        const rate = (bytes / MiB / ((r.durationMs ?? r.wallMs) / 1000)).toFixed(1);
        process.stderr.write(`${size} MiB ${command} run ${run + 1}: peak ${mib(r.peak)} MiB, start ${r.startRss ? mib(r.startRss) : "?"} MiB, ${rate} MiB/s (wall ${(r.wallMs / 1000).toFixed(1)} s)\n`);
        if (r.probe) process.stderr.write(`  ${await probeSummary(r.probe)}\n  log: ${r.phases.join("; ")}\n`);
        if (command === "restore") await rm(join(dir, "restored.db"), { force: true });
      }
      const list = await runCli(["list"], env, trace ? join(dir, `list-${run}.jsonl`) : undefined);
      if (list.probe) process.stderr.write(`  list: ${await probeSummary(list.probe)}\n`);
      baselines.push(list.peak);
      process.stderr.write(`${size} MiB list run ${run + 1}: peak ${mib(list.peak)} MiB\n`);
    }
    const baseline = median(baselines);
    for (const command of commands) {
      const rs = results[command]!;
      const growth = rs.map((r) => r.peak - baseline);
      const overStart = rs.map((r) => r.peak - (r.startRss ?? NaN));
      const rates = rs.map((r) => bytes / MiB / ((r.durationMs ?? r.wallMs) / 1000));
      const range = (xs: number[], f: (x: number) => string) => (xs.length > 1 ? ` (${f(Math.min(...xs))}–${f(Math.max(...xs))})` : "");
      rows.push(
        `| ${(bytes / MiB).toFixed(1)} MiB | ${command} | ${mib(baseline)} | ${rs.some((r) => r.startRss === undefined) ? "–" : mib(median(rs.map((r) => r.startRss!)))} | ${mib(median(rs.map((r) => r.peak)))} | **+${mib(median(growth))}**${range(growth, mib)} | ${overStart.some(Number.isNaN) ? "–" : `+${mib(median(overStart))}`} | ${median(rates).toFixed(1)}${range(rates, (x) => x.toFixed(1))} |`,
      );
    }
  } finally {
    await s3.close();
    if (process.env.NODE_MEMORY_KEEP !== "1") await rm(dir, { recursive: true, force: true });
    else process.stderr.write(`kept ${dir}\n`);
  }
}
console.log(`${cliRoot}: GZIP_LEVEL=${level}, ${runs} run(s), sampled every ${sampleMs} ms${trace ? ", with memory-probe (attribution run)" : ""}\n`);
console.log("| DB | command | baseline (list peak) MiB | RSS at first log line MiB | peak MiB | growth over baseline MiB | growth over first line MiB | MiB/s |");
console.log("|---|---|---:|---:|---:|---:|---:|---:|");
for (const r of rows) console.log(r);
