/**
 * The jobs tab: running jobs (worker, progress), queued ones (priority, cancel), failed ones (class, error,
 * traceback; requeue), the newest finished, and the workers. It draws the LabModel's job list, which polls
 * while this tab or the side bar is shown.
 */

import { CommandRegistry } from '@lumino/commands';
import { Message } from '@lumino/messaging';
import { Widget } from '@lumino/widgets';
import { COMMANDS } from '../commandIds';
import { LabModel, Topic } from '../model';
import { JobRow } from '../types';
import { VisibleWatch } from './visibility';
import { age, button, fill, formatValue, h, progressText, statusBadge } from './dom';

const SECTIONS: [string, string[]][] = [
  ['Running', ['running']],
  ['Queued', ['queued']],
  ['Failed', ['failed']],
  ['Finished and cancelled', ['done', 'cancelled']]
];

export class JobsPanel extends Widget {
  private watching = new VisibleWatch(this, () => [this.model.jobsPoll.watch()]);
  private messageNode = h('div', { className: 'tl-message' });
  private bodyNode = h('div', { className: 'tl-jobs-body' });

  constructor(readonly model: LabModel, private commands: CommandRegistry) {
    super();
    this.id = 'tensorlab-jobs';
    this.addClass('tl-jobs-panel');
    this.title.label = 'TensorLab jobs';
    this.node.append(h('h2', {}, 'Jobs'), this.messageNode, this.bodyNode);
    model.changed.connect(this.onChanged, this);
    this.draw();
  }

  protected onAfterAttach(_msg: Message): void {
    this.watching.update();
  }

  protected onAfterShow(_msg: Message): void {
    this.watching.update();
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
    if (topic === 'jobs' || topic === 'scope') {
      this.draw();
    }
  }

  private async act(job: JobRow, action: 'cancel' | 'requeue' | 'priority', priority?: number): Promise<void> {
    try {
      await this.model.jobAction(job.id, action, priority);
      fill(this.messageNode, `${action === 'priority' ? `priority ${priority} set for` : `${action}ed`} job ${job.id.slice(-8)}`);
    } catch (error) {
      fill(this.messageNode, h('span', { className: 'tl-error' }, `Could not ${action} job ${job.id.slice(-8)}: ${(error as Error).message}`));
    }
  }

  private actions(job: JobRow): HTMLElement {
    const cell = h('td', { className: 'tl-actions' });
    if (job.status === 'queued' || job.status === 'running') {
      const priority = h('input', { type: 'number', value: String(job.priority), className: 'tl-priority', title: 'priority' });
      cell.append(priority, button('set', () => void this.act(job, 'priority', Number(priority.value)), 'tl-set-priority'),
        button('cancel', () => void this.act(job, 'cancel'), 'tl-cancel'));
    }
    if (job.status === 'failed' || job.status === 'cancelled' || job.status === 'running') {
      cell.append(button('requeue', () => void this.act(job, 'requeue'), 'tl-requeue'));
    }
    return cell;
  }

  private row(job: JobRow): HTMLElement[] {
    const stage = job.tags?.stage ? `${job.tags.stage} · ` : '';
    const hp = Object.entries(job.hyper_parameters).map(([k, v]) => `${k}=${formatValue(v)}`).join(', ');
    const run = job.run ? h('a', { onclick: () => void this.commands.execute(COMMANDS.openRun, { run: job.run, ...this.model.scope }) }, 'run') : '';
    const main = h('tr', { className: `tl-job tl-job-${job.status}`, dataset: { job: job.id, status: job.status } },
      h('td', { title: job.id }, job.id.slice(-8)), h('td', {}, statusBadge(job.status)),
      h('td', {}, stage + (hp || '—')), h('td', {}, job.worker ?? ''),
      h('td', {}, progressText(job.progress, job.epochs), ' ', run),
      h('td', {}, `${job.attempts}/${job.max_attempts}`), h('td', {}, formatValue(job.priority)),
      h('td', {}, age(job.created)), h('td', {}, job.failure_class ? h('b', {}, job.failure_class) : null, ' ', job.error ?? ''),
      this.actions(job));
    if (!job.traceback) {
      return [main];
    }
    const trace = h('tr', { className: 'tl-traceback-row' }, h('td', { colSpan: 10 },
      h('details', {}, h('summary', {}, 'traceback'), h('pre', { className: 'tl-traceback' }, job.traceback))));
    return [main, trace];
  }

  private drawn = '';

  private draw(): void {
    const jobs = this.model.jobs;
    const key = JSON.stringify(jobs);
    const typing = document.activeElement?.tagName === 'INPUT' && this.bodyNode.contains(document.activeElement);
    if (key === this.drawn || typing) {
      return; // nothing new, or someone is typing a priority: redrawing would take their input away
    }
    this.drawn = key;
    if (!jobs) {
      fill(this.bodyNode, h('div', { className: 'tl-muted' }, 'loading…'));
      return;
    }
    const head = h('thead', {}, h('tr', {}, ...['job', 'status', 'what', 'worker', 'progress', 'attempts', 'priority',
      'created', 'error', ''].map(c => h('th', {}, c))));
    const sections = SECTIONS.map(([title, statuses]) => {
      const shown = jobs.jobs.filter(job => statuses.includes(job.status));
      return h('section', { className: 'tl-job-section', dataset: { section: statuses.join(',') } },
        h('h3', {}, `${title} (${shown.length})`),
        shown.length ? h('table', { className: 'tl-table tl-jobs' }, head.cloneNode(true),
          h('tbody', {}, ...shown.flatMap(job => this.row(job)))) : h('div', { className: 'tl-muted' }, 'none'));
    });
    const workers = h('section', {}, h('h3', {}, `Workers (${jobs.workers.length})`),
      jobs.workers.length ? h('table', { className: 'tl-table' },
        h('thead', {}, h('tr', {}, ...['worker', 'running', 'jobs shown', 'last heard of'].map(c => h('th', {}, c)))),
        h('tbody', {}, ...jobs.workers.map(w => h('tr', {}, h('td', {}, w.name), h('td', {}, w.running ? w.running.slice(-8) : 'idle'),
          h('td', {}, String(w.jobs)), h('td', {}, age(w.last_seen))))))
        : h('div', { className: 'tl-muted' }, 'No worker has claimed a job shown here.'));
    fill(this.bodyNode, h('div', { className: 'tl-muted' },
      Object.entries(jobs.counts).map(([s, n]) => `${s} ${n}`).join(' · ') || 'No jobs in this study.'), ...sections, workers);
  }
}
