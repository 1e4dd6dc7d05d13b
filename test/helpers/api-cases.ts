/**
 * Cases shared by the API suites on Node (test/api) and in workerd (test/workers), so both
 * runtimes are held to the same list.
 */

/** A valid backup file name of the name "files". */
export const VALID_FILE = "files-2026-01-02T03-04-05-678Z-abcdef.sqlite.gz";

/** `{file}` path segments that must get 400 INVALID_BACKUP_FILE before any store call (name "files"). */
export const HOSTILE_FILE_SEGMENTS: readonly [label: string, segment: string][] = [
  ["encoded traversal", "..%2F..%2Fetc%2Fpasswd"],
  ["encoded dots and slash", "%2e%2e%2fsecret"],
  ["encoded slash inside a name", `files%2F${VALID_FILE}`],
  ["backslash traversal", `..%5C${VALID_FILE}`],
  ["NUL byte", "a%00b"],
  ["NUL after a valid name", `${VALID_FILE}%00`],
  ["another name's file", "other-2026-01-02T03-04-05-678Z-abcdef.sqlite.gz"],
  ["a name that only starts like ours", "files2-2026-01-02T03-04-05-678Z-abcdef.sqlite.gz"],
  ["uppercase", VALID_FILE.toUpperCase()],
  ["uppercase hex suffix", "files-2026-01-02T03-04-05-678Z-ABCDEF.sqlite.gz"],
  ["wrong extension", "files-2026-01-02T03-04-05-678Z-abcdef.sqlite"],
  ["extra extension", `${VALID_FILE}.bak`],
  ["extra path segment", `files/${VALID_FILE}`],
  ["500 characters", "a".repeat(500)],
  ["an impossible date (Feb 31)", "files-2026-02-31T10-00-00-000Z-abcdef.sqlite.gz"],
  ["hour 24", "files-2026-01-02T24-00-00-000Z-abcdef.sqlite.gz"],
  ["short suffix", "files-2026-01-02T03-04-05-678Z-abcde.sqlite.gz"],
  ["trailing space", `${VALID_FILE}%20`],
  ["LATEST", "LATEST"],
  ["malformed percent-encoding", "%E0%A4%A"],
  ["a lone percent sign", "%"],
];

/** Dot-segments: the URL parser resolves them before routing, so they never reach `{file}`. */
export const DOT_SEGMENTS = [".", "..", "%2e%2e", ".%2E", "%2E."] as const;

/** Every route that requires the API key, with its success status; `file` is an existing backup. */
export function protectedRoutes(file: string): { method: string; path: string; ok: number }[] {
  return [
    { method: "POST", path: "/backups", ok: 201 },
    { method: "GET", path: "/backups", ok: 200 },
    { method: "GET", path: "/backups/latest/link", ok: 200 },
    { method: "GET", path: `/backups/${file}/link`, ok: 200 },
    { method: "GET", path: "/backups/latest/link?redirect=1", ok: 302 },
    { method: "GET", path: "/status", ok: 200 },
    { method: "GET", path: "/metrics", ok: 200 },
  ];
}
