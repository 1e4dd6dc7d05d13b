/**
 * Two real Node processes on the same name and schedule, triggered at the same moment for
 * 50 windows: every window gets exactly one backup. A lease holder that is SIGKILLed
 * blocks the others only until its lease expires.
 */
import { spawn, type ChildProcessWithoutNullStreams } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { writeDatabase } from "./helpers/db.js";
import { capture, registerEnvSecrets } from "./helpers/log-capture.js";
import { startTestStore, type TestStore } from "./helpers/s3.js";

interface Instance {
  child: ChildProcessWithoutNullStreams;
  /** The next JSON line on its stdout. */
  next(): Promise<Record<string, unknown>>;
  send(line: string): void;
}

let s3: TestStore;
let dir: string;
const running: Instance[] = [];

function start(env: Record<string, string>, label: string): Instance {
  registerEnvSecrets(env);
  const child = spawn(process.execPath, ["--import", "tsx", "test/processes/instance.ts"], {
    env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "", AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: "true", ...env },
  });
  child.stderr.on("data", (d: Buffer) => capture(`${label} stderr`, d.toString()));
  const waiting: ((v: Record<string, unknown>) => void)[] = [];
  const queued: Record<string, unknown>[] = [];
  createInterface({ input: child.stdout }).on("line", (line) => {
    capture(`${label} stdout`, line);
    const value = JSON.parse(line) as Record<string, unknown>;
    const w = waiting.shift();
    if (w) w(value);
    else queued.push(value);
  });
  const instance: Instance = {
    child,
    next: () =>
      new Promise((resolve, reject) => {
        const q = queued.shift();
        if (q) return resolve(q);
        waiting.push(resolve);
        child.once("exit", (code) => reject(new Error(`${label} exited (${code}) before answering`)));
      }),
    send: (line) => child.stdin.write(`${line}\n`),
  };
  running.push(instance);
  return instance;
}

beforeAll(async () => {
  s3 = await startTestStore();
  dir = await mkdtemp(join(tmpdir(), "seb-lock-proc-"));
});
afterAll(async () => {
  for (const i of running) i.child.kill("SIGKILL");
  await s3?.close();
  await rm(dir, { recursive: true, force: true });
});

describe("two processes, one name", () => {
  it("triggered together for 50 windows: exactly one backup per window, never two", { timeout: 600_000 }, async () => {
    const path = join(dir, "twin.db");
    await writeDatabase(path, { rows: 100 });
    const env = s3.env({ BACKUP_SOURCE: path, BACKUP_NAME: "twin", MAX_COUNT: "1000" });
    const [a, b] = [start(env, "instance A"), start(env, "instance B")];
    await Promise.all([a.next(), b.next()]); // ready

    const outcomes = { ran: 0, covered: 0, busy: 0 };
    for (let round = 0; round < 50; round++) {
      const window = new Date().toISOString();
      a.send(`scheduled ${window}`);
      b.send(`scheduled ${window}`);
      const answers = await Promise.all([a.next(), b.next()]);
      const ran = answers.filter((x) => x.ran === true);
      expect(ran, `round ${round}: ${JSON.stringify(answers)}`).toHaveLength(1);
      const other = answers.find((x) => x.ran !== true)!;
      // The other one either found the lease taken or, coming later, the window covered.
      expect(other.ran === false || other.error === "BACKUP_RUNNING", JSON.stringify(other)).toBe(true);
      outcomes.ran += 1;
      if (other.ran === false) outcomes.covered += 1;
      else outcomes.busy += 1;
    }
    const keys = (await s3.keys("backups/twin/")).filter((k) => k.endsWith(".sqlite.gz"));
    expect(keys).toHaveLength(50);
    expect((await s3.keys("backups/twin/")).filter((k) => k.includes(".lock"))).toEqual([]);
    console.log(`lock-processes: 50 windows, ${outcomes.ran} backups, loser found the lease held ${outcomes.busy}×, the window covered ${outcomes.covered}×`);
    for (const i of [a, b]) i.child.kill();
  });

  it("a SIGKILLed lease holder blocks the others only until its lease expires", { timeout: 120_000 }, async () => {
    const path = join(dir, "killed.db");
    await writeDatabase(path, { rows: 20 });
    const env = s3.env({ BACKUP_SOURCE: path, BACKUP_NAME: "killed", LOCK_TTL_SECONDS: "4" });
    const [holder, other] = [start(env, "holder"), start(env, "survivor")];
    await Promise.all([holder.next(), other.next()]); // both ready before the clock starts
    holder.send("hold");
    expect(await holder.next()).toEqual({ held: true });
    holder.child.kill("SIGKILL");

    other.send(`scheduled ${new Date().toISOString()}`);
    const first = await other.next();
    expect(first.error, JSON.stringify(first)).toBe("BACKUP_RUNNING");
    expect(String(first.message)).toMatch(/test holder pid \d+/);

    // The dead holder renews no more: within a few TTLs the survivor gets through.
    let answer = first;
    for (let attempt = 0; attempt < 20 && answer.ran !== true; attempt++) {
      await new Promise((r) => setTimeout(r, 500));
      other.send(`scheduled ${new Date().toISOString()}`);
      answer = await other.next();
    }
    expect(answer.ran, JSON.stringify(answer)).toBe(true);
    expect(await s3.keys("backups/killed/")).toHaveLength(1);
    other.child.kill();
  });
});
