/**
 * Schedule decisions (pure). A trigger window starts at a cron tick; the backup "for" a
 * window is any backup taken at or after its start. Instances compare against the bucket,
 * not their own memory, so restarts and overlapping instances agree on what is done.
 */

/** Whether the newest backup already covers the window starting at `windowStart`. */
export function alreadyBackedUp(newest: Date | undefined, windowStart: Date): boolean {
  return newest !== undefined && newest.getTime() >= windowStart.getTime();
}

/**
 * The window a starting scheduler owes a backup for: the last tick before now, unless a
 * backup at or after it exists. Restarting ten times a day therefore backs up at most once
 * per window, and a process that was down over a tick catches up once when it comes back.
 */
export function missedWindow(newest: Date | undefined, lastTick: Date | undefined): Date | undefined {
  if (lastTick === undefined) return undefined;
  return alreadyBackedUp(newest, lastTick) ? undefined : lastTick;
}
