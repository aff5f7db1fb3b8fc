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
    // A 401 to a request sent before the key was entered (still in flight then) asks for nothing: the key it lacked
    // is there now, and showing the form again would leave it up over the data the key then reads.
    if (resp.status === 401 && authListener && key === apiKey()) authListener();
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
    else if (k.startsWith("on") && typeof v === "function") {
      node.addEventListener(k.slice(2), v);
      node.__listens = true; // morph() replaces such a node whole: its listeners cannot be compared
    }
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

/** Make ``node`` (an element) look like ``fresh`` (one of the same tag) by changing only what differs: attributes,
 * texts, and elements where the tag differs. A page that re-renders on every poll keeps the nodes it shows, so a
 * click landing while it re-renders (mouse down on the old link, up on its replacement) is not lost, nor is a text
 * selection. An element that carries listeners (``h``'s ``on…`` attributes) is replaced whole. */
export function morph(node, fresh) {
  if (node.nodeName !== fresh.nodeName || node.__listens || fresh.__listens) {
    node.replaceWith(fresh);
    return fresh;
  }
  for (const { name } of [...node.attributes]) if (!fresh.hasAttribute(name)) node.removeAttribute(name);
  for (const { name, value } of [...fresh.attributes]) if (node.getAttribute(name) !== value) node.setAttribute(name, value);
  const old = [...node.childNodes];
  const now = [...fresh.childNodes];
  now.forEach((b, i) => {
    const a = old[i];
    if (a === undefined) node.append(b);
    else if (a.nodeType === Node.TEXT_NODE && b.nodeType === Node.TEXT_NODE) {
      if (a.nodeValue !== b.nodeValue) a.nodeValue = b.nodeValue;
    } else if (a.nodeType === Node.ELEMENT_NODE && b.nodeType === Node.ELEMENT_NODE) morph(a, b);
    else a.replaceWith(b);
  });
  for (const a of old.slice(now.length)) a.remove();
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

// ---------- ages and times ----------

/** A duration in words: "12 s", "4 min", "2 h 5 min", "3 d". */
export function fmtAge(seconds) {
  if (!isNum(seconds)) return "—";
  const s = Math.max(0, Math.round(seconds));
  if (s < 90) return `${s} s`;
  if (s < 5400) return `${Math.round(s / 60)} min`;
  if (s < 172800) {
    const hours = Math.floor(s / 3600);
    const minutes = Math.round((s % 3600) / 60);
    return minutes ? `${hours} h ${minutes} min` : `${hours} h`;
  }
  return `${Math.round(s / 86400)} d`;
}

/** An ISO time as the trader reads it: "17:02:11 UTC" today, else "2026-12-03 17:02 UTC". */
export function fmtTime(iso) {
  const t = typeof iso === "number" ? iso : Date.parse(iso);
  if (!Number.isFinite(t)) return "—";
  const d = new Date(t);
  const today = new Date().toISOString().slice(0, 10);
  const day = d.toISOString().slice(0, 10);
  return day === today ? `${d.toISOString().slice(11, 19)} UTC` : `${day} ${d.toISOString().slice(11, 16)} UTC`;
}

function parseTime(iso) {
  const t = typeof iso === "string" ? Date.parse(iso) : NaN;
  return Number.isFinite(t) ? t : null;
}

/** Seconds of the stale bound given as ?stale_after=<seconds> (for servers that do not send one), else null. */
export function staleAfterParam() {
  const raw = new URLSearchParams(window.location.search).get("stale_after");
  const value = raw === null ? NaN : Number(raw);
  return Number.isFinite(value) && value > 0 ? value : null;
}

/** 3 × the default 15 s sync interval: the bound used when the server sends none. */
export const DEFAULT_STALE_AFTER_S = 45;

/**
 * How current a wallet's readings are. The server's ``freshness`` object when it sends one (the newest sync's
 * outcome, since when it fails and why); otherwise derived from the newest time the documents carry (the risk
 * result's ``computed_at``, else the newest venue's block or venue time) against ``?stale_after=`` or 45 s.
 * ``ageS(now)`` gives the age at ``now`` (ms), counted from when the document was fetched (no clock skew).
 */
export function freshnessOf(health, risk, fetchedAt = Date.now()) {
  const f = health && typeof health.freshness === "object" ? health.freshness : null;
  if (f) {
    const base = isNum(f.age_s) ? f.age_s : null;
    const synced = parseTime(f.synced_at);
    return {
      source: "server",
      stale: Boolean(f.stale),
      staleAfterS: isNum(f.stale_after_s) ? f.stale_after_s : null,
      syncedAt: synced,
      ageS: (now) => (base !== null ? base + (now - fetchedAt) / 1000 : synced !== null ? (now - synced) / 1000 : null),
      lastSync: f.last_sync ?? null,
      failingSince: parseTime(f.failing_since),
      reason: typeof f.reason === "string" && f.reason ? f.reason : null,
    };
  }
  const times = [];
  const computed = parseTime(risk?.computed_at);
  if (computed !== null) times.push(computed);
  else {
    for (const v of health?.venues ?? []) {
      const t = parseTime(v.synced_at) ?? parseTime(v.venue_timestamp) ?? parseTime(v.block_timestamp);
      if (t !== null) times.push(t);
    }
  }
  const synced = times.length ? Math.max(...times) : null;
  const bound = staleAfterParam() ?? DEFAULT_STALE_AFTER_S;
  const ageS = (now) => (synced === null ? null : Math.max(0, (now - synced) / 1000));
  return {
    source: "derived",
    staleAfterS: bound,
    syncedAt: synced,
    ageS,
    get stale() {
      const age = ageS(Date.now());
      return age !== null && age > bound;
    },
    lastSync: null,
    failingSince: null,
    reason: null,
  };
}

/** The banner's sentence for stale data: since when and why, and what is shown instead. */
export function staleMessage(fresh, block, now = Date.now()) {
  const age = fresh.ageS(now);
  const status = fresh.lastSync?.status;
  const since = fresh.failingSince !== null
    ? `failing since ${fmtTime(fresh.failingSince)}, ${fmtAge((now - fresh.failingSince) / 1000)} ago` : null;
  const why = fresh.reason || fresh.lastSync?.error || null;
  let head;
  if (status === "failed") head = "Stale data — the newest sync failed";
  else if (status === "partial") head = "Stale data — the newest sync was partial";
  else head = `Stale data — nothing new for ${fmtAge(age)}`
    + (fresh.staleAfterS ? ` (more than ${fmtAge(fresh.staleAfterS)})` : "");
  // The server's reason names since when already; otherwise the page says it.
  const text = why ? `${head}: ${why}${since && !/since/.test(why) ? ` (${since})` : ""}` : `${head}${since ? ` (${since})` : ""}`;
  const synced = fresh.syncedAt !== null ? `synced ${fmtTime(fresh.syncedAt)}, ${fmtAge(age)} ago` : "";
  return `${text.replace(/[.\s]+$/, "")}. Showing the last known values`
    + `${block !== null && block !== undefined ? ` from block ${block}` : ""}${synced ? ` (${synced})` : ""}`
    + " — they may no longer be true.";
}

/** Show or hide the stale-data banner (element #stale). */
export function staleBanner(message) {
  const node = document.getElementById("stale");
  if (!node) return;
  node.hidden = !message;
  node.textContent = message || "";
}

/** Re-run ``draw`` when the viewport width changes (charts are laid out in real pixels). */
export function onWidthChange(draw) {
  let width = window.innerWidth;
  let timer = null;
  window.addEventListener("resize", () => {
    if (window.innerWidth === width) return;
    width = window.innerWidth;
    clearTimeout(timer);
    timer = setTimeout(draw, 120);
  });
}

/** Whether the page is laid out for a phone (the stylesheet's breakpoint). */
export function isNarrow() {
  return window.matchMedia("(max-width: 640px)").matches;
}

// ---------- the headline: lowest venue health, unified health, first liquidation ----------

export const UNIFIED_TIP = "Unified health is your equity across every venue divided by the margin the whole "
  + "portfolio needs under its worst liquidation-aware scenario: below 1, some scenario liquidates you.";

/** A term with its explanation: shows on hover and on tap (focus). */
export function tip(label, text, testid) {
  return h("span", { class: "tip", tabindex: "0", title: text, "data-tip": text, "data-testid": testid, role: "note",
    "aria-label": text }, label);
}

function nearestFrom(candidates) {
  let best = null;
  for (const c of candidates) {
    // A common move of every risky price (the server's ``common_move``) has a move and no single price.
    const common = c.common_move === true && isNum(c.move);
    if (!common && (!isNum(c.price_usd) || !isNum(c.current_price_usd) || c.current_price_usd <= 0)) continue;
    const move = isNum(c.move) ? c.move : c.price_usd / c.current_price_usd - 1;
    if (best === null || Math.abs(move) < Math.abs(best.move)) {
      best = { venue: c.venue, asset: c.asset, price_usd: common ? null : c.price_usd,
        current_price_usd: common ? null : c.current_price_usd, move, common,
        direction: c.direction || (move < 0 ? "falls" : "rises") };
    }
  }
  return best;
}

/** The single-factor liquidation nearest to today's prices: the risk document's when it names one, else the nearest
 * of its liquidation prices, else the nearest perp liquidation price of the health document. */
export function nearestLiquidation(health, risk) {
  const named = risk?.first_liquidation?.nearest;
  if (named && typeof named === "object") return nearestFrom([named]);
  if (Array.isArray(risk?.liquidation_prices) && risk.liquidation_prices.length) {
    return nearestFrom(risk.liquidation_prices);
  }
  const perps = [];
  for (const v of health?.venues ?? []) {
    for (const [asset, price] of Object.entries(v.liquidation_price ?? {})) {
      const pos = (v.positions ?? []).find((p) => p.asset === asset);
      if (pos) perps.push({ venue: v.venue, asset, price_usd: price, current_price_usd: pos.price_usd });
    }
  }
  return nearestFrom(perps);
}

/** The lowest venue health factor ({venue, health_factor}) or null when no venue has debt. */
export function lowestVenue(health) {
  let best = null;
  for (const v of health?.venues ?? []) {
    if (isNum(v.health_factor) && (best === null || v.health_factor < best.health_factor)) {
      best = { venue: v.venue, health_factor: v.health_factor };
    }
  }
  return best;
}

/** The headline's three figures: the server's ``summary`` when it sends one, else computed from the documents.
 * ``unified`` is undefined when there is no risk result. */
export function headlineOf(health, risk) {
  const summary = health?.summary ?? risk?.summary ?? null;
  if (summary && typeof summary === "object") {
    return {
      source: "server",
      lowest: summary.lowest_venue ?? null,
      unified: "unified_health" in summary ? summary.unified_health : risk?.unified_health,
      liquidation: summary.first_liquidation ? nearestFrom([summary.first_liquidation]) : null,
      text: summary.text ?? null,
      meaning: typeof summary.unified_health_meaning === "string" ? summary.unified_health_meaning : UNIFIED_TIP,
    };
  }
  return {
    source: "derived",
    lowest: lowestVenue(health),
    unified: risk ? risk.unified_health : undefined,
    liquidation: nearestLiquidation(health, risk),
    text: null,
    meaning: UNIFIED_TIP,
  };
}

/** The verb of a common move: "falls" for one asset, "all fall" for several ("WBTC, ETH and LINK all fall"). */
export function commonVerb(liq) {
  const several = liq.asset.includes(" and ") || liq.asset.startsWith("every");
  return several ? (liq.direction === "falls" ? "all fall" : "all rise") : liq.direction;
}

/** A move as the headline prints it: "−8.6 %", "+27.1 %". */
export function fmtMove(x) {
  if (!isNum(x)) return "—";
  const a = Math.abs(x) * 100;
  const s = a.toFixed(a < 10 ? 2 : 1);
  return `${x < 0 ? MINUS : "+"}${s} %`;
}

/** The headline line: "lowest <venue> 1.07 · unified 1.32 ⓘ · first liquidation: <venue> if USDC falls to $0.9137
 * (−8.6 %)". Every figure carries ``<prefix>-…`` test ids and the raw value. */
export function headlineNodes(line, prefix = "headline") {
  const low = line.lowest;
  const liq = line.liquidation;
  return [
    h("span", { class: "part" }, h("span", { class: "muted" }, "lowest venue "),
      low ? [h("span", { "data-testid": `${prefix}-lowest-venue` }, low.venue), " ",
        num(`${prefix}-lowest`, low.health_factor, fmtHf, `strong ${hfClass(low.health_factor)}`)]
        : h("span", { class: "good", "data-testid": `${prefix}-lowest`, "data-value": "null" }, "no debt")),
    h("span", { class: "sep" }, " · "),
    h("span", { class: "part" }, tip(h("span", { class: "muted" }, "unified health", h("span", { class: "i", "aria-hidden": "true" })),
      line.meaning || UNIFIED_TIP, `${prefix}-unified-tip`),
      " ",
      line.unified === undefined ? h("span", { class: "muted", "data-testid": `${prefix}-unified`, "data-value": "null" },
        "not computed yet") : num(`${prefix}-unified`, line.unified, fmtHf, `strong ${hfClass(line.unified)}`)),
    h("span", { class: "sep" }, " · "),
    h("span", { class: "part" }, h("span", { class: "muted" }, "first liquidation: "),
      liq && liq.common ? [h("span", { "data-testid": `${prefix}-liq-venue` }, liq.venue), " if ",
        h("span", { "data-testid": `${prefix}-liq-asset` }, liq.asset), ` ${commonVerb(liq)} `,
        num(`${prefix}-liq-move`, liq.move, fmtMove, Math.abs(liq.move) < 0.1 ? "bad" : "warn")]
      : liq ? [h("span", { "data-testid": `${prefix}-liq-venue` }, liq.venue), " if ",
        h("span", { "data-testid": `${prefix}-liq-asset` }, liq.asset), ` ${liq.direction} to `,
        num(`${prefix}-liq-price`, liq.price_usd, fmtPrice, "strong"), " (",
        num(`${prefix}-liq-move`, liq.move, fmtMove, Math.abs(liq.move) < 0.1 ? "bad" : "warn"), ")"]
        : h("span", { class: "good", "data-testid": `${prefix}-liq-venue` }, "no single price move liquidates a venue")),
  ];
}

// ---------- plain words for the risk engine's codes ----------

const SPAN_STEPS = [[0, "+"], [0, "−"], [1 / 3, "+"], [1 / 3, "−"], [-1 / 3, "+"], [-1 / 3, "−"], [2 / 3, "+"],
  [2 / 3, "−"], [-2 / 3, "+"], [-2 / 3, "−"], [1, "+"], [1, "−"], [-1, "+"], [-1, "−"], [3, "extreme"],
  [-3, "extreme"]];

/** A scenario name in words: the risk document's label when it sends one, else read from the code. */
export function scenarioLabel(risk) {
  if (typeof risk?.worst_scenario_label === "string" && risk.worst_scenario_label) return risk.worst_scenario_label;
  return describeScenario(risk?.worst_scenario, risk?.scan_ranges ?? {});
}

export function describeScenario(code, scanRanges = {}) {
  if (typeof code !== "string" || !code) return "—";
  let m = code.match(/^BREAK crash \+ (\S+) depeg$/);
  if (m) return `every risky asset crashes together while ${m[1]} loses its peg`;
  if (code === "BREAK crash") return "every risky asset crashes together (−30 %), stablecoins hold";
  m = code.match(/^BREAK (\S+) depeg$/);
  if (m) return `${m[1]} loses its peg, nothing else moves`;
  m = code.match(/^SPAN (\S+) (\d\d)$/);
  if (m) {
    const step = SPAN_STEPS[Number(m[2]) - 1];
    const who = m[1] === "joint" ? "every risky asset" : m[1];
    if (step) {
      const range = m[1] === "joint" ? null : scanRanges[m[1]];
      let size;
      if (step[0] === 0) size = " unchanged";
      else if (isNum(range)) size = ` ${fmtMove(step[0] * range)}`;
      else size = ` ${step[0] > 0 ? "up" : "down"} ${Math.abs(step[0]) === 3 ? "3×" : `${Math.round(Math.abs(step[0]) * 3)}/3 of`} its scan range`;
      const vol = step[1] === "extreme" ? ", extreme move" : `, volatility ${step[1] === "+" ? "up" : "down"}`;
      return `${who}${size}${vol}`;
    }
  }
  m = code.match(/^HIST (\d+)d (\S+)$/);
  if (m) return `a repeat of the ${m[1]}-day market move to ${m[2]}`;
  m = code.match(/^grid vol ([+-][\d.]+) move ([+-][\d.]+)$/);
  if (m) return `every risky asset ${fmtMove(Number(m[2]))}, volatility ${fmtMove(Number(m[1]))}`;
  return code;
}

/** A risk flag in words: the document's ``flag_notes`` when it sends them, else read from the code. */
export function flagNotes(risk) {
  const flags = Array.isArray(risk?.flags) ? risk.flags : [];
  const notes = risk?.flag_notes;
  if (Array.isArray(notes) && notes.length) return notes.map(String);
  if (notes && typeof notes === "object") return flags.map((f) => notes[f] ?? describeFlag(f));
  return flags.map(describeFlag);
}

export function describeFlag(flag) {
  const m = typeof flag === "string" ? flag.match(/^proxy:([^=]+)=(.+)$/) : null;
  if (m) return `${m[1]} has no price history here; ${m[2]}'s history stands in`;
  if (flag === "no_market_data") return "no price history: every scan range defaults to 30 %";
  return String(flag);
}
