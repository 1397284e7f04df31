/**
 * A lineage graph (GET lineage?of=...) as an SVG picture: data imports → runs → parameter versions → the runs,
 * jobs and plan stages that came after. Columns are the longest path from a source (so every arrow points right),
 * rows are ordered by kind and label; the node the graph was asked for is drawn thickest.
 *
 * Pure: returns SVG markup (no DOM), tested with the other chart modules. Each node carries data-kind and
 * data-ref, so a view can open what is clicked.
 */

export interface LineageNode {
  id: string;
  kind: string;
  ref: string;
  label: string;
  status?: string | null;
}

export interface LineageEdge {
  from: string;
  to: string;
  kind: string;
}

export interface Lineage {
  start: string;
  nodes: LineageNode[];
  edges: LineageEdge[];
  complete: boolean;
}

export const KIND_COLORS: { [kind: string]: string } = {
  import: '#2ca02c', job: '#ff7f0e', run: '#1f77b4', parameters: '#9467bd', deployment: '#d62728'
};
const KIND_ORDER = ['import', 'job', 'run', 'parameters', 'deployment'];
const NODE_W = 150;
const NODE_H = 22;
const COLUMN_GAP = 56;
const ROW_GAP = 8;
export const MAX_PER_COLUMN = 40;

function escape(text: string): string {
  return text.replace(/[&<>"]/g, c => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c] as string);
}

/** Each node's column: the longest path to it from a node with no incoming edge (cycles, if any, cut). */
export function columns(graph: Lineage): Map<string, number> {
  const incoming = new Map<string, number>(graph.nodes.map(n => [n.id, 0]));
  const next = new Map<string, string[]>();
  for (const edge of graph.edges) {
    if (incoming.has(edge.from) && incoming.has(edge.to) && edge.from !== edge.to) {
      incoming.set(edge.to, (incoming.get(edge.to) ?? 0) + 1);
      next.set(edge.from, [...(next.get(edge.from) ?? []), edge.to]);
    }
  }
  const column = new Map<string, number>();
  const ready = graph.nodes.filter(n => incoming.get(n.id) === 0).map(n => n.id);
  ready.forEach(id => column.set(id, 0));
  while (ready.length) {
    const id = ready.shift() as string;
    for (const target of next.get(id) ?? []) {
      column.set(target, Math.max(column.get(target) ?? 0, (column.get(id) ?? 0) + 1));
      incoming.set(target, (incoming.get(target) ?? 1) - 1);
      if (incoming.get(target) === 0) {
        ready.push(target);
      }
    }
  }
  graph.nodes.forEach(n => column.has(n.id) || column.set(n.id, 0)); // in a cycle: placed first
  return column;
}

export function lineageSvg(graph: Lineage): string {
  const column = columns(graph);
  const byColumn = new Map<number, LineageNode[]>();
  for (const node of graph.nodes) {
    const c = column.get(node.id) ?? 0;
    byColumn.set(c, [...(byColumn.get(c) ?? []), node]);
  }
  const place = new Map<string, [number, number]>();
  const hidden = new Map<number, number>();
  let rows = 0;
  for (const [c, nodes] of byColumn) {
    nodes.sort((a, b) => KIND_ORDER.indexOf(a.kind) - KIND_ORDER.indexOf(b.kind) || a.label.localeCompare(b.label));
    const shown = nodes.filter(n => n.id === graph.start).concat(nodes.filter(n => n.id !== graph.start))
      .slice(0, MAX_PER_COLUMN);
    shown.sort((a, b) => nodes.indexOf(a) - nodes.indexOf(b));
    shown.forEach((node, row) => place.set(node.id, [8 + c * (NODE_W + COLUMN_GAP), 8 + row * (NODE_H + ROW_GAP)]));
    hidden.set(c, nodes.length - shown.length);
    rows = Math.max(rows, shown.length + (nodes.length > shown.length ? 1 : 0));
  }
  const width = 16 + (Math.max(0, ...column.values()) + 1) * (NODE_W + COLUMN_GAP) - COLUMN_GAP;
  const height = 16 + rows * (NODE_H + ROW_GAP);
  const parts: string[] = [];
  for (const edge of graph.edges) {
    const a = place.get(edge.from);
    const b = place.get(edge.to);
    if (!a || !b) {
      continue;
    }
    const [x1, y1] = [a[0] + NODE_W, a[1] + NODE_H / 2];
    const [x2, y2] = [b[0], b[1] + NODE_H / 2];
    const bend = Math.max(20, (x2 - x1) / 2);
    parts.push(`<path class="tl-lineage-edge" d="M${x1},${y1} C${x1 + bend},${y1} ${x2 - bend},${y2} ${x2},${y2}" ` +
      `fill="none" marker-end="url(#tl-arrow)"><title>${escape(edge.kind)}</title></path>`);
  }
  for (const node of graph.nodes) {
    const at = place.get(node.id);
    if (!at) {
      continue;
    }
    const color = KIND_COLORS[node.kind] ?? '#7f7f7f';
    const start = node.id === graph.start;
    const text = node.label.length > 22 ? `${node.label.slice(0, 21)}…` : node.label;
    parts.push(`<g class="tl-lineage-node${start ? ' tl-lineage-start' : ''}" data-kind="${escape(node.kind)}" ` +
      `data-ref="${escape(node.ref)}" transform="translate(${at[0]},${at[1]})">` +
      `<rect width="${NODE_W}" height="${NODE_H}" rx="4" fill="${color}" fill-opacity="0.15" stroke="${color}" ` +
      `stroke-width="${start ? 3 : 1}"/><text x="6" y="15">${escape(node.kind === 'run' ? `run ${text}` : text)}` +
      `</text><title>${escape(`${node.kind} ${node.label}${node.status ? ` (${node.status})` : ''}`)}</title></g>`);
  }
  for (const [c, count] of hidden) {
    if (count > 0) {
      const x = 8 + c * (NODE_W + COLUMN_GAP);
      parts.push(`<text class="tl-muted" x="${x + 6}" y="${8 + MAX_PER_COLUMN * (NODE_H + ROW_GAP) + 15}">` +
        `+${count} more</text>`);
    }
  }
  return `<svg class="tl-lineage" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" ` +
    `xmlns="http://www.w3.org/2000/svg"><defs><marker id="tl-arrow" viewBox="0 0 8 8" refX="8" refY="4" ` +
    `markerWidth="6" markerHeight="6" orient="auto"><path d="M0,0 L8,4 L0,8 z" class="tl-lineage-arrow"/></marker>` +
    `</defs>${parts.join('')}</svg>` + (graph.complete ? '' : '<div class="tl-muted">(the graph is cut at 500 nodes)</div>');
}
