import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // A directory shared by this run's test files (the Greengrass zips are built once into it).
    globalSetup: ['test/global-setup.ts'],
    // ONNX Runtime's telemetry off in every test process and the children they start (shared/no-telemetry.ts).
    env: { ORT_DISABLE_TELEMETRY: '1' },
    // Real ONNX Runtime sessions, SQLite files and brokers: give them room on 2 cores.
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
    poolOptions: { forks: { maxForks: 2, minForks: 1 } },
  },
});
