// Calls to the agent API: the bearer token, an idempotency key per action, paged lists read to
// the end, and the router's error answers (RFC 9457 problem details) turned into ApiError with
// a readable detail.
import { observeServerDate } from "./clock.js";

export class ApiError extends Error {
  constructor(status, detail, type = "about:blank") {
    super(`${status}: ${detail}`);
    this.status = status; // 0: the router could not be reached
    this.detail = detail;
    this.type = type; // the problem's type URI, e.g. .../problems/state-conflict
  }
}

const TOKEN_KEY = "triage.agentToken";
const MAX_STARTING_WAIT_S = 60;

const hooks = {
  unauthorized: () => {},
  starting: () => {}, // starting(true) while the router answers 503, starting(false) after
};

export function onUnauthorized(fn) {
  hooks.unauthorized = fn;
}

export function onStarting(fn) {
  hooks.starting = fn;
}

// sessionStorage only: the token dies with the tab and never enters a URL.
export function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function setToken(value) {
  sessionStorage.setItem(TOKEN_KEY, value);
}

export function clearToken() {
  sessionStorage.removeItem(TOKEN_KEY);
}

/** A random UUID; crypto.randomUUID exists only in secure contexts. */
export function uuid4() {
  if (crypto.randomUUID) return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const hex = [...b].map((x) => x.toString(16).padStart(2, "0")).join("");
  const part = (from, to) => hex.slice(from, to);
  return `${part(0, 8)}-${part(8, 12)}-${part(12, 16)}-${part(16, 20)}-${part(20)}`;
}

export function authHeaders(tokenValue = token()) {
  return { Authorization: `Bearer ${tokenValue}` };
}

/** One readable line from problem details: the offending fields, else detail, else title. */
export function detailOf(body, fallback) {
  // Invalid input names its fields: errors: [{loc: ["body", "score"], msg, type}, ...]
  if (Array.isArray(body?.errors) && body.errors.length) {
    return body.errors
      .map((d) => {
        const where = (d.loc ?? []).filter((p) => p !== "body" && p !== "query").join(".");
        return where ? `${where}: ${d.msg}` : d.msg;
      })
      .join("; ");
  }
  if (typeof body?.detail === "string" && body.detail) return body.detail;
  if (typeof body?.title === "string" && body.title) return body.title;
  return fallback;
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * One API call. POST and PUT carry one Idempotency-Key, kept across the retries made while
 * the router starts, so an action applies once however often it is sent.
 * Options: body (JSON), token (to try one before keeping it), signal, quiet401 (do not end
 * the session on 401: the sign-in form checks tokens), waitStarting (default true: retry a 503
 * while the router starts; false for the trends calls, whose 503 says the trends service is
 * not there, which waiting does not change).
 */
export async function request(method, path, options = {}) {
  const headers = {
    Accept: "application/json, application/problem+json",
    ...authHeaders(options.token ?? token()),
  };
  if (method !== "GET") headers["Idempotency-Key"] = uuid4();
  let body;
  if (options.body !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(options.body);
  }
  const started = Date.now();
  let wasStarting = false;
  for (;;) {
    let response;
    try {
      response = await fetch(path, {
        method,
        headers,
        body,
        signal: options.signal,
        cache: "no-store",
      });
    } catch (error) {
      if (wasStarting) hooks.starting(false);
      if (error.name === "AbortError") throw error;
      throw new ApiError(0, "network error");
    }
    observeServerDate(response);
    if (
      response.status === 503 &&
      options.waitStarting !== false &&
      (Date.now() - started) / 1000 < MAX_STARTING_WAIT_S
    ) {
      wasStarting = true;
      hooks.starting(true);
      const after = Number(response.headers.get("Retry-After")) || 2;
      await sleep(Math.min(after, 10) * 1000);
      continue;
    }
    if (wasStarting) hooks.starting(false);
    const parsed = await response.json().catch(() => null);
    if (response.ok) return parsed;
    const error = new ApiError(
      response.status,
      detailOf(parsed, response.statusText),
      parsed?.type ?? "about:blank",
    );
    if (response.status === 401 && !options.quiet401) hooks.unauthorized();
    throw error;
  }
}

export const get = (path, options) => request("GET", path, options);

/**
 * The items of a paged list ({items, next_cursor}), following next_cursor until the end or
 * until `max` items; `path` carries the filters, which every page repeats.
 */
export async function getAll(path, { max = Infinity, pageSize = 500, ...options } = {}) {
  const items = [];
  let cursor = null;
  do {
    const url = new URL(path, window.location.origin);
    url.searchParams.set("limit", String(Math.min(pageSize, max - items.length)));
    if (cursor) url.searchParams.set("cursor", cursor);
    const page = await get(`${url.pathname}${url.search}`, options);
    items.push(...page.items);
    cursor = page.next_cursor;
  } while (cursor && items.length < max);
  return items;
}
export const post = (path, body, options = {}) => request("POST", path, { ...options, body });
export const put = (path, body, options = {}) => request("PUT", path, { ...options, body });

/** Path of a case action. */
export function casePath(caseId, action = "") {
  return `/v1/cases/${encodeURIComponent(caseId)}${action ? `/${action}` : ""}`;
}
