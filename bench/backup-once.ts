/**
 * One backup in this process (the S3 server runs in the parent), then report time and
 * peak RSS as JSON on stdout. Run by bench/backup.ts.
 */
import { createNodeContext } from "../functions/node-context.js";
import { silentLogger } from "../src/log.js";

const idle = process.memoryUsage().rss;
const ctx = await createNodeContext(process.env, { logger: silentLogger });
const t0 = performance.now();
const manifest = await ctx.service.backup();
const ms = performance.now() - t0;
process.stdout.write(
  JSON.stringify({ ms, bytes: manifest.bytes, gzipBytes: manifest.gzipBytes, idleRss: idle, maxRss: process.resourceUsage().maxRSS * 1024 }) + "\n",
);
