// The wallet page's what-if form: price moves and the wallet's own supply / repay / withdraw / borrow, sent to
// POST /v1/wallets/{address}/whatif; shows every venue's health, the unified health and the liquidation prices
// before and after. It reads only: nothing is sent to any chain. Mounts itself into <section id="whatif">.

import { apiKey, fmtHf, fmtPrice, h, hfClass, num } from "./common.js";

const address = decodeURIComponent(window.location.pathname.replace(/^.*\/ui\/wallet\//, "").replace(/\/+$/, ""));
const base = `/v1/wallets/${encodeURIComponent(address)}`;
const ACTIONS = ["supply", "repay", "withdraw", "borrow"];
const LENDING = new Set(["lending"]);
const MINUS = "\u2212";

const css = `
#whatif form { display: flex; flex-direction: column; gap: 8px; }
#whatif .wi-row { display: flex; flex-wrap: wrap; gap: 6px; align-items: center; }
#whatif input, #whatif select {
  padding: 5px 8px; border-radius: 4px; border: 1px solid var(--line-2); background: var(--bg); color: var(--text);
  font: inherit; min-width: 0;
}
#whatif input.wi-num { font-family: var(--mono); width: 8.5em; }
#whatif input.wi-sym { width: 6.5em; }
#whatif input.wi-market { width: 9em; }
#whatif .wi-label { color: var(--muted); width: 4.5em; }
#whatif .wi-actions { display: flex; flex-wrap: wrap; gap: 6px; }
#whatif .wi-result { margin-top: 12px; overflow-x: auto; }
#whatif table { width: 100%; border-collapse: collapse; }
#whatif th, #whatif td { padding: 4px 5px; border-bottom: 1px solid var(--line); text-align: left; white-space: nowrap; }
#whatif td.r, #whatif th.r { text-align: right; }
#whatif .wi-error { color: #ffb3b1; margin-top: 8px; overflow-wrap: anywhere; }
#whatif .wi-summary { margin: 4px 0 8px; overflow-wrap: anywhere; }
#whatif ul { margin: 6px 0 0; padding-left: 18px; }
`;

let venues = []; // [{venue, kind, assets: [symbol]}] from the health document
let symbols = [];

async function call(method, path, body) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const key = apiKey();
  if (key) headers.Authorization = `Bearer ${key}`;
  const resp = await fetch(path, { method, headers, cache: "no-store", body: body === undefined ? undefined : JSON.stringify(body) });
  let json = null;
  try {
    json = await resp.json();
  } catch {
    /* not JSON */
  }
  if (!resp.ok) {
    const message = json && typeof json.error === "string" ? json.error : `${resp.status} ${resp.statusText}`;
    throw new Error(resp.status === 401 ? `${message} — enter the API key above` : message);
  }
  return json;
}

function input(cls, placeholder, label, attrs = {}) {
  return h("input", { class: cls, placeholder, "aria-label": label, autocomplete: "off", ...attrs });
}

function removable(row) {
  row.append(h("button", { type: "button", title: "remove", "aria-label": "remove", onclick: () => row.remove() }, "×"));
  return row;
}

function priceRow() {
  return removable(h("div", { class: "wi-row", "data-kind": "price" },
    h("span", { class: "wi-label" }, "price"),
    input("wi-sym", "WETH", "symbol", { list: "whatif-symbols", name: "symbol" }),
    h("span", { class: "muted" }, "= $"),
    input("wi-num", "3000", "USD", { inputmode: "decimal", name: "usd" })));
}

function changeRow() {
  const lending = venues.filter((v) => LENDING.has(v.kind));
  const venueField = lending.length
    ? h("select", { name: "venue", "aria-label": "venue" }, lending.map((v) => h("option", { value: v.venue }, v.venue)))
    : input("wi-sym", "venue", "venue", { name: "venue" });
  return removable(h("div", { class: "wi-row", "data-kind": "change" },
    h("select", { name: "action", "aria-label": "action" }, ACTIONS.map((a) => h("option", { value: a }, a))),
    input("wi-num", "amount", "amount", { inputmode: "decimal", name: "amount" }),
    input("wi-sym", "USDC", "asset", { list: "whatif-symbols", name: "asset" }),
    h("span", { class: "muted" }, "on"),
    venueField,
    input("wi-market", "market", "market, e.g. WETH/USDC (optional)", { name: "market" })));
}

function field(row, name) {
  return row.querySelector(`[name="${name}"]`).value.trim();
}

function readForm(form) {
  const prices = {};
  const changes = [];
  for (const row of form.querySelectorAll(".wi-row[data-kind=price]")) {
    const symbol = field(row, "symbol");
    const usd = field(row, "usd");
    if (symbol || usd) prices[symbol] = usd;
  }
  for (const row of form.querySelectorAll(".wi-row[data-kind=change]")) {
    const amount = field(row, "amount");
    const asset = field(row, "asset");
    if (!amount && !asset) continue;
    const change = { action: field(row, "action"), venue: field(row, "venue"), asset, amount };
    const market = field(row, "market");
    if (market) change.market = market;
    changes.push(change);
  }
  return { prices, changes };
}

function delta(before, after) {
  if (typeof before !== "number" || typeof after !== "number") return h("span", { class: "muted" }, before === after ? "" : "–");
  const d = after - before;
  if (Math.abs(d) < 5e-5) return h("span", { class: "muted" }, "0");
  return h("span", { class: d > 0 ? "good" : "bad" }, `${d > 0 ? "+" : MINUS}${Math.abs(d).toFixed(4)}`);
}

function healthCell(testid, state) {
  const cls = state && state.healthy === false ? "bad" : hfClass(state?.health_factor ?? null);
  return num(testid, state?.health_factor ?? null, fmtHf, cls);
}

function renderResult(doc) {
  const rows = doc.venues
    .filter((v) => v.before.health_factor !== null || v.after.health_factor !== null || v.after.positions.length)
    .map((v) => h("tr", {},
      h("td", {}, v.venue),
      h("td", { class: "r" }, healthCell(`whatif-before-${v.venue}`, v.before)),
      h("td", { class: "r" }, healthCell(`whatif-after-${v.venue}`, v.after)),
      h("td", { class: "r" }, delta(v.before.health_factor, v.after.health_factor))));
  const ub = doc.unified.before;
  const ua = doc.unified.after;
  if (ub && ua) {
    rows.push(h("tr", {},
      h("td", {}, h("strong", {}, "unified")),
      h("td", { class: "r" }, num("whatif-unified-before", ub.unified_health ?? null, fmtHf, hfClass(ub.unified_health ?? null))),
      h("td", { class: "r" }, num("whatif-unified-after", ua.unified_health ?? null, fmtHf, hfClass(ua.unified_health ?? null))),
      h("td", { class: "r" }, delta(ub.unified_health ?? null, ua.unified_health ?? null))));
  }
  const was = new Map((ub?.liquidation_prices ?? []).map((p) => [`${p.venue}|${p.asset}|${p.side}`, p.price_usd]));
  const liq = (ua?.liquidation_prices ?? []).map((p, i) => h("tr", {},
    h("td", {}, p.venue),
    h("td", {}, `${p.asset} `, h("span", { class: p.side === "below" ? "bad" : "warn", title: `liquidated ${p.side}` },
      p.side === "below" ? "↓" : "↑")),
    h("td", { class: "r" }, num(`whatif-liq-${i}`, p.price_usd, fmtPrice)),
    h("td", { class: "r" }, num(`whatif-liq-before-${i}`, was.get(`${p.venue}|${p.asset}|${p.side}`) ?? null, fmtPrice, "muted"))));
  const refused = doc.changes.filter((c) => c.refused);
  return h("div", { class: "wi-result", "data-testid": "whatif-result", "data-block": String(doc.block) },
    h("div", { class: "wi-summary", "data-testid": "whatif-summary" }, doc.summary.text),
    h("table", {},
      h("thead", {}, h("tr", {}, h("th", {}, "venue"), h("th", { class: "r" }, "now"), h("th", { class: "r" }, "after"),
        h("th", { class: "r" }, "Δ"))),
      h("tbody", {}, rows)),
    liq.length ? h("table", { style: "margin-top:10px" },
      h("thead", {}, h("tr", {}, h("th", {}, "venue"), h("th", {}, "asset"),
        h("th", { class: "r" }, "liq. after"), h("th", { class: "r" }, "before"))),
      h("tbody", {}, liq)) : null,
    refused.length ? h("ul", { class: "bad", "data-testid": "whatif-refused" },
      refused.map((c) => h("li", {}, `the protocol would refuse step ${c.step} (${c.action} ${c.amount} ${c.asset} on ${c.venue}): ${c.refused}`))) : null,
    doc.notes.length ? h("ul", { class: "faint" }, doc.notes.map((n) => h("li", {}, n))) : null);
}

async function loadVenues() {
  try {
    const health = await call("GET", `${base}/health`);
    venues = health.venues.map((v) => ({ venue: v.venue, kind: v.kind, assets: v.positions.map((p) => p.asset) }));
    symbols = [...new Set(venues.flatMap((v) => v.assets))].sort();
  } catch {
    venues = [];
  }
}

async function mount() {
  const root = document.getElementById("whatif");
  if (!root) return;
  document.head.append(h("style", {}, css));
  await loadVenues();
  const prices = h("div", { class: "wi-prices" }, priceRow());
  const changes = h("div", { class: "wi-changes" }, changeRow());
  const submit = h("button", { type: "submit", "data-testid": "whatif-submit" }, "Compute");
  const out = h("div", { "data-testid": "whatif-output" });
  const form = h("form", { "data-testid": "whatif-form", novalidate: true },
    h("datalist", { id: "whatif-symbols" }, symbols.map((s) => h("option", { value: s }))),
    prices, changes,
    h("div", { class: "wi-actions" },
      h("button", { type: "button", onclick: () => prices.append(priceRow()) }, "+ price"),
      h("button", { type: "button", onclick: () => changes.append(changeRow()) }, "+ change"),
      submit));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    submit.disabled = true;
    out.replaceChildren(h("div", { class: "muted" }, "computing…"));
    try {
      const doc = await call("POST", `${base}/whatif`, readForm(form));
      out.replaceChildren(renderResult(doc));
    } catch (err) {
      out.replaceChildren(h("div", { class: "wi-error", "data-testid": "whatif-error" }, err.message));
    } finally {
      submit.disabled = false;
    }
  });
  root.replaceChildren(
    h("h2", {}, "What if", h("span", { class: "note" }, "prices and your own changes, before → after · nothing is sent to any chain")),
    form, out);
}

mount();
