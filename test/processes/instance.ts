/**
 * One backup instance as a separate process, driven line by line over stdin, for the
 * two-process lock test (test/lock-processes.test.ts). Configuration from the environment,
 * as in production. Commands:
 *   scheduled <ISO time>  → {"ran":true,"key":…} | {"ran":false,"reason":…} | {"error":CODE}
 *   hold                  → takes this name's lease and keeps renewing it until killed
 * One JSON line on stdout per command; logs go to stderr.
 */
import { createInterface } from "node:readline";
import { createNodeContext } from "../../functions/node-context.js";
import { asBackupError } from "../../src/errors.js";
import { createLock } from "../../src/lock.js";

const ctx = await createNodeContext(process.env);
const say = (o: unknown) => process.stdout.write(`${JSON.stringify(o)}\n`);
say({ ready: process.pid });

for await (const line of createInterface({ input: process.stdin })) {
  const [command, arg] = line.trim().split(/\s+/);
  if (command === "scheduled") {
    try {
      const r = await ctx.service.scheduled(new Date(arg ?? ""));
      say(r.ran ? { ran: true, key: r.manifest.key } : { ran: false, reason: r.reason });
    } catch (err) {
      say({ error: asBackupError(err).code, message: asBackupError(err).message });
    }
  } else if (command === "hold") {
    const lock = createLock({
      store: ctx.store,
      prefix: ctx.config.s3.prefix,
      name: ctx.config.name,
      mode: ctx.config.lock.mode,
      ttlMs: ctx.config.lock.ttlMs,
      settleMs: 200,
      owner: `holder${process.pid}`,
      holder: `test holder pid ${process.pid}`,
      now: () => new Date(),
      logger: ctx.logger,
    });
    await lock.acquire();
    say({ held: true });
  } else {
    say({ error: "UNKNOWN_COMMAND" });
  }
}
