import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import type { MqttAcl } from './ipc-server.js';

export const RECIPE_TEMPLATE = join(import.meta.dirname, '../../greengrass-recipes/com.edgeloop.Agent.recipe.yaml');

interface Policy {
  operations: string[];
  resources: string[];
}

/** The recipe's `aws.greengrass.ipc.mqttproxy` policies as the nucleus applies them to one core device. */
export function mqttAclFromRecipe(thingName: string, file = RECIPE_TEMPLATE): MqttAcl {
  const recipe = parse(readFileSync(file, 'utf8')) as { ComponentConfiguration: { DefaultConfiguration: { accessControl: Record<string, Record<string, Policy>> } } };
  const policies = Object.values(recipe.ComponentConfiguration.DefaultConfiguration.accessControl['aws.greengrass.ipc.mqttproxy'] ?? {});
  const resolve = (r: string): string => r.replaceAll('{iot:thingName}', thingName);
  const of = (op: string): string[] => policies.filter((p) => p.operations.includes(op)).flatMap((p) => p.resources.map(resolve));
  return { publish: of('aws.greengrass#PublishToIoTCore'), subscribe: of('aws.greengrass#SubscribeToIoTCore') };
}
