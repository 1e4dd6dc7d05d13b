/**
 * A real SQLite connection in a separate process (the sqlite3 CLI) that stays open between
 * statements, as an application's does: its WAL is not checkpointed away on close, its
 * uncommitted transactions stay uncommitted, and its writes race with our reads.
 */
import { spawn, type ChildProcessWithoutNullStreams } from "node:child_process";

export interface SqliteSession {
  /** Run SQL (one or more statements) and wait until the CLI has finished it; resolves with its output. */
  exec(sql: string): Promise<string>;
  /** Close the connection (SQLite checkpoints and removes the WAL on a clean close). */
  close(): Promise<void>;
  /** Kill the process without closing the connection, as a crash would. */
  kill(): Promise<void>;
  readonly pid: number | undefined;
}

const SENTINEL = "__seb_done__";

export function openSqliteSession(dbPath: string): SqliteSession {
  const child: ChildProcessWithoutNullStreams = spawn("sqlite3", ["-batch", "-bail", dbPath], { stdio: ["pipe", "pipe", "pipe"] });
  let out = "";
  let err = "";
  let waiting: { resolve: (s: string) => void; reject: (e: Error) => void } | undefined;
  let exited: Error | undefined;
  const exitPromise = new Promise<void>((resolve) => child.once("exit", () => resolve()));

  // Writing to a process that was killed mid-statement must not crash the test run (EPIPE).
  child.stdin.on("error", () => undefined);
  child.stdout.setEncoding("utf8");
  child.stderr.setEncoding("utf8");
  child.stdout.on("data", (chunk: string) => {
    out += chunk;
    const at = out.indexOf(`${SENTINEL}\n`);
    if (at >= 0 && waiting) {
      const result = out.slice(0, at);
      out = out.slice(at + SENTINEL.length + 1);
      const w = waiting;
      waiting = undefined;
      if (err) {
        const e = err;
        err = "";
        w.reject(new Error(`sqlite3 ${dbPath}: ${e.trim()}`));
      } else w.resolve(result);
    }
  });
  child.stderr.on("data", (chunk: string) => {
    err += chunk;
  });
  child.once("exit", (code, signal) => {
    exited = new Error(`sqlite3 ${dbPath} exited (${signal ?? code})${err ? `: ${err.trim()}` : ""}`);
    waiting?.reject(exited);
    waiting = undefined;
  });
  child.once("error", (e) => {
    exited = e;
    waiting?.reject(e);
    waiting = undefined;
  });

  return {
    pid: child.pid,
    exec(sql) {
      if (exited) return Promise.reject(exited);
      if (waiting) return Promise.reject(new Error("one statement at a time"));
      return new Promise<string>((resolve, reject) => {
        waiting = { resolve, reject };
        child.stdin.write(`${sql.trim().replace(/;?$/, ";")}\n.print ${SENTINEL}\n`);
      });
    },
    async close() {
      if (exited) return;
      child.stdin.end(".quit\n");
      await exitPromise;
    },
    async kill() {
      if (exited) return;
      child.kill("SIGKILL");
      await exitPromise;
    },
  };
}
