/** Percentile of a sample (nearest rank). */
export function percentile(values: number[], q: number): number {
  if (values.length === 0) return 0;
  const s = [...values].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))] as number;
}

export const round = (x: number, digits = 3): number => Math.round(x * 10 ** digits) / 10 ** digits;

export function summary(values: number[]): { p50: number; p99: number; mean: number; n: number } {
  return { p50: round(percentile(values, 0.5)), p99: round(percentile(values, 0.99)), mean: round(values.reduce((a, b) => a + b, 0) / Math.max(1, values.length)), n: values.length };
}
