/**
 * The TensorLab side bar: the database and study, the runs with their live status, the queue, the data.
 * It only draws what the LabModel holds; while it is shown, it keeps the model's polls running.
 */

import { CommandRegistry } from '@lumino/commands';
import { Message } from '@lumino/messaging';
import { Widget } from '@lumino/widgets';
import { LabModel, Topic } from '../model';
import { requestAPI } from '../request';
import { RunRow, SamplesAnswer } from '../types';
import { age, button, fill, formatValue, h, progressText, select, statusBadge } from './dom';
import { COMMANDS } from '../commandIds';
import { VisibleWatch } from './visibility';

export class LabSidebar extends Widget {
  private watching = new VisibleWatch(this, () => [this.model.runsPoll.watch(), this.model.jobsPoll.watch(),
    this.model.dataPoll.watch()]);
  private selected = new Set<string>();
  private scopeNode = h('div', { className: 'tl-scope' });
  private runsNode = h('div', { className: 'tl-section tl-runs-section' });
  private jobsNode = h('div', { className: 'tl-section tl-jobs-section' });
  private dataNode = h('div', { className: 'tl-section tl-data-section' });
  private previewNode = h('div', { className: 'tl-preview' });
  private errorNode = h('div', { className: 'tl-error' });

  constructor(
    readonly model: LabModel,
    private commands: CommandRegistry
  ) {
    super();
    this.id = 'tensorlab-sidebar';
    this.addClass('tl-sidebar');
    this.title.caption = 'TensorLab';
    const header = h('div', { className: 'tl-sidebar-header' }, h('span', { className: 'tl-brand' }, 'TensorLab'));
    this.node.append(header, this.scopeNode, this.errorNode, this.runsNode, this.jobsNode, this.dataNode);
    model.changed.connect(this.onChanged, this);
    this.drawScope();
  }

  protected onAfterAttach(_msg: Message): void {
    this.watching.update();
  }

  protected onAfterShow(_msg: Message): void {
    this.watching.update();
    void this.model.loadDatabases(this.model.scope.db).catch(() => undefined);
  }

  protected onAfterHide(_msg: Message): void {
    this.watching.update();
  }

  protected onBeforeDetach(_msg: Message): void {
    this.watching.update(true);
  }

  dispose(): void {
    this.watching.dispose();
    super.dispose();
  }

  private onChanged(_model: LabModel, topic: Topic): void {
    if (topic === 'databases' || topic === 'scope') {
      this.drawScope();
    }
    if (topic === 'runs' || topic === 'scope') {
      this.drawRuns();
    }
    if (topic === 'jobs' || topic === 'scope') {
      this.drawJobs();
    }
    if (topic === 'data' || topic === 'scope') {
      this.drawData();
    }
    fill(this.errorNode, topic === 'error' && this.model.error ? this.model.error : '');
    if (topic !== 'error') {
      fill(this.errorNode);
    }
  }

  private drawScope(): void {
    const { db, study } = this.model.scope;
    const known = this.model.databases;
    const dbs = Array.from(new Set([db, ...(known?.databases ?? [])]));
    const studies = Array.from(new Set([study, ...(known?.db === db ? known.studies : [])]));
    fill(
      this.scopeNode,
      h('label', {}, 'database', select(dbs.map(d => [d, d]), db, value => this.chooseDb(value), 'tl-db')),
      h('label', {}, 'study', select(studies.map(s => [s, s]), study, value => this.model.setScope({ db, study: value }), 'tl-study')),
      button('⟳', () => void this.model.loadDatabases(db, true), 'tl-refresh', 'Refresh databases and studies'),
      h('div', { className: 'tl-muted tl-uri', title: 'the server the lab extension reads' }, known?.uri ?? '')
    );
  }

  private async chooseDb(db: string): Promise<void> {
    const answer = await this.model.loadDatabases(db);
    const study = answer.studies.includes(this.model.scope.study) ? this.model.scope.study : answer.studies[0] ?? 'default';
    this.model.setScope({ db, study });
  }

  private runItem(run: RunRow): HTMLElement {
    const box = h('input', {
      type: 'checkbox',
      checked: this.selected.has(run.id),
      title: 'select for comparison',
      onchange: () => {
        if (box.checked) {
          this.selected.add(run.id);
        } else {
          this.selected.delete(run.id);
        }
        this.drawRuns();
      }
    });
    const metric = Object.entries(run.best)[0];
    const meta = run.status === 'running' ? progressText(run.progress, run.epochs_planned) : age(run.ended ?? run.started);
    return h(
      'li',
      { className: 'tl-run', dataset: { run: run.id, status: run.status }, title: run.error ?? '' },
      box,
      statusBadge(run.status),
      h('a', { className: 'tl-run-name', onclick: () => this.open(run) }, run.name),
      h('span', { className: 'tl-muted tl-run-meta' }, meta, metric ? ` · ${metric[0]} ${formatValue(metric[1])}` : '')
    );
  }

  private open(run: RunRow): void {
    void this.commands.execute(COMMANDS.openRun, { run: run.id, name: run.name, ...this.model.scope });
  }

  private drawnRuns = '';

  private drawRuns(force = false): void {
    const page = this.model.page;
    const runs = this.model.runsShown();
    const key = JSON.stringify([page?.total, page?.offset, runs, Array.from(this.selected)]);
    if (key === this.drawnRuns && !force) {
      return; // nothing changed since the last poll: leave the DOM (and the pointer's target) alone
    }
    this.drawnRuns = key;
    const ids = new Set(runs.map(r => r.id));
    this.selected.forEach(id => ids.has(id) || this.selected.delete(id));
    const chosen = Array.from(this.selected);
    const pager = page && (page.more || page.offset > 0)
      ? h('div', { className: 'tl-pager' },
          button('‹', () => this.turn(-1), 'tl-newer', 'newer runs'),
          `${page.offset + 1}–${page.offset + runs.length}${page.total !== null ? ` of ${page.total}` : ''}`,
          button('›', () => this.turn(1), 'tl-older', 'older runs'))
      : null;
    fill(
      this.runsNode,
      h('div', { className: 'tl-section-title' }, `Runs${page?.total !== null && page ? ` (${page.total})` : ''}`,
        button(`Compare${chosen.length ? ` ${chosen.length}` : ''}`, () => {
          void this.commands.execute(COMMANDS.compare, { runs: chosen, ...this.model.scope });
        }, 'tl-compare', 'Compare the selected runs')),
      page === null ? h('div', { className: 'tl-muted' }, 'loading…')
        : runs.length ? h('ul', { className: 'tl-run-list' }, ...runs.map(run => this.runItem(run)))
          : h('div', { className: 'tl-muted' }, 'No runs in this study yet.'),
      pager
    );
    (this.runsNode.querySelector('.tl-compare') as HTMLButtonElement).disabled = chosen.length < 1;
    const older = this.runsNode.querySelector('.tl-older') as HTMLButtonElement | null;
    if (older) {
      older.disabled = !page?.more;
    }
  }

  private turn(direction: number): void {
    const page = this.model.page;
    if (!page) {
      return;
    }
    if (direction > 0 && !page.more) {
      return;
    }
    this.model.pageOffset = Math.max(0, page.offset + direction * page.limit);
    void this.model.reloadPage();
  }

  private drawJobs(): void {
    const jobs = this.model.jobs;
    const counts = jobs ? Object.entries(jobs.counts).map(([s, n]) => `${s} ${n}`).join(' · ') : '';
    const live = (jobs?.jobs ?? []).filter(j => j.status === 'running' || j.status === 'queued').slice(0, 5);
    fill(
      this.jobsNode,
      h('div', { className: 'tl-section-title' }, 'Jobs',
        button('Open', () => void this.commands.execute(COMMANDS.openJobs, {}), 'tl-open-jobs', 'Open the jobs tab')),
      h('div', { className: 'tl-muted' }, jobs === null ? 'loading…' : counts || 'No jobs.'),
      live.length ? h('ul', { className: 'tl-job-list' }, ...live.map(job => h('li', {},
        statusBadge(job.status), ` ${job.id.slice(-8)} `,
        h('span', { className: 'tl-muted' }, job.worker ?? `priority ${job.priority}`)))) : null
    );
  }

  private drawData(): void {
    const data = this.model.data;
    const labels = Object.entries(data?.labels ?? {});
    const most = Math.max(1, ...labels.map(([, n]) => n));
    fill(
      this.dataNode,
      h('div', { className: 'tl-section-title' }, `Data${data ? ` (${formatValue(data.samples)} samples)` : ''}`),
      data === null ? h('div', { className: 'tl-muted' }, 'loading…') : !data.groups.length
        ? h('div', { className: 'tl-muted' }, 'No data in this study.')
        : h('ul', { className: 'tl-data-list' }, ...data.groups.map(group => h('li', {},
            h('a', { onclick: () => void this.preview(group.tags) }, group.key || '(no tags)'),
            h('span', { className: 'tl-muted' }, ` ${formatValue(group.samples)} · ${group.dtype} ${JSON.stringify(group.sample_shape)}`)))),
      labels.length ? h('div', { className: 'tl-histogram', title: 'samples per label' }, ...labels.slice(0, 40).map(([label, n]) =>
        h('div', { className: 'tl-bar-row' }, h('span', {}, label),
          h('span', { className: 'tl-bar', style: `width:${(100 * n) / most}%` }), h('span', { className: 'tl-muted' }, formatValue(n))))) : null,
      this.previewNode
    );
  }

  private async preview(tags: { [key: string]: any }): Promise<void> {
    fill(this.previewNode, h('div', { className: 'tl-muted' }, 'loading samples…'));
    try {
      const answer = await requestAPI<SamplesAnswer>('data/samples', { ...this.model.scope, tags: JSON.stringify(tags), count: 8 });
      fill(this.previewNode, ...answer.samples.map(sample => h('figure', { className: 'tl-sample' },
        sample.image ? greyCanvas(sample.image) : h('code', {}, (sample.values ?? []).map(v => formatValue(v)).join(' ')),
        h('figcaption', {}, formatValue(sample.label)))));
    } catch (error) {
      fill(this.previewNode, h('div', { className: 'tl-error' }, (error as Error).message));
    }
  }
}

export function greyCanvas(image: { width: number; height: number; grey: number[] }): HTMLCanvasElement {
  const canvas = h('canvas', { width: image.width, height: image.height, className: 'tl-sample-image' });
  const context = canvas.getContext('2d');
  if (context) {
    const pixels = context.createImageData(image.width, image.height);
    image.grey.forEach((g, i) => {
      pixels.data.set([g, g, g, 255], i * 4);
    });
    context.putImageData(pixels, 0, 0);
  }
  return canvas;
}
