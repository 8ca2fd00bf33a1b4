// Charts as plain SVG, built here: stacked bars over time, 100% shares over time and a bar per
// type. Each chart is an image with a title and a one-line summary for screen readers, every
// bar carries its numbers in a <title> (shown on hover), and the legend is text, so colour is
// never the only way to tell the series apart. The figures are also in a data table next to
// each chart (see trends.js).
import { h } from "./dom.js";
import { label, number, percent } from "./format.js";

const SVG = "http://www.w3.org/2000/svg";

// Each colour is 3:1 or more against the white panel (WCAG 1.4.11) and differs in hue or
// lightness from its neighbours; segments are also parted by a white line.
export const CATEGORY_COLOURS = {
  product_fault: "#1f5f99",
  billing: "#b3261e",
  delay: "#9a5200",
  staff_conduct: "#6a3d9a",
  communication: "#1e6b34",
  broken_promise: "#a0306e",
  policy: "#00707a",
  trust_privacy: "#4d5a66",
  access_inconvenience: "#736400",
  praise: "#3f7f12",
  suggestion: "#7b4f3a",
};
export const SENTIMENT_COLOURS = {
  negative: "#b3261e",
  neutral: "#5b6670",
  positive: "#1e6b34",
};
const FALLBACK_COLOUR = "#4d5a66";

function svg(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value !== null && value !== undefined) el.setAttribute(name, String(value));
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    el.append(typeof child === "string" ? document.createTextNode(child) : child);
  }
  return el;
}

/** A round upper bound for an axis and its tick step (1, 2 or 5 times a power of ten). */
export function niceScale(max, ticks = 4) {
  if (!(max > 0)) return { top: 1, step: 1 };
  const raw = max / ticks;
  const power = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * power).find((s) => s >= raw) ?? 10 * power;
  const rounded = Math.max(1, step);
  return { top: Math.ceil(max / rounded) * rounded, step: rounded };
}

const timeOfDay = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit" });
const dayAndHour = new Intl.DateTimeFormat(undefined, {
  weekday: "short",
  hour: "2-digit",
  minute: "2-digit",
});
const dayOnly = new Intl.DateTimeFormat(undefined, { weekday: "short", day: "numeric" });

/** A bucket's start as its axis and tooltip text: the time of day, or the day for hours. */
export function bucketLabel(iso, window, { long = false } = {}) {
  const at = new Date(iso);
  if (window === "5m") return timeOfDay.format(at);
  return long ? dayAndHour.format(at) : dayOnly.format(at);
}

/** Which buckets get an axis label: about `count` evenly, on round times where possible. */
function labelledIndices(buckets, window, count = 8) {
  if (window === "1h") {
    // Midnights: one label a day.
    return buckets
      .map((b, i) => [new Date(b.start), i])
      .filter(([at]) => at.getHours() === 0)
      .map(([, i]) => i);
  }
  // Round times: every 15 or 30 minutes, or every 1, 2, 3 or 6 hours, whichever fits `count`.
  const span = buckets.length * 5;
  const step = [15, 30, 60, 120, 180, 360].find((m) => span / m <= count) ?? 720;
  return buckets
    .map((b, i) => [new Date(b.start), i])
    .filter(([at]) => (at.getHours() * 60 + at.getMinutes()) % step === 0)
    .map(([, i]) => i);
}

const PLOT = { left: 48, right: 8, top: 10, bottom: 36 };

function frame(titleText, summary, width, height) {
  const titleId = `chart-title-${Math.random().toString(36).slice(2, 9)}`;
  const descId = `${titleId}-desc`;
  return svg(
    "svg",
    {
      viewBox: `0 0 ${width} ${height}`,
      class: "chart",
      role: "img",
      "aria-labelledby": `${titleId} ${descId}`,
      preserveAspectRatio: "none",
    },
    svg("title", { id: titleId }, titleText),
    svg("desc", { id: descId }, summary),
  );
}

function yAxis(root, { top, step }, width, height, { percentAxis = false } = {}) {
  const plotHeight = height - PLOT.top - PLOT.bottom;
  for (let v = 0; v <= top + 1e-9; v += step) {
    const y = PLOT.top + plotHeight - (v / top) * plotHeight;
    root.append(
      svg("line", {
        x1: PLOT.left,
        x2: width - PLOT.right,
        y1: y,
        y2: y,
        class: v === 0 ? "axis-line" : "grid-line",
      }),
      svg(
        "text",
        { x: PLOT.left - 6, y: y + 4, class: "axis-text", "text-anchor": "end" },
        percentAxis ? percent(v) : number(v),
      ),
    );
  }
}

function xAxis(root, buckets, window, height, slot) {
  for (const i of labelledIndices(buckets, window)) {
    const x = PLOT.left + i * slot;
    root.append(
      svg("line", {
        x1: x,
        x2: x,
        y1: height - PLOT.bottom,
        y2: height - PLOT.bottom + 5,
        class: "axis-line",
      }),
      svg(
        "text",
        { x, y: height - PLOT.bottom + 18, class: "axis-text", "text-anchor": "middle" },
        bucketLabel(buckets[i].start, window),
      ),
    );
  }
}

/**
 * Stacked bars, one per bucket, a segment per key of `buckets[i][dimension]`.
 * Returns {element, keys}: the keys drawn, in stacking order (largest over the period first).
 */
export function stackedBars(buckets, { dimension, window, colours, title, unit, width = 1200 }) {
  const height = 260;
  const totals = new Map();
  for (const b of buckets) {
    for (const [k, n] of Object.entries(b[dimension] ?? {})) {
      totals.set(k, (totals.get(k) ?? 0) + n);
    }
  }
  const keys = [...totals.entries()].sort((a, b) => b[1] - a[1]).map(([k]) => k);
  const max = Math.max(0, ...buckets.map((b) => b.total));
  const scale = niceScale(max);
  const all = buckets.reduce((sum, b) => sum + b.total, 0);
  const peak = buckets.reduce((best, b) => (b.total > (best?.total ?? -1) ? b : best), null);
  const summary = all
    ? `${number(all)} ${unit} in ${buckets.length} buckets; the busiest, ${bucketLabel(
        peak.start,
        window,
        { long: true },
      )}, had ${number(peak.total)}. Largest: ${keys
        .slice(0, 3)
        .map((k) => `${label(k)} ${number(totals.get(k))}`)
        .join(", ")}.`
    : `No ${unit} in this period.`;
  const root = frame(title, summary, width, height);
  yAxis(root, scale, width, height);
  columns(root, buckets, keys, {
    dimension,
    window,
    width,
    height,
    top: scale.top,
    fill: (k) => colours[k] ?? FALLBACK_COLOUR,
    describe: (k, n, b) => `${label(k)} ${number(n)} of ${number(b.total)}`,
  });
  return { element: root, keys };
}

/** 100% stacked bars: each bucket's share of every key in `order` (empty buckets stay blank). */
export function shareBars(buckets, { dimension, window, colours, order, title, width = 680 }) {
  const height = 160;
  const root = frame(title, shareSummary(buckets, dimension, order), width, height);
  yAxis(root, { top: 1, step: 0.5 }, width, height, { percentAxis: true });
  columns(root, buckets, order, {
    dimension,
    window,
    width,
    height,
    top: (b) => b.total,
    fill: (k) => colours[k],
    describe: (k, n, b) => `${label(k)} ${percent(n / b.total)} (${number(n)})`,
  });
  return { element: root, keys: order };
}

/**
 * One column per bucket, a segment per key stacked from the bottom, and the time axis: the
 * segment's height is its count over `top` (a number, or a function of the bucket for shares).
 * Empty buckets stay blank.
 */
function columns(root, buckets, keys, { dimension, window, width, height, top, fill, describe }) {
  const plotHeight = height - PLOT.top - PLOT.bottom;
  const slot = (width - PLOT.left - PLOT.right) / Math.max(1, buckets.length);
  const barWidth = Math.max(1, slot * 0.86);
  const bars = svg("g", { class: "bars" });
  buckets.forEach((b, i) => {
    if (!b.total) return;
    const whole = typeof top === "function" ? top(b) : top;
    let y = PLOT.top + plotHeight;
    const x = PLOT.left + i * slot + (slot - barWidth) / 2;
    const when = bucketLabel(b.start, window, { long: true });
    for (const k of keys) {
      const n = b[dimension]?.[k] ?? 0;
      if (!n) continue;
      const hgt = (n / whole) * plotHeight;
      y -= hgt;
      bars.append(
        svg(
          "rect",
          { x, y, width: barWidth, height: hgt, fill: fill(k), class: "segment", "data-key": k },
          svg("title", {}, `${when}: ${describe(k, n, b)}`),
        ),
      );
    }
  });
  root.append(bars);
  xAxis(root, buckets, window, height, slot);
}

function shareSummary(buckets, dimension, order) {
  const all = buckets.reduce((sum, b) => sum + b.total, 0);
  if (!all) return "No messages in this period.";
  const parts = order.map((k) => {
    const n = buckets.reduce((sum, b) => sum + (b[dimension]?.[k] ?? 0), 0);
    return `${label(k)} ${percent(n / all)}`;
  });
  return `Over the period: ${parts.join(", ")}.`;
}

/** Horizontal bars, one per [key, count], with the count written at the end of each bar. */
export function horizontalBars(entries, { title, colour = "#1f5f99", width = 500 }) {
  const rowHeight = 24;
  const labelWidth = 110;
  const height = Math.max(1, entries.length) * rowHeight + 8;
  const max = Math.max(1, ...entries.map(([, n]) => n));
  const total = entries.reduce((sum, [, n]) => sum + n, 0);
  const summary = total
    ? entries.map(([k, n]) => `${label(k)} ${number(n)}`).join(", ")
    : "No messages in this period.";
  const root = frame(title, summary, width, height);
  root.setAttribute("preserveAspectRatio", "xMinYMin meet");
  const room = width - labelWidth - 90;
  entries.forEach(([k, n], i) => {
    const y = 4 + i * rowHeight;
    const length = (n / max) * room;
    root.append(
      svg(
        "text",
        { x: labelWidth - 8, y: y + 16, class: "bar-label", "text-anchor": "end" },
        label(k),
      ),
      svg(
        "rect",
        {
          x: labelWidth,
          y: y + 3,
          width: Math.max(n ? 2 : 0, length),
          height: rowHeight - 8,
          fill: colour,
        },
        svg("title", {}, `${label(k)}: ${number(n)}`),
      ),
      svg(
        "text",
        { x: labelWidth + length + 6, y: y + 16, class: "bar-value" },
        `${number(n)}${total ? ` (${percent(n / total)})` : ""}`,
      ),
    );
  });
  return { element: root };
}

/** The legend of a chart: a swatch and the name of each key, as an HTML list. */
export function legend(keys, colours, { title }) {
  return h(
    "ul",
    { class: "legend", "aria-label": title },
    keys.map((k) => {
      const swatch = h("span", { class: "swatch", "aria-hidden": "true" });
      // Through the CSSOM: the Content-Security-Policy refuses inline style attributes.
      swatch.style.backgroundColor = colours[k] ?? FALLBACK_COLOUR;
      return h("li", {}, swatch, label(k));
    }),
  );
}
