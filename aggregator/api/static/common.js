// Shared by the dashboard pages: API access (with an optional API key), number formatting, DOM and SVG helpers.
// Every number shown carries data-testid and data-value (the API's raw JSON number, or "null").

const KEY_STORE = "xmargin.apiKey";
const SVG_NS = "http://www.w3.org/2000/svg";

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

let authListener = null;

/** Called with no arguments whenever the API answers 401. */
export function onUnauthorized(listener) {
  authListener = listener;
}

export function apiKey() {
  try {
    return window.sessionStorage.getItem(KEY_STORE) || "";
  } catch {
    return "";
  }
}

export function setApiKey(key) {
  try {
    if (key) window.sessionStorage.setItem(KEY_STORE, key);
    else window.sessionStorage.removeItem(KEY_STORE);
  } catch {
    /* storage disabled: the key lasts until the page is closed */
  }
}

/** GET a JSON document of the API. Throws ApiError (HTTP status, the API's error message) or a network error. */
export async function api(path) {
  const headers = { Accept: "application/json" };
  const key = apiKey();
  if (key) headers.Authorization = `Bearer ${key}`;
  const resp = await fetch(path, { headers, cache: "no-store" });
  if (!resp.ok) {
    let message = `${resp.status} ${resp.statusText}`;
    try {
      const body = await resp.json();
      if (body && typeof body.error === "string") message = body.error;
      else if (body && typeof body.detail === "string") message = body.detail;
    } catch {
      /* not JSON */
    }
    if (resp.status === 401 && authListener) authListener();
    throw new ApiError(resp.status, message);
  }
  return resp.json();
}

/** A short description of a failed request for a banner. */
export function describeError(err) {
  if (err instanceof ApiError) return err.message;
  return "cannot reach the xmargin API — retrying";
}

/** Seconds between polls: ?refresh=<seconds>, else the default. */
export function refreshSeconds(fallback) {
  const raw = new URLSearchParams(window.location.search).get("refresh");
  const value = raw === null ? NaN : Number(raw);
  return Number.isFinite(value) && value > 0 ? Math.max(value, 0.1) : fallback;
}

// ---------- formatting ----------

const MINUS = "\u2212";
const formatters = new Map();

function grouped(x, dp) {
  let f = formatters.get(dp);
  if (!f) {
    f = new Intl.NumberFormat("en-US", { minimumFractionDigits: dp, maximumFractionDigits: dp });
    formatters.set(dp, f);
  }
  return f.format(x);
}

function isNum(x) {
  return typeof x === "number" && Number.isFinite(x);
}

/** 1234.5 → "1,234.50"; negative with a real minus sign. */
export function fmtNum(x, dp = 2) {
  if (!isNum(x)) return "—";
  const s = grouped(Math.abs(x), dp);
  return (x < 0 && Number(s.replace(/,/g, "")) !== 0 ? MINUS : "") + s;
}

/** "$72,000.00", "−$53,109.06"; signed: "+$45,972.23". */
export function fmtUsd(x, { dp = 2, signed = false } = {}) {
  if (!isNum(x)) return "—";
  const s = grouped(Math.abs(x), dp);
  const zero = Number(s.replace(/,/g, "")) === 0;
  const sign = x < 0 && !zero ? MINUS : signed && !zero ? "+" : "";
  return `${sign}$${s}`;
}

/** A price: more decimals under $10 (stablecoins). */
export function fmtPrice(x) {
  if (!isNum(x)) return "—";
  return fmtUsd(x, { dp: Math.abs(x) < 10 ? 4 : 2 });
}

/** A health factor: "∞" without debt. */
export function fmtHf(x) {
  if (x === null || x === undefined) return "∞";
  if (!isNum(x)) return "—";
  const a = Math.abs(x);
  return fmtNum(x, a < 100 ? 4 : a < 10000 ? 2 : 0);
}

/** A fraction as a percentage: 0.3266 → "32.66%". */
export function fmtPct(x, { dp = 2, signed = false } = {}) {
  if (!isNum(x)) return "—";
  const s = grouped(Math.abs(x) * 100, dp);
  const zero = Number(s.replace(/,/g, "")) === 0;
  const sign = x < 0 && !zero ? MINUS : signed && !zero ? "+" : "";
  return `${sign}${s}%`;
}

/** A compact USD amount for small spaces (heatmap cells): "−28.8k". */
export function fmtCompact(x) {
  if (!isNum(x)) return "";
  const a = Math.abs(x);
  const sign = x < 0 ? MINUS : "";
  if (a >= 1e6) return `${sign}${(a / 1e6).toFixed(1)}M`;
  if (a >= 1e3) return `${sign}${(a / 1e3).toFixed(1)}k`;
  return `${sign}${a.toFixed(0)}`;
}

/** Class of a health figure: red under 1.05, amber under 1.25, else green (as the CLI colours it). */
export function hfClass(x) {
  if (x === null || x === undefined) return "good";
  if (!isNum(x)) return "muted";
  if (x < 1.05) return "bad";
  if (x < 1.25) return "warn";
  return "good";
}

export function hfColour(x) {
  const cls = hfClass(x);
  return cls === "bad" ? "var(--red)" : cls === "warn" ? "var(--amber)" : cls === "good" ? "var(--green)" : "var(--faint)";
}

/** "12s ago", "4m ago", "2h ago". */
export function ago(ms) {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 90) return `${s}s ago`;
  if (s < 5400) return `${Math.round(s / 60)}m ago`;
  if (s < 172800) return `${Math.round(s / 3600)}h ago`;
  return `${Math.round(s / 86400)}d ago`;
}

/** The raw API value as data-value text. */
export function rawValue(x) {
  return x === null || x === undefined ? "null" : String(x);
}

// ---------- DOM ----------

function append(node, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function setAttrs(node, attrs) {
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") node.setAttribute("class", v);
    else if (k === "text") node.textContent = v;
    else if (k.startsWith("on") && typeof v === "function") node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? "" : String(v));
  }
}

/** An HTML element: h("td", {class: "r"}, child, …). Text is always set as text, never parsed as HTML. */
export function h(tag, attrs, ...children) {
  const node = document.createElement(tag);
  setAttrs(node, attrs);
  return append(node, children);
}

/** An SVG element. */
export function s(tag, attrs, ...children) {
  const node = document.createElementNS(SVG_NS, tag);
  setAttrs(node, attrs);
  return append(node, children);
}

/** A displayed number: <span data-testid data-value class="num">formatted</span>. */
export function num(testid, value, format, extraClass = "") {
  return h("span", {
    class: `num ${extraClass}`.trim(), "data-testid": testid, "data-value": rawValue(value),
    text: format(value),
  });
}

/** Replace the contents of the element with id ``id``. */
export function fill(id, ...children) {
  const node = document.getElementById(id);
  node.replaceChildren();
  append(node, children);
  return node;
}

export function banner(message, kind = "error") {
  const node = document.getElementById("banner");
  if (!message) {
    node.hidden = true;
    node.textContent = "";
    return;
  }
  node.className = `banner ${kind}`;
  node.textContent = message;
  node.hidden = false;
}

/** Wire the API-key form: shown on a 401, stores the key and calls ``retry``. */
export function setupAuth(retry) {
  const panel = document.getElementById("auth");
  const input = document.getElementById("auth-key");
  onUnauthorized(() => {
    panel.hidden = false;
  });
  document.getElementById("auth-form").addEventListener("submit", (event) => {
    event.preventDefault();
    setApiKey(input.value.trim());
    input.value = "";
    panel.hidden = true;
    retry();
  });
  document.getElementById("auth-clear").addEventListener("click", () => {
    setApiKey("");
    retry();
  });
}

/** The colour of the i-th venue (stable across cards and charts). */
const PALETTE = ["#5b9dff", "#c678dd", "#2fbf71", "#f0b429", "#56d4dd", "#ff7a59", "#a3be8c", "#e06c9f"];
export function venueColour(index) {
  return PALETTE[index % PALETTE.length];
}
