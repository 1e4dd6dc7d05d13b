// Attribution only (bench/node-memory.ts with NODE_MEMORY_TRACE=1, loaded by `node --import`):
// samples process.memoryUsage() every MEMORY_PROBE_MS (default 20) ms and, at exit, writes
// the samples as JSON lines to MEMORY_PROBE_FILE. Never loaded in the measured runs.
import { writeFileSync } from "node:fs";

const file = process.env.MEMORY_PROBE_FILE;
if (file) {
  const started = performance.now();
  const samples = [];
  const sample = () => {
    const m = process.memoryUsage();
    samples.push({ ms: Math.round(performance.now() - started), rss: m.rss, heapTotal: m.heapTotal, heapUsed: m.heapUsed, external: m.external, arrayBuffers: m.arrayBuffers });
  };
  setInterval(sample, Number(process.env.MEMORY_PROBE_MS ?? 20)).unref();
  process.on("exit", () => {
    sample();
    writeFileSync(file, samples.map((s) => JSON.stringify(s)).join("\n") + "\n");
  });
}
