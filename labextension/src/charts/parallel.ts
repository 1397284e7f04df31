/**
 * Parallel coordinates of runs: one vertical axis per hyper-parameter plus the metric, one line per run, so
 * which settings go with a good metric shows at a glance. Numeric axes are linear (or logarithmic when the
 * values span more than two decades, as learning rates do); other values are placed as categories.
 *
 * Returns SVG markup (pure: no DOM), coloured by the caller's colours; the best run is drawn thickest.
 */

export interface ParallelRun {
  id: string;
  label: string;
  color: string;
  values: { [axis: string]: any };
}

export interface Axis {
  name: string;
  kind: 'linear' | 'log' | 'category';
  position: (value: any) => number | null; // 0 (bottom) .. 1 (top), null when the run has no value
  ticks: [number, string][];
}

function escape(text: string): string {
  return text.replace(/[&<>"]/g, c => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c] as string);
}

function short(value: any): string {
  if (typeof value === 'number') {
    return Number.isInteger(value) ? String(value) : value.toPrecision(3);
  }
  return String(value).slice(0, 14);
}

export function makeAxis(name: string, values: any[]): Axis {
  const present = values.filter(v => v !== null && v !== undefined);
  const numbers = present.filter((v): v is number => typeof v === 'number' && Number.isFinite(v));
  if (present.length && numbers.length === present.length) {
    let lo = Math.min(...numbers);
    let hi = Math.max(...numbers);
    const log = lo > 0 && hi / lo > 100;
    const f = (v: number) => (log ? Math.log10(v) : v);
    if (hi === lo) {
      lo -= 1;
      hi += 1;
    }
    const position = (v: any) =>
      typeof v === 'number' && Number.isFinite(v) && (!log || v > 0) ? (f(v) - f(lo)) / (f(hi) - f(lo) || 1) : null;
    const ticks: [number, string][] = Array.from(new Set(numbers)).sort((a, b) => a - b).slice(0, 6)
      .map(v => [position(v) as number, short(v)]);
    return { name, kind: log ? 'log' : 'linear', position, ticks };
  }
  const categories = Array.from(new Set(present.map(v => JSON.stringify(v)))).sort();
  const position = (v: any) => {
    if (v === null || v === undefined) {
      return null;
    }
    const index = categories.indexOf(JSON.stringify(v));
    return categories.length === 1 ? 0.5 : index / (categories.length - 1);
  };
  return { name, kind: 'category', position,
    ticks: categories.slice(0, 8).map(c => [position(JSON.parse(c)) as number, short(JSON.parse(c))]) };
}

export function parallelSvg(runs: ParallelRun[], axes: string[], best: string | null, width = 640, height = 240): string {
  if (!axes.length || !runs.length) {
    return '';
  }
  const built = axes.map(name => makeAxis(name, runs.map(r => r.values[name])));
  const left = 40;
  const right = 40;
  const top = 24;
  const bottom = 20;
  const x = (i: number) => (axes.length === 1 ? width / 2 : left + (i * (width - left - right)) / (axes.length - 1));
  const y = (p: number) => top + (1 - p) * (height - top - bottom);
  const parts: string[] = [];
  built.forEach((axis, i) => {
    parts.push(`<line class="tl-pc-axis" x1="${x(i)}" x2="${x(i)}" y1="${y(0)}" y2="${y(1)}"/>`);
    parts.push(`<text class="tl-pc-name" x="${x(i)}" y="${top - 8}" text-anchor="middle">${escape(axis.name)}${axis.kind === 'log' ? ' (log)' : ''}</text>`);
    for (const [p, label] of axis.ticks) {
      parts.push(`<text class="tl-pc-tick" x="${x(i) + 4}" y="${y(p) + 3}">${escape(label)}</text>`);
    }
  });
  const ordered = [...runs].sort((a, b) => Number(a.id === best) - Number(b.id === best)); // best drawn last
  for (const run of ordered) {
    const points = built.map((axis, i) => [x(i), axis.position(run.values[axis.name])] as [number, number | null])
      .filter((p): p is [number, number] => p[1] !== null)
      .map(([px, p]) => `${px.toFixed(1)},${y(p).toFixed(1)}`);
    const isBest = run.id === best;
    parts.push(`<polyline class="tl-pc-line${isBest ? ' tl-pc-best' : ''}" data-run="${escape(run.id)}" points="${points.join(' ')}" ` +
      `stroke="${escape(run.color)}" stroke-width="${isBest ? 3.5 : 1.5}" fill="none"><title>${escape(run.label)}</title></polyline>`);
  }
  return `<svg class="tl-parallel" viewBox="0 0 ${width} ${height}" width="100%" height="${height}" ` +
    `xmlns="http://www.w3.org/2000/svg">${parts.join('')}</svg>`;
}
