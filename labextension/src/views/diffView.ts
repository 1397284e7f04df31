/**
 * "What differs" between two compared runs (the diff endpoint, `db.diff_runs`): hyper-parameters, packages,
 * hardware and fit settings as old -> new rows, the seed, data imports added or removed, and code as a unified
 * diff. Read once when the comparison opens: what made a finished run does not change.
 */

import { requestAPI } from '../request';
import { Scope } from '../types';
import { fill, formatValue, h } from './dom';

type Change = { changed?: Record<string, [unknown, unknown]>; added?: Record<string, unknown>; removed?: Record<string, unknown> };

function mappingRows(title: string, change: Change | undefined): HTMLElement[] {
  if (!change || !Object.keys(change).length) {
    return [];
  }
  const rows: HTMLElement[] = [];
  for (const [key, [a, b]] of Object.entries(change.changed ?? {})) {
    rows.push(h('tr', {}, h('td', {}, title), h('td', {}, key), h('td', {}, formatValue(a)), h('td', {}, formatValue(b))));
  }
  for (const [key, value] of Object.entries(change.added ?? {})) {
    rows.push(h('tr', {}, h('td', {}, title), h('td', {}, key), h('td', {}, '—'), h('td', {}, formatValue(value))));
  }
  for (const [key, value] of Object.entries(change.removed ?? {})) {
    rows.push(h('tr', {}, h('td', {}, title), h('td', {}, key), h('td', {}, formatValue(value)), h('td', {}, '—')));
  }
  return rows;
}

export function renderDiff(node: HTMLElement, diff: any): void {
  if (diff.same) {
    fill(node, h('h3', {}, 'What differs'), h('div', { className: 'tl-muted' }, 'Nothing recorded differs between these runs.'));
    return;
  }
  const rows = [
    ...mappingRows('hyper-parameter', diff.hyper_parameters),
    ...mappingRows('package', diff.packages),
    ...mappingRows('hardware', diff.hardware),
    ...mappingRows('fit', diff.fit)
  ];
  if (diff.seed?.length) {
    rows.push(h('tr', {}, h('td', {}, 'seed'), h('td', {}, ''), h('td', {}, formatValue(diff.seed[0])), h('td', {}, formatValue(diff.seed[1]))));
  }
  for (const [part, change] of Object.entries<any>(diff.data ?? {})) {
    for (const entry of change.added ?? []) {
      rows.push(h('tr', {}, h('td', {}, `${part} data`), h('td', {}, `import …${String(entry.import_id).slice(-6)}`), h('td', {}, '—'), h('td', {}, `${entry.samples} samples`)));
    }
    for (const entry of change.removed ?? []) {
      rows.push(h('tr', {}, h('td', {}, `${part} data`), h('td', {}, `import …${String(entry.import_id).slice(-6)}`), h('td', {}, `${entry.samples} samples`), h('td', {}, '—')));
    }
  }
  const code = Object.entries<any>(diff.code ?? {});
  fill(node,
    h('h3', {}, 'What differs'),
    rows.length ? h('table', { className: 'tl-table tl-diff-table' },
      h('thead', {}, h('tr', {}, h('th', {}, 'what'), h('th', {}, 'name'), h('th', {}, diff.runs.a.name ?? 'a'), h('th', {}, diff.runs.b.name ?? 'b'))),
      h('tbody', {}, ...rows)) : null,
    ...code.map(([key, value]) => Array.isArray(value)
      ? h('div', {}, `${key.replace('_', ' ')}: ${value[0] ?? '—'} → ${value[1] ?? '—'}`)
      : h('pre', { className: 'tl-diff-code', title: key }, String(value))));
}

export async function loadDiff(node: HTMLElement, scope: Scope, runIds: string[]): Promise<void> {
  try {
    renderDiff(node, await requestAPI<any>('diff', { ...scope, runs: runIds.join(',') }));
  } catch (error) {
    fill(node, h('div', { className: 'tl-error' }, `What differs: ${(error as Error).message}`));
  }
}
