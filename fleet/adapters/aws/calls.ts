/**
 * Every AWS call the rollout backend makes, as data: `{ service, command, input }` with the
 * SDK's own input types. The backend plans calls; an executor sends them (the SDK executor
 * below) or records them (dry-run.ts). So `--dry-run` prints exactly what a real run sends.
 */
import {
  CancelDeploymentCommand,
  CreateDeploymentCommand,
  GetDeploymentCommand,
  GreengrassV2Client,
  ListEffectiveDeploymentsCommand,
  type CancelDeploymentCommandInput,
  type CancelDeploymentCommandOutput,
  type CreateDeploymentCommandInput,
  type CreateDeploymentCommandOutput,
  type GetDeploymentCommandInput,
  type GetDeploymentCommandOutput,
  type ListEffectiveDeploymentsCommandInput,
  type ListEffectiveDeploymentsCommandOutput,
} from '@aws-sdk/client-greengrassv2';
import {
  AddThingToThingGroupCommand,
  CreateThingGroupCommand,
  DescribeJobCommand,
  DescribeThingGroupCommand,
  IoTClient,
  ListJobExecutionsForJobCommand,
  ListThingsInThingGroupCommand,
  RemoveThingFromThingGroupCommand,
  type AddThingToThingGroupCommandInput,
  type AddThingToThingGroupCommandOutput,
  type CreateThingGroupCommandInput,
  type CreateThingGroupCommandOutput,
  type DescribeJobCommandInput,
  type DescribeJobCommandOutput,
  type DescribeThingGroupCommandInput,
  type DescribeThingGroupCommandOutput,
  type ListJobExecutionsForJobCommandInput,
  type ListJobExecutionsForJobCommandOutput,
  type ListThingsInThingGroupCommandInput,
  type ListThingsInThingGroupCommandOutput,
  type RemoveThingFromThingGroupCommandInput,
  type RemoveThingFromThingGroupCommandOutput,
} from '@aws-sdk/client-iot';
import { FleetError } from '../../errors.js';

/** Input and output type of every command the backend uses. */
export interface AwsCommands {
  CreateThingGroup: { service: 'iot'; input: CreateThingGroupCommandInput; output: CreateThingGroupCommandOutput };
  DescribeThingGroup: { service: 'iot'; input: DescribeThingGroupCommandInput; output: DescribeThingGroupCommandOutput };
  AddThingToThingGroup: { service: 'iot'; input: AddThingToThingGroupCommandInput; output: AddThingToThingGroupCommandOutput };
  RemoveThingFromThingGroup: { service: 'iot'; input: RemoveThingFromThingGroupCommandInput; output: RemoveThingFromThingGroupCommandOutput };
  ListThingsInThingGroup: { service: 'iot'; input: ListThingsInThingGroupCommandInput; output: ListThingsInThingGroupCommandOutput };
  DescribeJob: { service: 'iot'; input: DescribeJobCommandInput; output: DescribeJobCommandOutput };
  ListJobExecutionsForJob: { service: 'iot'; input: ListJobExecutionsForJobCommandInput; output: ListJobExecutionsForJobCommandOutput };
  CreateDeployment: { service: 'greengrassv2'; input: CreateDeploymentCommandInput; output: CreateDeploymentCommandOutput };
  CancelDeployment: { service: 'greengrassv2'; input: CancelDeploymentCommandInput; output: CancelDeploymentCommandOutput };
  GetDeployment: { service: 'greengrassv2'; input: GetDeploymentCommandInput; output: GetDeploymentCommandOutput };
  ListEffectiveDeployments: { service: 'greengrassv2'; input: ListEffectiveDeploymentsCommandInput; output: ListEffectiveDeploymentsCommandOutput };
}
export type AwsCommandName = keyof AwsCommands;

export const COMMAND_SERVICE: { [K in AwsCommandName]: AwsCommands[K]['service'] } = {
  CreateThingGroup: 'iot',
  DescribeThingGroup: 'iot',
  AddThingToThingGroup: 'iot',
  RemoveThingFromThingGroup: 'iot',
  ListThingsInThingGroup: 'iot',
  DescribeJob: 'iot',
  ListJobExecutionsForJob: 'iot',
  CreateDeployment: 'greengrassv2',
  CancelDeployment: 'greengrassv2',
  GetDeployment: 'greengrassv2',
  ListEffectiveDeployments: 'greengrassv2',
};

/** One call as data (what `--dry-run --json` prints, one per line). */
export interface AwsCall<K extends AwsCommandName = AwsCommandName> {
  service: AwsCommands[K]['service'];
  command: K;
  input: AwsCommands[K]['input'];
}

/** Sends (or records) calls. */
export interface AwsExecutor {
  send<K extends AwsCommandName>(command: K, input: AwsCommands[K]['input']): Promise<AwsCommands[K]['output']>;
}

/** The SDK error name of a failed call (`ResourceAlreadyExistsException`, ...), through our wrapper too. */
export function awsErrorName(err: unknown): string | undefined {
  const e = err as { name?: string; cause?: { name?: string } } | undefined;
  return e instanceof FleetError ? e.cause && (e.cause as { name?: string }).name : e?.name;
}

export interface SdkClients {
  iot: IoTClient;
  greengrass: GreengrassV2Client;
}

/** Clients for a region. Credentials come from the SDK's default chain (instance role, env, profile). */
export function sdkClients(region: string): SdkClients {
  return { iot: new IoTClient({ region }), greengrass: new GreengrassV2Client({ region }) };
}

// One Command class per name: the SDK serializes and validates from it.
/* eslint-disable @typescript-eslint/no-explicit-any */
const COMMAND_CLASS: { [K in AwsCommandName]: new (input: AwsCommands[K]['input']) => any } = {
  CreateThingGroup: CreateThingGroupCommand,
  DescribeThingGroup: DescribeThingGroupCommand,
  AddThingToThingGroup: AddThingToThingGroupCommand,
  RemoveThingFromThingGroup: RemoveThingFromThingGroupCommand,
  ListThingsInThingGroup: ListThingsInThingGroupCommand,
  DescribeJob: DescribeJobCommand,
  ListJobExecutionsForJob: ListJobExecutionsForJobCommand,
  CreateDeployment: CreateDeploymentCommand,
  CancelDeployment: CancelDeploymentCommand,
  GetDeployment: GetDeploymentCommand,
  ListEffectiveDeployments: ListEffectiveDeploymentsCommand,
};

/** The executor of a real run: the SDK clients; a failure becomes `FLEET_AWS_CALL_FAILED` with the SDK error as cause. */
export function sdkExecutor(clients: SdkClients): AwsExecutor {
  return {
    async send(command, input) {
      const Cls = COMMAND_CLASS[command];
      const client = COMMAND_SERVICE[command] === 'iot' ? clients.iot : clients.greengrass;
      try {
        return (await (client as any).send(new Cls(input as never))) as never;
      } catch (err) {
        const name = (err as { name?: string }).name ?? 'Error';
        throw new FleetError('AWS_CALL_FAILED', `${command} failed: ${name}: ${(err as Error).message}`, { cause: err, details: { command, aws_error: name } });
      }
    },
  };
}
/* eslint-enable @typescript-eslint/no-explicit-any */
