/**
 * A chart series that grows by polling: rows arrive in batches (a poll's new rows), mostly after what is
 * already held, sometimes out of order (two processes logging one run, a downsampled first load followed by
 * exact rows). `mergeRows` keeps `x` sorted without re-sorting everything on every poll: a batch that starts
 * at or after the last point is appended (the live case), anything else is merged in one linear pass.
 *
 * Pure data, no DOM and no JupyterLab: notebook widgets reuse these modules.
 */

export type Value = number | null;

export interface Series {
  /** sorted ascending (ties keep arrival order) */
  x: number[];
  y: Value[];
}

export function emptySeries(): Series {
  return { x: [], y: [] };
}

/** Sort a batch by x (stable), dropping rows whose x is not a finite number. */
export function sortedBatch(xs: ArrayLike<number | null>, ys: ArrayLike<Value>): Series {
  const order: number[] = [];
  for (let i = 0; i < xs.length; i++) {
    const x = xs[i];
    if (typeof x === 'number' && Number.isFinite(x)) {
      order.push(i);
    }
  }
  let sorted = true;
  for (let k = 1; k < order.length; k++) {
    if ((xs[order[k]] as number) < (xs[order[k - 1]] as number)) {
      sorted = false;
      break;
    }
  }
  if (!sorted) {
    order.sort((a, b) => (xs[a] as number) - (xs[b] as number) || a - b);
  }
  const y = ys as ArrayLike<Value>;
  return {
    x: order.map(i => xs[i] as number),
    y: order.map(i => {
      const v = y[i];
      return typeof v === 'number' && Number.isFinite(v) ? v : null;
    })
  };
}

/**
 * Add a batch of rows to a series, in place; returns the series. `xs` and `ys` are parallel; rows with no x are
 * dropped, non-finite y values become gaps (null).
 */
export function mergeRows(series: Series, xs: ArrayLike<number | null>, ys: ArrayLike<Value>): Series {
  const batch = sortedBatch(xs, ys);
  if (batch.x.length === 0) {
    return series;
  }
  const n = series.x.length;
  if (n === 0 || batch.x[0] >= series.x[n - 1]) {
    for (let i = 0; i < batch.x.length; i++) {
      series.x.push(batch.x[i]);
      series.y.push(batch.y[i]);
    }
    return series;
  }
  const x: number[] = new Array(n + batch.x.length);
  const y: Value[] = new Array(n + batch.x.length);
  let i = 0;
  let j = 0;
  let k = 0;
  while (i < n || j < batch.x.length) {
    if (j >= batch.x.length || (i < n && series.x[i] <= batch.x[j])) {
      x[k] = series.x[i];
      y[k++] = series.y[i++];
    } else {
      x[k] = batch.x[j];
      y[k++] = batch.y[j++];
    }
  }
  series.x = x;
  series.y = y;
  return series;
}

/** The index of the first point with x >= value (binary search). */
export function lowerBound(x: ArrayLike<number>, value: number): number {
  let lo = 0;
  let hi = x.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (x[mid] < value) {
      lo = mid + 1;
    } else {
      hi = mid;
    }
  }
  return lo;
}

/** The index just past the last point with x <= value. */
export function upperBound(x: ArrayLike<number>, value: number): number {
  let lo = 0;
  let hi = x.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (x[mid] <= value) {
      lo = mid + 1;
    } else {
      hi = mid;
    }
  }
  return lo;
}
