/**
 * Object key naming and parsing (pure).
 *
 *   {prefix}{name}/{name}-{YYYY-MM-DDTHH-MM-SS-mmmZ}-{6 hex}.sqlite.gz
 *   {prefix}{name}/{name}-{YYYY-MM-DDTHH-MM-SS-mmmZ}-{6 hex}.sqlite.gz.age   (AGE_RECIPIENTS set)
 *
 * UTC, fixed width, so lexicographic order is chronological order (the extension comes after
 * the time and suffix, so plain and encrypted backups of one name sort together). Only keys
 * that parse exactly are ever listed, linked or pruned: anything else in the bucket is not ours.
 */
export const NAME_PATTERN = /^[a-z0-9][a-z0-9._-]{0,62}$/;
export const BACKUP_EXTENSION = ".sqlite.gz";
/** An age-encrypted backup: the gzip, encrypted to AGE_RECIPIENTS. */
export const ENCRYPTED_EXTENSION = ".sqlite.gz.age";

const STAMP = String.raw`(\d{4})-(\d{2})-(\d{2})T(\d{2})-(\d{2})-(\d{2})-(\d{3})Z`;
const SUFFIX = String.raw`([0-9a-f]{6})`;
const SUFFIX_SPACE = 0x1000000;

export interface BackupKey {
  key: string;
  /** The key's last segment: what users pass to `link`, `verify` and `restore`. */
  file: string;
  name: string;
  time: Date;
  suffix: string;
  /** The object is age-encrypted (its key ends in `.sqlite.gz.age`). */
  encrypted: boolean;
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

function fileRegExp(name: string): RegExp {
  return new RegExp(`^${escapeRegExp(name)}-${STAMP}-${SUFFIX}${escapeRegExp(BACKUP_EXTENSION)}(\\.age)?$`);
}

/** The folder holding one name's backups. */
export function backupFolder(prefix: string, name: string): string {
  return `${prefix}${name}/`;
}

export function formatStamp(time: Date): string {
  // toISOString is UTC and fixed width for years 0000-9999: 2026-11-23T10:42:36.123Z
  return time.toISOString().replace(/:/g, "-").replace(/\.(\d{3})Z$/, "-$1Z");
}

export function buildKey(prefix: string, name: string, time: Date, suffix: number, encrypted = false): BackupKey {
  if (!NAME_PATTERN.test(name)) throw new Error(`invalid backup name ${JSON.stringify(name)}`);
  if (!Number.isInteger(suffix) || suffix < 0 || suffix >= SUFFIX_SPACE) throw new Error(`invalid key suffix ${suffix}`);
  const hex = suffix.toString(16).padStart(6, "0");
  const file = `${name}-${formatStamp(time)}-${hex}${encrypted ? ENCRYPTED_EXTENSION : BACKUP_EXTENSION}`;
  return { key: `${backupFolder(prefix, name)}${file}`, file, name, time, suffix: hex, encrypted };
}

/** Parse a file name (the key's last segment) of `name`'s backups; undefined if it is not one. */
export function parseFile(name: string, file: string): Omit<BackupKey, "key"> | undefined {
  const m = fileRegExp(name).exec(file);
  if (!m) return undefined;
  const [, y, mo, d, h, mi, s, ms, suffix, age] = m as unknown as [string, string, string, string, string, string, string, string, string, string | undefined];
  const time = new Date(Date.UTC(+y, +mo - 1, +d, +h, +mi, +s, +ms));
  // Reject impossible dates (2026-02-31) so that parsing and formatting round-trip exactly.
  if (Number.isNaN(time.getTime()) || formatStamp(time) !== `${y}-${mo}-${d}T${h}-${mi}-${s}-${ms}Z`) return undefined;
  return { file, name, time, suffix, encrypted: age !== undefined };
}

/** Parse a full key; only keys directly in `{prefix}{name}/` that match exactly. */
export function parseKey(prefix: string, name: string, key: string): BackupKey | undefined {
  const folder = backupFolder(prefix, name);
  if (!key.startsWith(folder)) return undefined;
  const parsed = parseFile(name, key.slice(folder.length));
  return parsed ? { key, ...parsed } : undefined;
}

/** Newest first: lexicographic order of the fixed-width key is creation order. */
export function newestFirst<T extends { key: string }>(keys: readonly T[]): T[] {
  return [...keys].sort((a, b) => (a.key < b.key ? 1 : a.key > b.key ? -1 : 0));
}

/**
 * A key factory that never repeats itself: the suffix is random per millisecond (so separate
 * processes stay apart) and counts up within one millisecond (so one process's keys stay
 * unique and in creation order even when several backups start in the same millisecond).
 */
export function createKeyFactory(random: () => number, prefix: string, name: string, encrypted = false): (time: Date) => BackupKey {
  let lastMs = Number.NaN;
  let lastSuffix = 0;
  return (time) => {
    const ms = time.getTime();
    if (ms === lastMs) {
      lastSuffix += 1;
      if (lastSuffix >= SUFFIX_SPACE) throw new Error("more than 16M keys in one millisecond");
    } else {
      lastMs = ms;
      // Leave headroom so counting up within the millisecond cannot wrap.
      lastSuffix = Math.floor(random() * (SUFFIX_SPACE / 2));
    }
    return buildKey(prefix, name, time, lastSuffix, encrypted);
  };
}
