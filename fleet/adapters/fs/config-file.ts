import { readFile } from 'node:fs/promises';
import type { z } from 'zod';
import { configFromText, unreadableConfig, type ConfigKind, type ConfigOptions } from '../../../shared/config.js';

/** Read a JSON configuration file and validate it (shared/config.ts): every failure is `kind`'s coded error naming the file. */
export async function loadConfigFile<S extends z.ZodType>(schema: S, kind: ConfigKind, path: string, o: Omit<ConfigOptions<S>, 'path'> = {}): Promise<z.output<S>> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw unreadableConfig(kind, path, err);
  }
  return configFromText(schema, text, kind, path, o);
}
