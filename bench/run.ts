/**
 * `npm run bench -- [MiB ...]` (default 64 256 1024; env BENCH_LEVELS, default "1,6";
 * BENCH_RUNS, default 1, reports the median run; BENCH_SHAPE=photos, databases mostly of
 * incompressible image blobs, written to bench/results-photos.md): this tool's backup against two baselines on
 * the same generated databases (bench/make-db.ts, cached in bench/cache/), in one run:
 *
 * - baseline A: `sqlite3 DB ".backup TMP"`, then `gzip -6 -c TMP > OUT`;
 * - baseline B: `sqlite3 DB ".backup TMP"`, then `pigz -p2 -1 -c TMP > OUT`;
 * - the tool: one full backup (read, sha256, check on a worker thread beside gzip on the
 *   thread pool and the multipart upload, verify, prune) per GZIP_LEVEL, in a child process (bench/backup-once.ts) so that its memory is only
 *   the backup's, to an in-process S3 server (functions/embedded-s3.ts) in this process.
 *
 * Every process runs under GNU `/usr/bin/time -f '%e %M %U %S'` (wall seconds, peak RSS KiB, CPU seconds); each
 * contestant starts after a read of the DB file (cat > /dev/null), so all find it in the page
 * cache. Prints a markdown table on stdout (progress on stderr) and writes bench/results.md.
 * Missing pigz or GNU time are installed with apt-get when run as root. Temporary files (the
 * baselines' copies and outputs, the S3 server's directory) live in one temp dir, removed at
 * the end, on failure and on Ctrl-C. Never part of npm test.
 */
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, open, readFile, rm, stat, writeFile } from "node:fs/promises";
import { availableParallelism, loadavg, release, tmpdir, totalmem, type } from "node:os";
import { join } from "node:path";
import { startEmbeddedS3, type EmbeddedS3 } from "../functions/embedded-s3.js";
import { benchDatabase, SHAPES, type Shape } from "./make-db.js";

const MiB = 1024 * 1024;
const TIME = "/usr/bin/time";
/** Any single step taking longer than this is killed and fails the run. */
const STEP_TIMEOUT_MS = 10 * 60 * 1000;
const ROOT = new URL("..", import.meta.url).pathname;

const sizeArgs = process.argv.slice(2);
const sizes = sizeArgs.length ? sizeArgs.map(Number) : [64, 256, 1024];
if (sizes.some((n) => !(n > 0))) fail(`sizes are MiB > 0, got: ${sizeArgs.join(" ")}`);
const levels = (process.env.BENCH_LEVELS ?? "1,6").split(",").map((s) => Number(s.trim()));
if (!levels.length || levels.some((l) => !Number.isInteger(l) || l < 1 || l > 9)) fail(`BENCH_LEVELS must be GZIP levels 1…9 separated by commas, got "${process.env.BENCH_LEVELS}"`);
const shape = (process.env.BENCH_SHAPE ?? "mixed") as Shape;
if (!SHAPES.includes(shape)) fail(`BENCH_SHAPE must be one of ${SHAPES.join(", ")}, got "${process.env.BENCH_SHAPE}"`);
const resultsFile = shape === "mixed" ? "results.md" : `results-${shape}.md`;
const runs = Number(process.env.BENCH_RUNS ?? "1");
if (!Number.isInteger(runs) || runs < 1 || runs > 9) fail(`BENCH_RUNS must be 1…9, got "${process.env.BENCH_RUNS}"`);

function fail(message: string): never {
  process.stderr.write(`bench: ${message}\n`);
  process.exit(2);
}

function progress(message: string): void {
  process.stderr.write(`bench: ${message}\n`);
}

// ---------------------------------------------------------------------------------------------
// Tools

function output(cmd: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) =>
    execFile(cmd, args, (err, stdout, stderr) => (err ? reject(err) : resolve(`${stdout}${stderr}`.trim()))),
  );
}

async function firstLine(cmd: string, args: string[]): Promise<string | undefined> {
  return output(cmd, args).then(
    (s) => s.split("\n")[0],
    () => undefined,
  );
}

async function gnuTime(): Promise<boolean> {
  if (!existsSync(TIME)) return false;
  return output(TIME, ["-f", "%e %M", "true"]).then(
    (s) => /^\d+\.\d+ \d+$/.test(s),
    () => false,
  );
}

interface Versions {
  sqlite3: string;
  gzip: string;
  pigz: string;
}

async function versions(): Promise<Partial<Versions>> {
  const [sqlite3, gzip, pigz] = await Promise.all([firstLine("sqlite3", ["--version"]), firstLine("gzip", ["--version"]), firstLine("pigz", ["--version"])]);
  return {
    ...(sqlite3 ? { sqlite3: sqlite3.split(" ").slice(0, 2).join(" ") } : {}),
    ...(gzip ? { gzip } : {}),
    ...(pigz ? { pigz } : {}),
  };
}

function aptGet(args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn("apt-get", ["-o", "DPkg::Lock::Timeout=120", ...args], {
      env: { ...process.env, DEBIAN_FRONTEND: "noninteractive" },
      stdio: ["ignore", "ignore", "inherit"],
    });
    child.on("error", reject);
    child.on("close", (code) => (code === 0 ? resolve() : reject(new Error(`apt-get ${args.join(" ")} exited with ${code}`))));
  });
}

/** The versions of sqlite3, gzip and pigz, installing what is missing (root + apt-get only). */
async function ensureTools(): Promise<Versions> {
  let found = await versions();
  const missing = [
    ...(found.sqlite3 ? [] : ["sqlite3"]),
    ...(found.gzip ? [] : ["gzip"]),
    ...(found.pigz ? [] : ["pigz"]),
    ...((await gnuTime()) ? [] : ["time"]),
  ];
  if (missing.length) {
    const install = `apt-get install -y ${missing.join(" ")}`;
    if (process.getuid?.() !== 0 || !(await firstLine("apt-get", ["--version"]))) {
      fail(`missing ${missing.join(", ")} (GNU time is /usr/bin/time). Install them, e.g. \`sudo ${install}\`, and run again.`);
    }
    progress(`installing ${missing.join(" ")} (${install})`);
    const packages = ["install", "-y", "--no-install-recommends", ...missing];
    await aptGet(packages).catch(async () => {
      progress("apt-get install failed; apt-get update and retry");
      await aptGet(["update"]);
      await aptGet(packages);
    });
    found = await versions();
    if (!found.sqlite3 || !found.gzip || !found.pigz || !(await gnuTime())) fail(`still missing tools after ${install}`);
  }
  return found as Versions;
}

// ---------------------------------------------------------------------------------------------
// Processes and clean-up

const children = new Set<ChildProcess>();
let workDir: string | undefined;
let s3: EmbeddedS3 | undefined;

async function cleanUp(): Promise<void> {
  for (const child of children) killGroup(child);
  await s3?.close().catch(() => undefined);
  s3 = undefined;
  if (workDir) await rm(workDir, { recursive: true, force: true });
  workDir = undefined;
}

function killGroup(child: ChildProcess): void {
  try {
    if (child.pid) process.kill(-child.pid, "SIGKILL");
  } catch {
    // already gone
  }
}

for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.once(signal, () => {
    progress(`${signal}: stopping and removing temporary files`);
    void cleanUp().finally(() => process.exit(130));
  });
}

interface Timed {
  wallS: number;
  maxRssBytes: number;
  /** User + system CPU seconds of the process and its children. */
  cpuS: number;
  stdout: string;
}

/**
 * Run `cmd args` under GNU time in its own process group (killed on timeout or Ctrl-C),
 * stdout to `stdoutFile` or collected.
 */
async function timed(cmd: string, args: string[], options: { stdoutFile?: string; env?: NodeJS.ProcessEnv } = {}): Promise<Timed> {
  const timeFile = join(workDir!, "time.txt");
  const out = options.stdoutFile ? await open(options.stdoutFile, "w") : undefined;
  const child = spawn(TIME, ["-o", timeFile, "-f", "%e %M %U %S", cmd, ...args], {
    cwd: ROOT,
    env: options.env ?? process.env,
    detached: true,
    stdio: ["ignore", out?.fd ?? "pipe", "pipe"],
  });
  children.add(child);
  let stdout = "";
  let stderr = "";
  child.stdout?.on("data", (d: Buffer) => (stdout += d.toString()));
  child.stderr?.on("data", (d: Buffer) => (stderr += d.toString()));
  const timer = setTimeout(() => killGroup(child), STEP_TIMEOUT_MS);
  try {
    const code = await new Promise<number | null>((resolve, reject) => {
      child.on("error", reject);
      child.on("close", resolve);
    });
    if (code !== 0) throw new Error(`${cmd} ${args.join(" ")} exited with ${code ?? "a signal"}${stderr.trim() ? `:\n${stderr.trim()}` : ""}`);
  } finally {
    clearTimeout(timer);
    children.delete(child);
    await out?.close();
  }
  const last = (await readFile(timeFile, "utf8")).trim().split("\n").pop() ?? "";
  const m = /^(\d+(?:\.\d+)?) (\d+) (\d+(?:\.\d+)?) (\d+(?:\.\d+)?)$/.exec(last);
  if (!m) throw new Error(`cannot read GNU time's output: ${last}`);
  return { wallS: Number(m[1]), maxRssBytes: Number(m[2]) * 1024, cpuS: Number(m[3]) + Number(m[4]), stdout };
}

/** Read the whole file so the next contestant finds it in the page cache. */
async function warmUp(path: string): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const child = spawn("cat", [path], { stdio: ["ignore", "ignore", "inherit"] });
    child.on("error", reject);
    child.on("close", (code) => (code === 0 ? resolve() : reject(new Error(`cat ${path} exited with ${code}`))));
  });
}

// ---------------------------------------------------------------------------------------------
// Contestants

interface Result {
  contestant: string;
  /** Wall seconds of the measured work: the baselines' steps summed; the tool's backup() call. */
  wallS: number;
  /** Wall seconds of the processes as GNU time saw them (the tool's includes Node + tsx start). */
  processWallS: number;
  /** Per-step walls, e.g. ".backup 0.21 + gzip 2.01", or the tool's phases. */
  steps?: string;
  compressedBytes: number;
  peakRssBytes: number;
  /** Baselines: peak RSS / DB bytes. Tool: (peak RSS − idle RSS at start) / DB bytes. */
  growth: number;
  /** CPU seconds of the measured work: the baselines' processes; the tool's process during backup(). */
  cpuS: number;
  /** The tool: CPU seconds the S3 server (this process) spent receiving it, on the same cores. */
  serverCpuS?: number;
}

async function baseline(db: string, dbBytes: number, name: string, compressor: string, compressorArgs: string[]): Promise<Result> {
  const tmp = join(workDir!, "copy.db");
  const gz = join(workDir!, "copy.db.gz");
  await rm(tmp, { force: true });
  try {
    const copy = await timed("sqlite3", [db, `.backup '${tmp}'`]);
    const squeeze = await timed(compressor, [...compressorArgs, "-c", tmp], { stdoutFile: gz });
    const peak = Math.max(copy.maxRssBytes, squeeze.maxRssBytes);
    return {
      contestant: name,
      wallS: copy.wallS + squeeze.wallS,
      processWallS: copy.wallS + squeeze.wallS,
      steps: `.backup ${copy.wallS.toFixed(2)} + ${compressor} ${squeeze.wallS.toFixed(2)}`,
      compressedBytes: (await stat(gz)).size,
      peakRssBytes: peak,
      growth: peak / dbBytes,
      cpuS: copy.cpuS + squeeze.cpuS,
    };
  } finally {
    await rm(tmp, { force: true });
    await rm(gz, { force: true });
  }
}

interface OnceReport {
  ms: number;
  bytes: number;
  gzipBytes: number;
  idleRss: number;
  maxRss: number;
  cpuUs: number;
  marks?: Record<string, { ms: number; rss: number }>;
}

/**
 * The tool's phases from the log messages of src/backup.ts ("image read; checking it beside
 * the upload" once read and hashed while the check runs on a worker thread, or "image checked"
 * once read, checked and hashed inline; "uploaded" once compressed and stored), if they are
 * still logged under those names.
 */
function phases(r: OnceReport): { steps?: string; memory: string } {
  const m = r.marks ?? {};
  const memory = Object.entries(m)
    .map(([msg, { ms, rss }]) => `${msg} ${(ms / 1000).toFixed(2)} s ${(rss / MiB).toFixed(0)} MiB`)
    .join("; ");
  const checked = m["image checked"]?.ms;
  const read = m["image read; checking it beside the upload"]?.ms;
  const uploaded = m["uploaded"]?.ms;
  const start = read ?? checked;
  if (start === undefined || uploaded === undefined || uploaded < start) return { memory };
  const s = (ms: number) => (ms / 1000).toFixed(2);
  const first = read !== undefined ? `read+sha256 ${s(read)} + gzip+upload ${s(uploaded - read)} (check beside it: done at ${checked === undefined ? "?" : s(checked)})` : `read+check ${s(start)} + gzip+upload ${s(uploaded - start)}`;
  return { steps: `${first} + verify+prune ${s(r.ms - uploaded)}`, memory };
}

async function tool(db: string, level: number): Promise<Result> {
  const cpu = process.cpuUsage();
  const t = await timed(process.execPath, ["--import", "tsx", new URL("./backup-once.ts", import.meta.url).pathname], {
    env: {
      PATH: process.env.PATH ?? "",
      AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: "true",
      BACKUP_SOURCE: db,
      S3_ENDPOINT: s3!.endpoint,
      S3_REGION: s3!.region,
      S3_BUCKET: s3!.bucket,
      S3_ACCESS_KEY_ID: s3!.accessKeyId,
      S3_SECRET_ACCESS_KEY: s3!.secretAccessKey,
      GZIP_LEVEL: String(level),
      MAX_COUNT: "2",
    },
  });
  const r = JSON.parse(t.stdout.trim().split("\n").pop() ?? "") as OnceReport;
  const peak = Math.max(t.maxRssBytes, r.maxRss);
  const { steps, memory } = phases(r);
  const { user, system } = process.cpuUsage(cpu);
  progress(`    idle RSS ${(r.idleRss / MiB).toFixed(0)} MiB; first log lines (time since backup(), RSS): ${memory}`);
  const serverCpuS = (user + system) / 1e6;
  progress(`    CPU of the backup: ${(r.cpuUs / 1e6).toFixed(2)} s; of this process (the S3 server) meanwhile: ${serverCpuS.toFixed(2)} s`);
  return {
    contestant: `tool, GZIP_LEVEL=${level}`,
    wallS: r.ms / 1000,
    processWallS: t.wallS,
    ...(steps ? { steps } : {}),
    compressedBytes: r.gzipBytes,
    peakRssBytes: peak,
    growth: (peak - r.idleRss) / r.bytes,
    cpuS: r.cpuUs / 1e6,
    serverCpuS,
  };
}

/** Run `once` BENCH_RUNS times (each after a warm-up read) and keep the median wall time. */
async function measure(db: string, label: string, once: () => Promise<Result>): Promise<Result> {
  const all: Result[] = [];
  for (let i = 0; i < runs; i++) {
    await warmUp(db);
    const r = await once();
    progress(`  ${label}${runs > 1 ? ` (run ${i + 1}/${runs})` : ""}: ${r.wallS.toFixed(2)} s, ${(r.compressedBytes / MiB).toFixed(1)} MiB, peak RSS ${(r.peakRssBytes / MiB).toFixed(0)} MiB`);
    all.push(r);
  }
  all.sort((a, b) => a.wallS - b.wallS);
  return all[Math.floor((all.length - 1) / 2)]!;
}

// ---------------------------------------------------------------------------------------------
// Report

/** The aggregate "cpu" line of /proc/stat (jiffies), or undefined off Linux. */
async function cpuTimes(): Promise<number[] | undefined> {
  const stat = await readFile("/proc/stat", "utf8").catch(() => "");
  const line = stat.split("\n").find((l) => l.startsWith("cpu "));
  return line?.trim().split(/\s+/).slice(1).map(Number);
}

/** Share of all CPU time that was steal (field 8) between two /proc/stat readings. */
function stealShare(before: number[] | undefined, after: number[] | undefined): number | undefined {
  if (!before || !after || after.length < 8) return undefined;
  const delta = after.map((v, i) => v - (before[i] ?? 0));
  // user nice system idle iowait irq softirq steal (guest times are already in user/nice).
  const total = delta.slice(0, 8).reduce((a, b) => a + b, 0);
  return total > 0 ? delta[7]! / total : undefined;
}

interface SizeResult {
  asked: number;
  dbBytes: number;
  results: Result[];
}

function table(rows: SizeResult[]): string {
  const lines = [
    "| DB size | contestant | wall s | MiB/s | × baseline A | × baseline B | compressed MiB (% of DB) | peak RSS MiB | peak RSS growth / DB | CPU s (+ S3 server) | process wall s | steps |",
    "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
  ];
  for (const { dbBytes, results } of rows) {
    const [a, b] = results;
    for (const r of results) {
      const mibs = dbBytes / MiB / r.wallS;
      const ratio = (base: Result | undefined) => (base ? `${(base.wallS / r.wallS).toFixed(2)}×` : "—");
      lines.push(
        `| ${(dbBytes / MiB).toFixed(1)} MiB | ${r.contestant} | ${r.wallS.toFixed(2)} | ${mibs.toFixed(1)} | ${ratio(a)} | ${ratio(b)} | ${(r.compressedBytes / MiB).toFixed(1)} (${((100 * r.compressedBytes) / dbBytes).toFixed(1)} %) | ${(r.peakRssBytes / MiB).toFixed(0)} | ${r.growth.toFixed(2)}× | ${r.cpuS.toFixed(2)}${r.serverCpuS !== undefined ? ` (+ ${r.serverCpuS.toFixed(2)})` : ""} | ${r.processWallS.toFixed(2)} | ${r.steps ?? ""} |`,
      );
    }
  }
  return lines.join("\n");
}

async function machine(v: Versions): Promise<string> {
  const cpuinfo = await readFile("/proc/cpuinfo", "utf8").catch(() => "");
  const model = /^model name\s*:\s*(.+)$/m.exec(cpuinfo)?.[1]?.trim() ?? "unknown CPU";
  return `${model}, ${availableParallelism()} cores (os.availableParallelism), ${(totalmem() / 1024 ** 3).toFixed(1)} GiB RAM, ${type()} ${release()}; Node ${process.version}, sqlite3 ${v.sqlite3}, ${v.gzip}, ${v.pigz}`;
}

function command(): string {
  const env = ["BENCH_SHAPE", "BENCH_LEVELS", "BENCH_RUNS"].filter((k) => process.env[k] !== undefined).map((k) => `${k}=${process.env[k]} `);
  return `${env.join("")}npm run bench${sizeArgs.length ? ` -- ${sizeArgs.join(" ")}` : ""}`;
}

// ---------------------------------------------------------------------------------------------
// Main

const started = new Date();
const tools = await ensureTools();
const load = loadavg();
const cpuBefore = await cpuTimes();
const rows: SizeResult[] = [];
try {
  workDir = await mkdtemp(join(tmpdir(), "seb-bench-"));
  s3 = await startEmbeddedS3({ directory: join(workDir, "s3"), bucket: "bench" });
  for (const asked of sizes) {
    progress(`database of ${asked} MiB (bench/make-db.ts; generated once, then cached)`);
    const db = await benchDatabase(asked, shape);
    const dbBytes = (await stat(db)).size;
    progress(`${db}: ${(dbBytes / MiB).toFixed(1)} MiB`);
    const results = [
      await measure(db, "baseline A (.backup + gzip -6)", () => baseline(db, dbBytes, "baseline A: .backup + gzip -6", "gzip", ["-6"])),
      await measure(db, "baseline B (.backup + pigz -p2 -1)", () => baseline(db, dbBytes, "baseline B: .backup + pigz -p2 -1", "pigz", ["-p2", "-1"])),
    ];
    for (const level of levels) results.push(await measure(db, `tool GZIP_LEVEL=${level}`, () => tool(db, level)));
    rows.push({ asked, dbBytes, results });
  }
} finally {
  await cleanUp();
}

const result = table(rows);
const seconds = ((Date.now() - started.getTime()) / 1000).toFixed(0);
console.log(result);
const loadAfter = loadavg();
const fmtLoad = (l: number[]) => l.map((x) => x.toFixed(2)).join(" ");
const stolen = stealShare(cpuBefore, await cpuTimes());
await writeFile(
  new URL(`./${resultsFile}`, import.meta.url),
  `# Backup benchmark

\`${command()}\` — ${started.toISOString()}, ${seconds} s in all.

Machine: ${await machine(tools)}.
Load average (1, 5, 15 min) before: ${fmtLoad(load)}; after: ${fmtLoad(loadAfter)}.${stolen === undefined ? "" : ` CPU time stolen by the hypervisor during the run: ${(100 * stolen).toFixed(1)} % (other tenants of a shared VM; above a few % the times are inflated).`}

Databases: bench/make-db.ts (cached in bench/cache/): mixed INTEGER/REAL/TEXT/JSON rows with three
indexes and ${shape === "photos" ? "32–288 KiB blobs of random bytes (images, as deflate sees them)" : "4–28 KiB blobs, half random bytes, half text"}; page size 4096.${runs > 1 ? ` Each contestant ran ${runs} times; the table shows the run with the median wall time.` : ""}

${result}

How to read:
- Baseline A is \`sqlite3 DB ".backup TMP" && gzip -6 -c TMP > OUT\`, baseline B the same with
  \`pigz -p2 -1\`; their wall time is the sum of the two steps ("steps"), their peak RSS the
  larger of the two processes' (GNU time %M), and growth is that peak / DB size.
- The tool is one full \`backup\` (read, sha256, PRAGMA quick_check on a worker thread beside
  gzip on libuv's thread pool and the multipart upload, HEAD verification, pruning) to an in-process S3 server, in a child process that does
  nothing else. Its wall time is the backup() call; "process wall s" adds Node and tsx start-up
  and loading the code (sql.js is loaded before the timer starts). Its growth is (peak RSS −
  RSS at start, after loading the code) / DB size. Its "steps" are phases read from its log
  lines: reading and checking the image, compressing and uploading, verifying and pruning.
- × baseline = baseline wall / contestant wall: above 1 is faster than that baseline.
- CPU s is user + system CPU: the baselines' two processes (GNU time %U + %S); the tool's
  whole process (main thread, zlib's thread pool, the check's worker thread) during the
  backup() call, and in brackets the S3 server's (this process) meanwhile. On 2 cores no
  contestant's wall time can be below its CPU seconds / 2, the S3 server's included.
- Every contestant starts with the DB file in the page cache (read just before). The S3 server
  shares the CPUs with the backup it receives, as a local MinIO would.
- A load average well above 0 before the run, or CPU time stolen by the hypervisor, means
  other work shared the CPUs: compare numbers only between quiet runs (BENCH_RUNS=3 keeps the
  median of three).
`,
);
progress(`wrote bench/${resultsFile} (${seconds} s)`);
