/**
 * Downsampling for display: a chart of W pixels cannot show more than a few points per pixel column, so
 * drawing 100,000 points costs time and shows nothing more. `minMaxPerPixel` keeps, per pixel column of the
 * visible x range, the first, lowest, highest and last point (the M4 rule): the drawn line is the same as
 * with every point, spikes included. `lttb` (Largest-Triangle-Three-Buckets) keeps a fixed number of points
 * that preserve the shape, for small thumbnails.
 *
 * Pure data, no DOM.
 */

import { Series, Value, lowerBound, upperBound } from './series';

/**
 * The points of `series` to draw in [x0, x1] at `width` pixel columns: at most 4 per column, plus the nearest
 * point outside each edge (so lines leave the plot instead of stopping short). Gaps (null y) are kept as one
 * null per column so the line breaks where the data does.
 */
export function minMaxPerPixel(series: Series, x0: number, x1: number, width: number): Series {
  const n = series.x.length;
  if (n === 0) {
    return { x: [], y: [] };
  }
  let start = lowerBound(series.x, x0);
  let end = upperBound(series.x, x1);
  start = Math.max(0, start - 1);
  end = Math.min(n, end + 1);
  const columns = Math.max(1, Math.floor(width));
  if (end - start <= 4 * columns) {
    return { x: series.x.slice(start, end), y: series.y.slice(start, end) };
  }
  const span = x1 > x0 ? x1 - x0 : 1;
  const out: Series = { x: [], y: [] };
  let column = -Infinity;
  let first = -1;
  let low = -1;
  let high = -1;
  let last = -1;
  let gap = -1;
  const flush = (): void => {
    if (first < 0 && gap < 0) {
      return;
    }
    const picked = [first, low, high, last, gap].filter(i => i >= 0);
    const unique = Array.from(new Set(picked)).sort((a, b) => a - b);
    for (const i of unique) {
      out.x.push(series.x[i]);
      out.y.push(series.y[i]);
    }
  };
  for (let i = start; i < end; i++) {
    const c = Math.floor(((series.x[i] - x0) / span) * columns);
    if (c !== column) {
      flush();
      column = c;
      first = low = high = last = gap = -1;
    }
    const v = series.y[i];
    if (v === null) {
      if (gap < 0) {
        gap = i;
      }
      continue;
    }
    if (first < 0) {
      first = i;
    }
    last = i;
    if (low < 0 || v < (series.y[low] as number)) {
      low = i;
    }
    if (high < 0 || v > (series.y[high] as number)) {
      high = i;
    }
  }
  flush();
  return out;
}

/** Largest-Triangle-Three-Buckets: `threshold` points that keep the series' visual shape (nulls skipped). */
export function lttb(series: Series, threshold: number): Series {
  const xs: number[] = [];
  const ys: number[] = [];
  for (let i = 0; i < series.x.length; i++) {
    const v: Value = series.y[i];
    if (v !== null) {
      xs.push(series.x[i]);
      ys.push(v);
    }
  }
  const n = xs.length;
  if (threshold >= n || threshold < 3) {
    return { x: xs, y: ys };
  }
  const out: Series = { x: [xs[0]], y: [ys[0]] };
  const every = (n - 2) / (threshold - 2);
  let a = 0;
  for (let b = 0; b < threshold - 2; b++) {
    const nextStart = Math.floor((b + 1) * every) + 1;
    const nextEnd = Math.min(Math.floor((b + 2) * every) + 1, n);
    let avgX = 0;
    let avgY = 0;
    for (let i = nextStart; i < nextEnd; i++) {
      avgX += xs[i];
      avgY += ys[i];
    }
    const count = Math.max(1, nextEnd - nextStart);
    avgX /= count;
    avgY /= count;
    const rangeStart = Math.floor(b * every) + 1;
    const rangeEnd = Math.floor((b + 1) * every) + 1;
    let best = rangeStart;
    let bestArea = -1;
    for (let i = rangeStart; i < rangeEnd; i++) {
      const area = Math.abs((xs[a] - avgX) * (ys[i] - ys[a]) - (xs[a] - xs[i]) * (avgY - ys[a]));
      if (area > bestArea) {
        bestArea = area;
        best = i;
      }
    }
    out.x.push(xs[best]);
    out.y.push(ys[best]);
    a = best;
  }
  out.x.push(xs[n - 1]);
  out.y.push(ys[n - 1]);
  return out;
}
