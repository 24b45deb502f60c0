/**
 * The glibc floor of what the packager compiles: a small library that calls what
 * better-sqlite3 calls (math, threads, dlopen, stat, new[] with a run-time length), built with
 * this machine's toolchain, needs newer symbol versions than glibc 2.28 / GLIBCXX_3.4.22 when
 * built plainly on a glibc >= 2.34 host, and none of them with greengrass-recipes/glibc-compat;
 * for x86-64 and, with Debian's cross compiler, for AArch64. elf.ts reads the versions.
 */
import { execFile } from 'node:child_process';
import { existsSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { elfMachine, glibcFloorViolations, highestNeeds, versionNeeds } from '../../greengrass-recipes/elf.js';
import { TOOLCHAIN } from '../../greengrass-recipes/native-build.js';
import { missingBinary } from '../helpers/optional-binary.js';
import { tempDir } from '../helpers/packages.js';

const run = promisify(execFile);
const COMPAT = join(import.meta.dirname, '../../greengrass-recipes/glibc-compat');
const tmp = tempDir('edgeloop-glibc-floor-');
afterAll(() => tmp.cleanup());

const PROBE = `
#include <dlfcn.h>
#include <math.h>
#include <pthread.h>
#include <sys/stat.h>
#include <cstddef>
static void *worker(void *x) { return x; }
extern "C" double probe(double x, std::size_t n) {
  pthread_t t;
  pthread_create(&t, nullptr, worker, nullptr);
  pthread_join(t, nullptr);
  struct stat s;
  stat("/", &s);
  void *h = dlopen("libm.so.6", RTLD_NOW);
  if (h) dlclose(h);
  int *a = new int[n];
  a[0] = 1;
  double r = pow(x, 2) + exp(x) + log(x) + log2(x) + s.st_size + a[0];
  delete[] a;
  return r;
}
#ifdef PROBE_MAIN
#include <stdio.h>
#include <string.h>
// What stat, lstat and fstat say about argv[1] (through the shim's definitions when linked with it).
int main(int argc, char **argv) {
  struct stat a, b, c;
  if (argc < 2 || stat(argv[1], &a) || lstat(argv[1], &b)) return 2;
  FILE *f = fopen(argv[1], "rb");
  if (!f || fstat(fileno(f), &c)) return 3;
  printf("%llu %lld %llu %lld %llu %lld %.1f\\n", (unsigned long long)a.st_ino, (long long)a.st_size, (unsigned long long)b.st_ino, (long long)b.st_size,
         (unsigned long long)c.st_ino, (long long)c.st_size, probe(2.0, (size_t)argc));
  return 0;
}
#endif
`;

const hostGlibc = (process.report.getReport() as { header: { glibcVersionRuntime?: string } }).header.glibcVersionRuntime ?? '0.0';
const newHost = Number(hostGlibc.split('.')[1]) >= 34;

describe.each([
  ['x86_64', 'x64', 0x3e],
  ['aarch64', 'arm64', 0xb7],
] as const)('the glibc floor for %s', (_arch, cpu, machine) => {
  const { prefix, debian } = TOOLCHAIN[cpu];
  const skip = missingBinary(`/usr/bin/${prefix}g++`, `the ${cpu} C++ compiler (Debian ${debian[0]})`);

  it.skipIf(skip)('a plain build needs more than the floor; with glibc-compat it needs nothing above it', async () => {
    const src = join(tmp.dir, `probe-${cpu}.cc`);
    writeFileSync(src, PROBE);
    const plain = join(tmp.dir, `plain-${cpu}.so`);
    const shimmed = join(tmp.dir, `shimmed-${cpu}.so`);
    const compat = join(tmp.dir, `compat-${cpu}.o`);
    const header = join(COMPAT, 'glibc-compat.h');
    await run(`${prefix}g++`, ['-O2', '-fPIC', '-shared', src, '-o', plain, '-ldl', '-lpthread']);
    await run(`${prefix}gcc`, ['-O2', '-fPIC', '-include', header, '-c', join(COMPAT, 'glibc-compat.c'), '-o', compat]);
    await run(`${prefix}g++`, ['-O2', '-fPIC', '-shared', '-include', header, src, compat, '-o', shimmed, '-ldl', '-lpthread']);
    expect(elfMachine(shimmed)).toBe(machine);
    if (newHost) {
      // Debian 12's glibc 2.36 and GCC 12: pthread_create@GLIBC_2.34, stat@GLIBC_2.33, exp@GLIBC_2.29, GLIBCXX_3.4.29.
      expect(glibcFloorViolations(plain)).toEqual(expect.arrayContaining([expect.stringMatching(/^GLIBC_2\.3[3-9]/)]));
    }
    expect(glibcFloorViolations(shimmed), JSON.stringify(versionNeeds(shimmed))).toEqual([]);
    expect(highestNeeds(shimmed).GLIBC).toBeDefined();

    // And the shim's stat, lstat and fstat answer like the real ones: run (emulated for aarch64).
    const exe = join(tmp.dir, `probe-${cpu}`);
    await run(`${prefix}g++`, ['-O2', '-DPROBE_MAIN', '-include', header, src, compat, '-o', exe, '-ldl', '-lpthread']);
    // (An executable's own start-up code, __libc_start_main@GLIBC_2.34, is not what the zip ships: only shared objects.)
    const target = join(COMPAT, 'glibc-compat.c');
    const qemu = '/usr/bin/qemu-aarch64-static';
    if (cpu !== process.arch && !existsSync(qemu)) return;
    const { stdout } = cpu === process.arch ? await run(exe, [target]) : await run(qemu, ['-L', '/usr/aarch64-linux-gnu', exe, target]);
    const st = statSync(target);
    expect(stdout.trim()).toBe(`${st.ino} ${st.size} ${st.ino} ${st.size} ${st.ino} ${st.size} ${(4 + Math.exp(2) + Math.log(2) + 1 + statSync('/').size + 1).toFixed(1)}`);
  });
});
