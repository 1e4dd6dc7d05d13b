/**
 * Command line: `npm run cli -- <command>`. Results on stdout, JSON logs on stderr,
 * errors as one line on stderr and a non-zero exit.
 */
import { resolve } from "node:path";
import { parseArgs } from "node:util";
import { resolveBackup } from "../src/catalog.js";
import { BackupError } from "../src/errors.js";
import { redact } from "../src/log.js";
import { restoreBackup } from "../src/restore.js";
import { verifyBackup } from "../src/verify.js";
import { createNodeContext } from "./node-context.js";
import { nodeRestoreFiles } from "./node-restore-files.js";
import { startServer } from "./node-server.js";

const USAGE = `usage: npm run cli -- <command>
  backup                 back up BACKUP_SOURCE now; prints the manifest as JSON
  list [--json]          list this name's backups, newest first
  link [file|latest]     print a signed download link (default: latest)
  verify [file|latest] [--json]
                         download, gunzip, compare sha256 with the metadata and run
                         PRAGMA integrity_check (default: latest); exit 1 if anything is wrong
  restore [file|latest] --to PATH [--force | --if-missing] [--json]
                         restore atomically to PATH (temp file, verified, renamed over PATH);
                         --force replaces an existing PATH, --if-missing keeps it and exits 0
  serve                  run the HTTP API on HOST:PORT and back up on SCHEDULE
configuration comes from the environment; see README.md`;

const COMMANDS = ["backup", "list", "link", "verify", "restore", "serve"];

function usageError(message: string): number {
  process.stderr.write(`error: ${message} (--help for usage)\n`);
  return 2;
}

export async function main(argv: string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const { positionals, values } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      json: { type: "boolean", default: false },
      help: { type: "boolean", short: "h", default: false },
      to: { type: "string" },
      force: { type: "boolean", default: false },
      "if-missing": { type: "boolean", default: false },
    },
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
  if (command !== "restore" && (values.to !== undefined || values.force || values["if-missing"])) {
    return usageError(`--to, --force and --if-missing belong to restore, not ${command}`);
  }
  if ((command === "verify" || command === "restore" || command === "link") && rest.length > 1) {
    return usageError(`${command} takes one backup (a file name or "latest"), got ${rest.length}`);
  }
  if (command === "restore") {
    if (values.to === undefined || values.to.trim() === "") return usageError("restore needs --to PATH (the database file to create or replace)");
    if (values.force && values["if-missing"]) return usageError("--force and --if-missing contradict each other: choose one");
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
    case "verify": {
      const found = await resolveBackup(ctx.store, ctx.config, rest[0] ?? "latest");
      const report = await verifyBackup(ctx.store, ctx.runtime, found.key, { maxBytes: ctx.config.maxBytes });
      if (values.json) process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
      else {
        process.stdout.write(
          `ok ${report.key}: ${report.bytes} bytes, sha256 ${report.sha256} matches, ${report.pageCount} pages of ${report.pageSize} bytes, integrity_check ok\n`,
        );
      }
      return 0;
    }
    case "restore": {
      const result = await restoreBackup(
        { config: ctx.config, runtime: ctx.runtime, store: ctx.store, files: nodeRestoreFiles },
        { which: rest[0] ?? "latest", target: resolve(values.to ?? ""), force: values.force, ifMissing: values["if-missing"] },
      );
      if (values.json) process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
      else if (!result.restored) process.stdout.write(`${result.target} exists; nothing restored\n`);
      else {
        const replaced = result.replaced ? " (replaced the existing file)" : "";
        process.stdout.write(`restored ${result.key} (${result.bytes} bytes, sha256 ${result.sha256}) to ${result.target}${replaced}\n`);
      }
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
