/** Command ids, in one place: the views execute them, commands.ts registers them. */
export const COMMANDS = {
  openSidebar: 'tensorlab:open-sidebar',
  openRun: 'tensorlab:open-run',
  compare: 'tensorlab:compare',
  openJobs: 'tensorlab:open-jobs',
  refresh: 'tensorlab:refresh'
};

/** The MIME type `%tdb_open` displays; the renderer turns it into `tensorlab:open-run`. */
export const OPEN_RUN_MIME = 'application/vnd.tensorlab.open-run+json';
