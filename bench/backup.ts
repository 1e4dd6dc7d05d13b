/**
 * `npm run bench -- [MiB ...]`: back up generated databases to an in-process S3 server and
 * report wall time, throughput and peak memory of the backup process. Never part of npm test.
 */
import { execFile } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startEmbeddedS3 } from "../functions/embedded-s3.js";
import { benchDatabase } from "./make-db.js";

const sizes = process.argv.slice(2).map(Number).filter((n) => n > 0);
const levels = (process.env.BENCH_LEVELS ?? "1,6").split(",");
const dir = await mkdtemp(join(tmpdir(), "seb-bench-"));
const s3 = await startEmbeddedS3({ directory: dir, bucket: "bench" });
const MiB = 1024 * 1024;

try {
  console.log("| DB size | GZIP_LEVEL | wall time | MiB/s | compressed | peak RSS | RSS growth / DB size |");
  console.log("|---|---|---|---|---|---|---|");
  for (const mib of sizes.length ? sizes : [100]) {
    const path = await benchDatabase(mib);
    for (const level of levels) {
      const out = await new Promise<string>((resolve, reject) =>
        execFile(
          process.execPath,
          ["--import", "tsx", "bench/backup-once.ts"],
          {
            env: {
              PATH: process.env.PATH ?? "",
              AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: "true",
              BACKUP_SOURCE: path,
              S3_ENDPOINT: s3.endpoint,
              S3_BUCKET: s3.bucket,
              S3_ACCESS_KEY_ID: s3.accessKeyId,
              S3_SECRET_ACCESS_KEY: s3.secretAccessKey,
              GZIP_LEVEL: level,
              MAX_COUNT: "2",
            },
          },
          (err, stdout, stderr) => (err ? reject(new Error(stderr || String(err))) : resolve(stdout)),
        ),
      );
      const r = JSON.parse(out) as { ms: number; bytes: number; gzipBytes: number; idleRss: number; maxRss: number };
      console.log(
        `| ${(r.bytes / MiB).toFixed(0)} MiB | ${level} | ${(r.ms / 1000).toFixed(2)} s | ${(r.bytes / MiB / (r.ms / 1000)).toFixed(1)} | ${(r.gzipBytes / MiB).toFixed(1)} MiB | ${(r.maxRss / MiB).toFixed(0)} MiB | ${((r.maxRss - r.idleRss) / r.bytes).toFixed(2)}× |`,
      );
    }
  }
} finally {
  await s3.close();
  await rm(dir, { recursive: true, force: true });
}
