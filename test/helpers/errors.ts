/**
 * The error a failing call must end in: a BackupError (anything else, or no error at all,
 * fails the test where it is awaited).
 */
import { expect } from "vitest";
import { BackupError } from "../../src/errors.js";

export async function backupError(p: Promise<unknown>, what?: string): Promise<BackupError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err, what).toBeInstanceOf(BackupError);
  return err as BackupError;
}
