// The page's two live regions: results in the status region (polite), problems in the alert.
import { ApiError } from "./api.js";

const STATUS_CLEAR_MS = 10000;
let statusTimer = null;

function region(id) {
  return document.getElementById(id);
}

// Clearing first and writing on the next frame makes a repeated message announced again.
function write(el, text) {
  el.textContent = "";
  requestAnimationFrame(() => {
    el.textContent = text;
  });
}

export function announce(text) {
  const el = region("status");
  write(el, text);
  clearTimeout(statusTimer);
  statusTimer = setTimeout(() => {
    if (el.textContent === text) el.textContent = "";
  }, STATUS_CLEAR_MS);
}

export function alertUser(text) {
  write(region("alert"), text);
}

export function clearAlert() {
  region("alert").textContent = "";
}

/** What went wrong, in words, for an error from api.js (or anything else thrown). */
export function describe(error, { notFound = "No such case" } = {}) {
  if (!(error instanceof ApiError)) return `Something went wrong: ${error?.message ?? error}`;
  switch (error.status) {
    case 0:
      return "Cannot reach the router. Check the connection and try again.";
    case 401:
      return "Your session has ended: sign in again.";
    case 403:
      return "You are not allowed to do that.";
    case 404:
      return notFound;
    case 409:
      return `Not possible now: ${error.detail}.`;
    case 422:
      return `Not accepted: ${error.detail}.`;
    case 503:
      return "Router is starting. Try again in a moment.";
    default:
      return `The router answered ${error.status}: ${error.detail}.`;
  }
}
