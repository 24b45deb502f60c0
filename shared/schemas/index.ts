export * from './common.js';
export * from './manifest.js';
export * from './messages.js';
export * from './greengrass.js';
export * from './alerts.js';
export * from './rule-sets.js';
