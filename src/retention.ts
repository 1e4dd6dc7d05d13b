/**
 * Which backups to delete (pure). Input: the keys found under this name's folder (anything,
 * including objects we did not write), the new backup's key, and MAX_COUNT. Output: the
 * keys to delete — only keys that parse exactly as this name's backups, oldest first.
 */
import { newestFirst, parseKey, type BackupKey } from "./keys.js";

export interface RetentionPlan {
  keep: BackupKey[];
  delete: BackupKey[];
  /** Keys under the folder that are not ours; never touched. */
  ignored: string[];
}

export function planRetention(options: {
  prefix: string;
  name: string;
  keys: readonly string[];
  maxCount: number;
  /** The backup just written: always kept, even if a skewed clock elsewhere wrote "newer" keys. */
  protect: string;
}): RetentionPlan {
  const { prefix, name, keys, maxCount, protect } = options;
  if (!Number.isInteger(maxCount) || maxCount < 1) throw new Error(`maxCount must be a positive integer, got ${maxCount}`);
  const ours: BackupKey[] = [];
  const ignored: string[] = [];
  for (const key of new Set(keys)) {
    const parsed = parseKey(prefix, name, key);
    if (parsed) ours.push(parsed);
    else ignored.push(key);
  }
  const protectedKey = ours.find((k) => k.key === protect);
  const others = newestFirst(ours.filter((k) => k.key !== protect));
  const room = protectedKey ? maxCount - 1 : maxCount;
  const keep = newestFirst([...(protectedKey ? [protectedKey] : []), ...others.slice(0, room)]);
  const del = others.slice(room).reverse();
  return { keep, delete: del, ignored };
}
