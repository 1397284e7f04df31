/**
 * TensorBoard's smoothing: an exponential moving average, debiased so the first points are not pulled
 * towards zero. `weight` 0 leaves the series as it is, 0.99 smooths strongly. Gaps (null) stay gaps and do
 * not reset the average; values that are not finite are treated as gaps.
 *
 * Pure data, no DOM.
 */

import { Value } from './series';

export function emaSmooth(values: ArrayLike<Value>, weight: number): Value[] {
  const w = Math.min(Math.max(Number.isFinite(weight) ? weight : 0, 0), 0.999);
  const out: Value[] = new Array(values.length);
  if (w === 0) {
    for (let i = 0; i < values.length; i++) {
      const v = values[i];
      out[i] = typeof v === 'number' && Number.isFinite(v) ? v : null;
    }
    return out;
  }
  let last = 0;
  let count = 0;
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (typeof v !== 'number' || !Number.isFinite(v)) {
      out[i] = null;
      continue;
    }
    last = last * w + (1 - w) * v;
    count++;
    out[i] = last / (1 - Math.pow(w, count));
  }
  return out;
}
