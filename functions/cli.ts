/**
 * Command line: `npm run cli -- <command>`. Results on stdout, JSON logs on stderr,
 * errors as one line on stderr and a non-zero exit.
 */
import { parseArgs } from "node:util";
import { createLink, listBackups } from "../src/catalog.js";
import { BackupError } from "../src/errors.js";
import { redact } from "../src/log.js";
import { createNodeContext } from "./node-context.js";

const USAGE = `usage: npm run cli -- <command>
  backup                 back up BACKUP_SOURCE now; prints the manifest as JSON
  list [--json]          list this name's backups, newest first
  link [file|latest]     print a signed download link (default: latest)
configuration comes from the environment; see README.md`;

const COMMANDS = ["backup", "list", "link"];

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
  const ctx = await createNodeContext(env);
  switch (command) {
    case "backup": {
      const manifest = await ctx.backup.run();
      process.stdout.write(`${JSON.stringify(manifest, null, 2)}\n`);
      return manifest.pruneError ? 3 : 0;
    }
    case "list": {
      const backups = await listBackups(ctx.store, ctx.config);
      if (values.json) process.stdout.write(`${JSON.stringify({ backups }, null, 2)}\n`);
      else if (backups.length === 0) process.stderr.write(`no backups of "${ctx.config.name}" in ${ctx.store.description}\n`);
      else for (const b of backups) process.stdout.write(`${b.lastModified}  ${String(b.size).padStart(12)}  ${b.file}\n`);
      return 0;
    }
    case "link": {
      const link = await createLink(ctx.store, ctx.config, rest[0] ?? "latest", ctx.runtime.now());
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
