/**
 * The notebook panels' charts: an anywidget view over the lab's own chart modules (LineChart on uPlot, the
 * shared controls, parallel coordinates), so a notebook panel and a lab tab draw alike — drag-zoom, values under
 * the pointer, log y, smoothing, series toggled from the legend.
 *
 * The kernel never sends markup. Its widget state holds what is small and settable from Python (the charts, the
 * lines and their labels, log y, smoothing, hidden series, the parallel-coordinates rows); points travel as
 * custom messages of float64 buffers holding only what is new since the last message. A view that opens late
 * (a second view, a reloaded page) asks for everything once with a `sync` message.
 *
 * Built by esbuild into widgets/static/charts.js (an ES module) for `tensorlab.widgets.charts.ChartFeed`.
 */

import { ChartLine, ChartView, LineChart, PALETTE } from '../charts/lineChart';
import { parallelSvg, ParallelRun } from '../charts/parallel';
import { XAxis } from '../charts/runSeries';
import { emptySeries } from '../charts/series';
import { chartControls } from '../views/chartControls';
import { h } from '../views/dom';
import { PointStore, PointsMessage } from './pointStore';

/** What anywidget hands a view (the subset used here). */
export interface WidgetModel {
  get(name: string): any;
  set(name: string, value: any): void;
  save_changes(): void;
  on(event: string, callback: (...args: any[]) => void): void;
  off(event: string, callback: (...args: any[]) => void): void;
  send(content: any, callbacks?: any, buffers?: ArrayBuffer[]): void;
}

interface LineSpec {
  key: string;
  label: string;
  chart: string;
  color?: string;
  dash?: number[];
  width?: number;
}

interface ChartSpec {
  key: string;
  title: string;
}

interface ParallelSpec {
  axes: string[];
  runs: { id: string; label: string; values: { [axis: string]: any } }[];
  best: string | null;
}

export class NotebookCharts {
  readonly node = h('div', { className: 'tl-notebook-charts' });
  readonly store = new PointStore();
  readonly view: ChartView;
  private charts = new Map<string, LineChart>();
  private chartsNode = h('div', { className: 'tl-charts tl-notebook-chart-row' });
  private parallelNode = h('div', { className: 'tl-parallel-box' });
  private controlsNode: HTMLElement;
  private frame = 0;
  private resizeWatch: ResizeObserver | null = null;

  constructor(private model: WidgetModel) {
    this.view = {
      xAxis: (model.get('x_axis') || 'step') as XAxis,
      logY: Boolean(model.get('log_y')),
      smoothing: Number(model.get('smoothing') || 0),
      hidden: new Set<string>(model.get('hidden') || []),
      xLabel: model.get('x_label') || undefined
    };
    this.controlsNode = chartControls(this.view, () => this.viewChanged(), () => this.charts.forEach(c => c.resetZoom()), []);
    this.node.append(this.controlsNode, this.chartsNode, this.parallelNode);
    this.node.dataset.renders = '0';
    if (typeof ResizeObserver !== 'undefined') {
      this.resizeWatch = new ResizeObserver(() => this.charts.forEach(c => c.resize(c.node.clientWidth)));
      this.resizeWatch.observe(this.node);
    }
  }

  /** A points message from the kernel; drawn at the next animation frame (several messages, one draw). */
  receive(message: any, buffers: (ArrayBuffer | ArrayBufferView)[]): void {
    if (message?.type !== 'points') {
      return;
    }
    const started = performance.now();
    this.store.apply(message as PointsMessage, buffers ?? []);
    this.node.dataset.applyMs = (performance.now() - started).toFixed(2); // read by benchmarks/bench_widgets.py
    this.schedule();
  }

  /** The kernel changed a setting (log y, smoothing, hidden series, labels): follow it. */
  stateChanged(): void {
    this.view.logY = Boolean(this.model.get('log_y'));
    this.view.smoothing = Number(this.model.get('smoothing') || 0);
    this.view.hidden = new Set<string>(this.model.get('hidden') || []);
    this.view.xAxis = (this.model.get('x_axis') || 'step') as XAxis;
    this.view.xLabel = this.model.get('x_label') || undefined;
    const logY = this.controlsNode.querySelector<HTMLInputElement>('.tl-log-y');
    const smoothing = this.controlsNode.querySelector<HTMLInputElement>('.tl-smoothing');
    if (logY) {
      logY.checked = this.view.logY;
    }
    if (smoothing) {
      smoothing.value = String(this.view.smoothing);
    }
    this.schedule();
  }

  schedule(): void {
    if (!this.frame) {
      this.frame = requestAnimationFrame(() => {
        this.frame = 0;
        this.draw();
      });
    }
  }

  /** Draw now (tests and benchmarks call it directly). */
  draw(): void {
    const specs: ChartSpec[] = this.model.get('charts') || [];
    const lines: LineSpec[] = this.model.get('lines') || [];
    for (const [key, chart] of this.charts) {
      if (!specs.some(s => s.key === key)) {
        chart.dispose();
        chart.node.remove();
        this.charts.delete(key);
      }
    }
    let total = 0;
    specs.forEach(spec => {
      let chart = this.charts.get(spec.key);
      if (!chart) {
        chart = new LineChart(spec.title, Number(this.model.get('height') || 220));
        chart.onHiddenChange = hidden => this.hiddenChanged(spec.key, hidden);
        this.charts.set(spec.key, chart);
      }
      this.chartsNode.appendChild(chart.node);
      const own = lines.filter(line => line.chart === spec.key);
      const drawn: ChartLine[] = own.map((line, i) => ({
        key: line.key, label: line.label, color: line.color ?? PALETTE[i % PALETTE.length], dash: line.dash,
        data: this.store.series.get(line.key) ?? emptySeries()
      }));
      total += drawn.reduce((n, line) => n + line.data.x.length, 0);
      chart.update(drawn, this.view);
    });
    this.drawParallel();
    this.node.dataset.points = String(total);
    this.node.dataset.renders = String(Number(this.node.dataset.renders) + 1);
  }

  dispose(): void {
    cancelAnimationFrame(this.frame);
    this.resizeWatch?.disconnect();
    this.charts.forEach(chart => chart.dispose());
    this.charts.clear();
  }

  private chartWidth(): number {
    return Math.max(200, this.chartsNode.clientWidth || 600);
  }

  private drawParallel(): void {
    const spec: ParallelSpec | null = this.model.get('parallel');
    if (!spec || !spec.runs?.length || !spec.axes?.length) {
      this.parallelNode.innerHTML = '';
      return;
    }
    const lines: LineSpec[] = this.model.get('lines') || [];
    const color = (label: string, i: number) => {
      const index = lines.findIndex(line => line.label === label); // the colour of the run's curve above
      return lines[index]?.color ?? PALETTE[(index >= 0 ? index : i) % PALETTE.length];
    };
    const runs: ParallelRun[] = spec.runs.map((run, i) => ({ ...run, color: color(run.label, i) }));
    this.parallelNode.innerHTML = parallelSvg(runs, spec.axes, spec.best, Math.min(760, this.chartWidth()), 240);
  }

  private viewChanged(): void {
    this.model.set('log_y', this.view.logY);
    this.model.set('smoothing', this.view.smoothing);
    this.model.save_changes();
    this.schedule();
  }

  /** Legend clicks hide series; the kernel learns which (panel.chart.hidden) so a redraw keeps them hidden. */
  private hiddenChanged(chart: string, hidden: Set<string>): void {
    const lines: LineSpec[] = this.model.get('lines') || [];
    const others = new Set<string>((this.model.get('hidden') || []).filter(
      (key: string) => lines.find(line => line.key === key)?.chart !== chart));
    hidden.forEach(key => others.add(key));
    this.view.hidden = others;
    this.model.set('hidden', [...others]);
    this.model.save_changes();
  }
}

/** anywidget's entry point: one NotebookCharts per view. */
function render({ model, el }: { model: WidgetModel; el: HTMLElement }): () => void {
  const charts = new NotebookCharts(model);
  el.classList.add('tl-notebook-widget');
  el.appendChild(charts.node);
  const onMessage = (message: any, buffers: (ArrayBuffer | ArrayBufferView)[]) => charts.receive(message, buffers);
  const onState = () => charts.stateChanged();
  const onShape = () => charts.schedule();
  model.on('msg:custom', onMessage);
  for (const name of ['log_y', 'smoothing', 'hidden', 'x_axis', 'x_label']) {
    model.on(`change:${name}`, onState);
  }
  for (const name of ['charts', 'lines', 'parallel']) {
    model.on(`change:${name}`, onShape);
  }
  model.send({ type: 'sync' }); // everything so far; new points follow as they come
  charts.schedule();
  return () => {
    model.off('msg:custom', onMessage);
    charts.dispose();
  };
}

export default { render };
