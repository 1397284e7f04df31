/**
 * A run's curves, built from the lab API's log polls: one series per (kind, metric), each kept against the
 * three x axes (step, epoch, wall time) so switching axes needs no refetch. A poll's rows are merged in
 * (`mergeRows`), so a tab that polls every half second only touches what is new.
 *
 * Pure data, no DOM: the notebook widgets of a later issue read the same API and reuse this.
 */

import { Series, Value, emptySeries, mergeRows } from './series';

export type XAxis = 'step' | 'epoch' | 'time';
export const X_AXES: XAxis[] = ['step', 'epoch', 'time'];

/** One stream of a poll's answer: a kind and writer's new rows, as columns. */
export interface LogStream {
  kind: string;
  writer: string;
  rows: number;
  count: number;
  downsampled: boolean;
  step: number[];
  epoch: (number | null)[];
  time: (number | null)[];
  metrics: { [name: string]: Value[] };
}

/** Columns a run's rows carry that are measurements of the loop, not of the model. */
export const LOOP_METRICS = new Set(['step_time', 'samples_per_s', 'batch']);

export function seriesKey(kind: string, metric: string): string {
  return `${kind}:${metric}`;
}

/** What a series is, in words (as the notebook's live panel names them). */
export function seriesLabel(key: string): string {
  const [kind, metric] = splitKey(key);
  if (kind === 'valid') {
    return metric.startsWith('val_') ? `validation ${metric.slice(4)}` : `train ${metric} (epoch)`;
  }
  if (kind === 'test') {
    return `test ${metric}`;
  }
  return `train ${metric}`;
}

/** The chart a metric belongs to: `val_loss` and `loss` share the `loss` chart. */
export function chartGroup(key: string): string {
  const metric = splitKey(key)[1];
  if (LOOP_METRICS.has(metric)) {
    return 'system';
  }
  return metric.startsWith('val_') ? metric.slice(4) : metric;
}

export function splitKey(key: string): [string, string] {
  const at = key.indexOf(':');
  return [key.slice(0, at), key.slice(at + 1)];
}

export class RunSeries {
  private data = new Map<string, Record<XAxis, Series>>();
  rowsSeen = 0;
  downsampled = false;

  /** Merge a poll's streams; returns the keys of series that changed. */
  add(streams: LogStream[]): string[] {
    const touched = new Set<string>();
    for (const stream of streams) {
      this.rowsSeen += stream.count;
      this.downsampled = this.downsampled || stream.downsampled;
      const xs: Record<XAxis, (number | null)[]> = {
        step: stream.step,
        epoch: stream.epoch,
        time: stream.time.map(t => (t === null ? null : t))
      };
      for (const [metric, values] of Object.entries(stream.metrics)) {
        const key = seriesKey(stream.kind, metric);
        let entry = this.data.get(key);
        if (!entry) {
          entry = { step: emptySeries(), epoch: emptySeries(), time: emptySeries() };
          this.data.set(key, entry);
        }
        for (const axis of X_AXES) {
          mergeRows(entry[axis], xs[axis], values);
        }
        touched.add(key);
      }
    }
    return Array.from(touched);
  }

  keys(): string[] {
    return Array.from(this.data.keys()).sort();
  }

  get(key: string, axis: XAxis): Series {
    return this.data.get(key)?.[axis] ?? emptySeries();
  }

  /** The number of points held (of the step axis), over all series. */
  points(): number {
    let total = 0;
    for (const entry of this.data.values()) {
      total += entry.step.x.length;
    }
    return total;
  }

  clear(): void {
    this.data.clear();
    this.rowsSeen = 0;
    this.downsampled = false;
  }
}
