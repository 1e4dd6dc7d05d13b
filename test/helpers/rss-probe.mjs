/**
 * Preloaded into a child Node process (`node --import ./test/helpers/rss-probe.mjs …`): at
 * exit, writes the process's peak resident set size as JSON to the file RSS_PROBE_OUT names.
 * Tests compare peaks of the same command on a large and a tiny input: the difference is what
 * the input's size costs.
 *
 * The peak is VmHWM from /proc/self/status (Linux): the high-water mark of this process's own
 * memory since it was exec'd. `process.resourceUsage().maxRSS` is not used where VmHWM exists:
 * Linux carries the parent's RSS at fork time into a child's maxRSS, so a child of a 150 MiB
 * test process never reports less than 150 MiB.
 */
import { readFileSync, writeFileSync } from "node:fs";

function peakRssBytes() {
  try {
    const hwm = /^VmHWM:\s+(\d+) kB$/m.exec(readFileSync("/proc/self/status", "utf8"));
    if (hwm) return { bytes: Number(hwm[1]) * 1024, source: "VmHWM" };
  } catch {
    // not Linux
  }
  return { bytes: process.resourceUsage().maxRSS * 1024, source: "maxRSS" };
}

const out = process.env.RSS_PROBE_OUT;
if (out) {
  process.on("exit", () => {
    const peak = peakRssBytes();
    writeFileSync(out, JSON.stringify({ peakRssBytes: peak.bytes, source: peak.source }));
  });
}
