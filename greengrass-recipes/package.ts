/**
 * `npm run package:greengrass -- --bucket B --prefix P [--arch x86_64|aarch64|all] [--out DIR] [--cache DIR] [--version X.Y.Z] [--json]`
 * Thin CLI over {@link buildGreengrassPackage}.
 */
import { resolve } from 'node:path';
import { parseFlags, processIo, runMain, type Io } from '../shared/cli.js';
import { buildGreengrassPackage, PackageError, type Arch } from './build-package.js';
import { defaultCacheDir } from './cache.js';
import { BUNDLED_NODE } from './node-runtimes.js';

const HELP = `Usage: npm run package:greengrass -- --bucket BUCKET --prefix PREFIX [--arch x86_64|aarch64|all] [--out DIR] [--cache DIR] [--version X.Y.Z] [--json]

Builds the Greengrass artifact of the agent for each target, self-contained: Node.js
${BUNDLED_NODE.version} (${BUNDLED_NODE.lts} LTS, the official binary from the npm package node-linux-<cpu>),
the agent bundled with esbuild, and the native modules for linux on that CPU built for that
Node (better-sqlite3 compiled here, for aarch64 with Debian's aarch64-linux-gnu toolchain;
onnxruntime-node, sharp with libvips, aws-crt), zipped as DIR/edgeloop-agent-<arch>.zip; and
DIR/com.edgeloop.Agent-<version>.recipe.yaml with the artifact URIs
s3://BUCKET/PREFIX/<version>/edgeloop-agent-<arch>.zip and their SHA-256 digests. Upload the
zips there, then create the component version from the recipe. The device needs glibc 2.28
or newer and nothing else installed.

  --arch     x86_64, aarch64, or all (default). Every binary is checked to be built for the
             target and to need no newer glibc than 2.28 before the zip is written.
  --out      output directory (default greengrass-recipes/build)
  --cache    where fetched runtimes and compiled modules are kept between builds
             (default $XDG_CACHE_HOME/edgeloop/greengrass or ~/.cache/edgeloop/greengrass)
  --version  component version (default: package.json's)
  --json     one JSON object with the recipe path and the artifacts`;

export async function main(argv: string[], io: Io = processIo, env: Record<string, string | undefined> = process.env): Promise<number> {
  const { values } = parseFlags(
    argv,
    { bucket: { type: 'string' }, prefix: { type: 'string' }, arch: { type: 'string' }, out: { type: 'string' }, cache: { type: 'string' }, version: { type: 'string' }, json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } },
    HELP,
  );
  if (values.help) {
    io.out(HELP);
    return 0;
  }
  if (!values.bucket || values.prefix === undefined) {
    io.err(`USAGE: --bucket and --prefix are required\n\n${HELP}`);
    return 2;
  }
  const arch = values.arch ?? 'all';
  if (!['x86_64', 'aarch64', 'all'].includes(arch)) {
    io.err(`USAGE: --arch must be x86_64, aarch64 or all, not ${arch}`);
    return 2;
  }
  const archs: Arch[] = arch === 'all' ? ['x86_64', 'aarch64'] : [arch as Arch];
  try {
    const r = await buildGreengrassPackage({
      bucket: values.bucket,
      prefix: values.prefix,
      archs,
      outDir: resolve(values.out ?? 'greengrass-recipes/build'),
      cacheDir: resolve(values.cache ?? defaultCacheDir(env)),
      ...(values.version ? { version: values.version } : {}),
      onProgress: (step) => io.err(`[package] ${step}`),
    });
    if (values.json) io.out(JSON.stringify(r));
    else {
      for (const a of r.artifacts) io.out(`${a.zip}  ${(a.bytes / 1e6).toFixed(1)} MB  Node ${a.node}  sha256 ${a.sha256}\n  upload to ${a.uri}`);
      io.out(`recipe: ${r.recipe}`);
      io.out(`next: aws s3 cp <zip> <uri>; aws greengrassv2 create-component-version --inline-recipe fileb://${r.recipe}`);
    }
    return 0;
  } catch (err) {
    if (err instanceof PackageError) {
      io.err(`error PACKAGE_FAILED: ${err.message}`);
      return 1;
    }
    throw err;
  }
}

if (process.argv[1] && resolve(process.argv[1]) === new URL(import.meta.url).pathname) runMain(main);
