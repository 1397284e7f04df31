/**
 * A comparison tab: the chosen metric's curves of several runs overlaid, parallel coordinates of their
 * hyper-parameters against the metric, and a sortable table with the best run marked.
 */

import { Message } from '@lumino/messaging';
import { Widget } from '@lumino/widgets';
import { ChartLine, ChartView, LineChart, PALETTE } from '../charts/lineChart';
import { parallelSvg } from '../charts/parallel';
import { splitKey } from '../charts/runSeries';
import { CompareModel } from '../compareModel';
import { fill, formatValue, h, select, statusBadge } from './dom';
import { loadDiff } from './diffView';
import { chartControls } from './chartControls';
import { VisibleWatch } from './visibility';

export class ComparePanel extends Widget {
  readonly view: ChartView = { xAxis: 'epoch', logY: false, smoothing: 0, hidden: new Set() };
  private chart: LineChart;
  private watching = new VisibleWatch(this, () => [this.model.watch()]);
  private sortColumn = 'value';
  private descending = true;
  private pending = false;
  private headerNode = h('div', { className: 'tl-compare-header' });
  private parallelNode = h('div', { className: 'tl-parallel-box' });
  private tableNode = h('div', { className: 'tl-compare-table' });
  private diffNode = h('div', { className: 'tl-diff' });

  constructor(readonly model: CompareModel) {
    super();
    this.addClass('tl-compare-panel');
    this.title.label = `Compare ${model.runIds.length} runs`;
    this.chart = new LineChart(model.metric, 260);
    const controls = chartControls(this.view, () => this.schedule(), () => this.chart.resetZoom());
    this.node.append(this.headerNode, controls, this.chart.node, this.parallelNode, this.tableNode, this.diffNode);
    if (model.runIds.length === 2) {
      void loadDiff(this.diffNode, model.scope, model.runIds);
    }
    model.changed.connect((_, topic) => (topic === 'curves' ? this.schedule() : this.drawTable()), this);
    this.drawTable();
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
    this.chart.resize(this.node.clientWidth - 24);
  }

  dispose(): void {
    this.watching.dispose();
    this.chart.dispose();
    this.model.dispose();
    super.dispose();
  }

  restyle(): void {
    this.chart.restyle();
  }

  private color(index: number): string {
    return PALETTE[index % PALETTE.length];
  }

  private name(id: string): string {
    return this.model.comparison?.runs.find(r => r.id === id)?.name ?? id.slice(-6);
  }

  schedule(): void {
    if (!this.pending) {
      this.pending = true;
      window.requestAnimationFrame(() => {
        this.pending = false;
        if (!this.isDisposed) {
          this.drawChart();
        }
      });
    }
  }

  drawChart(): void {
    const metric = this.model.metric;
    const lines: ChartLine[] = [];
    this.model.runIds.forEach((id, index) => {
      const curves = this.model.curves.get(id);
      const keys = curves?.series.keys().filter(key => splitKey(key)[1] === metric) ?? [];
      const key = keys.find(k => k.startsWith('valid:')) ?? keys.find(k => k.startsWith('train:')) ?? keys[0];
      if (curves && key) {
        lines.push({ key: id, label: this.name(id), color: this.color(index), data: curves.series.get(key, this.view.xAxis) });
      }
    });
    this.chart.update(lines, this.view);
  }

  private drawTable(): void {
    const comparison = this.model.comparison;
    const metrics = Array.from(new Set([this.model.metric, ...(comparison?.metrics ?? [])]));
    fill(this.headerNode,
      h('h2', {}, `Comparison of ${this.model.runIds.length} runs`),
      h('label', {}, 'metric ', select(metrics.map(m => [m, m]), this.model.metric, value => {
        this.chart.dispose();
        const fresh = new LineChart(value, 260);
        this.chart.node.replaceWith(fresh.node);
        this.chart = fresh;
        this.model.setMetric(value);
      }, 'tl-metric')),
      h('label', {}, ' better ', select([['', 'auto'], ['max', 'higher'], ['min', 'lower']], this.model.mode,
        value => this.model.setMetric(this.model.metric, value as '' | 'max' | 'min'), 'tl-mode')),
      this.model.error ? h('div', { className: 'tl-error' }, this.model.error) : null);
    if (!comparison) {
      fill(this.tableNode, h('div', { className: 'tl-muted' }, 'loading…'));
      return;
    }
    const index = new Map(this.model.runIds.map((id, i) => [id, i]));
    this.parallelNode.innerHTML = parallelSvg(
      comparison.runs.map(run => ({ id: run.id, label: run.name, color: this.color(index.get(run.id) ?? 0),
        values: { ...run.hyper_parameters, [comparison.metric]: run.value } })),
      [...comparison.hyper_parameters, comparison.metric], comparison.best);
    const columns = ['name', 'status', 'value', ...comparison.hyper_parameters.map(hp => `hp.${hp}`)];
    const cell = (run: any, column: string) =>
      column === 'value' ? run.value : column.startsWith('hp.') ? run.hyper_parameters[column.slice(3)] : run[column];
    const rows = [...comparison.runs].sort((a, b) => compare(cell(a, this.sortColumn), cell(b, this.sortColumn)) * (this.descending ? -1 : 1));
    fill(this.tableNode, h('table', { className: 'tl-table tl-sortable' },
      h('thead', {}, h('tr', {}, h('th', {}, ''), ...columns.map(column => h('th', {
        className: column === this.sortColumn ? `tl-sorted ${this.descending ? 'tl-desc' : 'tl-asc'}` : '',
        onclick: () => this.sortBy(column), title: 'sort'
      }, column === 'value' ? comparison.metric : column)))),
      h('tbody', {}, ...rows.map(run => h('tr', { className: run.id === comparison.best ? 'tl-best' : '', dataset: { run: run.id } },
        h('td', {}, h('span', { className: 'tl-swatch', style: `background:${this.color(index.get(run.id) ?? 0)}` }),
          run.id === comparison.best ? h('span', { className: 'tl-star', title: `best ${comparison.metric} (${comparison.mode})` }, '★') : null),
        ...columns.map(column => h('td', {}, column === 'status' ? statusBadge(run.status) : formatValue(cell(run, column)))))))));
  }

  private sortBy(column: string): void {
    this.descending = column === this.sortColumn ? !this.descending : true;
    this.sortColumn = column;
    this.drawTable();
  }
}

/** Missing values last, numbers by value, anything else as text. */
export function compare(a: any, b: any): number {
  const missingA = a === null || a === undefined;
  const missingB = b === null || b === undefined;
  if (missingA || missingB) {
    return missingA === missingB ? 0 : missingA ? -1 : 1;
  }
  if (typeof a === 'number' && typeof b === 'number') {
    return a - b;
  }
  return String(a).localeCompare(String(b));
}
