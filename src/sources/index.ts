/**
 * BACKUP_SOURCE → a Source. Runtime capabilities (a file system on Node) are passed in;
 * a runtime without one gets a clear error instead of a missing import.
 */
import type { SourceSpec } from "../config.js";
import { BackupError } from "../errors.js";
import { fileSource, type FileAccess } from "./file.js";
import type { Source } from "./source.js";

export interface SourceCapabilities {
  files?: FileAccess;
}

export function createSource(spec: SourceSpec, caps: SourceCapabilities): Source {
  switch (spec.kind) {
    case "file":
      if (!caps.files) {
        throw new BackupError("SOURCE_UNSUPPORTED", "BACKUP_SOURCE is a file path, but this runtime has no file system: use an http(s):// or s3:// source.", 500);
      }
      return fileSource(caps.files, spec.path);
    case "url":
    case "s3":
      throw new BackupError(
        "SOURCE_UNSUPPORTED",
        `BACKUP_SOURCE of kind ${spec.kind} is not supported by this version yet: use a file path.`,
        500,
      );
  }
}
