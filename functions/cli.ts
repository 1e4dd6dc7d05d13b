/**
 * Command line: `npm run cli -- <command>`. Results on stdout, JSON logs on stderr,
 * errors as one line on stderr and a non-zero exit.
 */
import { parseArgs } from "node:util";
import { BackupError } from "../src/errors.js";
import { redact } from "../src/log.js";
import { createNodeContext } from "./node-context.js";
import { startServer } from "./node-server.js";

const USAGE = `usage: npm run cli -- <command>
  backup                 back up BACKUP_SOURCE now; prints the manifest as JSON
  list [--json]          list this name's backups, newest first
  link [file|latest]     print a signed download link (default: latest)
  serve                  run the HTTP API on HOST:PORT and back up on SCHEDULE
configuration comes from the environment; see README.md`;

const COMMANDS = ["backup", "list", "link", "serve"];

export async function main(argv: string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const { positionals, values } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: { json: { type: "boolean", default: false }, help: { type: "boolean", short: "h", default: false } },
  });
  const [command, ...rest] = positionals;
  if (values.help || !command) {
    process.stdout.write(`${USAGE}\n`);
    return command || values.help ? 0 : 2;
  }
  if (!COMMANDS.includes(command)) {
    process.stderr.write(`error: unknown command "${command}" (commands: ${COMMANDS.join(", ")}; --help for usage)\n`);
    return 2;
  }
  if (command === "serve") {
    const server = await startServer(env);
    process.stderr.write(`serving on ${server.url}; Ctrl-C to stop\n`);
    await new Promise<void>((resolve) => {
      process.once("SIGINT", resolve);
      process.once("SIGTERM", resolve);
    });
    await server.stop();
    return 0;
  }
  const ctx = await createNodeContext(env);
  switch (command) {
    case "backup": {
      const manifest = await ctx.service.backup();
      process.stdout.write(`${JSON.stringify(manifest, null, 2)}\n`);
      return manifest.pruneError ? 3 : 0;
    }
    case "list": {
      const backups = await ctx.service.list();
      if (values.json) process.stdout.write(`${JSON.stringify({ backups }, null, 2)}\n`);
      else if (backups.length === 0) process.stderr.write(`no backups of "${ctx.config.name}" in ${ctx.store.description}\n`);
      else for (const b of backups) process.stdout.write(`${b.lastModified}  ${String(b.size).padStart(12)}  ${b.file}\n`);
      return 0;
    }
    case "link": {
      const link = await ctx.service.link(rest[0] ?? "latest");
      process.stdout.write(`${link.url}\n`);
      return 0;
    }
    default:
      return 2;
  }
}

export function describeError(err: unknown): string {
  if (err instanceof BackupError) return `error [${err.code}]: ${err.message}`;
  if (err instanceof Error && "code" in err && String((err as { code: unknown }).code).startsWith("ERR_PARSE_ARGS")) return `error: ${err.message}`;
  return `error: ${err instanceof Error ? err.message : String(err)}`;
}

// Run when executed directly (not when imported by tests).
if (import.meta.url === `file://${process.argv[1]}`) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (err: unknown) => {
      process.stderr.write(`${redact(describeError(err), [process.env.S3_SECRET_ACCESS_KEY ?? "", process.env.API_KEY ?? ""])}\n`);
      process.exit(1);
    },
  );
}
