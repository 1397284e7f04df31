import { describe, expect, it } from 'vitest';
import { emptySeries, lowerBound, mergeRows, upperBound } from '../src/charts/series';
import { lttb, minMaxPerPixel } from '../src/charts/downsample';
import { emaSmooth } from '../src/charts/smooth';
import { LogStream, RunSeries, chartGroup, seriesLabel } from '../src/charts/runSeries';
import { makeAxis, parallelSvg } from '../src/charts/parallel';
import { PointStore } from '../src/widget/pointStore';
import { Lineage, MAX_PER_COLUMN, columns, lineageSvg } from '../src/charts/lineageGraph';

const range = (n: number, from = 0): number[] => Array.from({ length: n }, (_, i) => i + from);

describe('mergeRows', () => {
  it('appends a batch that comes after what is held (the live case)', () => {
    const s = emptySeries();
    mergeRows(s, [0, 1, 2], [1, 2, 3]);
    const before = s.x;
    mergeRows(s, [3, 4], [4, 5]);
    expect(s.x).toBe(before); // in place, no copy
    expect(s).toEqual({ x: [0, 1, 2, 3, 4], y: [1, 2, 3, 4, 5] });
  });

  it('merges an out-of-order batch (a second writer, a late row) keeping x sorted', () => {
    const s = emptySeries();
    mergeRows(s, [0, 2, 4, 6], [0, 2, 4, 6]);
    mergeRows(s, [5, 1, 3], [5, 1, 3]);
    expect(s.x).toEqual([0, 1, 2, 3, 4, 5, 6]);
    expect(s.y).toEqual([0, 1, 2, 3, 4, 5, 6]);
  });

  it('keeps ties in arrival order and turns non-finite values into gaps', () => {
    const s = emptySeries();
    mergeRows(s, [1, 1], [10, 11]);
    mergeRows(s, [1, 0, null as unknown as number], [12, NaN, 99]);
    expect(s.x).toEqual([0, 1, 1, 1]);
    expect(s.y).toEqual([null, 10, 11, 12]);
  });

  it('gives the same series whatever the batches (polls of 1, 7 or all rows)', () => {
    const xs = range(1000).map(i => (i * 7919) % 1000);
    const whole = mergeRows(emptySeries(), xs, xs);
    for (const size of [1, 7, 333]) {
      const s = emptySeries();
      for (let i = 0; i < xs.length; i += size) {
        mergeRows(s, xs.slice(i, i + size), xs.slice(i, i + size));
      }
      expect(s).toEqual(whole);
    }
    expect(whole.x).toEqual(range(1000));
  });

  it('finds bounds', () => {
    expect(lowerBound([1, 2, 2, 3], 2)).toBe(1);
    expect(upperBound([1, 2, 2, 3], 2)).toBe(3);
    expect(lowerBound([], 5)).toBe(0);
  });
});

describe('minMaxPerPixel', () => {
  const wave = (n: number) => {
    const s = emptySeries();
    mergeRows(s, range(n), range(n).map(i => Math.sin(i / 10) + (i === 54321 ? 50 : 0)));
    return s;
  };

  it('returns the series unchanged when it fits the pixels', () => {
    const s = wave(100);
    expect(minMaxPerPixel(s, 0, 99, 800)).toEqual(s);
  });

  it('keeps at most 4 points per column and every extreme, spikes included', () => {
    const s = wave(100_000);
    const out = minMaxPerPixel(s, 0, 99_999, 500);
    expect(out.x.length).toBeLessThanOrEqual(4 * 501 + 2);
    expect(Math.max(...(out.y as number[]))).toBe(Math.max(...(s.y as number[])));
    expect(Math.min(...(out.y as number[]))).toBe(Math.min(...(s.y as number[])));
    expect(out.x[0]).toBe(0);
    expect(out.x[out.x.length - 1]).toBe(99_999);
    for (let i = 1; i < out.x.length; i++) {
      expect(out.x[i]).toBeGreaterThan(out.x[i - 1]);
    }
  });

  it('covers only the visible range, plus one point beyond each edge', () => {
    const s = wave(100_000);
    const out = minMaxPerPixel(s, 1000, 2000, 100);
    expect(out.x[0]).toBe(999);
    expect(out.x[out.x.length - 1]).toBe(2001);
  });

  it('keeps gaps as gaps', () => {
    const s = emptySeries();
    const ys = range(10_000).map(i => (i >= 5000 && i < 6000 ? null : i));
    mergeRows(s, range(10_000), ys);
    const out = minMaxPerPixel(s, 0, 9999, 100);
    expect(out.y.filter(v => v === null).length).toBeGreaterThan(0);
    expect(out.x.length).toBeLessThan(600);
  });

  it('downsamples 100k points in one linear pass (a guard against quadratic work; bench_lab.py times it)', () => {
    const s = wave(100_000);
    const started = performance.now();
    minMaxPerPixel(s, 0, 99_999, 1000);
    expect(performance.now() - started).toBeLessThan(500);
  });
});

describe('lttb', () => {
  it('keeps the ends and the requested number of points', () => {
    const s = emptySeries();
    mergeRows(s, range(1000), range(1000).map(i => Math.cos(i / 30)));
    const out = lttb(s, 100);
    expect(out.x.length).toBe(100);
    expect(out.x[0]).toBe(0);
    expect(out.x[99]).toBe(999);
  });

  it('returns short series whole, without gaps', () => {
    const s = emptySeries();
    mergeRows(s, [0, 1, 2], [1, null, 3]);
    expect(lttb(s, 10)).toEqual({ x: [0, 2], y: [1, 3] });
  });
});

describe('emaSmooth', () => {
  it('is the identity at weight 0', () => {
    expect(emaSmooth([1, 2, null, 4], 0)).toEqual([1, 2, null, 4]);
  });

  it('is debiased: a constant stays constant from the first point', () => {
    for (const v of emaSmooth([5, 5, 5, 5], 0.9)) {
      expect(v).toBeCloseTo(5, 10);
    }
  });

  it('matches TensorBoard on a known series and skips gaps', () => {
    const out = emaSmooth([0, 1, null, 1], 0.5);
    expect(out[0]).toBe(0);
    expect(out[1]).toBeCloseTo(0.5 / 0.75, 10); // (0.5*0 + 0.5*1) / (1 - 0.25)
    expect(out[2]).toBeNull();
    expect(out[3]).toBeCloseTo(0.75 / 0.875, 10); // (0.5*0.5 + 0.5*1) / (1 - 0.125)
  });

  it('damps noise', () => {
    const noisy = range(1000).map(i => (i % 2 ? 1 : -1));
    const out = emaSmooth(noisy, 0.9) as number[];
    expect(Math.abs(out[999])).toBeLessThan(0.1);
  });
});

describe('RunSeries', () => {
  const poll = (kind: string, writer: string, steps: number[], metric: string): LogStream => ({
    kind,
    writer,
    rows: steps.length,
    count: steps.length,
    downsampled: false,
    step: steps,
    epoch: steps.map(s => Math.floor(s / 10)),
    time: steps.map(s => 1000 + s),
    metrics: { [metric]: steps.map(s => s / 2) }
  });

  it('merges polls of several writers into one series per kind and metric, on every x axis', () => {
    const run = new RunSeries();
    expect(run.add([poll('train', 'a', [0, 1, 2], 'loss')])).toEqual(['train:loss']);
    run.add([poll('train', 'b', [1, 3], 'loss'), poll('valid', 'a', [2], 'val_loss')]);
    expect(run.keys()).toEqual(['train:loss', 'valid:val_loss']);
    expect(run.get('train:loss', 'step').x).toEqual([0, 1, 1, 2, 3]);
    expect(run.get('train:loss', 'time').x).toEqual([1000, 1001, 1001, 1002, 1003]);
    expect(run.get('train:loss', 'epoch').x).toEqual([0, 0, 0, 0, 0]);
    expect(run.points()).toBe(6);
    expect(run.rowsSeen).toBe(6);
  });

  it('names series and groups them into charts', () => {
    expect(seriesLabel('valid:val_loss')).toBe('validation loss');
    expect(seriesLabel('valid:loss')).toBe('train loss (epoch)');
    expect(seriesLabel('train:loss')).toBe('train loss');
    expect(chartGroup('valid:val_accuracy')).toBe('accuracy');
    expect(chartGroup('train:step_time')).toBe('system');
  });
});


describe('parallel coordinates', () => {
  it('uses a log axis for values spanning decades and categories for text', () => {
    const lr = makeAxis('lr', [0.0001, 0.01, 0.1]);
    expect(lr.kind).toBe('log');
    expect(lr.position(0.0001)).toBe(0);
    expect(lr.position(0.1)).toBe(1);
    const optimizer = makeAxis('optimizer', ['sgd', 'adam', null]);
    expect(optimizer.kind).toBe('category');
    expect(optimizer.position('adam')).toBe(0);
    expect(optimizer.position(null)).toBeNull();
  });

  it('draws one line per run, the best one last and thickest', () => {
    const svg = parallelSvg([
      { id: 'a', label: 'a', color: '#111', values: { lr: 0.1, val_accuracy: 0.9 } },
      { id: 'b', label: 'b<x>', color: '#222', values: { lr: 0.01, val_accuracy: 0.8 } }
    ], ['lr', 'val_accuracy'], 'a');
    expect(svg.match(/<polyline/g)?.length).toBe(2);
    expect(svg.lastIndexOf('data-run="a"')).toBeGreaterThan(svg.indexOf('data-run="b"'));
    expect(svg).toContain('tl-pc-best');
    expect(svg).toContain('b&lt;x&gt;');
  });
});

describe('PointStore (the notebook widget\'s points)', () => {
  const buffers = (...arrays: number[][]) => arrays.map(a => new Float64Array(a).buffer);

  it('appends new points, turns NaN into gaps, and starts over on reset or drop', () => {
    const store = new PointStore();
    store.apply({ type: 'points', reset: false, drop: [], series: [{ key: 'a', n: 3 }] },
      buffers([1, 2, 3], [0.5, NaN, 0.25]));
    store.apply({ type: 'points', reset: false, drop: [], series: [{ key: 'a', n: 1 }, { key: 'b', n: 1 }] },
      buffers([4], [0.125], [1], [9]));
    expect(store.series.get('a')).toEqual({ x: [1, 2, 3, 4], y: [0.5, null, 0.25, 0.125] });
    store.apply({ type: 'points', reset: false, drop: ['a'], series: [] }, []);
    expect([...store.series.keys()]).toEqual(['b']);
    store.apply({ type: 'points', reset: true, drop: [], series: [{ key: 'c', n: 1 }] }, buffers([7], [8]));
    expect([...store.series.keys()]).toEqual(['c']);
  });

  it('reads buffers that arrive as unaligned DataViews (slices of one message)', () => {
    const whole = new ArrayBuffer(4 + 16);
    const view = new DataView(whole, 4, 16);
    view.setFloat64(0, 1.5, true);
    view.setFloat64(8, 2.5, true);
    const ys = new DataView(new Float64Array([3, 4]).buffer);
    const store = new PointStore();
    store.apply({ type: 'points', reset: false, drop: [], series: [{ key: 'a', n: 2 }] }, [view, ys]);
    expect(store.series.get('a')).toEqual({ x: [1.5, 2.5], y: [3, 4] });
  });
});

describe('lineage graph', () => {
  const graph: Lineage = {
    start: 'run:b', complete: true,
    nodes: [
      { id: 'import:i', kind: 'import', ref: 'i', label: 'import i' },
      { id: 'run:a', kind: 'run', ref: 'a', label: 'pretrain' },
      { id: 'parameters:p', kind: 'parameters', ref: 'p', label: 'v1 epoch 0' },
      { id: 'run:b', kind: 'run', ref: 'b', label: 'finetune' }
    ],
    edges: [
      { from: 'import:i', to: 'run:a', kind: 'data' }, { from: 'run:a', to: 'parameters:p', kind: 'saved' },
      { from: 'parameters:p', to: 'run:b', kind: 'warm start' }, { from: 'import:i', to: 'run:b', kind: 'data' }
    ]
  };

  it('places every node right of what it came from (longest path)', () => {
    const column = columns(graph);
    expect(Object.fromEntries(column)).toEqual({ 'import:i': 0, 'run:a': 1, 'parameters:p': 2, 'run:b': 3 });
  });

  it('draws each node once, an arrow per edge, the asked-for node thickest', () => {
    const svg = lineageSvg(graph);
    expect(svg.match(/class="tl-lineage-node/g)?.length).toBe(4);
    expect(svg.match(/class="tl-lineage-edge"/g)?.length).toBe(4);
    expect(svg).toContain('tl-lineage-start" data-kind="run" data-ref="b"');
  });

  it('survives a cycle and caps a crowded column', () => {
    const many: Lineage = { start: 'run:r', complete: false, nodes: [{ id: 'run:r', kind: 'run', ref: 'r', label: 'r' }],
      edges: [{ from: 'run:r', to: 'run:r', kind: 'loop' }] };
    for (let i = 0; i < MAX_PER_COLUMN + 5; i++) {
      many.nodes.push({ id: `parameters:${i}`, kind: 'parameters', ref: String(i), label: `v${i}` });
      many.edges.push({ from: 'run:r', to: `parameters:${i}`, kind: 'saved' });
    }
    const svg = lineageSvg(many);
    expect(svg).toContain('+5 more');
    expect(svg).toContain('cut at 500 nodes');
  });
});
