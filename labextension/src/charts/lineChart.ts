/**
 * A live line chart on uPlot: drag to zoom (double-click to see everything again), values under the pointer
 * in the legend, log y, smoothing, series toggled by clicking their legend entry, step / epoch / wall-time x.
 *
 * Every series is kept whole by its owner (RunSeries); each draw smooths, downsamples to the pixels of the
 * visible x range (minMaxPerPixel) and joins the series on one x. A chart of 100,000 points so draws a few
 * thousand. Colours come from JupyterLab's CSS variables when they exist (light and dark themes), with plain
 * fallbacks, so the chart also works outside JupyterLab. No JupyterLab import.
 */

import uPlot from 'uplot';
import { minMaxPerPixel } from './downsample';
import { Series } from './series';
import { emaSmooth } from './smooth';
import { XAxis } from './runSeries';

export interface ChartLine {
  key: string;
  label: string;
  color: string;
  data: Series;
  dash?: number[];
}

export interface ChartView {
  xAxis: XAxis;
  logY: boolean;
  smoothing: number;
  hidden: Set<string>;
  /** the x axis's title when the axis's own name would mislead (seconds since start on a step scale) */
  xLabel?: string;
}

export const PALETTE = [
  '#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f', '#bcbd22', '#17becf'
];

function cssColor(name: string, fallback: string): string {
  const value = getComputedStyle(document.body).getPropertyValue(name).trim();
  return value || fallback;
}

const X_LABELS: { [axis in XAxis]: string } = { step: 'step', epoch: 'epoch', time: 'wall time' };

export class LineChart {
  readonly node: HTMLDivElement;
  /** how long the last draw took (ms) and how many points it drew: shown to tests and benchmarks */
  lastRenderMs = 0;
  drawnPoints = 0;
  onHiddenChange: ((hidden: Set<string>) => void) | null = null;
  private plot: uPlot | null = null;
  private shape = '';
  private zoom: [number, number] | null = null;
  private lines: ChartLine[] = [];
  private view: ChartView = { xAxis: 'step', logY: false, smoothing: 0, hidden: new Set() };
  private applying = false;

  constructor(readonly title: string, private height = 220) {
    this.node = document.createElement('div');
    this.node.className = 'tl-chart';
    this.node.dataset.chart = title;
  }

  /** Draw `lines` as `view` says; cheap when only data changed (no new plot). */
  update(lines: ChartLine[], view: ChartView): void {
    const started = performance.now();
    this.lines = lines;
    if (view.xAxis !== this.view.xAxis) {
      this.zoom = null;
    }
    this.view = { ...view, hidden: new Set(view.hidden) };
    const shape = JSON.stringify([lines.map(l => [l.key, l.color]), view.logY, view.xAxis, view.xLabel]);
    const data = this.data();
    if (!this.plot || shape !== this.shape) {
      this.plot?.destroy();
      this.plot = new uPlot(this.options(), data, this.node);
      this.shape = shape;
      if (this.zoom) {
        this.applying = true;
        this.plot.setScale('x', { min: this.zoom[0], max: this.zoom[1] });
        this.applying = false;
      }
    } else {
      this.applying = true;
      this.plot.setData(data, this.zoom === null);
      if (this.zoom) {
        this.plot.setScale('x', { min: this.zoom[0], max: this.zoom[1] });
      }
      this.applying = false;
    }
    this.node.dataset.points = String(lines.reduce((n, l) => n + l.data.x.length, 0));
    this.node.dataset.drawn = String(this.drawnPoints);
    this.node.dataset.scale = view.logY ? 'log' : 'linear';
    // uPlot draws in a microtask queued during the calls above; this one runs after it, so the time includes
    // the canvas drawing (what benchmarks/bench_lab.py reports as the render time)
    queueMicrotask(() => {
      this.lastRenderMs = performance.now() - started;
      this.node.dataset.renderMs = this.lastRenderMs.toFixed(2);
      this.node.dataset.renders = String(Number(this.node.dataset.renders ?? 0) + 1);
    });
  }

  /** Forget the zoom and redraw everything (also what a double-click does). */
  resetZoom(): void {
    this.zoom = null;
    this.update(this.lines, this.view);
  }

  /** Redraw from scratch: after a theme change, whose colours the plot copied. */
  restyle(): void {
    this.shape = '';
    this.update(this.lines, this.view);
  }

  resize(width: number): void {
    if (this.plot && width > 0 && Math.abs(width - this.plot.width) > 2) {
      this.plot.setSize({ width, height: this.height });
      this.update(this.lines, this.view);
    }
  }

  dispose(): void {
    this.plot?.destroy();
    this.plot = null;
  }

  private width(): number {
    return Math.max(200, this.node.clientWidth || this.node.parentElement?.clientWidth || 600);
  }

  private range(): [number, number] {
    if (this.zoom) {
      return this.zoom;
    }
    let lo = Infinity;
    let hi = -Infinity;
    for (const line of this.lines) {
      if (line.data.x.length) {
        lo = Math.min(lo, line.data.x[0]);
        hi = Math.max(hi, line.data.x[line.data.x.length - 1]);
      }
    }
    return Number.isFinite(lo) ? [lo, hi] : [0, 1];
  }

  private data(): uPlot.AlignedData {
    const [x0, x1] = this.range();
    const pixels = this.width();
    const tables: uPlot.AlignedData[] = [];
    let drawn = 0;
    for (const line of this.lines) {
      let series = line.data;
      if (this.view.smoothing > 0) {
        series = { x: series.x, y: emaSmooth(series.y, this.view.smoothing) };
      }
      const shown = minMaxPerPixel(series, x0, x1, pixels);
      const ys = this.view.logY ? shown.y.map(v => (v !== null && v > 0 ? v : null)) : shown.y;
      drawn += shown.x.length;
      tables.push([shown.x, ys as number[]]);
    }
    this.drawnPoints = drawn;
    if (!tables.length) {
      return [[]];
    }
    return uPlot.join(tables, tables.map(() => [1]));
  }

  private options(): uPlot.Options {
    const text = cssColor('--jp-ui-font-color1', '#333');
    const grid = cssColor('--jp-border-color2', '#ddd');
    const font = `11px ${cssColor('--jp-ui-font-family', 'sans-serif')}`;
    const axis = (label: string): uPlot.Axis => ({
      stroke: text, label, labelFont: font, font, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid, width: 1 }
    });
    const xLabel = this.view.xLabel ?? X_LABELS[this.view.xAxis];
    return {
      title: this.title,
      width: this.width(),
      height: this.height,
      scales: {
        x: { time: this.view.xAxis === 'time' },
        y: this.view.logY ? { distr: 3 } : {}
      },
      axes: [axis(xLabel), axis(this.view.logY ? `${this.title} (log)` : this.title)],
      series: [
        { label: xLabel },
        ...this.lines.map(line => ({
          label: line.label,
          stroke: line.color,
          width: 1.5,
          dash: line.dash,
          spanGaps: false,
          show: !this.view.hidden.has(line.key),
          // uPlot draws points only where the line is sparse: a run of a few rows still shows them
        }))
      ],
      cursor: { drag: { x: true, y: false, setScale: true }, bind: { dblclick: () => () => null } },
      legend: { live: true },
      hooks: {
        setScale: [(plot, key) => this.scaleSet(plot, key)],
        setSeries: [(plot, index) => this.seriesToggled(plot, index)],
        ready: [plot => plot.over.addEventListener('dblclick', () => this.resetZoom())]
      }
    };
  }

  private scaleSet(plot: uPlot, key: string): void {
    if (this.applying || key !== 'x') {
      return;
    }
    const { min, max } = plot.scales.x;
    if (min === undefined || max === undefined || min === null || max === null) {
      return;
    }
    const [lo, hi] = this.range();
    if (this.zoom === null && min <= lo && max >= hi) {
      return; // a full view set by new data, not a zoom
    }
    this.zoom = [min, max];
    window.requestAnimationFrame(() => this.update(this.lines, this.view)); // re-downsample the zoomed range
  }

  private seriesToggled(plot: uPlot, index: number | null): void {
    if (index === null || index < 1 || this.applying) {
      return;
    }
    const line = this.lines[index - 1];
    if (!line) {
      return;
    }
    if (plot.series[index].show) {
      this.view.hidden.delete(line.key);
    } else {
      this.view.hidden.add(line.key);
    }
    this.onHiddenChange?.(new Set(this.view.hidden));
  }
}
