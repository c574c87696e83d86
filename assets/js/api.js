// The JSON API under /tools/api/: one function, CSRF header included,
// failures as ApiError with the translated message.
import { errorText } from './i18n.js';

export class ApiError extends Error {
  constructor(status, code, message, retryAfter) {
    super(message);
    this.status = status;
    this.code = code;
    this.retryAfter = retryAfter;
  }
}

/** The csrftoken cookie (it changes at login, so it is read each time). */
export function csrfToken() {
  const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
  return match ? decodeURIComponent(match[1]) : '';
}

export async function api(method, path, body) {
  const json = await call(method, path, body);
  return 'data' in json ? json.data : json;
}

/**
 * Every item of a paginated list (`data` plus `next_cursor`), following the
 * cursor page by page until the server says there is no more.
 */
export async function getAll(path, limit = 200) {
  const items = [];
  const joiner = path.includes('?') ? '&' : '?';
  let cursor = null;
  do {
    const query = `limit=${limit}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`;
    const page = await call('GET', `${path}${joiner}${query}`);
    items.push(...page.data);
    cursor = page.next_cursor ?? null;
  } while (cursor);
  return items;
}

async function call(method, path, body) {
  const headers = { Accept: 'application/json' };
  if (method !== 'GET') headers['X-CSRFToken'] = csrfToken();
  let payload;
  if (body instanceof FormData) {
    payload = body;
  } else if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    payload = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(`/tools/api${path}`, { method, headers, body: payload, credentials: 'same-origin' });
  } catch {
    throw new ApiError(0, 'network_error', errorText('network_error'));
  }
  let json = null;
  try {
    json = await response.json();
  } catch {
    json = null;
  }
  if (!response.ok || !json || json.success === false) {
    const code = json?.error?.code ?? 'generic';
    if (response.status === 401 && code === 'not_authenticated') {
      location.assign(`/login?next=${encodeURIComponent(location.pathname + location.search)}`);
    }
    throw new ApiError(response.status, code, errorText(code, json?.error?.message), response.headers.get('Retry-After'));
  }
  return json;
}

export const get = (path) => api('GET', path);
export const post = (path, body) => api('POST', path, body);
export const patch = (path, body) => api('PATCH', path, body);
export const del = (path) => api('DELETE', path);
