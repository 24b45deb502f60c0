import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'coverage/**', '.data/**', 'greengrass-recipes/build/**', 'benchmarks/out/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { globals: { process: 'readonly', console: 'readonly', URL: 'readonly', Buffer: 'readonly', setTimeout: 'readonly', clearTimeout: 'readonly', setInterval: 'readonly', clearInterval: 'readonly', setImmediate: 'readonly' } },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/consistent-type-imports': 'error',
      'no-restricted-imports': ['error', { patterns: [] }],
    },
  },
  {
    // Dependencies point inward: the agent never imports the fleet, and vice versa.
    files: ['agent/**/*.ts'],
    rules: { 'no-restricted-imports': ['error', { patterns: ['**/fleet/**'] }] },
  },
  {
    files: ['shared/**/*.ts'],
    rules: { 'no-restricted-imports': ['error', { patterns: ['**/agent/**', '**/fleet/**'] }] },
  },
  // The fleet's layers, innermost first (docs/architecture.md): core (pure domain) -> ml (the
  // training library) -> app (services, ports) -> adapters (sqlite, fs, mqtt, aws, trainers) ->
  // boot (composition root) -> edges (http, console, cli, client) -> demo. A layer imports only
  // layers before it; the program entry (fleet/main.ts) wires the demo command in.
  ...fleetLayers(),
);

function fleetLayers() {
  const order = ['core', 'ml', 'app', 'adapters', 'boot', 'edges', 'demo'];
  const ban = (names) => names.map((n) => `**/${n}/**`);
  const io = ['node:fs', 'node:fs/promises', 'node:http', 'node:net', 'node:child_process', 'node:worker_threads', 'better-sqlite3', 'mqtt', 'aedes', 'onnxruntime-node', 'sharp'];
  const rule = (globs, paths = [], extra = []) => ({ 'no-restricted-imports': ['error', { patterns: [{ group: ['**/agent/**', ...globs], message: 'the fleet imports only inner layers (docs/architecture.md)' }, ...extra], paths }] });
  const cnnFiles = ['kernels', 'model', 'train', 'parallel', 'off-thread'];
  const layers = order.map((layer, i) => ({
    files: [`fleet/${layer}/**/*.ts`],
    rules: rule(ban(order.slice(i + 1)), layer === 'core' ? io : []),
  }));
  return [
    { files: ['fleet/*.ts'], rules: rule([]) },
    ...layers,
    // The CNN library imports one way, so there is no cycle: kernels <- model <- train <- parallel <- off-thread.
    ...cnnFiles.map((file, i) => ({
      files: [`fleet/ml/cnn/${file}.ts`],
      rules: rule(ban(order.slice(2)), [], i + 1 < cnnFiles.length ? [{ group: cnnFiles.slice(i + 1).map((f) => `./${f}.js`), message: 'fleet/ml/cnn imports one way: kernels <- model <- train <- parallel <- off-thread' }] : []),
    })),
    // The two web edges share only edges/web (auth, query parsing, the page port); edges/server.ts composes them.
    { files: ['fleet/edges/http/**/*.ts'], rules: rule([...ban(['demo', 'console', 'cli']), '**/edges/server*']) },
    { files: ['fleet/edges/console/**/*.ts'], rules: rule([...ban(['demo', 'http', 'cli']), '**/edges/server*']) },
    { files: ['fleet/edges/web/**/*.ts'], rules: rule([...ban(['demo', 'http', 'console', 'cli']), '**/edges/server*']) },
  ];
}
