/**
 * What an ELF binary needs from the device, read from the file itself: the CPU it was built
 * for (e_machine) and the symbol versions it requires from glibc, libstdc++ and the C++ ABI
 * library (the `.gnu.version_r` section, what `objdump -p` prints as "Version References").
 * A binary that needs a newer version than the device's library has does not load, so every
 * binary in the zip is checked against one floor.
 */
import { closeSync, openSync, readSync } from 'node:fs';

/** ELF e_machine per Node CPU name: x86-64 0x3e, AArch64 0xb7. */
export const ELF_MACHINE = { x64: 0x3e, arm64: 0xb7 } as const;

/**
 * The oldest libraries a core device may have: glibc 2.28 and the libstdc++ of GCC 7 or later
 * (RHEL 8, Debian 10, Ubuntu 20.04 and later have both). Node.js 24's official binaries and
 * ONNX Runtime need this much already (GLIBC_2.28, GLIBCXX_3.4.22, CXXABI_1.3.11); what the packager builds
 * itself must not need more.
 */
export const GLIBC_FLOOR: Readonly<Record<string, string>> = { GLIBC: '2.28', GLIBCXX: '3.4.22', CXXABI: '1.3.11' };

function readAt(fd: number, offset: number, length: number): Buffer {
  const b = Buffer.alloc(length);
  const n = readSync(fd, b, 0, length, offset);
  return b.subarray(0, n);
}

/** ELF machine of a file, or null when it is not ELF. */
export function elfMachine(file: string): number | null {
  const fd = openSync(file, 'r');
  try {
    const b = readAt(fd, 0, 20);
    if (b.length < 20 || b.readUInt32BE(0) !== 0x7f454c46) return null;
    return b[5] === 1 ? b.readUInt16LE(18) : b.readUInt16BE(18);
  } finally {
    closeSync(fd);
  }
}

/** Every symbol version the binary requires, by library: `{ 'libc.so.6': ['GLIBC_2.2.5', ...] }`. 64-bit little-endian ELF (x86-64, AArch64). */
export function versionNeeds(file: string): Record<string, string[]> {
  const fd = openSync(file, 'r');
  try {
    const h = readAt(fd, 0, 64);
    if (h.length < 64 || h.readUInt32BE(0) !== 0x7f454c46) throw new Error(`${file} is not an ELF file`);
    if (h[4] !== 2 || h[5] !== 1) throw new Error(`${file}: only 64-bit little-endian ELF is read here`);
    const shoff = Number(h.readBigUInt64LE(0x28));
    const shentsize = h.readUInt16LE(0x3a);
    const shnum = h.readUInt16LE(0x3c);
    const sections = readAt(fd, shoff, shentsize * shnum);
    const section = (i: number): { type: number; offset: number; size: number; link: number; info: number } => {
      const s = sections.subarray(i * shentsize, (i + 1) * shentsize);
      return { type: s.readUInt32LE(4), offset: Number(s.readBigUInt64LE(24)), size: Number(s.readBigUInt64LE(32)), link: s.readUInt32LE(40), info: s.readUInt32LE(44) };
    };
    const SHT_GNU_VERNEED = 0x6ffffffe;
    const out: Record<string, string[]> = {};
    for (let i = 0; i < shnum; i++) {
      const s = section(i);
      if (s.type !== SHT_GNU_VERNEED) continue;
      const strtab = section(s.link);
      const strings = readAt(fd, strtab.offset, strtab.size);
      const str = (at: number): string => strings.toString('latin1', at, strings.indexOf(0, at));
      const data = readAt(fd, s.offset, s.size);
      // Elf64_Verneed: vn_version u16, vn_cnt u16, vn_file u32, vn_aux u32, vn_next u32;
      // Elf64_Vernaux: vna_hash u32, vna_flags u16, vna_other u16, vna_name u32, vna_next u32.
      let at = 0;
      for (let n = 0; n < s.info; n++) {
        const lib = str(data.readUInt32LE(at + 4));
        const versions = (out[lib] ??= []);
        let aux = at + data.readUInt32LE(at + 8);
        for (let k = data.readUInt16LE(at + 2); k > 0; k--) {
          versions.push(str(data.readUInt32LE(aux + 8)));
          aux += data.readUInt32LE(aux + 12);
        }
        const next = data.readUInt32LE(at + 12);
        if (next === 0) break;
        at += next;
      }
    }
    return out;
  } finally {
    closeSync(fd);
  }
}

const cmp = (a: string, b: string): number => {
  const x = a.split('.').map(Number);
  const y = b.split('.').map(Number);
  for (let i = 0; i < Math.max(x.length, y.length); i++) if ((x[i] ?? 0) !== (y[i] ?? 0)) return (x[i] ?? 0) - (y[i] ?? 0);
  return 0;
};

/** The highest version the binary needs per family (`GLIBC`, `GLIBCXX`, `CXXABI`, `GCC`). */
export function highestNeeds(file: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const v of Object.values(versionNeeds(file)).flat()) {
    const m = /^([A-Z]+)_(\d+(?:\.\d+)*)$/.exec(v);
    if (!m) continue;
    const [, family, n] = m as unknown as [string, string, string];
    if (!out[family] || cmp(n, out[family]) > 0) out[family] = n;
  }
  return out;
}

/** Highest of each family over several files (what a zip needs as a whole). */
export function mergeNeeds(all: Array<Record<string, string>>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const needs of all) for (const [family, n] of Object.entries(needs)) if (!out[family] || cmp(n, out[family]) > 0) out[family] = n;
  return out;
}

/** The versions `file` needs above {@link GLIBC_FLOOR} (`GLIBC_2.34`, ...); empty when it loads on the floor. */
export function glibcFloorViolations(file: string, floor: Readonly<Record<string, string>> = GLIBC_FLOOR): string[] {
  return Object.entries(highestNeeds(file))
    .filter(([family, n]) => floor[family] !== undefined && cmp(n, floor[family]!) > 0)
    .map(([family, n]) => `${family}_${n}`);
}
