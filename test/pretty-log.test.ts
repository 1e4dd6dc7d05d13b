/**
 * The log for a person (functions/pretty-log.ts), then the CLI in a real pseudo-terminal
 * (util-linux `script`): a progress line redrawn in place and a summary when stderr is a
 * terminal; JSON lines with --log-format json; nothing but warnings with --quiet.
 */
import { execFile } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { prettyLogger } from "../functions/pretty-log.js";
import { writeDatabase } from "./helpers/db.js";
import { startTestStore, type TestStore } from "./helpers/s3.js";

const MiB = 1024 * 1024;
const run = promisify(execFile);

function capture(options: { quiet?: boolean; secrets?: string[] } = {}) {
  let out = "";
  let t = 0;
  const log = prettyLogger({ write: (s) => (out += s), columns: () => 80, now: () => t, ...options });
  return { log, text: () => out, at: (ms: number) => (t = ms) };
}

describe("prettyLogger", () => {
  it("redraws one progress line with the rate and the time left, and clears it before the next message", () => {
    const c = capture();
    const log = c.log.child({ name: "app" });
    c.at(0);
    log.info("streaming", { bytesRead: 0, totalBytes: 100 * MiB });
    c.at(2000);
    log.info("streaming", { bytesRead: 20 * MiB, totalBytes: 100 * MiB });
    expect(c.text()).toBe("\r\x1b[2Kbacking up  0.0 / 100.0 MiB    0 %" + "\r\x1b[2Kbacking up  20.0 / 100.0 MiB   20 %  10.0 MiB/s  8.0 s left");
    log.info("backup finished", { bytes: 100 * MiB, gzipBytes: 40 * MiB, durationMs: 10_000, pruned: 2 });
    expect(c.text().endsWith("\r\x1b[2K✓ backed up app: 100.0 MiB → 40.0 MiB stored in 10 s, 2 old backups pruned\n")).toBe(true);
  });

  it("writes other messages one per line with their fields, warnings and errors marked, and masks secrets", () => {
    const c = capture({ secrets: ["s3cr3t-value"] });
    c.log.info("backup started", { source: "/data/app.db", store: "s3://b at http://x" });
    c.log.warn("source changed during the read; reading again", { attempt: 1, reason: "token s3cr3t-value" });
    c.log.error("backup failed", { error: { code: "SQLITE_CORRUPT", message: "page 7 is damaged" } });
    expect(c.text().split("\n")).toEqual([
      "  backup started  (source=/data/app.db)",
      "! source changed during the read; reading again  (reason=token [redacted])",
      "✗ backup failed  (error=page 7 is damaged)",
      "",
    ]);
  });

  it("with quiet, shows warnings and errors only: no progress, no summary", () => {
    const c = capture({ quiet: true });
    c.log.info("streaming", { bytesRead: 5, totalBytes: 10 });
    c.log.info("backup finished", { bytes: 10, gzipBytes: 5, durationMs: 1 });
    c.log.warn("WAL file ignored, as SQLite ignores it", { reason: "salt" });
    expect(c.text()).toBe("! WAL file ignored, as SQLite ignores it  (reason=salt)\n");
  });
});

describe("the CLI at a terminal (script(1) gives it a pseudo-terminal)", () => {
  let s3: TestStore;
  let dir: string;
  let db: string;
  beforeAll(async () => {
    s3 = await startTestStore();
    dir = await mkdtemp(join(tmpdir(), "seb-tty-"));
    db = join(dir, "app.db");
    await writeDatabase(db, { rows: 200, targetBytes: 8 * MiB });
  });
  afterAll(async () => {
    await s3?.close();
    await rm(dir, { recursive: true, force: true });
  });

  /** The CLI under `script`, stdout and stderr as the terminal shows them. */
  async function atTerminal(args: string, exitCode = 0): Promise<string> {
    const cli = `${JSON.stringify(process.execPath)} --import tsx functions/cli.ts ${args}`;
    const { stdout, code } = await run("script", ["-qfec", cli, "/dev/null"], {
      env: { PATH: process.env.PATH ?? "", TERM: "xterm", AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: "true", ...s3.env({ BACKUP_SOURCE: db, BACKUP_NAME: "tty", LOCK: "off", CHECK: "structure" }) },
      maxBuffer: 16 * MiB,
      timeout: 120_000,
    }).then(
      (r) => ({ stdout: r.stdout, code: 0 }),
      (e: { stdout?: string; code?: number }) => ({ stdout: e.stdout ?? "", code: e.code ?? -1 }),
    );
    // script -e exits with the command's status.
    expect(code, stdout).toBe(exitCode);
    return stdout;
  }

  it("draws progress in place and ends with a summary; no JSON lines", async () => {
    const screen = await atTerminal("backup");
    expect(screen).toMatch(/\r\x1b\[2K(checking|backing up) +[\d.]+ \/ [\d.]+ MiB/);
    expect(screen).toMatch(/✓ backed up tty as tty-[^ ]+\.sqlite\.gz: [\d.]+ MiB → [\d.]+ MiB stored in /);
    expect(screen).not.toContain('{"time"');
    expect(screen).not.toContain(s3.secretAccessKey);
    // The manifest on stdout is still JSON.
    expect(screen).toMatch(/"key": "backups\/tty\//);
  });

  it("--log-format json keeps JSON lines at a terminal; --quiet drops progress and summary", async () => {
    const json = await atTerminal("backup --log-format json");
    expect(json).toContain('"msg":"backup finished"');
    expect(json).not.toContain("✓ backed up");
    const quiet = await atTerminal("backup --quiet");
    expect(quiet).not.toContain("\x1b[2K");
    expect(quiet).not.toContain("✓ backed up");
    expect(quiet).not.toContain('"msg"');
    expect(quiet).toMatch(/"key": "backups\/tty\//);
  });

  it("restore and verify at a terminal end with their summaries; a failure's error starts its own line", async () => {
    const screen = await atTerminal(`restore latest --to ${JSON.stringify(join(dir, "restored.db"))}`);
    expect(screen).toMatch(/✓ restored tty: [\d.]+ MiB to .*restored\.db/);
    const verified = await atTerminal("verify");
    expect(verified).toMatch(/✓ verified tty: [\d.]+ MiB, sha256 and structure as stored/);
    const failed = await atTerminal("verify no-such-backup.sqlite.gz", 1);
    expect(failed).toMatch(/(^|\n|\x1b\[2K)error \[INVALID_BACKUP_FILE\]/);
  });
});
