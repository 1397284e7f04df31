/**
 * The lab's state apart from its views (as jupyterlab-git keeps its model apart from its components): which
 * database and study are shown, the runs list, the jobs and the data, each refreshed by a poll that runs only
 * while some view watches it and the page is visible. Views listen to `changed` and draw; they never fetch.
 *
 * The side bar's live part is cheap by design: every 0.75 s it asks for the *running* runs only (one index
 * document and those runs on the server); the page of the runs list is re-read when that set changes (a
 * run started, ended or crashed) and otherwise every 10 s.
 */

import { Poll } from '@lumino/polling';
import { ISignal, Signal } from '@lumino/signaling';
import { IDisposable } from '@lumino/disposable';
import { requestAPI } from './request';
import { DataSummary, Databases, JobsAnswer, RunRow, RunsPage, Scope } from './types';

export type Topic = 'scope' | 'databases' | 'runs' | 'jobs' | 'data' | 'error';

const RUNNING_MS = 750;
const PAGE_EVERY_MS = 10_000;
const JOBS_MS = 1500;
const DATA_MS = 30_000;

/** A poll that ticks only while someone watches it (and the page is visible). */
export class WatchedPoll implements IDisposable {
  private watchers = 0;
  readonly poll: Poll;

  constructor(name: string, interval: number, factory: () => Promise<void>) {
    this.poll = new Poll({
      name,
      factory,
      frequency: { interval, backoff: true, max: 30_000 },
      standby: () => (this.watchers === 0 ? true : 'when-hidden')
    });
  }

  watch(): IDisposable {
    this.watchers++;
    void this.poll.refresh();
    let done = false;
    return {
      get isDisposed() {
        return done;
      },
      dispose: () => {
        if (!done) {
          done = true;
          this.watchers--;
        }
      }
    };
  }

  get isDisposed(): boolean {
    return this.poll.isDisposed;
  }

  dispose(): void {
    this.poll.dispose();
  }
}

export class LabModel implements IDisposable {
  scope: Scope;
  databases: Databases | null = null;
  page: RunsPage | null = null;
  running: RunRow[] = [];
  jobs: JobsAnswer | null = null;
  data: DataSummary | null = null;
  error: string | null = null;
  /** runs per page of the side bar: about what it shows without scrolling (each costs one lookup) */
  pageSize = 30;
  pageOffset = 0;
  /** points per series a run tab's first load asks for (JupyterLab setting `maxPoints`) */
  maxPoints = 4000;
  readonly runsPoll: WatchedPoll;
  readonly jobsPoll: WatchedPoll;
  readonly dataPoll: WatchedPoll;
  private runningIds = '';
  private pageAt = 0;
  private _changed = new Signal<this, Topic>(this);
  private _disposed = false;

  constructor(scope: Scope) {
    this.scope = scope;
    this.runsPoll = new WatchedPoll('tensorlab:runs', RUNNING_MS, () => this.refreshRuns());
    this.jobsPoll = new WatchedPoll('tensorlab:jobs', JOBS_MS, () => this.refreshJobs());
    this.dataPoll = new WatchedPoll('tensorlab:data', DATA_MS, () => this.refreshData());
  }

  get changed(): ISignal<this, Topic> {
    return this._changed;
  }

  get isDisposed(): boolean {
    return this._disposed;
  }

  dispose(): void {
    if (!this._disposed) {
      this._disposed = true;
      this.runsPoll.dispose();
      this.jobsPoll.dispose();
      this.dataPoll.dispose();
      Signal.clearData(this);
    }
  }

  /** Show another database or study: everything shown is read again. */
  setScope(scope: Scope): void {
    if (scope.db === this.scope.db && scope.study === this.scope.study) {
      return;
    }
    this.scope = { ...scope };
    this.page = null;
    this.running = [];
    this.jobs = null;
    this.data = null;
    this.runningIds = '';
    this.pageOffset = 0;
    this._changed.emit('scope');
    void this.runsPoll.poll.refresh();
    void this.jobsPoll.poll.refresh();
    void this.dataPoll.poll.refresh();
  }

  async loadDatabases(db: string, refresh = false): Promise<Databases> {
    this.databases = await requestAPI<Databases>('databases', { db, refresh: refresh ? 1 : 0 });
    this._changed.emit('databases');
    return this.databases;
  }

  /** Re-read the page of the runs list now (after paging, or a command). */
  async reloadPage(): Promise<void> {
    this.pageAt = 0;
    await this.refreshRuns();
  }

  private fail(error: unknown): never {
    this.error = (error as Error).message ?? String(error);
    this._changed.emit('error');
    throw error;
  }

  private async refreshRuns(): Promise<void> {
    const scope = this.scope;
    try {
      const running = await requestAPI<RunsPage>('runs', { ...scope, status: 'running', limit: 1000 });
      const ids = running.runs.map(r => r.id).join(',');
      const stale = Date.now() - this.pageAt > PAGE_EVERY_MS;
      if (ids !== this.runningIds || stale || !this.page) {
        this.page = await requestAPI<RunsPage>('runs', { ...scope, offset: this.pageOffset, limit: this.pageSize });
        this.pageAt = Date.now();
      }
      if (scope !== this.scope) {
        return; // the scope changed while this was in flight
      }
      this.runningIds = ids;
      this.running = running.runs;
      this.error = null;
      this._changed.emit('runs');
    } catch (error) {
      this.fail(error);
    }
  }

  /** A run as the side bar shows it: the running poll's fresher copy wins over the page's. */
  runsShown(): RunRow[] {
    const fresh = new Map(this.running.map(r => [r.id, r]));
    return (this.page?.runs ?? []).map(r => fresh.get(r.id) ?? r);
  }

  async refreshJobs(): Promise<void> {
    const scope = this.scope;
    try {
      const jobs = await requestAPI<JobsAnswer>('jobs', { ...scope, limit: 50 });
      if (scope === this.scope) {
        this.jobs = jobs;
        this._changed.emit('jobs');
      }
    } catch (error) {
      this.fail(error);
    }
  }

  async refreshData(): Promise<void> {
    const scope = this.scope;
    try {
      const data = await requestAPI<DataSummary>('data', { ...scope });
      if (scope === this.scope) {
        this.data = data;
        this._changed.emit('data');
      }
    } catch (error) {
      this.fail(error);
    }
  }

  /** cancel, requeue or priority; the list is read again at once. */
  async jobAction(jobId: string, action: 'cancel' | 'requeue' | 'priority', priority?: number): Promise<void> {
    await requestAPI(`jobs/${jobId}/${action}`, { ...this.scope }, {
      method: 'POST',
      body: JSON.stringify(action === 'priority' ? { priority } : {})
    });
    await this.refreshJobs();
  }
}
