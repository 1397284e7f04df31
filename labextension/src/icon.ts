import { LabIcon } from '@jupyterlab/ui-components';

const svg = `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24" width="16" height="16">
<path class="jp-icon3" fill="#616161" d="M3 3h2v16h16v2H3z"/>
<path class="jp-icon3" fill="none" stroke="#616161" stroke-width="2" d="M6 16l4-6 4 3 6-8"/></svg>`;

export const tensorlabIcon = new LabIcon({ name: 'tensorlab:icon', svgstr: svg });
