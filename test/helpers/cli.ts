/**
 * The command line as users run it: a separate Node process with only the environment the
 * test passes (no S3_* leaking in from the caller's shell). Its secrets are registered and
 * its output captured for the run's secret scan (test/helpers/log-capture.ts).
 */
import { execFile } from "node:child_process";
import { capture, registerEnvSecrets } from "./log-capture.js";

export interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** Run `npm run cli -- …args` as a child process; `nodeArgs` go to Node before the script (e.g. `--import` a probe). */
export function cli(args: string[], env: Record<string, string>, nodeArgs: readonly string[] = []): Promise<Run> {
  registerEnvSecrets(env);
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ["--import", "tsx", ...nodeArgs, "functions/cli.ts", ...args],
      { env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "", AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: "true", ...env }, maxBuffer: 64 * 1024 * 1024 },
      (err, stdout, stderr) => {
        const source = `cli ${args[0] ?? ""}`.trim();
        capture(`${source} stdout`, stdout);
        capture(`${source} stderr`, stderr);
        resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
      },
    );
  });
}

/** The last line on stderr: where the one-line error is. */
export const lastLine = (run: Run): string => run.stderr.trim().split("\n").pop() ?? "";
