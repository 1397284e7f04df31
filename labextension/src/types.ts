/** The lab API's answers (tensorlab/lab/*_views.py), as the front end reads them. */

import { LogStream } from './charts/runSeries';

export type Dict = { [key: string]: any };

export interface RunRow {
  id: string;
  name: string;
  status: string;
  started: string | null;
  ended: string | null;
  heartbeat: string | null;
  host: string | null;
  device: string | null;
  job: string | null;
  progress: Dict;
  epochs_planned: number | null;
  hyper_parameters: Dict;
  tags: Dict;
  best: Dict;
  error: string | null;
}

export interface RunsPage {
  /** how many runs match, when the server knew it without extra work */
  total: number | null;
  more: boolean;
  offset: number;
  limit: number;
  runs: RunRow[];
}

export interface ParameterVersion {
  id: string;
  version: number;
  epoch: number | null;
  step: number | null;
  created: string;
  tags: Dict;
  metrics: Dict;
  bytes: number;
}

export interface RunDetail {
  run: RunRow;
  error: string | null;
  summary: Dict;
  system: Dict;
  details: Dict;
  parameters: ParameterVersion[];
  streams: { kind: string; writer: string; rows: number; buckets: number }[];
}

export interface LogsAnswer {
  run: string;
  cursor: string;
  complete: boolean;
  streams: LogStream[];
  last: { [kind: string]: { step: number; epoch: number | null; time: number; metrics: Dict } };
}

export interface Comparison {
  metric: string;
  mode: 'max' | 'min';
  hyper_parameters: string[];
  metrics: string[];
  best: string | null;
  runs: (RunRow & { value: number | null })[];
}

export interface JobRow {
  id: string;
  status: string;
  priority: number;
  queue: string;
  created: string;
  updated: string;
  worker: string | null;
  attempts: number;
  max_attempts: number;
  attempts_left: number;
  progress: Dict;
  epochs: number;
  batch_size: number;
  run: string | null;
  hyper_parameters: Dict;
  tags: Dict;
  sweep: string | null;
  after: string[];
  heartbeat: string | null;
  failure_class: string | null;
  error: string | null;
  traceback: string | null;
}

export interface JobsAnswer {
  counts: { [status: string]: number };
  jobs: JobRow[];
  workers: { name: string; running: string | null; jobs: number; last_seen: string | null }[];
}

export interface DataGroup {
  key: string;
  tags: Dict;
  samples: number;
  imports: number;
  dtype: string;
  sample_shape: number[];
  labels: { [label: string]: number };
}

export interface DataSummary {
  samples: number;
  groups: DataGroup[];
  labels: { [label: string]: number };
}

export interface SamplesAnswer {
  shape: number[];
  dtype: string;
  samples: { label: any; image?: { width: number; height: number; grey: number[] }; values?: number[] }[];
}

export interface Databases {
  uri: string;
  databases: string[];
  db: string;
  studies: string[];
  recent_study: string | null;
}

export interface Scope {
  db: string;
  study: string;
}
