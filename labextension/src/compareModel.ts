/**
 * A comparison's state: the runs' table (the compare endpoint: hyper-parameters, best values, the best run)
 * and, per run, the chosen metric's curve (a RunModel reading only that metric). Polls while the tab is shown.
 */

import { IDisposable } from '@lumino/disposable';
import { ISignal, Signal } from '@lumino/signaling';
import { WatchedPoll } from './model';
import { requestAPI } from './request';
import { RunModel } from './runModel';
import { Comparison, Scope } from './types';

const TABLE_MS = 3000;

export class CompareModel implements IDisposable {
  comparison: Comparison | null = null;
  error: string | null = null;
  metric: string;
  mode: '' | 'max' | 'min' = '';
  curves = new Map<string, RunModel>();
  readonly poll: WatchedPoll;
  private watchers: IDisposable[] = [];
  private watching = false;
  private _changed = new Signal<this, 'table' | 'curves' | 'error'>(this);
  private _disposed = false;

  constructor(readonly scope: Scope, readonly runIds: string[], metric: string) {
    this.metric = metric;
    this.poll = new WatchedPoll('tensorlab:compare', TABLE_MS, () => this.refresh());
    this.makeCurves();
  }

  get changed(): ISignal<this, 'table' | 'curves' | 'error'> {
    return this._changed;
  }

  get isDisposed(): boolean {
    return this._disposed;
  }

  setMetric(metric: string, mode: '' | 'max' | 'min' = this.mode): void {
    this.metric = metric;
    this.mode = mode;
    this.makeCurves();
    void this.poll.poll.refresh();
  }

  /** Keep every poll running while the comparison is shown. */
  watch(): IDisposable {
    this.watching = true;
    const table = this.poll.watch();
    this.watchers = Array.from(this.curves.values()).map(model => model.poll.watch());
    return {
      isDisposed: false,
      dispose: () => {
        this.watching = false;
        table.dispose();
        this.watchers.forEach(w => w.dispose());
        this.watchers = [];
      }
    };
  }

  private makeCurves(): void {
    this.watchers.forEach(w => w.dispose());
    this.curves.forEach(model => model.dispose());
    this.curves = new Map(this.runIds.map(id => [id, new RunModel(this.scope, id, { metrics: [this.metric], maxPoints: 2000, interval: 1000, detail: false })]));
    for (const model of this.curves.values()) {
      model.changed.connect(() => this._changed.emit('curves'), this);
    }
    this.watchers = this.watching ? Array.from(this.curves.values()).map(model => model.poll.watch()) : [];
  }

  async refresh(): Promise<void> {
    try {
      this.comparison = await requestAPI<Comparison>('compare', {
        ...this.scope, runs: this.runIds.join(','), metric: this.metric, mode: this.mode || undefined
      });
      this.error = null;
      this._changed.emit('table');
    } catch (error) {
      this.error = (error as Error).message;
      this._changed.emit('error');
      throw error;
    }
  }

  dispose(): void {
    if (!this._disposed) {
      this._disposed = true;
      this.watchers.forEach(w => w.dispose());
      this.curves.forEach(model => model.dispose());
      this.poll.dispose();
      Signal.clearData(this);
    }
  }
}
