/**
 * The one helper that talks to the lab's server extension (`<base>/tensorlab/api/...`), through JupyterLab's
 * ServerConnection (so the token and XSRF headers are those of the page). Errors carry the server's JSON
 * message (and, for a 400, the parameter it names).
 */

import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

export class ApiError extends Error {
  constructor(
    message: string,
    readonly status: number,
    readonly parameter?: string
  ) {
    super(message);
  }
}

export type Params = { [name: string]: string | number | undefined | null };

export async function requestAPI<T>(
  endpoint: string,
  params: Params = {},
  init: RequestInit = {}
): Promise<T> {
  const settings = ServerConnection.makeSettings();
  const query = Object.entries(params)
    .filter(([, value]) => value !== undefined && value !== null && value !== '')
    .map(([name, value]) => `${encodeURIComponent(name)}=${encodeURIComponent(String(value))}`)
    .join('&');
  const url = URLExt.join(settings.baseUrl, 'tensorlab', 'api', endpoint) + (query ? `?${query}` : '');
  let response: Response;
  try {
    response = await ServerConnection.makeRequest(url, init, settings);
  } catch (error) {
    throw new ServerConnection.NetworkError(error as TypeError);
  }
  const text = await response.text();
  let body: any = null;
  if (text) {
    try {
      body = JSON.parse(text);
    } catch {
      body = { message: text };
    }
  }
  if (!response.ok) {
    throw new ApiError(body?.message ?? response.statusText, response.status, body?.parameter);
  }
  return body as T;
}
