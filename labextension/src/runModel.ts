/**
 * One run's state for its tab: the run document (status, progress, system load, parameter versions) and its
 * curves, kept by polling the logs endpoint with the cursor of the previous answer, so each poll carries only
 * the rows stored since. Polls run only while the tab is visible: every 0.5 s while the run is running, every
 * 5 s once it has ended (a resumed run starts writing again).
 */

import { ISignal, Signal } from '@lumino/signaling';
import { IDisposable } from '@lumino/disposable';
import { RunSeries } from './charts/runSeries';
import { WatchedPoll } from './model';
import { requestAPI } from './request';
import { LogsAnswer, RunDetail, Scope } from './types';

export const LOG_POLL_MS = 500;
const ENDED_POLL_MS = 5000;
const DETAIL_EVERY_MS = 2000;

export class RunModel implements IDisposable {
  detail: RunDetail | null = null;
  readonly series = new RunSeries();
  last: LogsAnswer['last'] = {};
  error: string | null = null;
  /** when rows were last added (performance.now()), for latency measurements */
  rowsAt = 0;
  readonly poll: WatchedPoll;
  private cursor = '';
  private detailAt = 0;
  private _changed = new Signal<this, 'detail' | 'logs' | 'error'>(this);
  private _disposed = false;

  constructor(
    readonly scope: Scope,
    readonly runId: string,
    readonly options: { metrics?: string[]; maxPoints?: number; interval?: number; detail?: boolean } = {}
  ) {
    this.poll = new WatchedPoll(`tensorlab:run:${runId}`, options.interval ?? LOG_POLL_MS, () => this.refresh());
  }

  get changed(): ISignal<this, 'detail' | 'logs' | 'error'> {
    return this._changed;
  }

  get isDisposed(): boolean {
    return this._disposed;
  }

  get status(): string {
    return this.detail?.run.status ?? 'loading';
  }

  dispose(): void {
    if (!this._disposed) {
      this._disposed = true;
      this.poll.dispose();
      Signal.clearData(this);
    }
  }

  async refresh(): Promise<void> {
    try {
      const wantDetail = this.options.detail !== false; // a comparison's curves need only the logs
      if (wantDetail && (!this.detail || Date.now() - this.detailAt > (this.status === 'running' ? DETAIL_EVERY_MS : 10_000))) {
        this.detail = await requestAPI<RunDetail>(`runs/${this.runId}`, { ...this.scope });
        this.detailAt = Date.now();
        this._changed.emit('detail');
      }
      await this.refreshLogs();
      const interval = !wantDetail || this.status === 'running' ? this.options.interval ?? LOG_POLL_MS : ENDED_POLL_MS;
      if (this.poll.poll.frequency.interval !== interval) {
        this.poll.poll.frequency = { ...this.poll.poll.frequency, interval };
      }
      this.error = null;
    } catch (error) {
      this.error = (error as Error).message;
      this._changed.emit('error');
      throw error;
    }
  }

  /** Poll until the server says nothing more is waiting (a first load of a long run may take a few answers). */
  private async refreshLogs(): Promise<void> {
    for (let round = 0; round < 20; round++) {
      const answer = await requestAPI<LogsAnswer>(`runs/${this.runId}/logs`, {
        ...this.scope,
        cursor: this.cursor,
        metrics: this.options.metrics?.join(','),
        max_points: this.options.maxPoints ?? 4000
      });
      this.cursor = answer.cursor;
      this.last = answer.last;
      if (answer.streams.length) {
        this.series.add(answer.streams);
        this.rowsAt = performance.now();
        this._changed.emit('logs');
      }
      if (answer.complete) {
        return;
      }
    }
  }
}
