/**
 * This package's version (package.json "version"): the User-Agent of alerts and
 * `sqlite-edge-backup --version`. A constant rather than a JSON import, so that the compiled
 * package (dist/) needs no package.json beside it at run time; test/package/version.test.ts
 * fails when it differs from package.json.
 */
export const VERSION = "0.1.0";
