/** Typed client of the fleet's HTTP API, for the CLI, scripts and tests. */
export { FleetClient } from './api-client.js';
export type {
  AddedUser,
  AddUser,
  AuditPage,
  CreateRollout,
  DatasetManifest,
  DatasetSummary,
  Device,
  ExportDataset,
  ExportResult,
  FleetClientOptions,
  LabelProgress,
  Lineage,
  ModelVersion,
  PushResult,
  RegisteredDevice,
  RolloutDetail,
  RolloutSummary,
  SamplePage,
  SampleRecord,
  UserInfo,
} from './api-client.js';
export { ClientErrors, FleetClientError } from './errors.js';
export type { ClientErrorCode } from './errors.js';
