/**
 * Pure builders of the IoT thing-group calls of a rollout: each stage (and each revert
 * target) is a static thing group named `<prefix>-<rollout>-<label>`, tagged with the rollout
 * so the IAM policy and a cleanup can find them. Inputs use the SDK's own types.
 */
import type { AddThingToThingGroupCommandInput, CreateThingGroupCommandInput, ListThingsInThingGroupCommandInput, RemoveThingFromThingGroupCommandInput } from '@aws-sdk/client-iot';
import { FleetError } from '../../errors.js';
import { AWS_LIMITS } from './aws-config.js';

export function createThingGroupInput(name: string, o: { rolloutId: string; label: string; description: string }): CreateThingGroupCommandInput {
  checkGroupName(name);
  return {
    thingGroupName: name,
    thingGroupProperties: {
      thingGroupDescription: o.description.slice(0, 2028),
      attributePayload: { attributes: { edgeloop_rollout: o.rolloutId, edgeloop_label: o.label } },
    },
    tags: [
      { Key: 'edgeloop:rollout', Value: o.rolloutId },
      { Key: 'edgeloop:label', Value: o.label },
    ],
  };
}

export function addThingInput(groupName: string, thingName: string): AddThingToThingGroupCommandInput {
  checkGroupName(groupName);
  checkThingName(thingName);
  return { thingGroupName: groupName, thingName };
}

export function removeThingInput(groupName: string, thingName: string): RemoveThingFromThingGroupCommandInput {
  checkGroupName(groupName);
  checkThingName(thingName);
  return { thingGroupName: groupName, thingName };
}

export function listThingsInput(groupName: string, nextToken?: string): ListThingsInThingGroupCommandInput {
  checkGroupName(groupName);
  return { thingGroupName: groupName, recursive: false, maxResults: 250, ...(nextToken ? { nextToken } : {}) };
}

function checkGroupName(name: string): void {
  if (name.length < 1 || name.length > AWS_LIMITS.thingGroupName.max || !AWS_LIMITS.thingGroupName.pattern.test(name)) {
    throw new FleetError('AWS_LIMIT_EXCEEDED', `thing group name ${JSON.stringify(name).slice(0, 140)} is not 1..128 of [a-zA-Z0-9:_-]`);
  }
}

/** Devices are registered in the fleet under their IoT thing name: it must be one. */
function checkThingName(name: string): void {
  if (name.length < 1 || name.length > 128 || !/^[a-zA-Z0-9:_-]+$/.test(name)) {
    throw new FleetError('AWS_LIMIT_EXCEEDED', `device id ${JSON.stringify(name).slice(0, 140)} is not a valid IoT thing name (1..128 of [a-zA-Z0-9:_-])`);
  }
}
