// The surge banner: active surges from the trends service (GET /v1/trends/surges?active=true,
// through the router), polled every 15 s. Shown above the floor and the trends while any
// surge is active; hidden otherwise, and while the trends service cannot be reached (the
// Trends view says why).
import * as api from "../api.js";
import { h, reconcile } from "../dom.js";
import { label, number, time } from "../format.js";

const POLL_MS = 15000;
// The trends service's 401 is its own (its roster may lag the router's): never a sign-out;
// its 503 means it is absent or replaying, which the router's retries would not change.
export const TRENDS_OPTIONS = { quiet401: true, waitStarting: false };

let counter = 0;

export function channelText(channel) {
  return channel === "all" ? "every channel" : label(channel);
}

function surgeItem(s) {
  const li = h("li", { class: "surge-item" });
  updateSurgeItem(li, s);
  return li;
}

/** "36×" for a large ratio, "3.4×" for a small one. */
function times(ratio) {
  return `${ratio >= 10 ? Math.round(ratio) : number(Math.round(ratio * 10) / 10)}×`;
}

function updateSurgeItem(li, s) {
  li.replaceChildren(
    h("strong", {}, `${label(s.category)} on ${channelText(s.channel)}`),
    `: ${number(s.count)} messages where ${number(s.expected)} were expected (${times(s.ratio)}) `,
    "in the window from ",
    h("time", { datetime: s.window_start }, time(s.window_start)),
    "; surging since ",
    h("time", { datetime: s.detected_at }, time(s.detected_at)),
    ".",
  );
}

export class SurgeBanner {
  constructor() {
    counter += 1;
    const titleId = `surge-title-${counter}`;
    this.list = h("ul", {
      class: "surge-list",
      "aria-live": "polite",
      "aria-relevant": "additions",
    });
    this.element = h(
      "section",
      { class: "surge-banner", "aria-labelledby": titleId, hidden: true },
      h(
        "h2",
        { id: titleId },
        h("span", { "aria-hidden": "true" }, "⚠ "),
        "Surge in complaints",
      ),
      this.list,
      h(
        "p",
        { class: "surge-more" },
        h("a", { href: "#/trends" }, "See the trends and emerging issues"),
      ),
    );
    this.surges = [];
    this.poll();
    this.timer = setInterval(() => this.poll(), POLL_MS);
  }

  async poll() {
    let surges;
    try {
      surges = await api.get("/v1/trends/surges?active=true", TRENDS_OPTIONS);
    } catch {
      surges = null; // not there: the banner stays as it was until it answers again
    }
    if (this.destroyed || surges === null) return;
    this.surges = surges;
    reconcile(this.list, surges, {
      key: (s) => s.surge_id,
      create: surgeItem,
      update: updateSurgeItem,
    });
    this.element.hidden = surges.length === 0;
  }

  destroy() {
    this.destroyed = true;
    clearInterval(this.timer);
  }
}
