/**
 * A run's tab: status and progress, live curves per metric (uPlot: drag-zoom, hover values, log y, smoothing,
 * series toggles, step / epoch / wall-time x), the machine's load, parameter versions and hyper-parameters.
 * It draws what its RunModel holds and keeps the model polling only while the tab is visible.
 */

import { Message } from '@lumino/messaging';
import { Widget } from '@lumino/widgets';
import { ChartLine, ChartView, LineChart, PALETTE } from '../charts/lineChart';
import { Lineage, lineageSvg } from '../charts/lineageGraph';
import { chartGroup, seriesLabel, splitKey } from '../charts/runSeries';
import { COMMANDS } from '../commandIds';
import { requestAPI } from '../request';
import { chartControls } from './chartControls';
import { RunModel } from '../runModel';
import { VisibleWatch } from './visibility';
import { age, bytes, fill, formatValue, h, pairs, progressText, statusBadge } from './dom';

export const SYSTEM_LABELS: { [key: string]: (v: any) => string } = {
  cpu_percent: v => `${formatValue(v)} %`,
  host_memory_percent: v => `${formatValue(v)} %`,
  rss_bytes: bytes,
  device_memory_bytes: bytes,
  cpu_count: formatValue
};

export class RunPanel extends Widget {
  readonly view: ChartView = { xAxis: 'step', logY: false, smoothing: 0, hidden: new Set() };
  private charts = new Map<string, LineChart>();
  private colors = new Map<string, string>();
  private watching = new VisibleWatch(this, () => [this.model.poll.watch()]);
  private pending = false;
  private headerNode = h('div', { className: 'tl-run-header' });
  private chartsNode = h('div', { className: 'tl-charts' });
  private infoNode = h('div', { className: 'tl-run-info' });

  /** `execute`: runs a JupyterLab command (open a run of the lineage, the jobs tab); absent in tests. */
  constructor(readonly model: RunModel, private execute?: (command: string, args?: any) => void) {
    super();
    this.addClass('tl-run-panel');
    this.node.dataset.run = model.runId;
    const controls = chartControls(this.view, () => this.schedule(), () => this.charts.forEach(c => c.resetZoom()));
    this.node.append(this.headerNode, controls, this.chartsNode, this.infoNode, this.reproduceSection());
    model.changed.connect((_, topic) => (topic === 'logs' ? this.schedule() : this.drawInfo()), this);
    this.drawInfo();
  }

  protected onAfterAttach(_msg: Message): void {
    this.watching.update();
    this.schedule();
  }

  protected onAfterShow(_msg: Message): void {
    this.watching.update();
    this.schedule();
  }

  protected onAfterHide(_msg: Message): void {
    this.watching.update();
  }

  protected onBeforeDetach(_msg: Message): void {
    this.watching.update(true);
  }

  protected onResize(_msg: Widget.ResizeMessage): void {
    const width = this.chartsNode.clientWidth;
    this.charts.forEach(chart => chart.resize(width - 8));
  }

  dispose(): void {
    this.watching.dispose();
    this.charts.forEach(chart => chart.dispose());
    this.model.dispose();
    super.dispose();
  }

  /** Restyle every chart (the theme changed). */
  restyle(): void {
    this.charts.forEach(chart => chart.restyle());
  }

  /** Redraw the curves at the next frame: polls may land faster than frames. */
  schedule(): void {
    if (!this.pending) {
      this.pending = true;
      window.requestAnimationFrame(() => {
        this.pending = false;
        if (!this.isDisposed) {
          this.drawCharts();
        }
      });
    }
  }

  private color(key: string): string {
    let color = this.colors.get(key);
    if (!color) {
      color = PALETTE[this.colors.size % PALETTE.length];
      this.colors.set(key, color);
    }
    return color;
  }

  drawCharts(): void {
    const groups = new Map<string, string[]>();
    for (const key of this.model.series.keys()) {
      const group = chartGroup(key);
      groups.set(group, [...(groups.get(group) ?? []), key]);
    }
    const order = Array.from(groups.keys()).sort((a, b) => rank(a) - rank(b) || a.localeCompare(b));
    this.chartsNode.querySelectorAll(':scope > .tl-muted').forEach(node => node.remove());
    for (const group of order) {
      let chart = this.charts.get(group);
      if (!chart) {
        chart = new LineChart(group);
        chart.onHiddenChange = hidden => {
          (groups.get(group) ?? []).forEach(key => this.view.hidden.delete(key));
          hidden.forEach(key => this.view.hidden.add(key));
        };
        this.charts.set(group, chart);
      }
      this.chartsNode.appendChild(chart.node);
      const lines: ChartLine[] = (groups.get(group) ?? []).map(key => ({
        key,
        label: seriesLabel(key),
        color: this.color(key),
        data: this.model.series.get(key, this.view.xAxis),
        dash: splitKey(key)[0] === 'train' ? undefined : [6, 3]
      }));
      chart.update(lines, this.view);
    }
    if (!order.length) {
      fill(this.chartsNode, h('div', { className: 'tl-muted' }, this.model.detail ? 'No log rows yet.' : 'loading…'));
      this.charts.clear();
    }
    this.node.dataset.points = String(this.model.series.points());
  }

  private drawInfo(): void {
    const detail = this.model.detail;
    if (!detail) {
      fill(this.headerNode, h('div', { className: 'tl-muted' }, this.model.error ?? 'loading…'));
      return;
    }
    const run = detail.run;
    this.title.label = run.name;
    this.title.caption = `TensorLab run ${run.name} (${run.status})`;
    this.node.dataset.status = run.status;
    fill(this.headerNode,
      h('h2', {}, run.name, ' ', statusBadge(run.status)),
      h('div', { className: 'tl-muted' }, [run.host, run.device, detail.details.pid ? `pid ${detail.details.pid}` : null,
        `started ${age(run.started)}`, run.ended ? `ended ${age(run.ended)}` : null,
        progressText(run.progress, run.epochs_planned)].filter(Boolean).join(' · ')),
      this.model.error ? h('div', { className: 'tl-error' }, this.model.error) : null,
      detail.error ? h('details', { className: 'tl-run-error', open: run.status !== 'finished' },
        h('summary', {}, run.error ?? 'error'), h('pre', {}, detail.error)) : null);
    const system = Object.fromEntries(Object.entries(detail.system).map(([k, v]) => [k, (SYSTEM_LABELS[k] ?? formatValue)(v)]));
    fill(this.infoNode,
      h('section', {}, h('h3', {}, 'Hyper-parameters'), pairs(run.hyper_parameters)),
      h('section', {}, h('h3', {}, 'System (last heartbeat)'), pairs(system, 'not reported')),
      h('section', {}, h('h3', {}, `Parameter versions (${detail.parameters.length})`), versionsTable(detail.parameters)),
      h('section', {}, h('h3', {}, 'Tags'), pairs(run.tags)),
      h('section', {}, h('h3', {}, 'Best'), pairs(run.best)));
  }

  /** Built once (not redrawn with the run's details): a queued rerun's message and an open lineage stay. */
  private reproduceSection(): HTMLElement {
    const message = h('span', { className: 'tl-muted tl-rerun-message' });
    const button = h('button', {
      className: 'jp-mod-styled tl-button tl-rerun', title: 'Queue this run to be trained again by a worker: its ' +
        'architecture, hyper-parameters, seed, epochs and the exact data imports it saw'
    }, 'Rerun as a job');
    button.addEventListener('click', async () => {
      button.disabled = true;
      message.textContent = 'queueing…';
      try {
        const answer = await requestAPI<RerunAnswer>(`runs/${this.model.runId}/rerun`, { ...this.model.scope },
          { method: 'POST', body: '{}' });
        fill(message, `queued as job ${answer.job.slice(-6)} · `,
          h('a', { className: 'tl-open-link', onclick: () => this.execute?.(COMMANDS.openJobs) }, 'open the jobs tab'));
        message.dataset.job = answer.job;
      } catch (error) {
        message.textContent = (error as Error).message;
        message.className = 'tl-error tl-rerun-message';
      } finally {
        button.disabled = false;
      }
    });
    const picture = h('div', { className: 'tl-lineage-box' });
    const lineage = h('details', { className: 'tl-lineage-section' },
      h('summary', {}, 'Lineage: data imports → runs → parameter versions → what came after'), picture);
    lineage.addEventListener('toggle', () => {
      if (lineage.open) {
        void this.drawLineage(picture);
      }
    });
    picture.addEventListener('click', event => {
      const node = (event.target as Element).closest<SVGGElement>('.tl-lineage-node[data-kind="run"]');
      if (node?.dataset.ref && node.dataset.ref !== this.model.runId) {
        this.execute?.(COMMANDS.openRun, { run: node.dataset.ref, ...this.model.scope });
      }
    });
    return h('section', { className: 'tl-reproduce-section' }, h('h3', {}, 'Reproduce'),
      h('div', { className: 'tl-reproduce' }, button, message), lineage);
  }

  private async drawLineage(picture: HTMLElement): Promise<void> {
    picture.textContent = 'loading…';
    try {
      const graph = await requestAPI<Lineage>('lineage', { ...this.model.scope, of: this.model.runId });
      picture.innerHTML = lineageSvg(graph);
      picture.dataset.nodes = String(graph.nodes.length);
    } catch (error) {
      picture.textContent = (error as Error).message;
    }
  }
}

export interface RerunAnswer {
  job: string;
}

function rank(group: string): number {
  return group === 'loss' ? 0 : group === 'system' ? 2 : 1;
}

function versionsTable(versions: { version: number; epoch: number | null; step: number | null; created: string;
  metrics: { [k: string]: any }; tags: { [k: string]: any }; bytes: number }[]): HTMLElement {
  if (!versions.length) {
    return h('div', { className: 'tl-muted' }, 'none saved');
  }
  return h('table', { className: 'tl-table tl-versions' },
    h('thead', {}, h('tr', {}, ...['version', 'epoch', 'step', 'metrics', 'tags', 'size', 'saved'].map(c => h('th', {}, c)))),
    h('tbody', {}, ...versions.map(v => h('tr', {},
      h('td', {}, String(v.version)), h('td', {}, formatValue(v.epoch)), h('td', {}, formatValue(v.step)),
      h('td', {}, Object.entries(v.metrics).map(([k, x]) => `${k} ${formatValue(x)}`).join(', ')),
      h('td', {}, Object.entries(v.tags).map(([k, x]) => `${k}=${formatValue(x)}`).join(', ')),
      h('td', {}, bytes(v.bytes)), h('td', {}, age(v.created))))));
}
