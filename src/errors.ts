/**
 * Typed errors. Every failure a user can meet carries a stable `code` (for scripts and
 * alerts), an HTTP `status` (4xx: the input or request is wrong, 5xx: the store or the
 * server is), and a message that says what to do. Messages never contain secrets.
 */
export type ErrorCode =
  | "CONFIG_INVALID"
  | "SOURCE_NOT_FOUND"
  | "SOURCE_UNREADABLE"
  | "SOURCE_EMPTY"
  | "SOURCE_TOO_LARGE"
  | "SOURCE_CHANGED"
  | "SOURCE_UNSUPPORTED"
  | "NOT_SQLITE"
  | "SQLITE_TRUNCATED"
  | "SQLITE_CORRUPT"
  | "HOT_JOURNAL"
  | "STORE_AUTH"
  | "STORE_BUCKET_MISSING"
  | "STORE_UNREACHABLE"
  | "STORE_ERROR"
  | "UPLOAD_FAILED"
  | "VERIFY_FAILED"
  | "IDENTITY_REQUIRED"
  | "DECRYPT_FAILED"
  | "BACKUP_NOT_FOUND"
  | "INVALID_BACKUP_FILE"
  | "NEWEST_BACKUP"
  | "TARGET_EXISTS"
  | "TARGET_UNWRITABLE"
  | "BACKUP_RUNNING"
  | "NAME_REQUIRED"
  | "UNKNOWN_NAME"
  | "CONDITIONAL_WRITE_UNSUPPORTED"
  | "LOCK_UNSUPPORTED"
  | "PRESIGN_UNSUPPORTED"
  | "UNAUTHORIZED"
  | "API_DISABLED"
  | "LINK_INVALID"
  | "LINK_EXPIRED"
  | "DOWNLOADS_DISABLED"
  | "RANGE_NOT_SATISFIABLE"
  | "NOT_FOUND"
  | "BAD_REQUEST"
  | "BODY_TOO_LARGE"
  | "INTERNAL";

export class BackupError extends Error {
  override readonly name = "BackupError";
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly status: number = 500,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }

  toJSON(): { code: ErrorCode; message: string } {
    return { code: this.code, message: this.message };
  }
}

/** Wrap anything thrown into a BackupError without losing the original as `cause`. */
export function asBackupError(err: unknown): BackupError {
  if (err instanceof BackupError) return err;
  return new BackupError("INTERNAL", err instanceof Error ? err.message : String(err), 500, { cause: err });
}

/** fetch's errors are "fetch failed" with the reason in `cause` (ECONNREFUSED, ENOTFOUND, TLS…). */
export function describeCause(err: unknown): string {
  const parts: string[] = [];
  let current: unknown = err;
  for (let depth = 0; current !== undefined && current !== null && depth < 5; depth++) {
    if (typeof current === "object") {
      const e = current as { message?: unknown; code?: unknown; cause?: unknown };
      const message = typeof e.message === "string" ? e.message.replace(/\.+$/, "") : "";
      const code = typeof e.code === "string" ? e.code : "";
      const text = code && !message.includes(code) ? `${message} (${code})` : message;
      if (text && !parts.includes(text)) parts.push(text);
      current = e.cause;
    } else {
      parts.push(String(current));
      break;
    }
  }
  return parts.join(": ") || "unknown error";
}
