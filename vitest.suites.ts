/**
 * Which suites `npm test` leaves to `npm run test:long` (issue 16: the quick loop stays under
 * ~150 s on 2 cores). These are the slow ones, not the only tests of a module: each module they
 * exercise has a quick suite too. `npm run test:long` runs them on the in-process S3 server,
 * and `npm run test:integration` (which runs every suite but test/long/) runs them on Swift.
 */
export const LONG_SUITES = [
  "test/long/**/*.test.ts", // databases past 1 GiB, 300 MiB Worker round trips
  "test/soak.test.ts", // 200 runs with injected faults
  "test/faults.test.ts", // the fault matrix (S3 errors and timeouts at every step)
  "test/lock-processes.test.ts", // the lease between real processes
  "test/sources/live-writer.test.ts", // backups while real writers commit
  "test/stream-backup.test.ts", // failures after parts were uploaded (multipart-sized databases)
  "test/workers/stream.test.ts", // the same in workerd
  "test/retention-store.test.ts", // a year of scheduled runs against the store
  "test/r2-backup.test.ts", // the pipeline into Miniflare's R2 from Node: 12 MiB streamed, a dead run's upload
  "test/sqlite/structure-property.test.ts", // property test over generated databases
  // Command-line round trips, each a few real processes doing real backups (the quick loop keeps
  // test/cli.test.ts, test/fleet.test.ts and test/pretty-log.test.ts for the command itself):
  "test/cli-restore.test.ts", // restore and verify through the CLI (the core: test/restore.test.ts)
  "test/age.test.ts", // encryption through the CLI and the age binary (the core: test/encrypt.test.ts)
  "test/manage-cli.test.ts", // info and delete through the CLI (the core: test/api/delete.test.ts)
  "test/package/**/*.test.ts", // build, npm pack, install into an empty project, run it there
] as const;
