// `npm run build`: dist/ for the package (tsconfig.build.json), plus the files tsc does not
// emit: the check worker's plain-JavaScript body, and the bin made executable.
import { execFileSync } from "node:child_process";
import { chmodSync, copyFileSync, rmSync } from "node:fs";
import { createRequire } from "node:module";

const tsc = createRequire(import.meta.url).resolve("typescript/bin/tsc");
rmSync("dist", { recursive: true, force: true });
execFileSync(process.execPath, [tsc, "-p", "tsconfig.build.json", "--noCheck"], { stdio: "inherit" });
copyFileSync("functions/check-worker-thread.mjs", "dist/functions/check-worker-thread.mjs");
chmodSync("dist/functions/bin.js", 0o755);
