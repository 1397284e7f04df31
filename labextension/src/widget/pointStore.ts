/**
 * The points a notebook chart view holds, per line: the kernel's messages applied in order. A message carries
 * only points the view lacks (float64 buffers, two per line: x and y); `reset` empties the store first (a view
 * that asked for everything, another metric or x axis), `drop` starts single lines over.
 *
 * Pure data, no DOM: unit-tested with the other chart modules.
 */

import { Series, emptySeries, mergeRows } from '../charts/series';

export interface PointsMessage {
  type: 'points';
  reset: boolean;
  drop: string[];
  series: { key: string; n: number }[];
}

function floats(buffer: ArrayBuffer | ArrayBufferView): Float64Array {
  if (buffer instanceof ArrayBuffer) {
    return new Float64Array(buffer);
  }
  // a DataView (ipywidgets) over a slice of a larger buffer: copy when it is not 8-byte aligned
  const { buffer: whole, byteOffset, byteLength } = buffer;
  if (byteOffset % 8 === 0) {
    return new Float64Array(whole, byteOffset, byteLength / 8);
  }
  return new Float64Array(whole.slice(byteOffset, byteOffset + byteLength));
}

/** The points a view holds, per line key; `apply` takes one points message. */
export class PointStore {
  readonly series = new Map<string, Series>();

  apply(message: PointsMessage, buffers: (ArrayBuffer | ArrayBufferView)[]): void {
    if (message.reset) {
      this.series.clear();
    }
    for (const key of message.drop ?? []) {
      this.series.delete(key);
    }
    message.series.forEach(({ key, n }, i) => {
      const xs = floats(buffers[2 * i]);
      const ys = floats(buffers[2 * i + 1]);
      const series = this.series.get(key) ?? emptySeries();
      mergeRows(series, xs.subarray(0, n), ys.subarray(0, n)); // NaN values become gaps
      this.series.set(key, series);
    });
  }
}

