// The wallet page: polls /v1/wallets/{address}/health and, when its block changes, re-reads the risk document,
// the health history and the alerts and redraws everything. document.body.dataset.block is the block drawn last.
// It opens with the answer (lowest venue health, unified health, first liquidation), says how old every reading
// is, and shows a banner when the data is stale (the newest sync failed, or nothing new within the bound).

import {
  ApiError, ago, api, banner, describeError, fill, flagNotes, fmtAge, fmtHf, fmtNum, fmtPct, fmtPrice, fmtTime,
  fmtUsd, freshnessOf, h, headlineNodes, headlineOf, hfClass, hfColour, isNarrow, num, onWidthChange, rawValue,
  refreshSeconds, scenarioLabel, setupAuth, staleBanner, staleMessage, tip, UNIFIED_TIP, venueColour,
} from "./common.js";
import { exposureBar, heatmap, historyChart, netWorthChart } from "./charts.js";

const address = decodeURIComponent(window.location.pathname.replace(/^.*\/ui\/wallet\//, "").replace(/\/+$/, ""));
const base = `/v1/wallets/${encodeURIComponent(address)}`;
const REFRESH_S = refreshSeconds(2);
const HISTORY_LIMIT = 1000;
const ALERT_LIMIT = 100;
const RETRIES = 3;

const state = {
  renderedBlock: undefined, // block of the last complete render
  tries: 0, // re-reads of an incomplete render (risk behind the health, a failed read) before accepting it
  busy: false,
  timer: null,
  stopped: false,
  label: null,
  alertsJson: null, // the alerts document drawn last (alerts fire after a sync lands: they are polled on their own)
  health: null, // the documents drawn last (charts are redrawn from them when the width changes)
  risk: null,
  history: null,
  order: new Map(),
  fresh: null, // freshnessOf(health, risk) of the documents drawn last
  reachable: true,
};

const empty = (text, testid) => h("div", { class: "empty", "data-testid": testid }, text);
const generic = (x) => fmtNum(x, Math.abs(x) < 100 ? 4 : 2);
const isNum = (x) => typeof x === "number" && Number.isFinite(x);
const toNum = (x) => (x === null || x === undefined || x === "" ? null : Number(x));

/** A token amount: fewer decimals the larger it is. */
function fmtAmount(x) {
  if (!isNum(x)) return "—";
  const a = Math.abs(x);
  return fmtNum(x, a >= 1000 ? 2 : a >= 1 ? 4 : 6);
}

function venueOrder(names) {
  const sorted = [...new Set(names)].sort();
  return new Map(sorted.map((n, i) => [n, i]));
}

/** Venues riskiest first (as the server ranks them): a venue without a reading, then by health factor, then venues
 * without debt, LP ranges last; by name within a rank. */
function riskRank(v) {
  if (v.status === "error") return [0, 0];
  if (isNum(v.health_factor)) return [1, v.health_factor];
  return [v.kind === "lp" ? 3 : 2, 0];
}

function riskiestFirst(venues) {
  return [...venues].sort((a, b) => {
    const [ra, ha] = riskRank(a);
    const [rb, hb] = riskRank(b);
    return ra - rb || ha - hb || (a.venue < b.venue ? -1 : a.venue > b.venue ? 1 : 0);
  });
}

// ---------- header, freshness ----------

function renderHeader(health) {
  const block = document.getElementById("block");
  block.dataset.value = rawValue(health.block);
  block.textContent = health.block === null ? "—" : String(health.block);
  const newest = health.venues.find((v) => v.block === health.block);
  const time = document.getElementById("block-time");
  time.textContent = newest ? fmtTime(newest.block_timestamp) : "";
  time.title = newest ? newest.block_timestamp : "";
}

/** The top bar's age and dot, the stale banner: from the documents drawn last. Runs every second. */
function tickFreshness() {
  const node = document.getElementById("updated");
  const dot = document.getElementById("live-dot");
  const fresh = state.fresh;
  if (!fresh) {
    node.textContent = state.reachable ? "waiting for data" : "API unreachable";
    dot.className = `dot ${state.reachable ? "" : "off"}`;
    return;
  }
  const age = fresh.ageS(Date.now());
  const stale = fresh.stale;
  node.textContent = age === null ? "age unknown" : `${stale ? "STALE · " : ""}synced ${fmtAge(age)} ago`;
  node.dataset.value = rawValue(age);
  node.className = stale ? "stale-text" : "";
  dot.className = `dot ${!state.reachable ? "off" : stale ? "stale" : "on"}`;
  dot.title = stale ? "the data is stale" : state.reachable ? "live" : "the API cannot be reached";
  document.body.dataset.stale = stale ? "1" : "0";
  staleBanner(stale ? staleMessage(fresh, state.health?.block) : null);
  for (const el of document.querySelectorAll("[data-age-from]")) {
    const t = Number(el.dataset.ageFrom);
    if (Number.isFinite(t)) el.textContent = `${fmtAge((Date.now() - t) / 1000)} ago`;
  }
  for (const el of document.querySelectorAll("[data-synced-age]")) {
    el.textContent = age === null ? "" : `${fmtAge(age)} ago`;
  }
}

function setReachable(ok) {
  state.reachable = ok;
  tickFreshness();
}

async function loadLabel() {
  try {
    const wallets = await api("/v1/wallets");
    const me = wallets.find((w) => w.address.toLowerCase() === address.toLowerCase());
    state.label = me ? me.label : null;
  } catch {
    state.label = null;
  }
  document.getElementById("wallet-label").textContent = state.label || "wallet";
  document.title = `xmargin · ${state.label || address.slice(0, 10)}`;
}

/** "computed 12 s ago" beside a card's title: the risk result's age. */
function riskAge(risk) {
  const t = Date.parse(risk?.computed_at ?? "");
  if (!Number.isFinite(t)) return null;
  return h("span", { class: "age", title: risk.computed_at }, "computed ",
    h("span", { "data-age-from": String(t) }, `${fmtAge((Date.now() - t) / 1000)} ago`),
    risk.block !== undefined && risk.block !== null ? ` · block ${risk.block}` : "");
}

// ---------- headline ----------

function renderHeadline(health, risk) {
  const line = headlineOf(health, risk);
  fill("headline", headlineNodes(line, "headline"));
  document.getElementById("headline").dataset.source = line.source;
}

// ---------- unified health ----------

function renderUnified(risk, riskError) {
  if (!risk) {
    fill("unified", empty(riskError || "no risk result yet — the next sync computes it", "unified-empty"));
    return;
  }
  const down = risk.first_liquidation?.down ?? {};
  const up = risk.first_liquidation?.up ?? {};
  const day = risk.var_es?.["1d"]?.["0.99"] ?? {};
  const row = (label, value, sub) => [h("dt", {}, label), h("dd", {}, value, sub ? h("span", { class: "sub" }, sub) : null)];
  const behind = risk.block !== null && risk.block !== undefined && risk.block !== Number(state.health?.block);
  const notes = flagNotes(risk);
  fill("unified",
    h("div", { class: "hero" },
      num("unified-health", risk.unified_health, fmtHf, `big ${hfClass(risk.unified_health)}`),
      tip(h("span", { class: "caption" }, "equity ÷ portfolio margin", h("span", { class: "i", "aria-hidden": "true" })),
        risk.summary?.unified_health_meaning ?? state.health?.summary?.unified_health_meaning ?? UNIFIED_TIP, "unified-tip")),
    h("div", { class: "card-age" }, riskAge(risk)),
    behind ? h("div", { class: "warn" }, `risk from block ${risk.block}, behind the venues' block`) : null,
    h("dl", { class: "kv" },
      row("Equity", num("equity-usd", risk.equity_usd, fmtUsd)),
      row("Portfolio margin", num("portfolio-margin-usd", risk.portfolio_margin_usd, fmtUsd)),
      row("Sum of venue margins", num("sum-venue-margins-usd", risk.sum_of_venue_margins_usd, fmtUsd)),
      row("Netting benefit", num("netting-benefit-usd", risk.netting_benefit_usd, fmtUsd, "good")),
      h("div", { class: "divider" }),
      row("All prices fall", num("first-liq-down", down.move ?? null, (x) => (x === null ? "none" : `↓ ${fmtPct(x)}`)),
        down.venue ? `${down.venue} first` : null),
      row("All prices rise", num("first-liq-up", up.move ?? null, (x) => (x === null ? "none" : `↑ ${fmtPct(x)}`)),
        up.venue ? `${up.venue} first` : null),
      row("Worst scenario", h("span", { "data-testid": "worst-scenario", "data-value": rawValue(risk.worst_scenario),
        class: "scenario" }, scenarioLabel(risk)),
      h("span", {}, "of ", num("scenario-count", risk.scenario_count, (x) => fmtNum(x, 0)))),
      row("VaR 1d 99%", num("var-1d-99", day.var_usd ?? null, fmtUsd)),
      row("ES 1d 99%", num("es-1d-99", day.es_usd ?? null, fmtUsd)),
    ),
    notes.length ? h("ul", { class: "notes", "data-testid": "flag-notes" }, notes.map((n) => h("li", {}, n))) : null,
  );
}

// ---------- venues ----------

function checkText(v) {
  if (v.matches_onchain === null || v.matches_onchain === undefined) return ["–", "muted"];
  if (!v.matches_onchain) return ["MISMATCH", "bad"];
  return [v.kind === "lending" ? "exact" : "agrees", "good"];
}

/** When a venue's figures were read: the server's per-venue age when it sends one, else its block (or venue) time. */
function venueAge(v) {
  if (isNum(v.age_s)) return { at: Date.now() - v.age_s * 1000, what: "synced" };
  const t = Date.parse(v.synced_at ?? v.venue_timestamp ?? v.block_timestamp ?? "");
  return Number.isFinite(t) ? { at: t, what: v.synced_at ? "synced" : v.venue_timestamp ? "venue time" : "block time" }
    : null;
}

function statusBadge(v, stale) {
  const venueStale = v.status === "stale" || v.stale === true;
  const text = stale || venueStale ? (v.status === "error" ? "error" : "stale") : v.status;
  const cls = text === "ok" ? "ok" : text === "stale" ? "warn" : "bad";
  return h("span", { class: `badge ${cls}`, "data-testid": `venue-status-${v.venue}`, "data-value": v.status,
    title: v.error || (text === "stale" ? "these are the last known values" : "") }, text);
}

function availableToBorrow(v) {
  for (const p of v.positions ?? []) {
    const usd = p.detail?.available_borrows_usd;
    if (isNum(usd)) return usd;
  }
  return null;
}

function renderVenues(health, risk, order, stale) {
  if (!health.venues.length) {
    fill("venues", empty("no venue snapshot yet", "venues-empty"));
    return;
  }
  const margins = risk?.venue_margins_usd ?? {};
  const cards = riskiestFirst(health.venues).map((v) => {
    const name = v.venue;
    const hf = v.health_factor;
    const [check, checkCls] = checkText(v);
    const kv = [];
    const row = (label, value) => kv.push(h("dt", {}, label), h("dd", {}, value));
    row(v.kind === "perp" ? "Account value" : v.kind === "lp" ? "Value" : "Collateral",
      num(`venue-collateral-${name}`, v.collateral_usd, fmtUsd));
    row("Debt", num(`venue-debt-${name}`, v.debt_usd, fmtUsd));
    if (v.kind === "perp") {
      row("Equity", num(`venue-equity-${name}`, v.equity_usd ?? null, fmtUsd));
      row("Maintenance", num(`venue-maintenance-${name}`, v.maintenance_margin_usd ?? null, fmtUsd));
      for (const [coin, px] of Object.entries(v.liquidation_price ?? {})) {
        row(`Liq. ${coin}`, num(`venue-liq-${name}-${coin}`, px, fmtPrice));
      }
    }
    if (v.liquidation_threshold !== null && v.liquidation_threshold !== undefined) {
      row("Liq. threshold", num(`venue-lt-${name}`, v.liquidation_threshold, fmtPct));
    }
    const borrow = availableToBorrow(v);
    if (borrow !== null) row("Available to borrow", num(`venue-available-${name}`, borrow, fmtUsd));
    if (name in margins) row("Scenario margin", num(`venue-margin-${name}`, margins[name], fmtUsd));
    row("Check", h("span", { class: checkCls, "data-testid": `venue-check-${name}` }, check));
    const usage = typeof hf === "number" && hf > 0 ? Math.min(1, 1 / hf) : 0;
    const age = venueAge(v);
    return h("article", {
      class: "venue", "data-testid": `venue-${name}`, style: `border-left-color:${venueColour(order.get(name) ?? 0)}`,
    },
    h("header", {},
      h("span", { class: "name", title: name }, name),
      h("span", { class: "badge" }, v.kind),
      statusBadge(v, stale)),
    h("div", { class: "hf-label" }, hf === null && v.kind === "lp" ? "health factor (no liquidation)" : "health factor"),
    num(`venue-hf-${name}`, hf, fmtHf, `hf ${stale ? "muted" : hfClass(hf)}`),
    h("div", { class: "gauge", title: "debt ÷ liquidation capacity (1 ÷ health factor)" },
      h("div", { style: `width:${(usage * 100).toFixed(1)}%;background:${stale ? "var(--faint)" : hfColour(hf)}` })),
    h("dl", { class: "kv" }, kv),
    h("div", { class: "age", "data-testid": `venue-age-${name}` }, `block ${v.block}`,
      age ? [` · ${age.what} `, h("span", { "data-age-from": String(age.at) }, `${fmtAge((Date.now() - age.at) / 1000)} ago`)]
        : null),
    v.error ? h("div", { class: "error" }, v.error) : null,
    v.flags?.length ? h("div", { class: "faint" }, v.flags.join(", ")) : null);
  });
  fill("venues", cards);
}

// ---------- positions ----------

function priceAge(p) {
  if (!p.price_source && !isNum(p.price_age_s)) return null;
  return h("div", { class: "age" }, `price ${p.price_source ?? "venue mark"}`,
    isNum(p.price_age_s) ? `, ${fmtAge(p.price_age_s)} old at the block` : "");
}

function kvRows(rows) {
  return h("dl", { class: "kv" }, rows.filter(Boolean).map(([label, value]) => [h("dt", {}, label), h("dd", {}, value)]));
}

function lendingCard(v, p, key) {
  const d = p.detail ?? {};
  const id = (field) => `pos-${key}-${field}`;
  const rows = [
    ["Amount", [num(id("amount"), p.amount, fmtAmount), ` ${p.asset}`]],
    ["Value", num(id("value"), p.value_usd, fmtUsd)],
  ];
  const ltv = isNum(d.ltv_bps) ? d.ltv_bps / 1e4 : null;
  const lt = isNum(d.liquidation_threshold_bps) ? d.liquidation_threshold_bps / 1e4 : isNum(d.lltv) ? d.lltv : null;
  if (p.side === "collateral") {
    if (ltv !== null) rows.push(["Max LTV", num(id("ltv"), ltv, fmtPct)]);
    if (lt !== null) rows.push([isNum(d.lltv) ? "LLTV" : "Liq. threshold", num(id("lt"), lt, fmtPct)]);
  }
  if (isNum(d.max_withdraw)) {
    rows.push(["Max withdraw", [num(id("max-withdraw"), d.max_withdraw, fmtAmount), ` ${p.asset} `,
      h("span", { class: "sub" }, "(", num(id("max-withdraw-usd"), d.max_withdraw_usd ?? null, fmtUsd), ")")]]);
  }
  if (p.side === "debt" && isNum(d.available_borrow)) {
    rows.push(["Can borrow", [num(id("available-borrow"), d.available_borrow, fmtAmount), ` ${p.asset}`]]);
  } else if (p.side === "debt" && isNum(d.available_borrows_usd)) {
    rows.push(["Can borrow", num(id("available-borrow-usd"), d.available_borrows_usd, fmtUsd)]);
  }
  if (isNum(d.health_factor) && d.pair) rows.push([`${d.pair} health`, num(id("market-hf"), d.health_factor, fmtHf)]);
  return [rows, d.pair ? `${d.pair} market` : null];
}

function perpCard(v, p, key) {
  const d = p.detail ?? {};
  const id = (field) => `pos-${key}-${field}`;
  const entry = toNum(d.entry_px);
  const mark = isNum(d.mark_px) ? d.mark_px : p.price_usd;
  const liq = isNum(d.liquidation_px) ? d.liquidation_px : v.liquidation_price?.[p.asset] ?? null;
  const pnl = toNum(d.unrealized_pnl_usd);
  const distance = isNum(liq) && isNum(mark) && mark ? liq / mark - 1 : null;
  const rows = [
    ["Size", [h("span", { class: p.amount < 0 ? "bad" : "good" }, p.amount < 0 ? "short " : "long "),
      num(id("size"), Math.abs(p.amount), fmtAmount), ` ${p.asset}`]],
    ["Notional", num(id("notional"), isNum(d.notional_usd) ? Math.abs(d.notional_usd) : Math.abs(p.value_usd), fmtUsd)],
    ["Entry", num(id("entry"), entry, fmtPrice)],
    ["Mark", num(id("mark"), mark, fmtPrice)],
    ["Unrealized P&L", num(id("pnl"), pnl, (x) => fmtUsd(x, { signed: true }), isNum(pnl) && pnl < 0 ? "bad" : "good")],
    ["Leverage", [isNum(d.effective_leverage) ? [num(id("leverage"), d.effective_leverage, (x) => fmtNum(x, 2)), "×"] : "—",
      isNum(d.leverage) ? h("span", { class: "sub" }, `setting ${d.leverage}×${d.cross === false ? " isolated" : d.cross ? " cross" : ""}`) : null]],
    ["Liq. price", [num(id("liq"), liq, fmtPrice, "strong"),
      isNum(distance) ? h("span", { class: `sub ${Math.abs(distance) < 0.1 ? "bad" : ""}` },
        num(id("liq-distance"), distance, (x) => fmtPct(x, { signed: true }))) : null]],
  ];
  return [rows, null];
}

/** One card per concentrated-liquidity position (an LP NFT): range as prices, in or out of range, both legs and the fees owed. */
function lpCard(v, legs, key) {
  const d = legs[0].detail ?? {};
  const id = (field) => `pos-${key}-${field}`;
  const pair = d.range_base && d.range_quote ? `${d.range_quote} per ${d.range_base}` : null;
  const inRange = d.in_range;
  const rows = [
    ["Range", isNum(d.range_lower) ? [num(id("range-lower"), d.range_lower, fmtNum4), " – ",
      num(id("range-upper"), d.range_upper, fmtNum4), pair ? h("span", { class: "sub" }, pair) : null]
      : `ticks ${d.tick_lower} – ${d.tick_upper}`],
    ["Pool price", isNum(d.range_price) ? num(id("range-price"), d.range_price, fmtNum4) : `tick ${d.tick}`],
    ["Status", h("span", { class: `badge ${inRange ? "ok" : "warn"}`, "data-testid": id("in-range"),
      "data-value": rawValue(inRange) }, inRange ? "in range" : "out of range")],
  ];
  let fees = 0;
  for (const p of legs) {
    rows.push([p.asset, [num(id(`amount-${p.asset}`), p.amount, fmtAmount), " ",
      h("span", { class: "sub" }, "(", num(id(`value-${p.asset}`), p.value_usd, fmtUsd), ")")]]);
  }
  for (const p of legs) {
    const f = p.detail?.fees;
    if (isNum(p.detail?.fees_usd)) fees += p.detail.fees_usd;
    rows.push([`Fees owed ${p.asset}`, [num(id(`fees-${p.asset}`), isNum(f) ? f : null, fmtAmount), " ",
      h("span", { class: "sub" }, "(", num(id(`fees-usd-${p.asset}`), p.detail?.fees_usd ?? null, fmtUsd), ")")]]);
  }
  rows.push(["Fees owed", num(id("fees-usd"), fees, fmtUsd, "good")]);
  return rows;
}

function fmtNum4(x) {
  if (!isNum(x)) return "—";
  return fmtNum(x, Math.abs(x) < 10 ? 6 : 2);
}

function renderPositions(health, order) {
  const cards = [];
  const seen = new Map();
  const unique = (key) => {
    const n = (seen.get(key) ?? 0) + 1;
    seen.set(key, n);
    return n > 1 ? `${key}-${n}` : key;
  };
  for (const v of riskiestFirst(health.venues)) {
    const colour = venueColour(order.get(v.venue) ?? 0);
    const nfts = new Map();
    for (const p of v.positions ?? []) {
      if (p.side === "lp") {
        const idKey = String(p.detail?.token_id ?? p.asset);
        if (!nfts.has(idKey)) nfts.set(idKey, []);
        nfts.get(idKey).push(p);
        continue;
      }
      const key = unique(`${v.venue}-${p.asset}-${p.side}`);
      const [rows, sub] = v.kind === "perp" ? perpCard(v, p, key) : lendingCard(v, p, key);
      cards.push(h("article", { class: "position", "data-testid": `pos-${key}`, style: `border-left-color:${colour}` },
        h("header", {}, h("span", { class: "name" }, `${p.asset}`), h("span", { class: `badge side-${p.side}` }, p.side),
          h("span", { class: "venue-name" }, v.venue)),
        sub ? h("div", { class: "faint" }, sub) : null,
        kvRows(rows), priceAge(p)));
    }
    for (const [tokenId, legs] of nfts) {
      const key = unique(`${v.venue}-${tokenId}`);
      const d = legs[0].detail ?? {};
      const title = d.token0 && d.token1 ? `${d.token0}/${d.token1}` : legs.map((p) => p.asset).join("/");
      cards.push(h("article", { class: "position", "data-testid": `pos-${key}`, style: `border-left-color:${colour}` },
        h("header", {}, h("span", { class: "name" }, title),
          h("span", { class: "badge" }, isNum(d.fee) ? `${fmtNum(d.fee / 1e4, 2)} %` : "lp"),
          h("span", { class: "venue-name" }, `${v.venue} #${tokenId}`)),
        kvRows(lpCard(v, legs, key)), priceAge(legs[0])));
    }
  }
  fill("positions", cards.length ? cards : empty("no open position", "positions-empty"));
}

// ---------- liquidation prices ----------

function renderLiquidationPrices(risk, riskError) {
  if (!risk) {
    fill("liq-prices", empty(riskError || "no risk result yet", "liq-empty"));
    return;
  }
  const rows = (risk.liquidation_prices ?? []).map((p) => ({
    ...p,
    distance: typeof p.price_usd === "number" && p.current_price_usd ? p.price_usd / p.current_price_usd - 1 : null,
  }));
  if (!rows.length) {
    fill("liq-prices", empty("no position of this wallet can be liquidated by a price move", "liq-empty"));
    return;
  }
  rows.sort((a, b) => (a.distance === null) - (b.distance === null) || Math.abs(a.distance) - Math.abs(b.distance));
  const seen = new Map();
  const body = rows.map((p) => {
    let key = `${p.venue}-${p.asset}`;
    const n = (seen.get(key) ?? 0) + 1;
    seen.set(key, n);
    if (n > 1) key = `${key}-${n}`;
    const near = p.distance !== null && Math.abs(p.distance) < 0.1;
    return h("tr", { class: near ? "near" : null },
      h("td", { "data-label": "venue" }, p.venue),
      h("td", { "data-label": "asset" }, p.asset),
      h("td", { "data-label": "liquidates", class: p.side === "below" ? "bad" : "warn" },
        p.side === "below" ? `if it falls below` : `if it rises above`),
      h("td", { "data-label": "liq. price", class: "r" }, num(`liq-price-${key}`, p.price_usd, fmtPrice)),
      h("td", { "data-label": "now", class: "r" }, num(`liq-current-${key}`, p.current_price_usd, fmtPrice, "muted")),
      h("td", { "data-label": "distance", class: "r" }, num(`liq-distance-${key}`, p.distance, (x) => fmtPct(x, { signed: true }),
        near ? "bad" : "")));
  });
  fill("liq-note", "nearest first · ", riskAge(risk));
  fill("liq-prices", h("table", { class: "cards" },
    h("thead", {}, h("tr", {}, h("th", {}, "venue"), h("th", {}, "asset"), h("th", {}, "liquidates"),
      h("th", { class: "r" }, "liq. price"), h("th", { class: "r" }, "now"), h("th", { class: "r" }, "distance"))),
    h("tbody", {}, body)));
}

// ---------- exposure ----------

function renderExposure(risk, riskError) {
  if (!risk) {
    fill("exposure", empty(riskError || "no risk result yet", "exposure-empty"));
    return;
  }
  const entries = Object.entries(risk.net_exposure_usd ?? {}).sort((a, b) => Math.abs(b[1]) - Math.abs(a[1]));
  if (!entries.length) {
    fill("exposure", empty("no exposure", "exposure-empty"));
    return;
  }
  const maxAbs = Math.max(...entries.map(([, v]) => Math.abs(v)));
  fill("exposure", h("div", { class: "bars" },
    entries.map(([asset, value]) => [
      h("span", { class: "asset" }, asset),
      exposureBar(value, maxAbs),
      num(`exposure-${asset}`, value, (x) => fmtUsd(x, { signed: true }), value < 0 ? "bad" : "good"),
    ])), h("div", { class: "age" }, riskAge(risk)));
}

// ---------- heatmap ----------

/** The underlyings the grid moves, in words: the document's ``moved`` when it sends it, else the grid's underlyings
 * the wallet is exposed to (an underlying without exposure moves nothing). */
function movedUnderlyings(risk) {
  const grid = risk.pnl_grid ?? {};
  if (typeof grid.moved === "string" && grid.moved) return grid.moved;
  if (Array.isArray(grid.moved) && grid.moved.length) return grid.moved.join(", ");
  const exposure = risk.net_exposure_usd ?? {};
  const unds = Array.isArray(grid.underlyings) ? grid.underlyings : [];
  const held = unds.filter((u) => isNum(exposure[u]) && Math.abs(exposure[u]) > 0.005);
  if (!held.length && unds.length) return `${unds.join(", ")} (none of them held: no price move of the grid matters)`;
  return held.join(", ");
}

function chartWidth(id) {
  const node = document.getElementById(id);
  return Math.max(240, Math.floor(node.clientWidth || node.parentElement.clientWidth || 1100));
}

function renderHeatmap(risk, riskError) {
  const grid = risk?.pnl_grid;
  if (!risk) {
    fill("heatmap", empty(riskError || "no risk result yet", "heatmap-empty"));
    return;
  }
  if (!grid || !Array.isArray(grid.price_moves) || !Array.isArray(grid.vol_shifts) || !Array.isArray(grid.pnl_usd)) {
    fill("heatmap", empty("no grid", "heatmap-empty"));
    return;
  }
  const { svg, maxAbs, rows, cols } = heatmap(grid, { width: chartWidth("heatmap"), narrow: isNarrow() });
  let worst = null;
  for (const vi of rows) for (const pi of cols) {
    const v = grid.pnl_usd[vi]?.[pi];
    if (typeof v === "number" && (worst === null || v < worst.v)) worst = { v, vi, pi };
  }
  const moved = movedUnderlyings(risk) || "every risky asset";
  const together = moved.includes(",") ? `${moved} move together` : `${moved} moves`;
  fill("heatmap-note", `liquidation-aware P&L when ${together}` + (rows.length > 1 ? ", by volatility shift" : ""));
  const hidden = grid.price_moves.length - cols.length;
  fill("heatmap", svg,
    h("div", { class: "legend" },
      h("span", {}, num("grid-min", -maxAbs, fmtUsd), h("span", { class: "ramp" }), num("grid-max", maxAbs, fmtUsd)),
      h("span", {}, h("span", { class: "liq-key" }), "a venue liquidates"),
      h("span", {}, "white outline: no move"),
      worst ? h("span", {}, "worst ", num("grid-worst", worst.v, (x) => fmtUsd(x, { signed: true }), "bad"),
        ` if prices move ${fmtPct(grid.price_moves[worst.pi], { dp: 0, signed: true })}`
        + (rows.length > 1 ? `, vol ${fmtPct(grid.vol_shifts[worst.vi], { dp: 0, signed: true })}` : "")) : null,
      rows.length === 1 && grid.vol_shifts.length > 1 ? h("span", { class: "faint" },
        "no options in the book: a volatility shift changes nothing, one row shown") : null,
      hidden > 0 ? h("span", { class: "faint" }, `${cols.length} of ${grid.price_moves.length} moves shown (narrow screen)`) : null,
      riskAge(risk)));
}

// ---------- history ----------

function historyPoints(history) {
  const byVenue = new Map();
  for (const item of history.items ?? []) {
    const hf = item.health_factor;
    const t = Date.parse(item.block_timestamp);
    if (typeof hf !== "number" || !Number.isFinite(hf) || hf <= 0 || !Number.isFinite(t)) continue;
    if (!byVenue.has(item.venue)) byVenue.set(item.venue, []);
    byVenue.get(item.venue).push({ block: item.block, t, hf });
  }
  return byVenue;
}

/** Unified health over time, when the server sends it with the history (``unified_health``: [{block,
 * block_timestamp, unified_health}]); null otherwise. */
function unifiedPoints(history) {
  const list = history.unified_health;
  if (!Array.isArray(list)) return null;
  return list.map((p) => ({ block: p.block, t: Date.parse(p.block_timestamp), value: p.unified_health }))
    .filter((p) => Number.isFinite(p.t));
}

function renderHistory(history, historyError, order) {
  if (!history) {
    fill("history", empty(historyError || "no history yet", "history-empty"));
    return;
  }
  const series = [...historyPoints(history).entries()].sort(([a], [b]) => a.localeCompare(b))
    .map(([venue, points]) => ({ venue, points, colour: venueColour(order.get(venue) ?? 0) }));
  const unified = unifiedPoints(history);
  const { svg, yHi, over } = historyChart(series, { width: chartWidth("history"), narrow: isNarrow(), unified });
  fill("history", svg,
    series.length ? null : empty("no health factor recorded yet", "history-empty"),
    h("div", { class: "legend" },
      series.map((sr) => h("span", {}, h("span", { class: "swatch", style: `background:${sr.colour}` }), sr.venue)),
      unified ? h("span", {}, h("span", { class: "swatch dashed" }), "unified health") : null,
      h("span", {}, h("span", { class: "swatch", style: "background:var(--red)" }), "liquidation (1.0)"),
      over ? h("span", { class: "faint" }, `▲ above ${yHi}: drawn on the top edge`) : null,
      unified ? null : h("span", { class: "faint", "data-testid": "history-no-unified" },
        "unified health over time: not served by this API yet"),
      history.next_before_block !== null && history.next_before_block !== undefined
        ? h("span", { class: "faint" }, `newest ${HISTORY_LIMIT} points`) : null));
}

function renderNetWorth(history, historyError) {
  if (!history) {
    fill("networth", empty(historyError || "no history yet", "networth-empty"));
    return;
  }
  const list = Array.isArray(history.net_worth) ? history.net_worth : null;
  if (!list) {
    fill("networth", empty("this API does not serve net worth yet", "networth-empty"));
    return;
  }
  const points = list.map((p) => ({ block: p.block, t: Date.parse(p.block_timestamp), value: p.net_worth_usd }))
    .filter((p) => Number.isFinite(p.t) && isNum(p.value));
  if (!points.length) {
    fill("networth", empty("no net worth recorded yet", "networth-empty"));
    return;
  }
  const latest = points.reduce((a, b) => (b.block > a.block ? b : a));
  const first = points.reduce((a, b) => (b.block < a.block ? b : a));
  fill("networth",
    h("div", { class: "hero small" }, num("networth-now", latest.value, fmtUsd, latest.value < 0 ? "bad" : ""),
      h("span", { class: "caption" }, "now · "),
      num("networth-change", latest.value - first.value, (x) => fmtUsd(x, { signed: true }),
        Math.abs(latest.value - first.value) < 0.005 ? "muted" : latest.value - first.value < 0 ? "bad" : "good"),
      h("span", { class: "caption" }, ` since ${fmtTime(first.t)}`)),
    netWorthChart(points, { width: chartWidth("networth"), narrow: isNarrow() }),
    h("div", { class: "legend" }, h("span", { class: "faint" },
      "every venue's holdings less its debts (perps: account equity; LP: position value)")));
}

// ---------- alerts ----------

function renderAlerts(alerts, alertsError) {
  if (!alerts) {
    fill("alerts", empty(alertsError || "alerts are not available on this server", "alerts-empty"));
    return;
  }
  const items = alerts.items ?? [];
  if (!items.length) {
    fill("alerts", empty("no alert has fired for this wallet", "alerts-empty"));
    return;
  }
  const cols = ["severity", "kind", "message", "value", "threshold", "block", "fired", "state"];
  fill("alerts", h("table", { class: "cards" },
    h("thead", {}, h("tr", {}, cols.map((c) => h("th", { class: ["value", "threshold", "block"].includes(c) ? "r" : null }, c)))),
    h("tbody", {}, items.map((a) => h("tr", { "data-testid": `alert-${a.id}`, "data-value": rawValue(a.value) },
      h("td", { "data-label": "severity", class: `sev-${a.severity}` }, a.severity ?? ""),
      h("td", { "data-label": "kind" }, a.kind ?? a.rule_id ?? ""),
      h("td", { "data-label": "message", class: "msg" }, a.message ?? ""),
      h("td", { "data-label": "value", class: "r" }, num(`alert-value-${a.id}`, a.value ?? null, generic)),
      h("td", { "data-label": "threshold", class: "r" }, num(`alert-threshold-${a.id}`, a.threshold ?? null, generic, "muted")),
      h("td", { "data-label": "block", class: "r" }, num(`alert-block-${a.id}`, a.block ?? null, (x) => (x === null ? "—" : String(x)))),
      h("td", { "data-label": "fired", title: a.fired_at ?? "" }, a.fired_at ? ago(Date.now() - Date.parse(a.fired_at)) : "—"),
      h("td", { "data-label": "state" }, a.state ?? ""))))));
}

// ---------- refresh loop ----------

function outcome(settled) {
  if (settled.status === "fulfilled") return { doc: settled.value, error: null, failed: false };
  const err = settled.reason;
  if (err instanceof ApiError && err.status === 404) return { doc: null, error: null, failed: false };
  return { doc: null, error: describeError(err), failed: true };
}

function drawCharts() {
  if (!state.health) return;
  renderHeatmap(state.risk?.doc ?? null, state.risk?.error ?? null);
  renderHistory(state.history?.doc ?? null, state.history?.error ?? null, state.order);
  renderNetWorth(state.history?.doc ?? null, state.history?.error ?? null);
}

async function refreshAll(health, fetchedAt) {
  const [riskR, historyR, alertsR] = await Promise.allSettled([
    api(`${base}/risk`), api(`${base}/history?limit=${HISTORY_LIMIT}`), api(`${base}/alerts?limit=${ALERT_LIMIT}`),
  ]);
  const risk = outcome(riskR);
  const history = outcome(historyR);
  const alerts = outcome(alertsR);
  const behind = risk.doc && typeof risk.doc.block === "number" && risk.doc.block < health.block;
  const incomplete = behind || risk.failed || history.failed || alerts.failed;
  state.health = health;
  state.risk = risk;
  state.history = history;
  state.fresh = freshnessOf(health, risk.doc, fetchedAt);
  const stale = state.fresh.stale;
  const order = venueOrder([...health.venues.map((v) => v.venue), ...(history.doc?.items ?? []).map((i) => i.venue)]);
  state.order = order;
  renderHeader(health);
  renderHeadline(health, risk.doc);
  renderUnified(risk.doc, risk.error);
  renderVenues(health, risk.doc, order, stale);
  renderPositions(health, order);
  renderLiquidationPrices(risk.doc, risk.error);
  renderExposure(risk.doc, risk.error);
  drawCharts();
  renderAlerts(alerts.doc, alerts.error);
  state.alertsJson = alerts.doc ? JSON.stringify(alerts.doc) : null;
  tickFreshness();
  if (incomplete && state.tries < RETRIES) {
    state.tries += 1; // drawn, but read again on the next poll
    return;
  }
  state.tries = 0;
  state.renderedBlock = health.block;
  state.renderedFreshness = freshnessKey(health);
  document.body.dataset.block = String(health.block);
}

/** What, besides the block, makes a new health document worth a redraw: a sync outcome or a venue's status. */
function freshnessKey(health) {
  const f = health.freshness;
  return JSON.stringify([f?.stale ?? null, f?.last_sync?.status ?? null, f?.last_sync?.at ?? null,
    f?.failing_since ?? null, health.venues.map((v) => [v.venue, v.status, v.stale ?? null, v.error ?? null])]);
}

/** Alert rules run after a sync has landed, so an alert of this block can arrive after the block was drawn. */
async function refreshAlerts() {
  let doc;
  try {
    doc = await api(`${base}/alerts?limit=${ALERT_LIMIT}`);
  } catch {
    return; // the health poll reports a broken API; the alerts keep what was drawn
  }
  const json = JSON.stringify(doc);
  if (json !== state.alertsJson) {
    state.alertsJson = json;
    renderAlerts(doc, null);
  }
}

function showNoData(message) {
  if (state.renderedBlock !== undefined) return;
  fill("headline", h("span", { class: "muted" }, message));
  for (const id of ["unified", "venues", "positions", "liq-prices", "exposure", "heatmap", "history", "networth", "alerts"]) {
    fill(id, empty(message));
  }
}

async function poll() {
  if (state.busy || state.stopped) return;
  state.busy = true;
  try {
    const health = await api(`${base}/health`);
    const fetchedAt = Date.now();
    setReachable(true);
    banner(null);
    if (health.block !== state.renderedBlock || freshnessKey(health) !== state.renderedFreshness) {
      await refreshAll(health, fetchedAt);
    } else {
      if (state.fresh && health.freshness) state.fresh = freshnessOf(health, state.risk?.doc ?? null, fetchedAt);
      await refreshAlerts();
    }
  } catch (err) {
    if (err instanceof ApiError) {
      setReachable(err.status === 404);
      if (err.status === 401) {
        banner("This API needs a key: paste it below.");
      } else if (err.status === 404 && /not tracked/.test(err.message)) {
        banner(`${err.message}: add it with \`xmargin wallet add\`.`);
        showNoData("this wallet is not tracked");
      } else if (err.status === 404) {
        banner(`${err.message} — waiting for the first sync.`, "info");
        showNoData("no data yet");
      } else if (err.status === 400) {
        banner(err.message);
        showNoData("not a wallet address");
        state.stopped = true;
      } else {
        banner(`the API answered ${err.status}: ${err.message}`);
      }
    } else {
      setReachable(false);
      banner(describeError(err));
    }
  } finally {
    state.busy = false;
    schedule();
  }
}

function schedule() {
  clearTimeout(state.timer);
  if (!state.stopped) state.timer = setTimeout(poll, REFRESH_S * 1000);
}

function start() {
  document.getElementById("wallet-address").textContent = address;
  setupAuth(() => {
    state.renderedBlock = undefined;
    state.stopped = false;
    loadLabel();
    clearTimeout(state.timer);
    poll();
  });
  setInterval(tickFreshness, 1000);
  onWidthChange(drawCharts);
  loadLabel();
  poll();
}

start();
