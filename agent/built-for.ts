/**
 * The Node.js runtime a packaged agent was built for. `null` here, in a checkout, where the
 * native modules in node_modules were installed for whatever Node ran `npm ci`; the Greengrass
 * packager (greengrass-recipes/build-package.ts) replaces this module in its bundle with the
 * runtime the zip carries, so the agent can name a mismatch before a native module fails.
 */
export interface BuiltRuntime {
  /** The bundled Node.js version, e.g. `24.22.3`. */
  node: string;
  /** Its `process.versions.modules`: better-sqlite3 in the zip loads only in a Node with this one. */
  modules: string;
  /** `process.arch` of the target: `x64` or `arm64`. */
  arch: string;
  /** Relative to the bundle: the Node.js binary the zip carries. */
  nodePath: string;
  /** The highest library versions the zip's binaries need (`{ GLIBC: '2.28', GLIBCXX: '3.4.22', ... }`). */
  needs: Record<string, string>;
}

export const BUILT_FOR: BuiltRuntime | null = null;
