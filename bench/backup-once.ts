/**
 * One backup in this process (the S3 server runs in the parent), configured by the
 * environment like the CLI, then its time and memory as one JSON line on stdout: `ms` of the
 * backup() call, `loadedRss` (RSS once the code is loaded), `idleRss` (RSS of the ready
 * process, as a server at rest: config parsed, sql.js compiled; the baseline of "growth"),
 * `maxRss` (peak RSS of the process, worker threads included), `cpuUs` (user + system CPU
 * of the whole process during the backup() call: main thread, zlib's pool, the check's
 * worker thread) and `marks`: when (ms since the
 * backup() call) each log message was first seen, with the RSS then — the phases of the run;
 * `check`: the check the run chose (the `check` field of its log lines, e.g. CHECK=auto's pick).
 * Run by bench/run.ts.
 */
import { createNodeContext } from "../functions/node-context.js";
import type { Logger } from "../src/log.js";

const loaded = process.memoryUsage().rss;
let t0 = performance.now();
// Monotonic microseconds (the clock of --cpu-prof profiles), to cut a profile to the backup.
const monoUs = () => Number(process.hrtime.bigint() / 1000n);
let startUs = monoUs();
const marks: Record<string, { ms: number; rss: number }> = {};
let check: string | undefined;
const mark = (msg: string, fields?: Record<string, unknown>) => {
  marks[msg] ??= { ms: performance.now() - t0, rss: process.memoryUsage().rss };
  if (typeof fields?.check === "string") check ??= fields.check;
};
const logger: Logger = { debug: mark, info: mark, warn: mark, error: mark, child: () => logger };

const ctx = await createNodeContext(process.env, { logger });
const idle = process.memoryUsage().rss;
t0 = performance.now();
startUs = monoUs();
for (const k of Object.keys(marks)) delete marks[k];
check = undefined;
const cpu = process.cpuUsage();
const manifest = await ctx.service.backup();
const ms = performance.now() - t0;
const { user, system } = process.cpuUsage(cpu);
process.stdout.write(
  JSON.stringify({ ms, bytes: manifest.bytes, gzipBytes: manifest.gzipBytes, loadedRss: loaded, idleRss: idle, startUs, maxRss: process.resourceUsage().maxRSS * 1024, cpuUs: user + system, marks, ...(check ? { check } : {}) }) + "\n",
);
