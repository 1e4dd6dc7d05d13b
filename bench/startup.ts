/**
 * Start-up of the installed command (`npm run bench:startup`): wall time of whole processes,
 * hyperfine-style — a warm-up, then BENCH_STARTUP_RUNS rounds (default 21), each round running
 * every command once in turn so that they share the machine's load; medians, min and max.
 *
 *   bare node      node -e 0
 *   --version      node dist/functions/bin.js --version
 *   --help         node dist/functions/bin.js --help     (target: within 5× bare node)
 *   list           node dist/functions/bin.js list       (one backup, in-process S3 server)
 *   tsx --help     node --import tsx functions/cli.ts --help   (what `npm run cli -- --help` ran before dist/)
 *
 * Builds dist/ first when it is missing (npm run build).
 */
import { execFileSync, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startEmbeddedS3 } from "../functions/embedded-s3.js";
import { writeDatabase } from "../test/helpers/db.js";

const RUNS = Number(process.env.BENCH_STARTUP_RUNS ?? 21);
const BIN = "dist/functions/bin.js";

if (!existsSync(BIN)) execFileSync(process.execPath, ["scripts/build.mjs"], { stdio: "inherit" });

const dir = await mkdtemp(join(tmpdir(), "seb-startup-"));
const s3 = await startEmbeddedS3({ directory: join(dir, "s3"), bucket: "startup" });
const db = join(dir, "app.db");
await writeDatabase(db, { rows: 100, targetBytes: 100_000 });
const env = {
  PATH: process.env.PATH ?? "",
  HOME: process.env.HOME ?? "",
  BACKUP_SOURCE: db,
  S3_ENDPOINT: s3.endpoint,
  S3_REGION: s3.region,
  S3_BUCKET: s3.bucket,
  S3_ACCESS_KEY_ID: s3.accessKeyId,
  S3_SECRET_ACCESS_KEY: s3.secretAccessKey,
  AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: "true",
};

// Asynchronously: the in-process S3 server answers the child from this event loop.
async function time(args: string[]): Promise<number> {
  const started = process.hrtime.bigint();
  const child = spawn(process.execPath, args, { env, stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
  const code = await new Promise<number>((resolve) => child.on("close", (c) => resolve(c ?? 1)));
  const ms = Number(process.hrtime.bigint() - started) / 1e6;
  if (code !== 0) throw new Error(`node ${args.join(" ")} exited ${code}: ${stderr}`);
  return ms;
}

const commands: [string, string[]][] = [
  ["bare node (node -e 0)", ["-e", "0"]],
  ["sqlite-edge-backup --version", [BIN, "--version"]],
  ["sqlite-edge-backup --help", [BIN, "--help"]],
  ["sqlite-edge-backup list", [BIN, "list"]],
  ["tsx functions/cli.ts --help (before)", ["--import", "tsx", "functions/cli.ts", "--help"]],
];

try {
  // One backup to list; and a warm-up round (file cache, npm's and tsx's caches).
  await time([BIN, "backup"]);
  for (const [, args] of commands) await time(args);
  const samples = new Map<string, number[]>(commands.map(([name]) => [name, []]));
  for (let round = 0; round < RUNS; round++) {
    for (const [name, args] of commands) samples.get(name)!.push(await time(args));
  }
  const median = (xs: number[]) => {
    const s = [...xs].sort((a, b) => a - b);
    return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
  };
  const bare = median(samples.get(commands[0]![0])!);
  const load = (await import("node:os")).loadavg()[0]!.toFixed(1);
  console.log(`start-up, ${RUNS} rounds, node ${process.version}, load average ${load}`);
  console.log("| command | median ms | min ms | max ms | × bare node |");
  console.log("|---|---:|---:|---:|---:|");
  for (const [name] of commands) {
    const xs = samples.get(name)!;
    const m = median(xs);
    console.log(`| ${name} | ${m.toFixed(0)} | ${Math.min(...xs).toFixed(0)} | ${Math.max(...xs).toFixed(0)} | ${(m / bare).toFixed(2)} |`);
  }
} finally {
  await s3.close();
  await rm(dir, { recursive: true, force: true });
}
