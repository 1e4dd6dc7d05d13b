/**
 * vitest setupFiles entry: capture this test file's output (test/helpers/log-capture.ts) into
 * the run directory that test/setup/global-log-capture.ts provides.
 */
import { expect, inject } from "vitest";
import { startCapture } from "../helpers/log-capture.js";

const dir = inject("logCaptureDir");
if (dir) startCapture(dir, expect.getState().testPath);
