/** Small DOM helpers shared by the views: elements, numbers and times as people read them. */

type Child = Node | string | number | null | undefined | false;

export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: { [name: string]: any } = {},
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) {
      continue;
    }
    if (name.startsWith('on') && typeof value === 'function') {
      node.addEventListener(name.slice(2), value);
    } else if (name === 'className') {
      node.className = value;
    } else if (name === 'dataset') {
      Object.assign(node.dataset, value);
    } else if (name in node && typeof value !== 'string') {
      (node as any)[name] = value;
    } else {
      node.setAttribute(name, value === true ? '' : String(value));
    }
  }
  append(node, children);
  return node;
}

export function append(node: Node, children: Child[]): void {
  for (const child of children) {
    if (child === null || child === undefined || child === false) {
      continue;
    }
    node.appendChild(typeof child === 'object' ? child : document.createTextNode(String(child)));
  }
}

/** Replace a node's children (the views redraw sections whole; they are small). */
export function fill(node: HTMLElement, ...children: Child[]): void {
  node.textContent = '';
  append(node, children);
}

export function formatValue(value: any): string {
  if (value === null || value === undefined) {
    return '—';
  }
  if (typeof value === 'number') {
    if (Number.isInteger(value)) {
      return value.toLocaleString('en-US');
    }
    const abs = Math.abs(value);
    return abs !== 0 && (abs < 1e-3 || abs >= 1e6) ? value.toExponential(3) : value.toPrecision(4);
  }
  if (typeof value === 'object') {
    return JSON.stringify(value);
  }
  return String(value);
}

export function age(iso: string | null | undefined): string {
  if (!iso) {
    return '';
  }
  const seconds = (Date.now() - Date.parse(iso)) / 1000;
  if (seconds < 60) {
    return `${Math.max(0, Math.round(seconds))} s ago`;
  }
  if (seconds < 3600) {
    return `${Math.round(seconds / 60)} min ago`;
  }
  if (seconds < 86400 * 2) {
    return `${(seconds / 3600).toFixed(1)} h ago`;
  }
  return `${Math.round(seconds / 86400)} days ago`;
}

export function bytes(value: number | null | undefined): string {
  if (value === null || value === undefined) {
    return '—';
  }
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  let v = value;
  let unit = 0;
  while (v >= 1024 && unit < units.length - 1) {
    v /= 1024;
    unit++;
  }
  return `${v.toFixed(unit ? 1 : 0)} ${units[unit]}`;
}

export function statusBadge(status: string): HTMLSpanElement {
  return h('span', { className: `tl-status tl-status-${status}`, dataset: { status } }, status);
}

/** A key/value table (hyper-parameters, tags, system load). */
export function pairs(values: { [key: string]: any }, empty = 'none'): HTMLElement {
  const keys = Object.keys(values).sort();
  if (!keys.length) {
    return h('div', { className: 'tl-muted' }, empty);
  }
  return h(
    'table',
    { className: 'tl-table tl-pairs' },
    h('tbody', {}, ...keys.map(k => h('tr', {}, h('th', {}, k), h('td', {}, formatValue(values[k])))))
  );
}

export function progressText(progress: { [key: string]: any }, planned: number | null): string {
  const parts: string[] = [];
  if (progress.epoch !== undefined && progress.epoch !== null) {
    parts.push(`epoch ${progress.epoch + 1}${planned ? `/${planned}` : ''}`);
  }
  if (progress.step !== undefined && progress.step !== null) {
    parts.push(`step ${formatValue(progress.step)}`);
  }
  return parts.join(' · ');
}

/** A select element with `options` (value, label), `current` selected. */
export function select(
  options: [string, string][],
  current: string,
  onChange: (value: string) => void,
  className = ''
): HTMLSelectElement {
  const node = h(
    'select',
    { className: `jp-mod-styled ${className}`, onchange: () => onChange(node.value) },
    ...options.map(([value, label]) => h('option', { value, selected: value === current }, label))
  );
  node.value = current;
  return node;
}

export function button(label: string, onClick: () => void, className = '', title = ''): HTMLButtonElement {
  return h('button', { className: `jp-mod-styled tl-button ${className}`, onclick: onClick, title }, label);
}
