/**
 * Rollout contracts: the plan an ML engineer writes, the events the machine folds, and the
 * state it keeps. One zod source gives both the TypeScript types and the validators, so the
 * HTTP API and the SQLite loader reuse these instead of restating them.
 */
export * from './plan-schema.js';
export * from './event-schema.js';
export * from './state-schema.js';
