import { ILayoutRestorer, JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { ICommandPalette, IThemeManager } from '@jupyterlab/apputils';
import { IRenderMimeRegistry } from '@jupyterlab/rendermime';
import { ISettingRegistry } from '@jupyterlab/settingregistry';
import { PLUGIN_ID, activate } from './activate';

/** TensorLab in JupyterLab: the side bar, run / comparison / jobs tabs, commands and `%tdb_open`. */
const plugin: JupyterFrontEndPlugin<void> = {
  id: PLUGIN_ID,
  description: 'TensorLab: runs, live curves, comparisons, jobs and data, without a kernel.',
  autoStart: true,
  optional: [ICommandPalette, ISettingRegistry, ILayoutRestorer, IThemeManager, IRenderMimeRegistry],
  activate: (
    app: JupyterFrontEnd,
    palette: ICommandPalette | null,
    settings: ISettingRegistry | null,
    restorer: ILayoutRestorer | null,
    theme: IThemeManager | null,
    rendermime: IRenderMimeRegistry | null
  ) => activate(app, palette, settings, restorer, theme, rendermime)
};

export default plugin;
