// The console: sign-in, the live stream, and the views behind the hash routes
// #/ (my work), #/cases/<id> (my work with a case open), #/floor, #/review and #/trends
// (supervisors).
import * as api from "./api.js";
import { startTicker } from "./clock.js";
import { alertUser, announce, clearAlert } from "./notices.js";
import { openStream } from "./sse.js";
import { session } from "./store.js";
import { renderSessionBar, setConnection } from "./views/header.js";
import { renderSignIn } from "./views/signin.js";
import { renderAwayNotice } from "./views/away-notice.js";
import { FloorView } from "./views/floor.js";
import { ReviewView } from "./views/review.js";
import { TrendsView } from "./views/trends.js";
import { WorkView } from "./views/work.js";

const viewEl = () => document.getElementById("view");
let stream = null;
let current = null; // the mounted view: {name, view}
let starting = false;
let mePoll = null;
const SUPERVISOR_VIEWS = new Set(["floor", "review", "trends"]);
// The router may set the agent away (offers lapsed) while the console is open, and says so
// only in /v1/me: asked again this often.
const ME_POLL_MS = 15000;

function parseRoute() {
  const hash = location.hash.replace(/^#/, "") || "/";
  const caseMatch = hash.match(/^\/cases\/([0-9a-fA-F-]{8,36})$/);
  if (caseMatch) return { name: "work", caseId: caseMatch[1].toLowerCase() };
  if (hash === "/floor") return { name: "floor" };
  if (hash === "/trends") return { name: "trends" };
  if (hash === "/review") return { name: "review" };
  return { name: "work", caseId: null };
}

function route({ focus = true } = {}) {
  if (!session.me) return;
  let target = parseRoute();
  if (SUPERVISOR_VIEWS.has(target.name) && !session.isSupervisor) {
    alertUser(`The ${target.name} view is for supervisors.`);
    target = { name: "work", caseId: null };
  }
  if (current?.name !== target.name) {
    current?.view.destroy();
    const views = { floor: FloorView, review: ReviewView, trends: TrendsView, work: WorkView };
    const view = new views[target.name]();
    current = { name: target.name, view };
    viewEl().replaceChildren(view.element);
  }
  current.view.show(target, { focus });
  for (const link of document.querySelectorAll("#nav a")) {
    if (link.dataset.route === target.name) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
}

async function refetchHeld() {
  const me = encodeURIComponent(session.agentId);
  const cases = await api.getAll(`/v1/cases?open=true&assignee=${me}`);
  session.replaceHeld(cases);
}

async function refreshMe() {
  try {
    session.setMe(await api.get("/v1/me"));
  } catch {
    // Shown by the next action if it persists.
  }
}

function connectStream() {
  let everLive = false;
  stream?.close();
  stream = openStream("/v1/stream", api.token(), {
    frame(frame) {
      let data;
      try {
        data = JSON.parse(frame.data);
      } catch {
        return; // not ours to understand
      }
      if (frame.event === "snapshot") session.replaceHeld(data.cases ?? []);
      else if (data?.case) session.applyEvent(data);
    },
    state(state, seconds) {
      setConnection(state, seconds);
      if (state !== "live") return;
      // After a gap the snapshot brings the held cases back; the rest is refetched.
      if (everLive) refreshMe();
      everLive = true;
      session.emit("reconnected");
    },
    unauthorized: () => endSession("Your session has ended: sign in again."),
  });
}

async function beginSession(me) {
  session.setMe(me);
  try {
    session.teams = await api.get("/v1/teams");
  } catch {
    session.teams = null; // the transfer and reassign pickers say so
  }
  renderSessionBar({ onSignOut: () => endSession(null) });
  renderAwayNotice(document.getElementById("away-notice"));
  clearInterval(mePoll);
  mePoll = setInterval(refreshMe, ME_POLL_MS);
  document.getElementById("nav").hidden = !session.isSupervisor;
  connectStream();
  route({ focus: false });
  try {
    await refetchHeld();
  } catch {
    // The stream's snapshot brings them as well.
  }
}

function endSession(message) {
  clearInterval(mePoll);
  mePoll = null;
  stream?.close();
  stream = null;
  current?.view.destroy();
  current = null;
  api.clearToken();
  session.reset();
  document.getElementById("session-bar").hidden = true;
  document.getElementById("nav").hidden = true;
  document.getElementById("away-notice").hidden = true;
  document.title = "Sign in – Triage console";
  showSignIn();
  if (message) alertUser(message);
  else announce("Signed out.");
}

function showSignIn() {
  renderSignIn(viewEl(), {
    async onToken(value) {
      const me = await api.get("/v1/me", { token: value, quiet401: true });
      api.setToken(value);
      clearAlert();
      await beginSession(me);
      announce(`Signed in as ${me.profile.name}.`);
    },
  });
}

async function start() {
  startTicker();
  api.onUnauthorized(() => {
    if (session.me) endSession("Your session has ended: sign in again.");
  });
  api.onStarting((isStarting) => {
    if (isStarting && !starting) announce("Router is starting; retrying…");
    if (!isStarting && starting) announce("Router is ready.");
    starting = isStarting;
  });
  document.getElementById("skip-link").addEventListener("click", (e) => {
    // The hash belongs to the router: move focus without touching it.
    e.preventDefault();
    document.getElementById("main").focus();
  });
  window.addEventListener("hashchange", () => {
    clearAlert();
    route();
  });
  window.addEventListener("online", () => stream?.retry());

  if (!api.token()) {
    showSignIn();
    return;
  }
  try {
    await beginSession(await api.get("/v1/me", { quiet401: true }));
  } catch (error) {
    showSignIn();
    if (error instanceof api.ApiError && error.status === 401) {
      api.clearToken();
      alertUser("That token was not accepted");
    } else {
      alertUser("Cannot reach the router. Sign in to try again.");
    }
  }
}

start();
