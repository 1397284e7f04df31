/**
 * TensorLab's commands (one module registers them all, as jupyterlab-git's commandsAndMenu does): open the
 * side bar, a run's tab, a comparison, the jobs tab, refresh. The palette lists them; `%tdb_open` and the
 * side bar execute `tensorlab:open-run`.
 */

import { JupyterFrontEnd } from '@jupyterlab/application';
import { ICommandPalette, InputDialog, MainAreaWidget, WidgetTracker, showErrorMessage } from '@jupyterlab/apputils';
import { Widget } from '@lumino/widgets';
import { COMMANDS } from './commandIds';
import { CompareModel } from './compareModel';
import { LabModel } from './model';
import { requestAPI } from './request';
import { RunModel } from './runModel';
import { RunsPage, Scope } from './types';
import { ComparePanel } from './views/compareView';
import { JobsPanel } from './views/jobsView';
import { RunPanel } from './views/runView';

const HEX_ID = /^[0-9a-f]{24}$/i;

export interface Trackers {
  runs: WidgetTracker<MainAreaWidget<RunPanel>>;
  compare: WidgetTracker<MainAreaWidget<ComparePanel>>;
  jobs: WidgetTracker<MainAreaWidget<JobsPanel>>;
}

function scopeOf(args: any, model: LabModel): Scope {
  return { db: (args.db as string) || model.scope.db, study: (args.study as string) || model.scope.study };
}

/** A run's id from an id or a name (the newest run of that name). */
async function runId(run: string, scope: Scope): Promise<string> {
  if (HEX_ID.test(run)) {
    return run.toLowerCase();
  }
  const page = await requestAPI<RunsPage>('runs', { ...scope, name: run, limit: 1 });
  if (!page.runs.length) {
    throw new Error(`No run named ${JSON.stringify(run)} in study ${scope.study} of database ${scope.db}.`);
  }
  return page.runs[0].id;
}

function show<T extends Widget>(app: JupyterFrontEnd, tracker: WidgetTracker<MainAreaWidget<T>>,
  id: string, make: () => MainAreaWidget<T>): MainAreaWidget<T> {
  let widget = tracker.find(w => w.id === id);
  if (!widget || widget.isDisposed) {
    widget = make();
    widget.id = id;
    void tracker.add(widget);
    app.shell.add(widget, 'main');
  }
  app.shell.activateById(widget.id);
  return widget;
}

export function registerCommands(app: JupyterFrontEnd, model: LabModel, trackers: Trackers, palette: ICommandPalette | null): void {
  const { commands } = app;
  commands.addCommand(COMMANDS.openSidebar, {
    label: 'TensorLab: Show the Side Bar',
    execute: () => app.shell.activateById('tensorlab-sidebar')
  });
  commands.addCommand(COMMANDS.openRun, {
    label: args => (args.name ? `TensorLab: Open Run ${args.name}` : 'TensorLab: Open a Run…'),
    execute: async args => {
      const scope = scopeOf(args, model);
      let run = args.run as string | undefined;
      if (!run) {
        const answer = await InputDialog.getText({ title: 'Open a TensorLab run', label: 'Run id or name' });
        run = answer.value?.trim();
        if (!answer.button.accept || !run) {
          return;
        }
      }
      try {
        const id = await runId(run, scope);
        return show(app, trackers.runs, `tensorlab-run-${scope.db}-${scope.study}-${id}`, () => {
          const content = new RunPanel(new RunModel(scope, id, { maxPoints: model.maxPoints }),
            (command, commandArgs) => void commands.execute(command, commandArgs));
          const widget = new MainAreaWidget({ content });
          widget.title.label = (args.name as string) || run || id.slice(-6);
          widget.title.closable = true;
          widget.addClass('tl-tab');
          return widget;
        });
      } catch (error) {
        void showErrorMessage('TensorLab', (error as Error).message);
      }
    }
  });
  commands.addCommand(COMMANDS.compare, {
    label: 'TensorLab: Compare Runs',
    execute: args => {
      const runs = ((args.runs as string[]) ?? []).filter(id => HEX_ID.test(id));
      if (!runs.length) {
        void showErrorMessage('TensorLab', 'Select runs to compare in the TensorLab side bar (their check boxes).');
        return;
      }
      const scope = scopeOf(args, model);
      const metric = (args.metric as string) || 'val_accuracy';
      return show(app, trackers.compare, `tensorlab-compare-${scope.db}-${scope.study}-${runs.join('-')}`, () => {
        const widget = new MainAreaWidget({ content: new ComparePanel(new CompareModel(scope, runs, metric)) });
        widget.title.label = `Compare ${runs.length} runs`;
        widget.title.closable = true;
        return widget;
      });
    }
  });
  commands.addCommand(COMMANDS.openJobs, {
    label: 'TensorLab: Open the Jobs Tab',
    execute: () => show(app, trackers.jobs, 'tensorlab-jobs-tab', () => {
      const widget = new MainAreaWidget({ content: new JobsPanel(model, commands) });
      widget.title.label = 'TensorLab jobs';
      widget.title.closable = true;
      return widget;
    })
  });
  commands.addCommand(COMMANDS.refresh, {
    label: 'TensorLab: Refresh',
    execute: async () => {
      await Promise.all([model.reloadPage(), model.refreshJobs(), model.refreshData(), model.loadDatabases(model.scope.db, true)]);
    }
  });
  if (palette) {
    for (const command of [COMMANDS.openSidebar, COMMANDS.openRun, COMMANDS.openJobs, COMMANDS.refresh]) {
      palette.addItem({ command, category: 'TensorLab' });
    }
  }
}
