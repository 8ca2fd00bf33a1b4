// Words and numbers as people read them, in the browser's locale.

const LABELS = {
  // case states
  queued: "Queued",
  offered: "Offered",
  assigned: "Assigned",
  waiting_on_customer: "Waiting on customer",
  resolved: "Resolved",
  // service-level metrics
  first_response: "First response",
  next_response: "Next response",
  resolution: "Resolution",
  follow_up: "Follow-up",
  review: "Review",
  // categories
  product_fault: "Product fault",
  billing: "Billing",
  delay: "Delay",
  staff_conduct: "Staff conduct",
  communication: "Communication",
  broken_promise: "Broken promise",
  policy: "Policy",
  trust_privacy: "Trust and privacy",
  access_inconvenience: "Access and inconvenience",
  praise: "Praise",
  suggestion: "Suggestion",
  // difficult-customer types
  none: "None",
  angry: "Angry",
  abusive: "Abusive",
  demanding: "Demanding",
  stubborn: "Stubborn",
  know_it_all: "Know-it-all",
  whiner: "Whiner",
  chatterbox: "Chatterbox",
  quiet: "Quiet",
  jester: "Jester",
  // sentiment
  negative: "Negative",
  neutral: "Neutral",
  positive: "Positive",
  // channels
  email: "Email",
  chat: "Chat",
  social: "Social",
  phone: "Phone",
  web: "Web",
  survey: "Survey",
  // presence and tiers
  available: "Available",
  busy: "Busy",
  away: "Away",
  offline: "Offline",
  frontline: "Frontline",
  senior: "Senior",
  supervisor: "Supervisor",
  // customer tiers
  standard: "Standard",
  premium: "Premium",
  vip: "VIP",
  // remedies (lower case: they sit inside sentences)
  refund: "refund",
  fee_waiver: "fee waiver",
  voucher: "voucher",
  replacement: "replacement",
  goodwill_credit: "goodwill credit",
};

/** The readable name of an enum value ("waiting_on_customer" -> "Waiting on customer"). */
export function label(value) {
  if (value === null || value === undefined || value === "") return "—";
  return LABELS[value] ?? String(value).replaceAll("_", " ");
}

export const SENTIMENTS = ["negative", "neutral", "positive"];
// services/common/messages.py Category and DifficultType, in their order.
export const CATEGORIES = [
  "product_fault",
  "billing",
  "delay",
  "staff_conduct",
  "communication",
  "broken_promise",
  "policy",
  "trust_privacy",
  "access_inconvenience",
  "praise",
  "suggestion",
];
export const DIFFICULT_TYPES = [
  "none",
  "angry",
  "abusive",
  "demanding",
  "stubborn",
  "know_it_all",
  "whiner",
  "chatterbox",
  "quiet",
  "jester",
];
export const PRESENCES = ["available", "busy", "away", "offline"];
export const PRIORITIES = ["P1", "P2", "P3", "P4"];

const timeFormat = new Intl.DateTimeFormat(undefined, { timeStyle: "medium" });
const dateTimeFormat = new Intl.DateTimeFormat(undefined, {
  dateStyle: "medium",
  timeStyle: "short",
});
const percentFormat = new Intl.NumberFormat(undefined, {
  style: "percent",
  maximumFractionDigits: 0,
});
const numberFormat = new Intl.NumberFormat(undefined, { maximumFractionDigits: 2 });

/** A time of today as "10:42:13", an older one with its date. */
export function time(iso) {
  if (!iso) return "—";
  const at = new Date(iso);
  const today = new Date();
  return at.toDateString() === today.toDateString()
    ? timeFormat.format(at)
    : dateTimeFormat.format(at);
}

/** A duration in seconds as "4m 10s", "2h 5m", "3d 4h". */
export function duration(seconds) {
  let s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s}s`;
  const d = Math.floor(s / 86400);
  s -= d * 86400;
  const hr = Math.floor(s / 3600);
  s -= hr * 3600;
  const m = Math.floor(s / 60);
  s -= m * 60;
  if (d) return `${d}d ${hr}h`;
  if (hr) return `${hr}h ${m}m`;
  return `${m}m ${s}s`;
}

export function percent(share) {
  return share === null || share === undefined ? "—" : percentFormat.format(share);
}

export function number(value) {
  return value === null || value === undefined ? "—" : numberFormat.format(value);
}

/** An amount with its currency when known. */
export function money(amount, currency) {
  if (amount === null || amount === undefined) return "unknown amount";
  if (currency) {
    try {
      return new Intl.NumberFormat(undefined, { style: "currency", currency }).format(amount);
    } catch {
      // Not an ISO 4217 code the browser knows: show it as written.
    }
  }
  return `${numberFormat.format(amount)}${currency ? ` ${currency}` : ""}`;
}

export function shortId(caseId) {
  return String(caseId).slice(0, 8);
}

/** A case's title: its subject, else the first words of its first message, else its id. */
export function caseTitle(c, { words = false } = {}) {
  if (c.subject) return c.subject;
  const text = c.messages?.[0]?.text?.trim();
  if (words && text) return text.length > 80 ? `${text.slice(0, 77)}…` : text;
  return `Case ${shortId(c.case_id)}`;
}
