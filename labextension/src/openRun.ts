/**
 * How `%tdb_open RUN` opens a tab: the magic displays a tiny output of the MIME type OPEN_RUN_MIME
 * ({run, name, db, study, at, nonce}); this renderer shows a line with an "open" link and, the first time a
 * fresh output is rendered, executes `tensorlab:open-run`. Why a MIME output and not a comm: it needs no
 * widget manager and no kernel-side state, survives kernel restarts, and a saved notebook shows a readable
 * line (text/plain) instead of reopening tabs: an output older than FRESH_S, or whose nonce this browser
 * has already opened, only shows its link.
 */

import { IRenderMime } from '@jupyterlab/rendermime-interfaces';
import { CommandRegistry } from '@lumino/commands';
import { Widget } from '@lumino/widgets';
import { COMMANDS, OPEN_RUN_MIME } from './commandIds';
import { h } from './views/dom';

const FRESH_S = 120;
const SEEN_KEY = 'tensorlab:opened-runs';

interface OpenRequest {
  run: string;
  name?: string;
  db: string;
  study: string;
  at: number;
  nonce: string;
}

function seen(): string[] {
  try {
    return JSON.parse(window.localStorage.getItem(SEEN_KEY) ?? '[]');
  } catch {
    return [];
  }
}

/** True the first time a nonce is offered in this browser (remembered for the last 200). */
export function firstTime(nonce: string): boolean {
  const known = seen();
  if (known.includes(nonce)) {
    return false;
  }
  try {
    window.localStorage.setItem(SEEN_KEY, JSON.stringify([...known, nonce].slice(-200)));
  } catch {
    // private mode: remember nothing, open anyway
  }
  return true;
}

class OpenRunRenderer extends Widget implements IRenderMime.IRenderer {
  constructor(private commands: CommandRegistry) {
    super();
    this.addClass('tl-open-run');
  }

  async renderModel(model: IRenderMime.IMimeModel): Promise<void> {
    const request = model.data[OPEN_RUN_MIME] as unknown as OpenRequest;
    const args = { run: request.run, name: request.name ?? '', db: request.db, study: request.study };
    const open = () => void this.commands.execute(COMMANDS.openRun, args);
    this.node.textContent = '';
    this.node.append(h('span', {}, `TensorLab run ${request.name ?? request.run} (${request.study}) `),
      h('a', { onclick: open, className: 'tl-open-link' }, 'open its tab'));
    const fresh = Math.abs(Date.now() / 1000 - request.at) < FRESH_S;
    if (fresh && firstTime(request.nonce)) {
      open();
    }
  }
}

export function openRunFactory(commands: CommandRegistry): IRenderMime.IRendererFactory {
  return {
    safe: true,
    mimeTypes: [OPEN_RUN_MIME],
    defaultRank: 50,
    createRenderer: () => new OpenRunRenderer(commands)
  };
}
