// The page's only way to the server: the public JSON API, same origin. Every answer is the envelope
// {"data", "info": {"error"}}; an error becomes an ApiError carrying info.error, which the views show.
//
// Conditional requests: the API tags every public answer with an ETag. The last answer of each URL is
// kept here with its tag and sent back as If-None-Match, so a refresh of unchanged data is a 304 with no
// body (answered by the server's cache layer), and `changed: false` lets a view skip re-rendering.

export class ApiError extends Error {
  constructor(message, status) {
    super(message);
    this.name = "ApiError";
    this.status = status;
  }
}

const TOKEN = "mdt.token";
const EMAIL = "mdt.email";
const remembered = new Map(); // url -> {etag, body}

export const session = {
  get token() { return sessionStorage.getItem(TOKEN); },
  get email() { return sessionStorage.getItem(EMAIL); },
  start(token, email) { sessionStorage.setItem(TOKEN, token); sessionStorage.setItem(EMAIL, email); },
  end() { sessionStorage.removeItem(TOKEN); sessionStorage.removeItem(EMAIL); },
};

export function url(path, params = {}) {
  const query = new URLSearchParams();
  for (const [name, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== "") query.set(name, value);
  }
  const text = query.toString();
  return text ? `${path}?${text}` : path;
}

async function request(method, target, { body, auth = false, signal } = {}) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (auth) {
    if (!session.token) throw new ApiError("You are not logged in.", 401);
    headers.Authorization = `Bearer ${session.token}`;
  }
  const known = method === "GET" && !auth ? remembered.get(target) : undefined;
  if (known) headers["If-None-Match"] = known.etag;
  let response;
  try {
    // no-store: this module keeps the answers and their tags itself (the browser's cache would hide the 304s).
    response = await fetch(target, { method, headers, signal, cache: "no-store",
                                     body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (error) {
    if (error.name === "AbortError") throw error;
    throw new ApiError("Cannot reach the server; check your connection and try again.", 0);
  }
  if (response.status === 304 && known) return { ...known.body, changed: false, status: 304 };
  if (response.status === 204) return { data: null, changed: true, status: 204 };
  let envelope;
  try {
    envelope = await response.json();
  } catch {
    throw new ApiError(`The server answered ${response.status} ${response.statusText} without JSON.`, response.status);
  }
  if (!response.ok) {
    if (response.status === 401 && auth) session.end();
    const message = envelope && envelope.info && envelope.info.error;
    throw new ApiError(message || `The server answered ${response.status} ${response.statusText}.`, response.status);
  }
  const etag = response.headers.get("ETag");
  if (etag && method === "GET" && !auth) remembered.set(target, { etag, body: envelope });
  return { ...envelope, changed: true, status: response.status };
}

export const api = {
  get: (path, params, options) => request("GET", url(path, params), options),
  post: (path, body, options) => request("POST", path, { ...options, body }),
  delete: (path, options) => request("DELETE", path, options),
};

/** Every page of a paginated list (a list rarely has more than one page at these limits). */
export async function all(path, params = {}, options) {
  const first = await api.get(path, { ...params, limit: 1000 }, options);
  let data = first.data;
  let changed = first.changed;
  const pages = first.pagination ? first.pagination.pages : 1;
  for (let page = 2; page <= pages; page += 1) {
    const next = await api.get(path, { ...params, limit: 1000, page }, options);
    data = data.concat(next.data);
    changed = changed || next.changed;
  }
  return { data, changed };
}

let index = null;

/** Every tracked instrument by identity, to open one found by search or listed on the dashboard (those
 * answers name instruments, not their ids). Kept for the page's life; a refresh re-validates it. */
export async function instrumentIndex({ fresh = false } = {}) {
  if (!index || fresh) {
    index = all("/api/metrics", { window: "30d" }).then(({ data }) => data, (error) => { index = null; throw error; });
  }
  return index;
}

export async function findInstrumentId({ exchange, symbol }) {
  const instruments = await instrumentIndex();
  const matches = instruments.filter((item) => (item.exchange || null) === (exchange || null) && item.symbol === symbol);
  return matches.length === 1 ? matches[0].id : null;
}
