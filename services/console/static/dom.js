// Building DOM without innerHTML: every piece of user data goes through textContent.

/**
 * h("li", {class: "x", dataset: {id}}, child, ...) -> element.
 * Attributes: "class", "dataset" (object), "on<event>" (listener), boolean true/false,
 * anything else through setAttribute. Children: nodes, strings (text), arrays, null.
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs ?? {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "class") el.className = value;
    else if (name === "dataset") Object.assign(el.dataset, value);
    else if (name.startsWith("on") && typeof value === "function") {
      el.addEventListener(name.slice(2), value);
    } else if (name === "value") el.value = value;
    else el.setAttribute(name, value === true ? "" : String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else if (child instanceof Node) el.append(child);
    else el.append(document.createTextNode(String(child)));
  }
}

/** Replace an element's children. */
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

let counter = 0;
/** A unique id for label/aria wiring. */
export function uid(prefix = "id") {
  counter += 1;
  return `${prefix}-${counter}`;
}

/** A visually hidden label for a control that has a visible context (table rows). */
export function hiddenLabel(forId, text) {
  return h("label", { for: forId, class: "visually-hidden" }, text);
}

/**
 * Keep a container's keyed children in step with a list without recreating the ones that
 * stay, so focus, open selects and typed text survive a refresh.
 */
export function reconcile(container, items, { key, create, update }) {
  const existing = new Map();
  for (const child of [...container.children]) {
    if (child.dataset.key !== undefined) existing.set(child.dataset.key, child);
  }
  let cursor = container.firstElementChild;
  const keep = new Set();
  for (const item of items) {
    const k = String(key(item));
    keep.add(k);
    let el = existing.get(k);
    if (el) update(el, item);
    else {
      el = create(item);
      el.dataset.key = k;
    }
    if (el !== cursor) container.insertBefore(el, cursor);
    else cursor = cursor.nextElementSibling;
  }
  for (const [k, el] of existing) if (!keep.has(k)) el.remove();
}

/** Whether focus is inside el. */
export function holdsFocus(el) {
  return el.contains(document.activeElement);
}
