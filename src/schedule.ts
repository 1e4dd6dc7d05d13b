/**
 * Schedule decisions (pure). A trigger window starts at a cron tick; the backup "for" a
 * window is any backup taken at or after its start. Instances compare against the bucket,
 * not their own memory, so restarts and overlapping instances agree on what is done (a
 * starting Node server asks about the last tick: functions/node-server.ts).
 */

/** Whether the newest backup already covers the window starting at `windowStart`. */
export function alreadyBackedUp(newest: Date | undefined, windowStart: Date): boolean {
  return newest !== undefined && newest.getTime() >= windowStart.getTime();
}

