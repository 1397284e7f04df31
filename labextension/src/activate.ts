/**
 * What the plugin does when JupyterLab starts: pick the database and study (JupyterLab settings, else the
 * server extension's settings, else the first study with documents), build the model, the side bar, the
 * commands, restore the tabs of the last session, and follow the theme.
 */

import { ILayoutRestorer, JupyterFrontEnd } from '@jupyterlab/application';
import { ICommandPalette, IThemeManager, MainAreaWidget, WidgetTracker } from '@jupyterlab/apputils';
import { IRenderMimeRegistry } from '@jupyterlab/rendermime';
import { ISettingRegistry } from '@jupyterlab/settingregistry';
import { COMMANDS } from './commandIds';
import { Trackers, registerCommands } from './commands';
import { tensorlabIcon } from './icon';
import { LabModel } from './model';
import { openRunFactory } from './openRun';
import { requestAPI } from './request';
import { Databases, Scope } from './types';
import { ComparePanel } from './views/compareView';
import { JobsPanel } from './views/jobsView';
import { RunPanel } from './views/runView';
import { LabSidebar } from './views/sidebar';

export const PLUGIN_ID = 'tensorlab:plugin';

async function startingScope(settings: ISettingRegistry.ISettings | null): Promise<Scope> {
  const info = await requestAPI<{ db: string; study: string | null }>('info').catch(() => ({ db: 'tensorlab', study: null }));
  const db = (settings?.get('db').composite as string) || info.db || 'tensorlab';
  let study = (settings?.get('study').composite as string) || info.study || '';
  if (!study) {
    const known = await requestAPI<Databases>('databases', { db }).catch(() => null);
    study = known?.recent_study || (known?.studies.includes('default') ? 'default' : known?.studies[0]) || 'default';
  }
  return { db, study };
}

export async function activate(
  app: JupyterFrontEnd,
  palette: ICommandPalette | null,
  settingRegistry: ISettingRegistry | null,
  restorer: ILayoutRestorer | null,
  themeManager: IThemeManager | null,
  rendermime: IRenderMimeRegistry | null
): Promise<void> {
  // first, before anything is awaited: notebooks opened at start-up copy the registry's renderers
  rendermime?.addFactory(openRunFactory(app.commands), 50);
  const settings = settingRegistry ? await settingRegistry.load(PLUGIN_ID).catch(() => null) : null;
  const model = new LabModel(await startingScope(settings));
  model.maxPoints = (settings?.get('maxPoints').composite as number) || model.maxPoints;
  const sidebar = new LabSidebar(model, app.commands);
  sidebar.title.icon = tensorlabIcon;
  app.shell.add(sidebar, 'left', { rank: 650 });

  const trackers: Trackers = {
    runs: new WidgetTracker<MainAreaWidget<RunPanel>>({ namespace: 'tensorlab-run' }),
    compare: new WidgetTracker<MainAreaWidget<ComparePanel>>({ namespace: 'tensorlab-compare' }),
    jobs: new WidgetTracker<MainAreaWidget<JobsPanel>>({ namespace: 'tensorlab-jobs' })
  };
  registerCommands(app, model, trackers, palette);
  if (restorer) {
    restorer.add(sidebar, 'tensorlab-sidebar');
    void restorer.restore(trackers.runs, {
      command: COMMANDS.openRun,
      args: w => ({ run: w.content.model.runId, name: w.title.label, ...w.content.model.scope }),
      name: w => w.id
    });
    void restorer.restore(trackers.compare, {
      command: COMMANDS.compare,
      args: w => ({ runs: w.content.model.runIds, metric: w.content.model.metric, ...w.content.model.scope }),
      name: w => w.id
    });
    void restorer.restore(trackers.jobs, { command: COMMANDS.openJobs, name: () => 'jobs' });
  }
  themeManager?.themeChanged.connect(() => {
    trackers.runs.forEach(w => w.content.restyle());
    trackers.compare.forEach(w => w.content.restyle());
  });
  settings?.changed.connect(() => {
    model.maxPoints = (settings.get('maxPoints').composite as number) || model.maxPoints;
    const db = settings.get('db').composite as string;
    const study = settings.get('study').composite as string;
    if (db && study) {
      model.setScope({ db, study });
    }
  });
}
