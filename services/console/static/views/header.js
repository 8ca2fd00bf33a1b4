// The session bar: who is signed in, their presence, the live stream's state, sign-out.
import * as api from "../api.js";
import { h } from "../dom.js";
import { label, PRESENCES } from "../format.js";
import { alertUser, announce, describe } from "../notices.js";
import { session } from "../store.js";

const CONNECTION_TEXT = {
  connecting: "Connecting…",
  live: "Live",
  reconnecting: "Disconnected: retrying",
};

let connectionEl = null;
let presenceSelect = null;

export function setConnection(state, seconds) {
  if (!connectionEl) return;
  connectionEl.dataset.state = state;
  connectionEl.querySelector(".connection-text").textContent =
    state === "reconnecting" && seconds
      ? `${CONNECTION_TEXT.reconnecting} in ${seconds} s`
      : CONNECTION_TEXT[state];
}

export function renderSessionBar({ onSignOut }) {
  const bar = document.getElementById("session-bar");
  const { profile } = session.me;
  const team = session.teams?.find((t) => t.id === profile.team)?.name ?? profile.team;

  presenceSelect = h(
    "select",
    { id: "my-presence" },
    PRESENCES.map((p) => h("option", { value: p }, label(p))),
  );
  presenceSelect.value = session.me.presence;
  presenceSelect.addEventListener("change", () => changePresence(presenceSelect.value));

  connectionEl = h(
    "p",
    { class: "connection", dataset: { state: "connecting" } },
    h("span", { class: "connection-icon", "aria-hidden": "true" }),
    "Live updates: ",
    h("span", { class: "connection-text" }, CONNECTION_TEXT.connecting),
  );

  const signOut = h("button", { type: "button", class: "secondary" }, "Sign out");
  signOut.addEventListener("click", onSignOut);

  bar.replaceChildren(
    h(
      "p",
      { class: "who" },
      h("span", { class: "who-name" }, profile.name),
      h("span", { class: "who-team" }, `${team} · ${label(profile.tier)}`),
    ),
    h(
      "div",
      { class: "field-inline" },
      h("label", { for: "my-presence" }, "Presence"),
      presenceSelect,
    ),
    connectionEl,
    signOut,
  );
  bar.hidden = false;
  session.addEventListener("me", syncPresence);
}

function syncPresence() {
  if (presenceSelect && session.me && document.activeElement !== presenceSelect) {
    presenceSelect.value = session.me.presence;
  }
}

async function changePresence(presence) {
  const before = session.me.presence;
  presenceSelect.disabled = true;
  try {
    await api.put("/v1/me/presence", { presence });
    // The router forgets why it set the agent away once they choose a presence themselves.
    session.setMe({ ...session.me, presence, away_reason: null, lapsed_offers: 0 });
    const note =
      presence === "available"
        ? ""
        : presence === "offline"
          ? " Your offers and cases go back to the queue."
          : " You get no new offers; pending offers go back to the queue.";
    announce(`Presence set to ${label(presence)}.${note}`);
  } catch (error) {
    presenceSelect.value = before;
    alertUser(`Presence not changed. ${describe(error)}`);
  } finally {
    presenceSelect.disabled = false;
    presenceSelect.focus();
  }
}
