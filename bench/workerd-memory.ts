/**
 * `npx tsx bench/workerd-memory.ts [options] [MiB ...]`: memory and CPU of the Worker bundle
 * (built by wrangler, as deployed) in workerd (Miniflare) while it backs up generated
 * databases through POST /backups with the defaults a deployed Worker gets (wrangler.toml
 * [vars]: CHECK=auto, which streams anything over 16 MiB; MAX_BYTES 4 GiB). Not a test: it
 * prints markdown tables and writes them to bench/workerd-results.md.
 *
 * Options:
 *   --sources url:1024,url:16,s3   where the database comes from (default all three):
 *                                  url:<KiB> = a local HTTP server (127.0.0.1) writing the file
 *                                  in writes of that many KiB, with Content-Length;
 *                                  s3 = an object in the embedded S3 server (s3rver)
 *   --modes inspector,live,plain   one run per mode, each in a fresh workerd (default all three):
 *                                  inspector = the V8 inspector attached, the isolate's heap
 *                                  sampled every 50 ms (garbage not yet collected included);
 *                                  live = the same, plus a full GC (a heap snapshot) at every
 *                                  progress line: what the isolate retains, and whether it grows;
 *                                  plain = no inspector (as `npm run dev:local` and a deployed
 *                                  Worker): workerd's RSS, time and CPU
 *   --snapshot-at MiB              diagnostic (inspector modes): save a heap snapshot to $TMPDIR
 *                                  once that much has been read
 *   --out FILE | --no-write        where the tables go (default bench/workerd-results.md)
 * The sizes are benchDatabase() sizes in MiB (default 50 300). BENCH_VERBOSE=1 prints the
 * Worker's log lines.
 *
 * Each run: GET /health first (which loads sql.js), then VmRSS sampled every 50 ms from
 * /proc/PID/status during the request, VmHWM afterwards, and CPU (utime+stime) of workerd from
 * /proc/PID/stat and of each of its threads from /proc/PID/task/TID/stat, before and after. The
 * RSS is the whole workerd process (runtime, Miniflare's helper workers, native buffers of
 * requests in flight, freed memory the allocator keeps), an upper bound. The busiest thread's
 * CPU is the isolate's (JavaScript, gzip, sha256, the sockets), close to what Cloudflare counts
 * against `[limits] cpu_ms`.
 *
 * The isolate: the V8 inspector's Runtime.getHeapUsage — the JS heap in use plus ArrayBuffer
 * backing stores (chunks, parts) — and the sql.js WebAssembly memory, which V8 leaves out
 * there and the run logs (`wasmMemoryBytes`). workerd does not answer
 * HeapProfiler.collectGarbage; a heap snapshot collects first, so `live` takes one (and throws
 * it away). With the inspector attached workerd also works for it, so RSS, time and CPU are
 * taken from the plain run.
 *
 * Whether memory grows with the database: at every `streaming` progress line (every 2 s) the
 * bench notes bytes read, RSS and (inspector modes) the isolate's heap; the least-squares slope
 * of each over the second half of the read, in MiB per GiB read, is in the tables.
 */
import { createReadStream } from "node:fs";
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { S3Client } from "@aws-sdk/client-s3";
import { Upload } from "@aws-sdk/lib-storage";
import { Miniflare } from "miniflare";
import WebSocket from "ws";
import { startEmbeddedS3 } from "../functions/embedded-s3.js";
import { closedPort } from "../test/helpers/receiver.js";
import { buildWorker, releaseWorkerBundles, bundleModules } from "../test/workers/worker-bundle.js";
import { benchDatabase } from "./make-db.js";

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;
const API_KEY = "bench-api-key-0123456789abcdef";
const CLK_TCK = 100; // sysconf(_SC_CLK_TCK) on Linux
/** Cloudflare's per-isolate memory limit, 128 MB. */
const ISOLATE_LIMIT = 128_000_000;

function parseArgs(argv: string[]) {
  let sources = ["url:1024", "url:16", "s3"];
  let modes: Mode[] = ["inspector", "live", "plain"];
  let snapshotAt: number | undefined;
  let out: string | undefined = new URL("./workerd-results.md", import.meta.url).pathname;
  const sizes: number[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === "--sources") sources = argv[++i]!.split(",");
    else if (a === "--modes") modes = argv[++i]!.split(",") as Mode[];
    else if (a === "--snapshot-at") snapshotAt = Number(argv[++i]) * MiB;
    else if (a === "--out") out = argv[++i]!;
    else if (a === "--no-write") out = undefined;
    else if (Number(a) > 0) sizes.push(Number(a));
    else throw new Error(`unknown argument ${a}`);
  }
  for (const s of sources) if (s !== "s3" && !/^url:\d+$/.test(s)) throw new Error(`--sources: url:<KiB> or s3, got ${s}`);
  for (const m of modes) if (!MODES.includes(m)) throw new Error(`--modes: ${MODES.join(", ")}, got ${m}`);
  return { sources, modes, snapshotAt, out, sizes: sizes.length ? sizes : [50, 300] };
}

const MODES = ["inspector", "live", "plain"] as const;
type Mode = (typeof MODES)[number];

interface HeapUsage {
  usedSize: number;
  backingStorageSize?: number;
}

/** One `streaming` log line: bytes read so far, and the memory when it reached the bench. */
interface Progress {
  bytesRead: number;
  rss: number;
  heap?: number;
}

interface Run {
  source: string;
  mode: Mode;
  asked: number;
  bytes: number;
  status: number;
  code: string;
  gzipBytes?: number;
  idleRss: number;
  peakRss: number;
  hwm: number;
  afterRss: number;
  wallMs: number;
  /** Whole workerd process. */
  cpuMs: number;
  /** The busiest thread of workerd (the isolate's). */
  threadCpuMs: number;
  /** This process: the source's HTTP server and the S3 server (and the sampling). */
  benchCpuMs: number;
  v8Idle?: number;
  /** The inspector sample with the most JS heap in use + ArrayBuffer backing stores. */
  v8Peak?: HeapUsage;
  /** Heap samples taken, and the longest time between two of them. */
  heapSamples?: number;
  longestGapMs?: number;
  /** After the run, after a forced GC (if the inspector could). */
  v8AfterGc?: number;
  wasmBytes: number;
  progress: Progress[];
}

const v8Total = (u: HeapUsage) => u.usedSize + (u.backingStorageSize ?? 0);

/**
 * A heap snapshot's nodes, all of them reachable (V8 collects before it writes one): their
 * sizes summed, ArrayBuffer backing stores included, minus WebAssembly memory (sql.js's,
 * counted apart).
 */
function retainedBytes(text: string): number {
  const snap = JSON.parse(text) as { snapshot: { meta: { node_fields: string[]; edge_fields: string[]; edge_types: [string[]] } }; nodes: number[]; edges: number[]; strings: string[] };
  const { node_fields: nf, edge_fields: ef, edge_types: [edgeTypes] } = snap.snapshot.meta;
  const [N, E] = [nf.length, ef.length];
  const [nameAt, sizeAt, edgeCountAt] = [nf.indexOf("name"), nf.indexOf("self_size"), nf.indexOf("edge_count")];
  const [edgeTypeAt, edgeNameAt, toAt] = [ef.indexOf("type"), ef.indexOf("name_or_index"), ef.indexOf("to_node")];
  const { nodes, edges, strings } = snap;
  const firstEdge: number[] = [];
  let total = 0;
  for (let i = 0, e = 0; i < nodes.length; i += N) {
    firstEdge.push(e);
    e += nodes[i + edgeCountAt]!;
    total += nodes[i + sizeAt]!;
  }
  const edgesOf = function* (node: number) {
    const from = firstEdge[node / N]!;
    for (let e = from; e < from + nodes[node + edgeCountAt]!; e++) yield { type: edgeTypes[edges[e * E + edgeTypeAt]!], name: edges[e * E + edgeNameAt]!, to: edges[e * E + toAt]! };
  };
  // WebAssembly.Memory → its ArrayBuffer → the backing store.
  let wasm = 0;
  for (let i = 0; i < nodes.length; i += N) {
    if (strings[nodes[i + nameAt]!] !== "Memory") continue;
    for (const a of edgesOf(i)) {
      if (strings[nodes[a.to + nameAt]!] !== "ArrayBuffer") continue;
      for (const b of edgesOf(a.to)) if (b.type !== "element" && b.type !== "hidden" && strings[b.name] === "backing_store") wasm += nodes[b.to + sizeAt]!;
    }
  }
  return total - wasm;
}

/** A Chrome DevTools Protocol session on the Worker's isolate (Miniflare names it core:user:). */
async function inspectWorker(port: number): Promise<{ heapUsage(): Promise<HeapUsage>; retained(): Promise<number>; snapshot(): Promise<string>; close(): void }> {
  const targets = (await (await fetch(`http://127.0.0.1:${port}/json/list`)).json()) as { id: string; webSocketDebuggerUrl: string }[];
  const target = targets.find((t) => t.id.startsWith("core:user:"));
  if (!target) throw new Error(`no Worker among the inspector's targets: ${targets.map((t) => t.id).join(", ")}`);
  const ws = new WebSocket(target.webSocketDebuggerUrl);
  await new Promise((resolve, reject) => {
    ws.once("open", resolve);
    ws.once("error", reject);
  });
  let nextId = 1;
  let snapshotChunks: string[] = [];
  const waiting = new Map<number, { resolve: (result: unknown) => void; reject: (e: Error) => void }>();
  ws.on("message", (data) => {
    const message = JSON.parse(String(data)) as { id?: number; method?: string; params?: { chunk?: string }; result?: unknown; error?: { message: string } };
    if (message.method === "HeapProfiler.addHeapSnapshotChunk") snapshotChunks.push(message.params?.chunk ?? "");
    if (message.id === undefined) return;
    const w = waiting.get(message.id);
    waiting.delete(message.id);
    if (message.error) w?.reject(new Error(message.error.message));
    else w?.resolve(message.result);
  });
  const call = (method: string, timeoutMs = 10_000) =>
    new Promise<unknown>((resolve, reject) => {
      const id = nextId++;
      const timer = setTimeout(() => {
        waiting.delete(id);
        reject(new Error(`${method}: no answer from the inspector in ${timeoutMs} ms`));
      }, timeoutMs);
      waiting.set(id, { resolve: (r) => (clearTimeout(timer), resolve(r)), reject: (e) => (clearTimeout(timer), reject(e)) });
      ws.send(JSON.stringify({ id, method }));
    });
  // Without Runtime.enable workerd answers getHeapUsage for an empty context.
  await call("Runtime.enable");
  return {
    heapUsage: async () => (await call("Runtime.getHeapUsage")) as HeapUsage,
    // workerd does not answer HeapProfiler.collectGarbage; a heap snapshot collects first.
    // Right after it the inspector's heap usage may still count backing stores V8 frees in the
    // background, so what is retained is read from the snapshot itself.
    retained: async () => {
      await call("HeapProfiler.takeHeapSnapshot", 120_000);
      const text = snapshotChunks.join("");
      snapshotChunks = [];
      return retainedBytes(text);
    },
    snapshot: async () => {
      await call("HeapProfiler.takeHeapSnapshot", 120_000);
      const text = snapshotChunks.join("");
      snapshotChunks = [];
      return text;
    },
    close: () => ws.close(),
  };
}

async function procStatus(pid: number): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const line of (await readFile(`/proc/${pid}/status`, "utf8")).split("\n")) {
    const m = /^(Vm\w+|Rss\w+):\s+(\d+) kB/.exec(line);
    if (m) out[m[1]!] = Number(m[2]) * 1024;
  }
  return out;
}

/** utime+stime in ms of /proc/<path>/stat. */
async function statCpuMs(path: string): Promise<number> {
  const stat = await readFile(`${path}/stat`, "utf8");
  // Fields after the ")" of comm: state is field 3, utime 14, stime 15.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / CLK_TCK;
}

/** CPU ms of the process and of each of its threads. */
async function cpuOf(pid: number): Promise<{ total: number; threads: Map<string, number> }> {
  const threads = new Map<string, number>();
  for (const tid of await readdir(`/proc/${pid}/task`)) {
    try {
      threads.set(tid, await statCpuMs(`/proc/${pid}/task/${tid}`));
    } catch {
      // the thread ended
    }
  }
  return { total: await statCpuMs(`/proc/${pid}`), threads };
}

/** The workerd child of this process (Miniflare spawns it directly). */
async function findWorkerd(exclude: Set<number>): Promise<number> {
  for (let attempt = 0; attempt < 100; attempt++) {
    for (const entry of await readdir("/proc")) {
      const pid = Number(entry);
      if (!Number.isInteger(pid) || exclude.has(pid)) continue;
      try {
        const stat = await readFile(`/proc/${pid}/stat`, "utf8");
        const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
        if (ppid !== process.pid) continue;
        const cmdline = (await readFile(`/proc/${pid}/cmdline`, "utf8")).replaceAll("\0", " ");
        if (cmdline.includes("workerd")) return pid;
      } catch {
        // the process went away
      }
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error("no workerd child process found");
}

/** Least-squares slope of y over x, in y-units per x-unit; undefined with fewer than 3 points. */
function slope(points: [number, number][]): number | undefined {
  if (points.length < 3) return undefined;
  const n = points.length;
  const mx = points.reduce((s, [x]) => s + x, 0) / n;
  const my = points.reduce((s, [, y]) => s + y, 0) / n;
  const sxx = points.reduce((s, [x]) => s + (x - mx) ** 2, 0);
  if (sxx === 0) return undefined;
  return points.reduce((s, [x, y]) => s + (x - mx) * (y - my), 0) / sxx;
}

/** MiB of memory per GiB read, over the second half of the read. */
function growthPerGiB(progress: Progress[], pick: (p: Progress) => number | undefined): number | undefined {
  const last = progress.at(-1)?.bytesRead ?? 0;
  const points = progress.filter((p) => p.bytesRead >= last / 2 && pick(p) !== undefined).map((p): [number, number] => [p.bytesRead / GiB, pick(p)! / MiB]);
  return slope(points);
}

const options = parseArgs(process.argv.slice(2));
const dir = await mkdtemp(join(tmpdir(), "seb-workerd-bench-"));
const s3 = await startEmbeddedS3({ directory: join(dir, "s3"), bucket: "bench" });
const s3Client = new S3Client({ endpoint: s3.endpoint, region: s3.region, forcePathStyle: true, credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey } });
let sourcePath = "";
let writeBytes = 1024 * 1024;
const source = createServer(async (_req, res) => {
  const { size } = await stat(sourcePath);
  res.writeHead(200, { "Content-Type": "application/octet-stream", "Content-Length": size });
  res.socket?.setNoDelay(true);
  // One write per read of `writeBytes`: what a source that writes small (or large) chunks sends.
  createReadStream(sourcePath, { highWaterMark: writeBytes }).pipe(res);
});
source.listen(0, "127.0.0.1");
await new Promise((r) => source.once("listening", r));
const sourceUrl = `http://127.0.0.1:${(source.address() as AddressInfo).port}/bench.sqlite`;
const inS3 = new Set<number>();

const bundle = await buildWorker();
const runs: Run[] = [];
const seen = new Set<number>();

async function backup(sourceName: string, mode: Mode, asked: number): Promise<Run> {
  sourcePath = await benchDatabase(asked);
  const bytes = (await stat(sourcePath)).size;
  let backupSource = sourceUrl;
  if (sourceName === "s3") {
    backupSource = `s3://${s3.bucket}/source/bench-${asked}.sqlite`;
    if (!inS3.has(asked)) {
      await new Upload({ client: s3Client, params: { Bucket: s3.bucket, Key: `source/bench-${asked}.sqlite`, Body: createReadStream(sourcePath) }, partSize: 64 * MiB, queueSize: 1 }).done();
      inS3.add(asked);
    }
  } else {
    writeBytes = Number(sourceName.slice(4)) * 1024;
  }
  const workerdSaid: string[] = [];
  const progressLines: Promise<Progress | undefined>[] = [];
  let watched: number | undefined;
  let inspector: Awaited<ReturnType<typeof inspectWorker>> | undefined;
  let wasmBytes = 0;
  let snapshotTaken = false;
  const inspectorPort = mode === "plain" ? undefined : await closedPort();
  /** At a progress line: in `live` mode after a full GC. */
  const progressHeap = async () => (mode === "live" ? inspector!.retained() : v8Total(await inspector!.heapUsage()));
  const mf = new Miniflare({
    ...(inspectorPort ? { inspectorPort } : {}),
    ...bundleModules(bundle),
    bindings: {
      ...bundle.vars,
      BACKUP_SOURCE: backupSource,
      BACKUP_NAME: "bench",
      S3_ENDPOINT: s3.endpoint,
      S3_REGION: s3.region,
      S3_BUCKET: s3.bucket,
      S3_ACCESS_KEY_ID: s3.accessKeyId,
      S3_SECRET_ACCESS_KEY: s3.secretAccessKey,
      API_KEY,
      MAX_COUNT: "1",
    },
    handleStructuredLogs: ({ message }: { message: string }) => {
      workerdSaid.push(message);
      if (process.env.BENCH_VERBOSE) console.error(message);
      const pid = watched;
      if (pid === undefined) return;
      try {
        const line = JSON.parse(message) as { msg?: unknown; wasmMemoryBytes?: unknown; bytesRead?: unknown };
        if (typeof line.wasmMemoryBytes === "number") wasmBytes = line.wasmMemoryBytes;
        if (line.msg === "streaming" && typeof line.bytesRead === "number") {
          const bytesRead = line.bytesRead;
          if (inspector && options.snapshotAt !== undefined && bytesRead >= options.snapshotAt && !snapshotTaken) {
            snapshotTaken = true;
            const file = join(tmpdir(), `workerd-heap-${sourceName.replace(":", "")}-${asked}.heapsnapshot`);
            void inspector.snapshot().then((text) => writeFile(file, text)).then(() => console.error(`  heap snapshot at ${mib(bytesRead)} read: ${file}`), (e: unknown) => console.error(`  heap snapshot failed: ${String(e)}`));
          }
          progressLines.push(
            Promise.all([procStatus(pid), inspector ? progressHeap() : undefined]).then(
              ([s, heap]) => ({ bytesRead, rss: s.VmRSS ?? 0, ...(heap !== undefined ? { heap } : {}) }),
              () => undefined,
            ),
          );
        }
      } catch {
        // not one of our JSON lines
      }
    },
  });
  try {
    const health = await mf.dispatchFetch("http://localhost/health").catch(async (err: unknown) => {
      await new Promise((r) => setTimeout(r, 100));
      throw new Error(`workerd did not start the bundle: ${err instanceof Error ? err.message : String(err)}\nworkerd said:\n${workerdSaid.join("\n")}`);
    });
    if (health.status !== 200) throw new Error(`GET /health → ${health.status}: ${await health.text()}`);
    await health.text();
    const pid = await findWorkerd(seen);
    seen.add(pid);
    await new Promise((r) => setTimeout(r, 500));
    const idleRss = (await procStatus(pid)).VmRSS ?? 0;
    if (inspectorPort) inspector = await inspectWorker(inspectorPort);
    const v8Idle = inspector ? v8Total(await inspector.heapUsage()) : undefined;
    const cpuBefore = await cpuOf(pid);
    let v8Peak: HeapUsage = { usedSize: 0 };

    let peakRss = idleRss;
    let sampling = true;
    // RSS and heap apart: the inspector answers on the isolate's thread, late when it is busy.
    let heapSamples = 0;
    let longestGap = 0;
    const rssSampler = (async () => {
      while (sampling) {
        try {
          peakRss = Math.max(peakRss, (await procStatus(pid)).VmRSS ?? 0);
        } catch {
          return; // workerd is gone
        }
        await new Promise((r) => setTimeout(r, 50));
      }
    })();
    const heapSampler = (async () => {
      let last = performance.now();
      while (sampling && inspector) {
        try {
          const heap = await inspector.heapUsage();
          heapSamples++;
          longestGap = Math.max(longestGap, performance.now() - last);
          last = performance.now();
          if (v8Total(heap) > v8Total(v8Peak)) v8Peak = heap;
        } catch {
          // no answer in time: try again
        }
        await new Promise((r) => setTimeout(r, 50));
      }
    })();
    const sampler = Promise.all([rssSampler, heapSampler]);

    watched = pid;
    const benchCpuBefore = process.cpuUsage();
    const started = performance.now();
    const res = await mf.dispatchFetch("http://localhost/backups", { method: "POST", headers: { Authorization: `Bearer ${API_KEY}` } });
    const body = (await res.json()) as { gzipBytes?: number; error?: { code: string; message: string } };
    const wallMs = performance.now() - started;
    const benchCpu = process.cpuUsage(benchCpuBefore);
    sampling = false;
    await sampler;
    watched = undefined;
    const cpuAfter = await cpuOf(pid);
    const after = await procStatus(pid);
    let threadCpuMs = 0;
    for (const [tid, ms] of cpuAfter.threads) threadCpuMs = Math.max(threadCpuMs, ms - (cpuBefore.threads.get(tid) ?? 0));
    let v8AfterGc: number | undefined;
    if (inspector) {
      try {
        v8AfterGc = await inspector.retained();
      } catch (err) {
        console.error(`  no heap snapshot: ${err instanceof Error ? err.message : String(err)}`);
      }
    }
    const run: Run = {
      source: sourceName,
      mode,
      asked,
      bytes,
      status: res.status,
      code: res.status === 201 ? "" : (body.error?.code ?? "?"),
      ...(body.gzipBytes !== undefined ? { gzipBytes: body.gzipBytes } : {}),
      idleRss,
      peakRss: Math.max(peakRss, after.VmRSS ?? 0),
      hwm: after.VmHWM ?? 0,
      afterRss: after.VmRSS ?? 0,
      wallMs,
      cpuMs: cpuAfter.total - cpuBefore.total,
      threadCpuMs,
      benchCpuMs: (benchCpu.user + benchCpu.system) / 1000,
      ...(v8Idle !== undefined ? { v8Idle, v8Peak, heapSamples, longestGapMs: longestGap } : {}),
      ...(v8AfterGc !== undefined ? { v8AfterGc } : {}),
      wasmBytes,
      progress: (await Promise.all(progressLines)).filter((p): p is Progress => p !== undefined),
    };
    if (res.status !== 201) console.error(`  ${res.status}: ${JSON.stringify(body.error)}\n  workerd said:\n${workerdSaid.slice(-5).join("\n")}`);
    return run;
  } finally {
    inspector?.close();
    await mf.dispose().catch(() => undefined);
  }
}

const mib = (n: number) => `${(n / MiB).toFixed(0)} MiB`;
const perGiB = (n: number | undefined) => (n === undefined ? "—" : `${n >= 0 ? "+" : ""}${n.toFixed(0)}`);
const sourceLabel = (s: string) => (s === "s3" ? "S3 (s3rver)" : `URL, ${s.slice(4)} KiB writes`);

try {
  for (const asked of options.sizes) {
    for (const sourceName of options.sources) {
      for (const mode of options.modes) {
        const run = await backup(sourceName, mode, asked);
        runs.push(run);
        const isolate = run.v8Peak
          ? `, isolate peak ${mib(v8Total(run.v8Peak))} (+${mib(run.wasmBytes)} WASM; ${run.heapSamples} samples, longest gap ${(run.longestGapMs! / 1000).toFixed(1)} s), after the run and a GC ${run.v8AfterGc !== undefined ? mib(run.v8AfterGc) : "?"}`
          : "";
        console.error(
          `${sourceLabel(sourceName)}, ${mode}, benchDatabase(${asked}) ${(run.bytes / MiB).toFixed(1)} MiB → ${run.status} in ${(run.wallMs / 1000).toFixed(1)} s` +
            `, RSS +${mib(run.peakRss - run.idleRss)}${isolate}, CPU ${run.cpuMs.toFixed(0)} ms (isolate thread ${run.threadCpuMs.toFixed(0)} ms), bench process (source + S3 servers) ${run.benchCpuMs.toFixed(0)} ms`,
        );
        console.error(`  progress (read / RSS / heap): ${run.progress.map((p) => `${mib(p.bytesRead)} ${mib(p.rss)}${p.heap !== undefined ? ` ${mib(p.heap)}` : ""}`).join(" → ")}`);
      }
    }
  }
} finally {
  source.close();
  s3Client.destroy();
  await s3.close();
  await rm(dir, { recursive: true, force: true });
  releaseWorkerBundles();
}

// One row per (source, size): the isolate from the inspector and live runs, RSS, time and CPU from the plain one.
const keys = [...new Set(runs.map((r) => `${r.source}|${r.asked}`))];
const resultOf = (r: Run) => (r.status === 201 ? "201" : `${r.status} ${r.code}`);
const summary = [
  "| source | DB size | result | isolate peak: JS heap + ArrayBuffers, garbage included | isolate retained (after GC), max | retained growth, MiB per GiB read | + sql.js WASM | workerd RSS growth | RSS growth, MiB per GiB read | time | CPU, isolate thread | CPU ms per MiB |",
  "|---|---|---|---|---|---|---|---|---|---|---|---|",
  ...keys.map((key) => {
    const [src, asked] = key.split("|") as [string, string];
    const of = (mode: Mode) => runs.find((r) => r.source === src && String(r.asked) === asked && r.mode === mode);
    const ins = of("inspector");
    const live = of("live");
    const plain = of("plain");
    const all = [ins, live, plain].filter((r): r is Run => r !== undefined);
    const any = all[0]!;
    const timed = plain ?? any;
    const gzip = all.find((r) => r.gzipBytes)?.gzipBytes;
    const retained = live ? Math.max(...live.progress.map((p) => p.heap ?? 0), live.v8AfterGc ?? 0) : undefined;
    return `| ${[
      sourceLabel(src),
      `${(any.bytes / MiB).toFixed(1)} MiB`,
      [...new Set(all.map(resultOf))].join(" / ") + (gzip ? ` (gzip ${(gzip / MiB).toFixed(1)} MiB)` : ""),
      ins?.v8Peak ? `**${mib(v8Total(ins.v8Peak))}** (${mib(ins.v8Peak.usedSize)} + ${mib(ins.v8Peak.backingStorageSize ?? 0)})` : "—",
      retained !== undefined ? `**${mib(retained)}**` : "—",
      live ? perGiB(growthPerGiB(live.progress, (p) => p.heap)) : "—",
      mib((ins ?? live ?? any).wasmBytes),
      plain ? `**${mib(plain.peakRss - plain.idleRss)}**` : "—",
      plain ? perGiB(growthPerGiB(plain.progress, (p) => p.rss)) : "—",
      `${(timed.wallMs / 1000).toFixed(1)} s`,
      `${(timed.threadCpuMs / 1000).toFixed(1)} s`,
      (timed.threadCpuMs / (timed.bytes / MiB)).toFixed(1),
    ].join(" | ")} |`;
  }),
].join("\n");
const detail = [
  "| source | DB | mode | result | idle RSS | peak RSS | VmHWM | RSS growth | RSS after | isolate: idle / peak (garbage included) / after the run and a GC | heap samples (longest gap) | wall | CPU: workerd / isolate thread |",
  "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
  ...runs.map(
    (r) =>
      `| ${sourceLabel(r.source)} | ${(r.bytes / MiB).toFixed(1)} MiB | ${r.mode} | ${resultOf(r)} | ${mib(r.idleRss)} | ${mib(r.peakRss)} | ${mib(r.hwm)} | ${mib(r.peakRss - r.idleRss)} | ${mib(r.afterRss)} | ${r.v8Peak ? `${mib(r.v8Idle!)} / ${mib(v8Total(r.v8Peak))} / ${r.v8AfterGc !== undefined ? mib(r.v8AfterGc) : "?"}` : "—"} | ${r.heapSamples !== undefined ? `${r.heapSamples} (${(r.longestGapMs! / 1000).toFixed(1)} s)` : "—"} | ${(r.wallMs / 1000).toFixed(1)} s | ${(r.cpuMs / 1000).toFixed(1)} s / ${(r.threadCpuMs / 1000).toFixed(1)} s |`,
  ),
].join("\n");
console.log(summary);
console.log();
console.log(detail);

if (options.out) {
  const { version: workerdVersion } = JSON.parse(await readFile(new URL("../node_modules/workerd/package.json", import.meta.url), "utf8").catch(() => '{"version":"?"}')) as { version: string };
  const cpus = (await readFile("/proc/cpuinfo", "utf8")).split("\n").filter((l) => l.startsWith("processor")).length;
  // A hand-written "## Findings" section at the end of the file is kept.
  const previous = await readFile(options.out, "utf8").catch(() => "");
  const findings = previous.includes("\n## Findings") ? previous.slice(previous.indexOf("\n## Findings")) : "";
  await writeFile(
    options.out,
    `# workerd memory and CPU per backup

\`npx tsx bench/workerd-memory.ts ${process.argv.slice(2).join(" ")}\` — ${new Date().toISOString()}, Node ${process.version}, workerd ${workerdVersion} (Miniflare), ${cpus} CPUs.
POST /backups of a generated database (bench/make-db.ts: rows, JSON, half-random blobs) to an in-process S3 server, with wrangler.toml's [vars]: CHECK=auto (streamed with the structural check above 16 MiB), VERIFY=head, MAX_BYTES 4 GiB; gzip = CompressionStream, sha256 = DigestStream, 5 MiB parts, 2 in flight.
Sources: a local HTTP server (Content-Length; the file written in writes of 1 MiB or of 16 KiB) or an object in the embedded S3 server. Each row is up to three runs, each in a fresh workerd: *inspector* (the isolate's heap sampled every 50 ms), *live* (the same with a full GC at every progress line) and *plain* (no inspector, as \`npm run dev:local\` and a deployed Worker run: RSS, time, CPU).
Miniflare does not enforce the 128 MB isolate limit (128 MB = 122.07 MiB).

${summary}

- *isolate peak*: the largest \`Runtime.getHeapUsage\` sample, JS heap in use + ArrayBuffer backing stores, garbage not yet collected included (V8 lets about 64 MiB of dead ArrayBuffers pile up before it collects them, whatever their size: docs/performance.md).
- *isolate retained*: the same after a full GC, at every progress line (every 2 s) and after the run; *retained growth*: its least-squares slope over the second half of the read (~0: memory does not grow with the database).
- *sql.js WASM*: loaded at start-up, the same at every size; apart from the two columns before it.
- *workerd RSS growth*: peak VmRSS during the request (50 ms samples) − VmRSS before it, the whole process; its slope as above.
- *CPU*: utime+stime of workerd's busiest thread (the isolate's: JavaScript, gzip, sha256, the sockets), in the plain run.

Every run:

${detail}
${findings}`,
  );
}
