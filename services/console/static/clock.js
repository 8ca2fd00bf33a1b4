// One ticker updates every countdown on the page each second, from the times the elements
// carry, so countdowns move without refetching anything.
import { duration } from "./format.js";

let skewMs = 0;

/** Align with the router's clock when the browser's is off by more than two seconds. */
export function observeServerDate(response) {
  const header = response.headers.get("Date");
  if (!header) return;
  const server = Date.parse(header);
  if (Number.isNaN(server)) return;
  const skew = server - Date.now();
  // The Date header has one-second resolution: ignore small differences.
  skewMs = Math.abs(skew) > 2000 ? skew : 0;
}

export function now() {
  return Date.now() + skewMs;
}

/** Seconds from now until an ISO time (negative once past). */
export function secondsUntil(iso) {
  return (Date.parse(iso) - now()) / 1000;
}

const RENDER = {
  // An offer: "Expires in 14 s".
  offer(el, at) {
    const left = Math.ceil(secondsUntil(at));
    el.textContent = left > 0 ? `Expires in ${left} s` : "Expired";
    el.classList.toggle("urgent", left <= 5);
  },
  // A service-level deadline.
  due(el, at) {
    const left = secondsUntil(at);
    el.textContent = left >= 0 ? `Due in ${duration(left)}` : `Overdue by ${duration(-left)}`;
    el.classList.toggle("overdue", left < 0);
  },
  // Time since something: a case's age, a wait.
  age(el, at) {
    el.textContent = duration(-secondsUntil(at));
  },
};

/** Render one countdown element now (also used when creating it). */
export function tick(el) {
  const render = RENDER[el.dataset.countdown];
  if (render && el.dataset.at) render(el, el.dataset.at);
  return el;
}

let timer = null;

export function startTicker() {
  if (timer !== null) return;
  timer = setInterval(() => {
    for (const el of document.querySelectorAll("[data-countdown]")) tick(el);
  }, 1000);
}
