import { chromium } from 'playwright-core';
import type { Browser } from 'playwright-core';
import { missingBinary } from './optional-binary.js';

/** Debian's Chromium, which the console tests drive through playwright-core. */
export const CHROMIUM = '/usr/bin/chromium';

/** Why the Chromium tests cannot run here, or null. */
export const chromiumSkipReason = (): string | null => missingBinary(CHROMIUM, 'install the Debian package "chromium"');

/** Headless Chromium with nothing that reaches the network on its own. */
export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
}
