/**
 * Once per vitest run: a directory the test files of this run share (removed at the end).
 * The Greengrass zips are built into it by the first test file that needs them
 * (test/greengrass/packaged.ts), so several files test one build instead of building it
 * each; what is slow to make (runtimes, compiled modules) lives in the packager's cache,
 * across runs.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestProject } from 'vitest/node';

declare module 'vitest' {
  export interface ProvidedContext {
    runDir: string;
  }
}

export default function setup(project: TestProject): () => void {
  const dir = mkdtempSync(join(tmpdir(), 'edgeloop-test-run-'));
  project.provide('runDir', dir);
  return () => rmSync(dir, { recursive: true, force: true });
}
