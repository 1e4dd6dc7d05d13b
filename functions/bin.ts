#!/usr/bin/env node
// The package's command, `sqlite-edge-backup` (package.json "bin"): the CLI of functions/cli.ts.
import module from "node:module";

// Node ≥ 22.1 keeps V8's compiled code of the modules a command loads (the AWS SDK above all)
// on disk, so that the next start skips compiling them; Node 20 has no such cache.
(module as { enableCompileCache?: () => unknown }).enableCompileCache?.();

const { run } = await import("./cli.js");
run();
