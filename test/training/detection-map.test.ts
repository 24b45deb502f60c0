import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { detectionMetrics, type Box, type DetectionExample } from '../../fleet/ml/detection-map.js';
import { iou } from '../../shared/inference/detect.js';

describe('detection mAP (COCO style)', () => {
  it('matches a case computed by hand', () => {
    // Two images, one person each. Ranked: 0.9 hits A exactly, 0.8 hits nothing, 0.7 overlaps
    // B with IoU 62.5/100 = 0.625 (a TP at IoU 0.5, 0.55, 0.6; a FP from 0.65 up).
    const examples: DetectionExample[] = [
      {
        truth: [{ label: 'person', box: [0, 0, 10, 10] }],
        predicted: [
          { label: 'person', score: 0.9, box: [0, 0, 10, 10] },
          { label: 'person', score: 0.8, box: [50, 50, 60, 60] },
        ],
      },
      { truth: [{ label: 'person', box: [0, 0, 10, 10] }], predicted: [{ label: 'person', score: 0.7, box: [0, 0, 10, 6.25] }] },
    ];
    // IoU <= 0.6: TP FP TP, precision 1 .5 .667 at recall .5 .5 1; envelope 1 up to recall .5
    // (51 of the 101 points), 2/3 above (50 points).
    const low = (51 * 1 + 50 * (2 / 3)) / 101;
    // IoU >= 0.65: TP FP FP, recall never passes .5: 51 points at precision 1, 50 at 0.
    const high = 51 / 101;
    const m = detectionMetrics(examples);
    expect(m.map50).toBeCloseTo(low, 12);
    expect(m.map50_95).toBeCloseTo((3 * low + 7 * high) / 10, 12);
    expect(m.per_class.person).toEqual({ truths: 2, predictions: 3, ap50: m.map50, ap50_95: m.map50_95 });
  });

  it('averages over classes with ground truth and reports the others without an AP', () => {
    const m = detectionMetrics([
      {
        truth: [
          { label: 'truck', box: [0, 0, 100, 50] },
          { label: 'person', box: [200, 0, 220, 60] },
        ],
        predicted: [
          { label: 'truck', score: 0.95, box: [0, 0, 100, 50] },
          // Right place, wrong class: a miss for person and a false positive for helmet.
          { label: 'helmet', score: 0.9, box: [200, 0, 220, 60] },
        ],
      },
    ]);
    expect(m.per_class.truck?.ap50).toBe(1);
    expect(m.per_class.person?.ap50).toBe(0);
    expect(m.per_class.helmet).toEqual({ truths: 0, predictions: 1, ap50: null, ap50_95: null });
    expect(m.map50).toBe(0.5);
  });

  it('counts a second detection of the same object as a false positive', () => {
    const m = detectionMetrics([
      {
        truth: [{ label: 'a', box: [0, 0, 10, 10] }],
        predicted: [
          { label: 'a', score: 0.9, box: [0, 0, 10, 10] },
          { label: 'a', score: 0.8, box: [0, 0, 10, 10] },
        ],
      },
    ]);
    // TP then FP: recall reaches 1 at the first detection, so AP is still 1 (the envelope).
    expect(m.map50).toBe(1);
    // Ranked the other way round by score, the duplicate comes first and takes the match: same.
    const worse = detectionMetrics([
      {
        truth: [{ label: 'a', box: [0, 0, 10, 10] }],
        predicted: [
          { label: 'a', score: 0.9, box: [20, 20, 30, 30] },
          { label: 'a', score: 0.8, box: [0, 0, 10, 10] },
        ],
      },
    ]);
    // FP then TP: precision 1/2 at recall 1 everywhere.
    expect(worse.map50).toBeCloseTo(0.5, 12);
  });

  it('keeps at most maxDetections per image, highest scores first', () => {
    const ex: DetectionExample = {
      truth: [{ label: 'a', box: [0, 0, 10, 10] }],
      predicted: [
        { label: 'a', score: 0.9, box: [40, 40, 50, 50] },
        { label: 'a', score: 0.5, box: [0, 0, 10, 10] },
      ],
    };
    expect(detectionMetrics([ex]).map50).toBeCloseTo(0.5, 12);
    expect(detectionMetrics([ex], { maxDetections: 1 }).map50).toBe(0);
    expect(() => detectionMetrics([ex], { maxDetections: 0 })).toThrow(RangeError);
  });

  const box = fc
    .tuple(fc.integer({ min: 0, max: 90 }), fc.integer({ min: 0, max: 90 }), fc.integer({ min: 1, max: 30 }), fc.integer({ min: 1, max: 30 }))
    .map(([x, y, w, h]): Box => [x, y, x + w, y + h]);
  const label = fc.constantFrom('a', 'b', 'c');

  it('is 1 for perfect predictions and stays within [0, 1] with mAP@0.5:0.95 <= mAP@0.5 (property)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.record({ truth: fc.array(fc.record({ label, box }), { maxLength: 5 }), noise: fc.array(fc.record({ label, box, score: fc.double({ min: 0, max: 1, noNaN: true }) }), { maxLength: 5 }) }), { minLength: 1, maxLength: 6 }),
        (images) => {
          const perfect = detectionMetrics(images.map((im) => ({ truth: im.truth, predicted: im.truth.map((t) => ({ ...t, score: 1 })) })));
          if (images.some((im) => im.truth.length)) expect(perfect.map50_95).toBeCloseTo(1, 12);
          const noisy = detectionMetrics(images.map((im) => ({ truth: im.truth, predicted: im.noise })));
          expect(noisy.map50).toBeGreaterThanOrEqual(0);
          expect(noisy.map50).toBeLessThanOrEqual(1);
          expect(noisy.map50_95).toBeLessThanOrEqual(noisy.map50 + 1e-12);
        },
      ),
    );
  });

  it('iou is symmetric, 1 on itself and 0 apart', () => {
    expect(iou([0, 0, 10, 10], [0, 0, 10, 10])).toBe(1);
    expect(iou([0, 0, 10, 10], [10, 0, 20, 10])).toBe(0);
    expect(iou([0, 0, 10, 10], [5, 0, 15, 10])).toBeCloseTo(50 / 150, 12);
    expect(iou([5, 0, 15, 10], [0, 0, 10, 10])).toBeCloseTo(50 / 150, 12);
  });
});
