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
 * - the structural check (CHECK=structure, src/sqlite/structure.ts) on its own, for the sizes in
 *   BENCH_CHECK_SIZES (default "256,1024"; "none" skips it; a size not among the backup sizes
 *   gets its database and its backups all the same): its throughput fed in 1 MiB chunks from
 *   fs.createReadStream (bench/check-once.ts, a child process), without and with the reads, the
 *   state it holds and its RSS growth; PRAGMA quick_check in sql.js and in the sqlite3 CLI on the
 *   same file; its share of the tool's backup() at each level of the table above (whatever
 *   check the default CHECK picked there), and backup() at the first BENCH_LEVELS level with
 *   CHECK=quick and with CHECK=structure (a table row is reused where it ran that check).
 *   Written as the section "Structural check (CHECK=structure)" of the results file.
 *   BENCH_ONLY=check runs only this part (sizes from BENCH_CHECK_SIZES; the share is then of its
 *   CHECK=structure backup) and replaces only that section of the results file, keeping the rest.
 *
 * - against the script a user would write instead (issue 15), for the sizes in BENCH_PEER_SIZES
 *   (default "256,1024"; "none" skips it), BENCH_PEER_RUNS pairs (default 3), interleaved:
 *   the peer, `sqlite3 DB ".backup TMP"` then `pigz -p2 -1 -c TMP | rclone rcat` (Debian's
 *   rclone, configured by RCLONE_CONFIG_<NAME>_* variables only) into the same S3 server, and
 *   the whole CLI process as a user runs it (the installed command, `node dist/functions/bin.js
 *   backup`, built first; GZIP_LEVEL=1, LOCK=off); every stored object is downloaded, gunzipped and checked with
 *   sqlite3 afterwards. Written as the section "Against the script a user would write";
 *   BENCH_ONLY=peer runs only this part and replaces only that section. rclone is installed
 *   with apt-get like pigz.
 *
 * Every process runs under GNU `/usr/bin/time -f '%e %M %U %S'` (wall seconds, peak RSS KiB, CPU seconds); each
 * contestant starts after a read of the DB file (cat > /dev/null), so all find it in the page
 * cache. Prints a markdown table on stdout (progress on stderr) and writes bench/results.md.
 * Missing pigz or GNU time are installed with apt-get when run as root. Temporary files (the
 * baselines' copies and outputs, the S3 server's directory) live in one temp dir, removed at
 * the end, on failure and on Ctrl-C. Never part of npm test.
 */
import { execFile, execFileSync, spawn, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, open, readFile, rm, stat, writeFile } from "node:fs/promises";
import { availableParallelism, loadavg, release, tmpdir, totalmem, type } from "node:os";
import { basename, join } from "node:path";
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
const checkSizesEnv = (process.env.BENCH_CHECK_SIZES ?? "256,1024").trim();
const checkSizes = checkSizesEnv === "" || checkSizesEnv === "none" ? [] : checkSizesEnv.split(",").map((s) => Number(s.trim()));
if (checkSizes.some((n) => !(n > 0))) fail(`BENCH_CHECK_SIZES must be MiB > 0 separated by commas, or "none", got "${process.env.BENCH_CHECK_SIZES}"`);
const peerSizesEnv = (process.env.BENCH_PEER_SIZES ?? "256,1024").trim();
const peerSizes = peerSizesEnv === "" || peerSizesEnv === "none" ? [] : peerSizesEnv.split(",").map((s) => Number(s.trim()));
if (peerSizes.some((n) => !(n > 0))) fail(`BENCH_PEER_SIZES must be MiB > 0 separated by commas, or "none", got "${process.env.BENCH_PEER_SIZES}"`);
const peerRuns = Number(process.env.BENCH_PEER_RUNS ?? "3");
if (!Number.isInteger(peerRuns) || peerRuns < 1 || peerRuns > 9) fail(`BENCH_PEER_RUNS must be 1…9, got "${process.env.BENCH_PEER_RUNS}"`);
const only = process.env.BENCH_ONLY;
if (only !== undefined && only !== "check" && only !== "peer") fail(`BENCH_ONLY can only be "check" or "peer", got "${only}"`);
const checkOnly = only === "check";
const peerOnly = only === "peer";
if (only && sizeArgs.length) fail(`BENCH_ONLY=${only} measures the sizes in BENCH_${only.toUpperCase()}_SIZES; size arguments are for the backup table`);
if (checkOnly && !checkSizes.length) fail("BENCH_ONLY=check with BENCH_CHECK_SIZES=none leaves nothing to measure");
if (peerOnly && !peerSizes.length) fail("BENCH_ONLY=peer with BENCH_PEER_SIZES=none leaves nothing to measure");
/** Which parts run: the backup table (with the check part's sizes), the check part, the peer part. */
const runTable = !only;
const runCheck = !peerOnly;
const runPeer = !checkOnly;
/** The GZIP_LEVEL of the check part's backups (CHECK=quick against CHECK=structure). */
const checkLevel = levels[0]!;

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
  /** Only when the peer part runs. */
  rclone?: string;
}

async function versions(): Promise<Partial<Versions>> {
  const [sqlite3, gzip, pigz, rclone] = await Promise.all([firstLine("sqlite3", ["--version"]), firstLine("gzip", ["--version"]), firstLine("pigz", ["--version"]), firstLine("rclone", ["version"])]);
  return {
    ...(sqlite3 ? { sqlite3: sqlite3.split(" ").slice(0, 2).join(" ") } : {}),
    ...(gzip ? { gzip } : {}),
    ...(pigz ? { pigz } : {}),
    ...(rclone ? { rclone } : {}),
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

/** The versions of sqlite3, gzip, pigz (and rclone for the peer part), installing what is missing (root + apt-get only). */
async function ensureTools(needRclone: boolean): Promise<Versions> {
  let found = await versions();
  const missing = [
    ...(found.sqlite3 ? [] : ["sqlite3"]),
    ...(found.gzip ? [] : ["gzip"]),
    ...(found.pigz ? [] : ["pigz"]),
    ...(found.rclone || !needRclone ? [] : ["rclone"]),
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
    if (!found.sqlite3 || !found.gzip || !found.pigz || (needRclone && !found.rclone) || !(await gnuTime())) fail(`still missing tools after ${install}`);
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
  stderr: string;
  /** Date.now() just before the process was spawned. */
  spawnedAt: number;
}

/**
 * Run `cmd args` under GNU time in its own process group (killed on timeout or Ctrl-C),
 * stdout to `stdoutFile` or collected.
 */
async function timed(cmd: string, args: string[], options: { stdoutFile?: string; env?: NodeJS.ProcessEnv } = {}): Promise<Timed> {
  const timeFile = join(workDir!, "time.txt");
  const out = options.stdoutFile ? await open(options.stdoutFile, "w") : undefined;
  const spawnedAt = Date.now();
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
  return { wallS: Number(m[1]), maxRssBytes: Number(m[2]) * 1024, cpuS: Number(m[3]) + Number(m[4]), stdout, stderr, spawnedAt };
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
  /** The tool: the check its run chose (CHECK, or what CHECK=auto picked), from its log lines. */
  check?: string;
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
  check?: string;
}

type Marks = Record<string, { ms: number; rss?: number }>;

/**
 * The tool's phases from the log messages of src/backup.ts (`marks`: ms since the backup()
 * call at which each message was first logged; `totalMs`: the whole call), if they are still
 * logged under these names. Two pipelines log different marks:
 * - streamed from a file: "image read and hashed; uploading it" after a first read that hashes
 *   it, then as below but uploaded straight to the key (no copy);
 * - streamed (CHECK=structure or none; "streaming the image" once the check is chosen and the
 *   source opened): the source is read, hashed, checked, compressed and uploaded to
 *   `{key}.partial` in one pass, which ends with "image checked" (the last part stored and the
 *   check's verdict in); "uploaded" follows the server-side copy to the key (with the sha256 in
 *   its metadata) and the delete of the .partial; then "verified", then pruning;
 * - in memory (CHECK=quick or full): "image read; checking it beside the upload" once read and
 *   hashed while the check runs on a worker thread, or "image checked" once read, checked and
 *   hashed inline; "uploaded" once compressed and stored.
 */
function phases(m: Marks, totalMs: number): { steps?: string; memory: string } {
  const memory = Object.entries(m)
    .map(([msg, { ms, rss }]) => `${msg} ${(ms / 1000).toFixed(2)} s${rss === undefined ? "" : ` ${(rss / MiB).toFixed(0)} MiB`}`)
    .join("; ");
  const s = (ms: number) => (ms / 1000).toFixed(2);
  const checked = m["image checked"]?.ms;
  const uploaded = m["uploaded"]?.ms;
  const verified = m["verified"]?.ms;
  const streaming = m["streaming the image"]?.ms;
  const looked = m["image read and hashed; uploading it"]?.ms;
  if (streaming !== undefined) {
    if (checked === undefined || uploaded === undefined || verified === undefined || !(streaming <= checked && checked <= uploaded && uploaded <= verified)) return { memory };
    // A file: read+sha256 first, then read+check+gzip+upload straight to the key (no copy).
    const first = looked !== undefined && looked <= streaming ? `read+sha256 ${s(looked)} + open ${s(streaming - looked)} + read+check+gzip+upload ${s(checked - streaming)}` : `open ${s(streaming)} + read+check+gzip+upload ${s(checked - streaming)}`;
    const copy = looked !== undefined && looked <= streaming ? "" : ` + copy .partial→key ${s(uploaded - checked)}`;
    return { steps: `${first}${copy} + verify ${s(verified - uploaded)} + prune ${s(totalMs - verified)}`, memory };
  }
  const read = m["image read; checking it beside the upload"]?.ms;
  const start = read ?? checked;
  if (start === undefined || uploaded === undefined || uploaded < start) return { memory };
  const first = read !== undefined ? `read+sha256 ${s(read)} + gzip+upload ${s(uploaded - read)} (check beside it: done at ${checked === undefined ? "?" : s(checked)})` : `read+check ${s(start)} + gzip+upload ${s(uploaded - start)}`;
  return { steps: `${first} + verify+prune ${s(totalMs - uploaded)}`, memory };
}

async function tool(db: string, level: number, check?: "quick" | "structure"): Promise<Result> {
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
      ...(check ? { CHECK: check } : {}),
    },
  });
  const r = JSON.parse(t.stdout.trim().split("\n").pop() ?? "") as OnceReport;
  const peak = Math.max(t.maxRssBytes, r.maxRss);
  const { steps, memory } = phases(r.marks ?? {}, r.ms);
  const { user, system } = process.cpuUsage(cpu);
  progress(`    idle RSS ${(r.idleRss / MiB).toFixed(0)} MiB; first log lines (time since backup(), RSS): ${memory}`);
  const serverCpuS = (user + system) / 1e6;
  progress(`    CPU of the backup: ${(r.cpuUs / 1e6).toFixed(2)} s; of this process (the S3 server) meanwhile: ${serverCpuS.toFixed(2)} s`);
  return {
    contestant: `tool, GZIP_LEVEL=${level}${check ? `, CHECK=${check}` : ""}`,
    wallS: r.ms / 1000,
    processWallS: t.wallS,
    ...(steps ? { steps } : {}),
    compressedBytes: r.gzipBytes,
    peakRssBytes: peak,
    growth: (peak - r.idleRss) / r.bytes,
    cpuS: r.cpuUs / 1e6,
    serverCpuS,
    ...(r.check ? { check: r.check } : {}),
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
// The structural check (CHECK=structure) on its own

/** bench/check-once.ts's JSON line. */
interface CheckOnce {
  bytes: number;
  checkMs: number;
  totalMs: number;
  findings: string[];
  pageCount: number;
  stateBytes?: number;
  idleRss: number;
  peakRss: number;
}

interface CheckRow {
  asked: number;
  dbBytes: number;
  structure: CheckOnce;
  /** sql.js PRAGMA quick_check, or why it could not run. */
  sqljs: CheckOnce | string;
  /** sqlite3 -readonly DB 'PRAGMA quick_check' under GNU time. */
  cli: Timed;
  /** The tool's backup() per level in the table above (the default CHECK); empty with BENCH_ONLY=check. */
  table: Map<number, Result>;
  /** The tool's backup() at checkLevel with CHECK=quick and with CHECK=structure. */
  quickBackup: Result;
  structureBackup: Result;
}

async function checkOnce(mode: "structure" | "sqljs", db: string): Promise<CheckOnce> {
  const t = await timed(process.execPath, ["--import", "tsx", new URL("./check-once.ts", import.meta.url).pathname, mode, db], {
    env: { PATH: process.env.PATH ?? "" },
  });
  const r = JSON.parse(t.stdout.trim().split("\n").pop() ?? "") as CheckOnce;
  if (r.findings.length) throw new Error(`${mode} check of ${db} found: ${r.findings.slice(0, 3).join("; ")}`);
  return r;
}

/** Run `once` BENCH_RUNS times (each after a warm-up read) and keep the median by `key`. */
async function median<T>(db: string, label: string, key: (r: T) => number, describe: (r: T) => string, once: () => Promise<T>): Promise<T> {
  const all: T[] = [];
  for (let i = 0; i < runs; i++) {
    await warmUp(db);
    const r = await once();
    progress(`  ${label}${runs > 1 ? ` (run ${i + 1}/${runs})` : ""}: ${describe(r)}`);
    all.push(r);
  }
  all.sort((a, b) => key(a) - key(b));
  return all[Math.floor((all.length - 1) / 2)]!;
}

/** The check part for one database; `table` holds the backups of the table above at this size, by level. */
async function checkPart(asked: number, db: string, dbBytes: number, table: Map<number, Result>): Promise<CheckRow> {
  const mibs = (ms: number) => `${(ms / 1000).toFixed(2)} s (${(dbBytes / MiB / (ms / 1000)).toFixed(0)} MiB/s)`;
  const describe = (r: CheckOnce) => `${mibs(r.checkMs)}, with reads ${mibs(r.totalMs)}, RSS +${((r.peakRss - r.idleRss) / MiB).toFixed(0)} MiB${r.stateBytes !== undefined ? `, state ${(r.stateBytes / MiB).toFixed(2)} MiB` : ""}`;
  const structure = await median(db, "structure check (1 MiB chunks)", (r: CheckOnce) => r.checkMs, describe, () => checkOnce("structure", db));
  let sqljs: CheckOnce | string;
  try {
    sqljs = await median(db, "sql.js PRAGMA quick_check", (r: CheckOnce) => r.checkMs, describe, () => checkOnce("sqljs", db));
  } catch (err) {
    progress(`  sql.js PRAGMA quick_check failed: ${err instanceof Error ? err.message : String(err)}`);
    sqljs = "n/a (needs the whole image in memory)";
  }
  const cli = await median(db, "sqlite3 CLI PRAGMA quick_check", (r: Timed) => r.wallS, (r) => `${mibs(r.wallS * 1000)}, peak RSS ${(r.maxRssBytes / MiB).toFixed(0)} MiB`, async () => {
    const t = await timed("sqlite3", ["-readonly", db, "PRAGMA quick_check"]);
    if (t.stdout.trim() !== "ok") throw new Error(`sqlite3 PRAGMA quick_check of ${db}: ${t.stdout.trim().slice(0, 200)}`);
    return t;
  });
  const backup = async (check: "quick" | "structure") => {
    const row = table.get(checkLevel);
    if (row?.check === check) {
      progress(`  tool GZIP_LEVEL=${checkLevel} CHECK=${check}: the table's row (its default CHECK ran ${check})`);
      return row;
    }
    return measure(db, `tool GZIP_LEVEL=${checkLevel} CHECK=${check}`, () => tool(db, checkLevel, check));
  };
  const quickBackup = await backup("quick");
  const structureBackup = await backup("structure");
  return { asked, dbBytes, structure, sqljs, cli, table, quickBackup, structureBackup };
}

function checkTable(rows: CheckRow[]): string {
  const lines = [
    `| DB size | pages | structure check s (MiB/s) | with 1 MiB reads s (MiB/s) | check state MiB (bytes/page) | check RSS growth MiB | sql.js quick_check s (MiB/s), RSS growth | sqlite3 CLI quick_check s (MiB/s) | check s / backup() s | backup() GZIP_LEVEL=${checkLevel}: CHECK=quick s → CHECK=structure s |`,
    "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
  ];
  for (const r of rows) {
    const mib = r.dbBytes / MiB;
    const s = (sec: number) => `${sec.toFixed(2)} (${(mib / sec).toFixed(0)})`;
    const st = r.structure;
    const state = st.stateBytes ?? 0;
    const sqljs = typeof r.sqljs === "string" ? r.sqljs : `${s(r.sqljs.checkMs / 1000)}, +${((r.sqljs.peakRss - r.sqljs.idleRss) / MiB).toFixed(0)} MiB`;
    const backups: [number, Result][] = r.table.size ? [...r.table.entries()].sort(([a], [b]) => a - b) : [[checkLevel, r.structureBackup]];
    const share = backups
      .map(([level, b]) => `${((100 * st.checkMs) / 1000 / b.wallS).toFixed(1)} % of ${b.wallS.toFixed(2)} (level ${level}${b.check ? `, CHECK=${b.check}` : ""})`)
      .join("; ");
    lines.push(
      `| ${mib.toFixed(1)} MiB | ${st.pageCount} | ${s(st.checkMs / 1000)} | ${s(st.totalMs / 1000)} | ${(state / MiB).toFixed(2)} (${(state / st.pageCount).toFixed(1)}) | ${((st.peakRss - st.idleRss) / MiB).toFixed(0)} | ${sqljs} | ${s(r.cli.wallS)} | ${share} | ${r.quickBackup.wallS.toFixed(2)} → ${r.structureBackup.wallS.toFixed(2)} |`,
    );
  }
  return lines.join("\n");
}

const CHECK_HEADING = "## Structural check (CHECK=structure)";

function checkSection(rows: CheckRow[], provenance: string): string {
  return `${CHECK_HEADING}

${provenance}

${checkTable(rows)}

How to read:
- The structure check is src/sqlite/structure.ts in a child process of its own
  (bench/check-once.ts): the file read with \`fs.createReadStream\` in 1 MiB chunks, as a stream
  delivers it, each chunk handed to \`StructureCheck.update\`, then \`finish()\`. "structure
  check s" is the time inside update() and finish() only; "with 1 MiB reads" is from opening
  the file to the verdict. The file is in the page cache (read just before).
- Check state is the report's \`stateBytes\` (the page summaries and pointer logs it holds for
  the whole database), per page in brackets; RSS growth is the highest RSS sampled after every
  chunk minus the RSS before the first read (the stream's chunks not yet collected included).
- sql.js: the whole file read into one buffer and opened in place as the backup pipeline opens
  it (src/sqlite/check.ts openImage; no copy into WebAssembly memory), \`PRAGMA quick_check\`
  alone timed; its RSS growth includes the image. sqlite3 CLI: the wall time of
  \`sqlite3 -readonly DB 'PRAGMA quick_check'\` under GNU time, process start included.
- "check s / backup() s" is the structure check's time (without the reads) over the wall time
  of the tool's backup() measured in this run: the table above's rows, with the check their
  default CHECK picked (from the run's log lines); with BENCH_ONLY=check, the CHECK=structure
  backup of the last column. The target is ≤ 5 %.
- The last column is backup() at GZIP_LEVEL=${checkLevel} with CHECK=quick (sql.js on a worker
  thread, the image in memory), then with CHECK=structure (the structural check on the pages
  as they pass); a row of the table above is reused where its default CHECK ran the same
  check.${runs > 1 ? ` Every figure is the median of ${runs} runs.` : ""}
`;
}

// ---------------------------------------------------------------------------------------------
// The peer a user would script (issue 15), against the whole CLI process

/**
 * rclone's name for the embedded S3 server. rclone is configured by RCLONE_CONFIG_BENCHS3_*
 * variables only, with no config file (RCLONE_CONFIG=/notfound keeps it in memory), in an
 * environment of its own: AWS_CA_BUNDLE in particular must not reach it (rclone 1.60 fails to
 * build its HTTP client with it, "unsupported transport").
 */
const REMOTE = "benchs3";
const PEER_HEADING = "## Against the script a user would write (issue 15)";

function rcloneEnv(): NodeJS.ProcessEnv {
  const k = `RCLONE_CONFIG_${REMOTE.toUpperCase()}_`;
  return {
    PATH: process.env.PATH ?? "",
    HOME: workDir!,
    RCLONE_CONFIG: "/notfound",
    [`${k}TYPE`]: "s3",
    [`${k}PROVIDER`]: "Other",
    [`${k}ENDPOINT`]: s3!.endpoint,
    [`${k}ACCESS_KEY_ID`]: s3!.accessKeyId,
    [`${k}SECRET_ACCESS_KEY`]: s3!.secretAccessKey,
    [`${k}REGION`]: s3!.region,
    [`${k}FORCE_PATH_STYLE`]: "true",
  };
}

/** The environment of the CLI's `backup`: what a user sets for it, nothing else. */
function cliEnv(db: string): NodeJS.ProcessEnv {
  return {
    PATH: process.env.PATH ?? "",
    AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: "true",
    BACKUP_SOURCE: db,
    S3_ENDPOINT: s3!.endpoint,
    S3_REGION: s3!.region,
    S3_BUCKET: s3!.bucket,
    S3_ACCESS_KEY_ID: s3!.accessKeyId,
    S3_SECRET_ACCESS_KEY: s3!.secretAccessKey,
    GZIP_LEVEL: "1",
    LOCK: "off",
  };
}

/** The CLI as a user runs it once installed (`npx sqlite-edge-backup`): the compiled bin, built by peerPart. */
const CLI = ["dist/functions/bin.js"];
let built = false;
/** `npm run build` once per bench run, so the bin is this checkout's code. */
function buildOnce(): void {
  if (built) return;
  execFileSync(process.execPath, ["scripts/build.mjs"], { cwd: new URL("..", import.meta.url).pathname, stdio: "ignore" });
  built = true;
}

interface SqliteFacts {
  integrity?: string;
  /** "table count" lines, by table name. */
  counts: string;
}

async function sqliteFacts(path: string, integrity: boolean): Promise<SqliteFacts> {
  const tables = (await output("sqlite3", ["-readonly", path, "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name"])).split("\n").filter(Boolean);
  const query = tables.map((t) => `SELECT '${t.replaceAll("'", "''")}' || ' ' || count(*) FROM "${t.replaceAll('"', '""')}";`).join(" ");
  const counts = tables.length ? await output("sqlite3", ["-readonly", path, query]) : "";
  return { counts, ...(integrity ? { integrity: await output("sqlite3", ["-readonly", path, "PRAGMA integrity_check"]) } : {}) };
}

/**
 * Download `key` from the bucket with rclone, gunzip it, and prove it is the database:
 * sha256 of the gunzipped image as expected, `PRAGMA integrity_check` ok, the same row count
 * in every table as the source. Returns the stored (compressed) size and a summary.
 */
async function verifyStored(key: string, sha256: string, source: SqliteFacts): Promise<{ storedBytes: number; verified: string }> {
  const gz = join(workDir!, "fetched.gz");
  const image = join(workDir!, "fetched.db");
  try {
    await timed("rclone", ["copyto", `${REMOTE}:${s3!.bucket}/${key}`, gz], { env: rcloneEnv() });
    const storedBytes = (await stat(gz)).size;
    await timed("gunzip", ["-c", gz], { stdoutFile: image });
    await rm(gz, { force: true });
    const got = (await output("sha256sum", [image])).split(" ")[0];
    if (got !== sha256) throw new Error(`${key}: the gunzipped object's sha256 is ${got}, expected ${sha256}`);
    const facts = await sqliteFacts(image, true);
    if (facts.integrity !== "ok") throw new Error(`${key}: PRAGMA integrity_check: ${facts.integrity?.slice(0, 200)}`);
    if (facts.counts !== source.counts) throw new Error(`${key}: row counts differ from the source's:\n${facts.counts}\nagainst\n${source.counts}`);
    const rows = facts.counts.split("\n").reduce((n, l) => n + Number(l.split(" ").pop()), 0);
    return { storedBytes, verified: `sha256 of the gunzipped object as expected, integrity_check ok, ${rows} rows in ${facts.counts.split("\n").length} tables as in the source` };
  } finally {
    await rm(gz, { force: true });
    await rm(image, { force: true });
  }
}

interface PeerSide {
  /** Wall seconds of the whole thing as a user waits for it. */
  wallS: number;
  steps: string;
  /** Largest single process's peak RSS (GNU time %M). */
  peakRssBytes: number;
  cpuS: number;
  /** CPU seconds of this process (the S3 server) meanwhile. */
  serverCpuS: number;
  storedBytes: number;
  /** 1-minute load average just before the run. */
  load1: number;
  verified: string;
  /** The tool: its backup() call (the manifest's durationMs) and the process start-up before it. */
  backupS?: number;
  startupS?: number;
  check?: string;
}

interface PeerRow {
  asked: number;
  dbBytes: number;
  tool: PeerSide[];
  peer: PeerSide[];
}

/** One `node dist/functions/bin.js backup` (the installed command; GZIP_LEVEL=1, LOCK=off) under GNU time, its object checked afterwards. */
async function cliOnce(db: string, source: SqliteFacts): Promise<PeerSide> {
  const load1 = loadavg()[0]!;
  const cpu = process.cpuUsage();
  const t = await timed(process.execPath, [...CLI, "backup"], { env: cliEnv(db) });
  const { user, system } = process.cpuUsage(cpu);
  const manifest = JSON.parse(t.stdout) as { key: string; sha256: string; durationMs: number };
  // The JSON log lines on stderr: when each message was first seen.
  const seen = new Map<string, { at: number; check?: string }>();
  for (const line of t.stderr.split("\n")) {
    let entry: { time?: string; msg?: string; check?: unknown };
    try {
      entry = JSON.parse(line) as typeof entry;
    } catch {
      continue;
    }
    if (entry.time && entry.msg && !seen.has(entry.msg)) seen.set(entry.msg, { at: Date.parse(entry.time), ...(typeof entry.check === "string" ? { check: entry.check } : {}) });
  }
  const started = seen.get("backup started")?.at;
  const finished = seen.get("backup finished")?.at;
  if (started === undefined || finished === undefined) throw new Error(`the CLI's log has no "backup started" or "backup finished" line:\n${t.stderr.slice(0, 2000)}`);
  const marks: Marks = {};
  for (const [msg, { at }] of seen) marks[msg] = { ms: at - started };
  const startupS = (started - t.spawnedAt) / 1000;
  const exitS = t.wallS - startupS - manifest.durationMs / 1000;
  const { steps, memory } = phases(marks, manifest.durationMs);
  progress(`    log lines (s since "backup started"): ${memory}`);
  const check = [...seen.values()].find((v) => v.check)?.check;
  const { storedBytes, verified } = await verifyStored(manifest.key, manifest.sha256, source);
  return {
    wallS: t.wallS,
    steps: `start-up ${startupS.toFixed(2)} + ${steps ?? `backup() ${(manifest.durationMs / 1000).toFixed(2)}`} + exit ${exitS.toFixed(2)}`,
    peakRssBytes: t.maxRssBytes,
    cpuS: t.cpuS,
    serverCpuS: (user + system) / 1e6,
    storedBytes,
    load1,
    verified,
    backupS: manifest.durationMs / 1000,
    startupS,
    ...(check ? { check } : {}),
  };
}

/** `sqlite3 DB ".backup TMP"`, then `pigz -p2 -1 -c TMP | rclone rcat remote:bucket/key`; the object checked afterwards. */
async function peerOnce(db: string, run: number, source: SqliteFacts): Promise<PeerSide> {
  const tmp = join(workDir!, "peer-copy.db");
  const key = `peer/${basename(db, ".db")}-${run}.sqlite.gz`;
  await rm(tmp, { force: true });
  try {
    const load1 = loadavg()[0]!;
    const cpu = process.cpuUsage();
    const copy = await timed("sqlite3", [db, `.backup '${tmp}'`]);
    const ship = await timed("bash", ["-c", 'set -o pipefail; pigz -p2 -1 -c "$1" | rclone rcat "$2"', "peer", tmp, `${REMOTE}:${s3!.bucket}/${key}`], { env: rcloneEnv() });
    const { user, system } = process.cpuUsage(cpu);
    const sha256 = (await output("sha256sum", [tmp])).split(" ")[0]!;
    await rm(tmp, { force: true });
    const { storedBytes, verified } = await verifyStored(key, sha256, source);
    await timed("rclone", ["deletefile", `${REMOTE}:${s3!.bucket}/${key}`], { env: rcloneEnv() });
    return {
      wallS: copy.wallS + ship.wallS,
      steps: `.backup ${copy.wallS.toFixed(2)} + pigz | rclone rcat ${ship.wallS.toFixed(2)}`,
      peakRssBytes: Math.max(copy.maxRssBytes, ship.maxRssBytes),
      cpuS: copy.cpuS + ship.cpuS,
      serverCpuS: (user + system) / 1e6,
      storedBytes,
      load1,
      verified,
    };
  } finally {
    await rm(tmp, { force: true });
  }
}

/** The peer part at one size: BENCH_PEER_RUNS pairs, interleaved (tool, peer, tool, peer, …), each after a read of the DB. */
async function peerPart(asked: number, db: string, dbBytes: number): Promise<PeerRow> {
  buildOnce();
  const source = await sqliteFacts(db, false);
  const row: PeerRow = { asked, dbBytes, tool: [], peer: [] };
  const describe = (r: PeerSide) => `${r.wallS.toFixed(2)} s (${r.steps}), ${(r.storedBytes / MiB).toFixed(1)} MiB stored, peak RSS ${(r.peakRssBytes / MiB).toFixed(0)} MiB, CPU ${r.cpuS.toFixed(2)} s (+ S3 server ${r.serverCpuS.toFixed(2)}), load ${r.load1.toFixed(2)}; ${r.verified}`;
  for (let i = 1; i <= peerRuns; i++) {
    await warmUp(db);
    row.tool.push(await cliOnce(db, source));
    progress(`  tool CLI backup (run ${i}/${peerRuns}): ${describe(row.tool.at(-1)!)}`);
    await warmUp(db);
    row.peer.push(await peerOnce(db, i, source));
    progress(`  peer .backup + pigz | rclone rcat (run ${i}/${peerRuns}): ${describe(row.peer.at(-1)!)}`);
  }
  return row;
}

function medianOf(values: number[]): number {
  const v = [...values].sort((a, b) => a - b);
  const mid = Math.floor(v.length / 2);
  return v.length % 2 ? v[mid]! : (v[mid - 1]! + v[mid]!) / 2;
}

/** The run whose wall time is the (lower) median. */
function medianRun(runs: PeerSide[]): PeerSide {
  return [...runs].sort((a, b) => a.wallS - b.wallS)[Math.floor((runs.length - 1) / 2)]!;
}

function peerTable(rows: PeerRow[]): string {
  const lines = [
    `| DB size | contestant | wall s, median of ${peerRuns} | MiB/s | peer wall / tool wall | steps (the median run) | stored MiB | peak RSS MiB (largest process) | CPU s (+ S3 server) | load average (1 min) at each run's start |`,
    "|---|---|---:|---:|---:|---|---:|---:|---:|---|",
  ];
  for (const r of rows) {
    const mib = r.dbBytes / MiB;
    const tool = medianOf(r.tool.map((x) => x.wallS));
    const peer = medianOf(r.peer.map((x) => x.wallS));
    for (const [name, runs, ratio] of [
      ["tool: `sqlite-edge-backup backup` (dist/functions/bin.js), GZIP_LEVEL=1, LOCK=off", r.tool, `**${(peer / tool).toFixed(2)}×**`],
      ["peer: `sqlite3 .backup` + `pigz -p2 -1 \\| rclone rcat`", r.peer, "—"],
    ] as const) {
      const wall = medianOf(runs.map((x) => x.wallS));
      const m = medianRun(runs);
      lines.push(
        `| ${mib.toFixed(1)} MiB | ${name} | ${wall.toFixed(2)} (${runs.map((x) => x.wallS.toFixed(2)).join(", ")}) | ${(mib / wall).toFixed(1)} | ${ratio} | ${m.steps.replaceAll("|", "\\|")} | ${(m.storedBytes / MiB).toFixed(1)} | ${(medianOf(runs.map((x) => x.peakRssBytes)) / MiB).toFixed(0)} | ${medianOf(runs.map((x) => x.cpuS)).toFixed(2)} (+ ${medianOf(runs.map((x) => x.serverCpuS)).toFixed(2)}) | ${runs.map((x) => x.load1.toFixed(2)).join(", ")} |`,
      );
    }
  }
  return lines.join("\n");
}

function peerSection(rows: PeerRow[], provenance: string): string {
  const pipeline = rows
    .map((r) => {
      const peer = medianOf(r.peer.map((x) => x.wallS));
      const backup = medianOf(r.tool.map((x) => x.backupS ?? NaN));
      const startup = medianOf(r.tool.map((x) => x.startupS ?? NaN));
      return `${(r.dbBytes / MiB).toFixed(0)} MiB: backup() ${backup.toFixed(2)} s (${(peer / backup).toFixed(2)}× against the peer), start-up ${startup.toFixed(2)} s`;
    })
    .join("; ");
  const checks = [...new Set(rows.flatMap((r) => r.tool.map((x) => x.check ?? "?")))].join(", ");
  return `${PEER_HEADING}

${provenance}

${peerTable(rows)}

The tool without its process start-up and exit (medians): ${pipeline}. Its check: CHECK=auto chose ${checks}.

How to read:
- The peer is what a user would script instead, run as two steps under GNU time:
  \`sqlite3 DB ".backup TMP"\`, then \`bash -c 'set -o pipefail; pigz -p2 -1 -c TMP | rclone rcat
  ${REMOTE}:bucket/key'\` (rclone from Debian, configured only by \`RCLONE_CONFIG_${REMOTE.toUpperCase()}_*\`
  variables: TYPE=s3, PROVIDER=Other, ENDPOINT, ACCESS_KEY_ID, SECRET_ACCESS_KEY, REGION,
  FORCE_PATH_STYLE=true; no config file; its defaults: 5 MiB parts, 4 at a time). Its wall time is
  the sum of the two steps; it has no lock, no check, no verification, no retention.
- The tool is the whole CLI process as a user runs it: \`sqlite-edge-backup backup\` (the
  installed command: \`node dist/functions/bin.js backup\`, built by the bench first) with only BACKUP_SOURCE, S3_*,
  GZIP_LEVEL=1 and LOCK=off set (the script has no lock either), default CHECK, VERIFY and
  MAX_COUNT: start-up (Node, loading the code, config), the backup (a file: read and sha256;
  then read, sha256, structural check, gzip on the thread pool and multipart upload straight to
  the key with the sha256 in its metadata; HEAD verification, pruning) and exit. Its steps are from its own
  JSON log lines: start-up is from spawning the process to "backup started".
- Both store into the same S3 server (@20minutes/s3rver, in this process, on 127.0.0.1): it
  shares the 2 cores with the contestant, and its CPU is in brackets. Runs alternate (tool, peer,
  tool, peer, …), each after a read of the DB file, so both meet the same load; the load
  average at each run's start is listed because other work shared this machine.
- "peer wall / tool wall" is the ratio of the medians: at or above 1.00× the tool is at least as
  fast as the script (target ≥ 1.0×).
- Every stored object, the peer's and the tool's, was downloaded with rclone, gunzipped and
  checked after its run (not timed): sha256 of the image as expected (the peer's: that of its
  \`.backup\` copy; the tool's: its manifest's), \`PRAGMA integrity_check\` ok, and the same row
  count in every table as the source database.
`;
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
  return `${model}, ${availableParallelism()} cores (os.availableParallelism), ${(totalmem() / 1024 ** 3).toFixed(1)} GiB RAM, ${type()} ${release()}; Node ${process.version}, sqlite3 ${v.sqlite3}, ${v.gzip}, ${v.pigz}${v.rclone ? `, ${v.rclone}` : ""}`;
}

function command(): string {
  const env = ["BENCH_ONLY", "BENCH_SHAPE", "BENCH_LEVELS", "BENCH_RUNS", "BENCH_CHECK_SIZES", "BENCH_PEER_SIZES", "BENCH_PEER_RUNS"].filter((k) => process.env[k] !== undefined).map((k) => `${k}=${process.env[k]} `);
  return `${env.join("")}npm run bench${sizeArgs.length ? ` -- ${sizeArgs.join(" ")}` : ""}`;
}

/** The section of `doc` under `heading` (up to the next "## " heading) as `section`, or `section` appended. */
function withSection(doc: string, heading: string, section: string): string {
  const at = doc.indexOf(`\n${heading}\n`);
  if (at < 0) return `${doc.trimEnd()}\n\n${section}`;
  const next = doc.indexOf("\n## ", at + 1 + heading.length);
  return `${doc.slice(0, at + 1)}${section}${next < 0 ? "" : `\n${doc.slice(next + 1)}`}`;
}

/** The section under `heading` in `doc`, if any. */
function sectionOf(doc: string, heading: string): string | undefined {
  const at = doc.indexOf(`\n${heading}\n`);
  if (at < 0) return undefined;
  const next = doc.indexOf("\n## ", at + 1 + heading.length);
  return doc.slice(at + 1, next < 0 ? undefined : next + 1);
}

// ---------------------------------------------------------------------------------------------
// Main

const started = new Date();
const tools = await ensureTools(runPeer && peerSizes.length > 0);
const load = loadavg();
const cpuBefore = await cpuTimes();
const rows: SizeResult[] = [];
const checkRows: CheckRow[] = [];
const peerRows: PeerRow[] = [];
async function database(asked: number): Promise<{ db: string; dbBytes: number }> {
  progress(`database of ${asked} MiB (bench/make-db.ts; generated once, then cached)`);
  const db = await benchDatabase(asked, shape);
  const dbBytes = (await stat(db)).size;
  progress(`${db}: ${(dbBytes / MiB).toFixed(1)} MiB`);
  return { db, dbBytes };
}
try {
  workDir = await mkdtemp(join(tmpdir(), "seb-bench-"));
  s3 = await startEmbeddedS3({ directory: join(workDir, "s3"), bucket: "bench" });
  for (const asked of runTable ? sizes : []) {
    const { db, dbBytes } = await database(asked);
    const results = [
      await measure(db, "baseline A (.backup + gzip -6)", () => baseline(db, dbBytes, "baseline A: .backup + gzip -6", "gzip", ["-6"])),
      await measure(db, "baseline B (.backup + pigz -p2 -1)", () => baseline(db, dbBytes, "baseline B: .backup + pigz -p2 -1", "pigz", ["-p2", "-1"])),
    ];
    const byLevel = new Map<number, Result>();
    for (const level of levels) {
      const r = await measure(db, `tool GZIP_LEVEL=${level}`, () => tool(db, level));
      results.push(r);
      byLevel.set(level, r);
    }
    rows.push({ asked, dbBytes, results });
    if (checkSizes.includes(asked)) {
      progress(`structural check (CHECK=structure) at ${asked} MiB`);
      checkRows.push(await checkPart(asked, db, dbBytes, byLevel));
    }
  }
  for (const asked of runCheck ? checkSizes : []) {
    if (runTable && sizes.includes(asked)) continue;
    const { db, dbBytes } = await database(asked);
    progress(`structural check (CHECK=structure) at ${asked} MiB`);
    checkRows.push(await checkPart(asked, db, dbBytes, new Map()));
  }
  if (runPeer && peerSizes.length) {
    // Once, unmeasured: the build, then a first start (the OS caches the files, as any earlier run would have).
    buildOnce();
    await timed(process.execPath, [...CLI, "--help"], { env: { PATH: process.env.PATH ?? "" } });
  }
  for (const asked of runPeer ? peerSizes : []) {
    const { db, dbBytes } = await database(asked);
    progress(`against the script a user would write (sqlite3 .backup, pigz -p2 -1 | rclone rcat) at ${asked} MiB, ${peerRuns} runs each, interleaved`);
    peerRows.push(await peerPart(asked, db, dbBytes));
  }
} finally {
  await cleanUp();
}

const seconds = ((Date.now() - started.getTime()) / 1000).toFixed(0);
const loadAfter = loadavg();
const fmtLoad = (l: number[]) => l.map((x) => x.toFixed(2)).join(" ");
const stolen = stealShare(cpuBefore, await cpuTimes());
const resultsUrl = new URL(`./${resultsFile}`, import.meta.url);
const loadLine = `Load average (1, 5, 15 min) before: ${fmtLoad(load)}; after: ${fmtLoad(loadAfter)}.${stolen === undefined ? "" : ` CPU time stolen by the hypervisor during the run: ${(100 * stolen).toFixed(1)} % (other tenants of a shared VM; above a few % the times are inflated).`}`;
const previous = existsSync(resultsUrl) ? await readFile(resultsUrl, "utf8") : "# Backup benchmark\n";
const peerProvenance = `\`${command()}\` — ${started.toISOString()}, ${seconds} s in all${only ? "" : " (the same run as the tables above)"}.\n\nMachine: ${await machine(tools)}.\n${loadLine}`;
if (only) {
  const [heading, section] = checkOnly
    ? [CHECK_HEADING, checkSection(checkRows, `\`${command()}\` — ${started.toISOString()}, ${seconds} s in all (only this part; the table above is from an earlier run).\n\nMachine: ${await machine(tools)}.\n${loadLine}`)]
    : [PEER_HEADING, peerSection(peerRows, peerProvenance)];
  console.log(checkOnly ? checkTable(checkRows) : peerTable(peerRows));
  await writeFile(resultsUrl, withSection(previous, heading, section));
  progress(`wrote the "${heading.slice(3)}" section of bench/${resultsFile} (${seconds} s)`);
  process.exit(0);
}

const result = table(rows);
console.log(result);
if (checkRows.length) console.log(`\n${checkTable(checkRows)}`);
if (peerRows.length) console.log(`\n${peerTable(peerRows)}`);
await writeFile(
  resultsUrl,
  `# Backup benchmark

\`${command()}\` — ${started.toISOString()}, ${seconds} s in all.

Machine: ${await machine(tools)}.
${loadLine}

Databases: bench/make-db.ts (cached in bench/cache/): mixed INTEGER/REAL/TEXT/JSON rows with three
indexes and ${shape === "photos" ? "32–288 KiB blobs of random bytes (images, as deflate sees them)" : "4–28 KiB blobs, half random bytes, half text"}; page size 4096.${runs > 1 ? ` Each contestant ran ${runs} times; the table shows the run with the median wall time.` : ""}

${result}

How to read:
- Baseline A is \`sqlite3 DB ".backup TMP" && gzip -6 -c TMP > OUT\`, baseline B the same with
  \`pigz -p2 -1\`; their wall time is the sum of the two steps ("steps"), their peak RSS the
  larger of the two processes' (GNU time %M), and growth is that peak / DB size.
- The tool is one full \`backup\` with the default CHECK=auto to an in-process S3 server, in a
  child process that does nothing else. Up to 64 MiB it holds the image: read, sha256, PRAGMA
  quick_check on a worker thread beside gzip on libuv's thread pool and the multipart upload;
  steps "read+sha256 + gzip+upload (check beside it: done at) + verify+prune". Above that it
  streams with CHECK=structure: read, sha256, structural check, gzip and multipart upload to
  \`{key}.partial\` in one pass, then a server-side copy to the key (the sha256 goes into its
  metadata), HEAD verification and pruning; steps "open + read+check+gzip+upload + copy
  .partial→key + verify + prune". The steps are read from its log lines. Its wall time is the
  backup() call; "process wall s" adds Node and tsx start-up and loading the code (sql.js is
  loaded before the timer starts). Its growth is (peak RSS − RSS at start, after loading the
  code) / DB size.
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
${checkRows.length ? `\n${checkSection(checkRows, "Measured in the same run as the table above, on the same files.")}` : ""}${
    peerRows.length ? `\n${peerSection(peerRows, peerProvenance)}` : ((carried) => (carried ? `\n${carried.trimEnd()}\n` : ""))(sectionOf(previous, PEER_HEADING))
  }`,
);
progress(`wrote bench/${resultsFile} (${seconds} s)`);
