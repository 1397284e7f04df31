/**
 * The controls above a set of line charts: x axis, log y, smoothing, reset zoom. Shared by the lab's run and
 * comparison tabs and by the notebook panels' chart widget, so all three behave alike. DOM only, no JupyterLab.
 */

import { ChartView } from '../charts/lineChart';
import { X_AXES, XAxis } from '../charts/runSeries';
import { h, select } from './dom';

/** `axes`: the x axes offered (none shown when there is only one choice). */
export function chartControls(view: ChartView, changed: () => void, reset: () => void,
  axes: XAxis[] = X_AXES): HTMLElement {
  const smoothing = h('input', { type: 'range', min: 0, max: 0.99, step: 0.01, value: String(view.smoothing), className: 'tl-smoothing' });
  const shown = h('span', { className: 'tl-muted' }, view.smoothing.toFixed(2));
  smoothing.addEventListener('input', () => {
    view.smoothing = Number(smoothing.value);
    shown.textContent = view.smoothing.toFixed(2);
    changed();
  });
  const logY = h('input', { type: 'checkbox', checked: view.logY, className: 'tl-log-y' });
  logY.addEventListener('change', () => {
    view.logY = logY.checked;
    changed();
  });
  return h('div', { className: 'tl-controls' },
    axes.length > 1 ? h('label', {}, 'x ', select(axes.map(a => [a, a]), view.xAxis, value => {
      view.xAxis = value as XAxis;
      changed();
    }, 'tl-x-axis')) : null,
    h('label', {}, logY, ' log y'),
    h('label', {}, 'smoothing ', smoothing, shown),
    h('button', { className: 'jp-mod-styled tl-button', onclick: reset, title: 'or double-click a chart' }, 'reset zoom'),
    h('span', { className: 'tl-muted tl-hint' }, 'drag to zoom · click a legend entry to hide it'));
}
