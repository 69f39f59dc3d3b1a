// Helpers of the console: the API client, DOM building (text only, never HTML) and time display.

const TOKEN_KEY = "beema.console.token";

/** The signed-in token: a string (maybe empty, for an open admin API) or null when signed out. */
export function storedToken() {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function storeToken(token) {
  sessionStorage.setItem(TOKEN_KEY, token);
}

export function forgetToken() {
  sessionStorage.removeItem(TOKEN_KEY);
}

/** Calls the JSON API with `token` (default: the stored one); resolves to {status, body}. */
export async function api(path, { method = "GET", body, token } = {}) {
  const t = token === undefined ? storedToken() : token;
  const headers = { Accept: "application/json" };
  if (t) headers.Authorization = `Bearer ${t}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const resp = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    cache: "no-store",
    credentials: "omit",
  });
  let data = null;
  const text = await resp.text();
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
    }
  }
  return { status: resp.status, body: data };
}

/** The message of an API error answer. */
export function errorText(res) {
  const e = res.body && res.body.error;
  return e ? `${res.status}: ${e.message}` : `HTTP ${res.status}`;
}

/**
 * Builds an element. `attrs`: `testid` → data-testid, `data` → dataset, `on` → listeners,
 * `class`, and any other attribute. Children: nodes or strings (always text nodes).
 */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "testid") node.dataset.testid = v;
    else if (k === "data") Object.assign(node.dataset, v);
    else if (k === "on") for (const [ev, fn] of Object.entries(v)) node.addEventListener(ev, fn);
    else if (k === "class") node.className = v;
    else if (k === "text") node.textContent = String(v);
    else if (k === "value") node.value = v;
    else node.setAttribute(k, v === true ? "" : String(v));
  }
  append(node, children);
  return node;
}

function append(node, children) {
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

/** SVG element (presentation attributes only: the CSP forbids inline styles). */
export function svg(tag, attrs = {}) {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  return node;
}

/** Replaces `node`'s children. */
export function fill(node, ...children) {
  node.replaceChildren();
  append(node, children);
  return node;
}

/** Sets a text only when it changed (no layout work, no flicker on refresh). */
export function setText(node, text) {
  const t = String(text);
  if (node.textContent !== t) node.textContent = t;
}

/** A time in the viewer's zone, with the UTC value on hover; "—" when absent. */
export function time(iso, testid) {
  if (!iso) return el("span", { testid }, "—");
  const d = new Date(iso);
  return el("time", { testid, datetime: iso, title: d.toISOString() }, d.toLocaleString());
}

/** Dash for null. */
export function orDash(v) {
  return v === null || v === undefined || v === "" ? "—" : String(v);
}

/** `datetime-local` value for a Date, in the viewer's zone. */
export function localInputValue(d) {
  const pad = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}
