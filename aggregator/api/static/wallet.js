// The wallet page: polls /v1/wallets/{address}/health and, when its block changes, re-reads the risk document,
// the health history and the alerts and redraws everything. document.body.dataset.block is the block drawn last.

import {
  ApiError, ago, api, banner, describeError, fill, fmtHf, fmtNum, fmtPct, fmtPrice, fmtUsd, h, hfClass, hfColour,
  num, rawValue, refreshSeconds, setupAuth, venueColour,
} from "./common.js";
import { exposureBar, heatmap, historyChart } from "./charts.js";

const address = decodeURIComponent(window.location.pathname.replace(/^.*\/ui\/wallet\//, "").replace(/\/+$/, ""));
const base = `/v1/wallets/${encodeURIComponent(address)}`;
const REFRESH_S = refreshSeconds(2);
const HISTORY_LIMIT = 1000;
const ALERT_LIMIT = 100;
const RETRIES = 3;

const state = {
  renderedBlock: undefined, // block of the last complete render
  tries: 0, // re-reads of an incomplete render (risk behind the health, a failed read) before accepting it
  updatedAt: null,
  busy: false,
  timer: null,
  stopped: false,
  label: null,
  alertsJson: null, // the alerts document drawn last (alerts fire after a sync lands: they are polled on their own)
};

const empty = (text, testid) => h("div", { class: "empty", "data-testid": testid }, text);
const generic = (x) => fmtNum(x, Math.abs(x) < 100 ? 4 : 2);

function venueOrder(names) {
  const sorted = [...new Set(names)].sort();
  return new Map(sorted.map((n, i) => [n, i]));
}

// ---------- header ----------

function renderHeader(health) {
  const block = document.getElementById("block");
  block.dataset.value = rawValue(health.block);
  block.textContent = health.block === null ? "—" : String(health.block);
  const newest = health.venues.find((v) => v.block === health.block);
  document.getElementById("block-time").textContent = newest ? new Date(newest.block_timestamp).toLocaleString() : "";
}

function tickUpdated() {
  const node = document.getElementById("updated");
  node.textContent = state.updatedAt === null ? "waiting for data" : `updated ${ago(Date.now() - state.updatedAt)}`;
}

function setLive(ok) {
  document.getElementById("live-dot").className = `dot ${ok ? "on" : "off"}`;
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
  const stale = risk.block !== null && risk.block !== undefined && risk.block !== Number(state.healthBlock);
  fill("unified",
    h("div", { class: "hero" },
      num("unified-health", risk.unified_health, fmtHf, `big ${hfClass(risk.unified_health)}`),
      h("span", { class: "caption" }, "equity ÷ portfolio margin")),
    stale ? h("div", { class: "warn" }, `risk from block ${risk.block}`) : null,
    h("dl", { class: "kv" },
      row("Equity", num("equity-usd", risk.equity_usd, fmtUsd)),
      row("Portfolio margin", num("portfolio-margin-usd", risk.portfolio_margin_usd, fmtUsd)),
      row("Sum of venue margins", num("sum-venue-margins-usd", risk.sum_of_venue_margins_usd, fmtUsd)),
      row("Netting benefit", num("netting-benefit-usd", risk.netting_benefit_usd, fmtUsd, "good")),
      h("div", { class: "divider" }),
      row("First liquidation ↓", num("first-liq-down", down.move ?? null, (x) => (x === null ? "none" : `↓ ${fmtPct(x)}`)),
        down.venue || null),
      row("First liquidation ↑", num("first-liq-up", up.move ?? null, (x) => (x === null ? "none" : `↑ ${fmtPct(x)}`)),
        up.venue || null),
      row("Worst scenario", h("span", { "data-testid": "worst-scenario" }, risk.worst_scenario ?? "—"),
        h("span", {}, "of ", num("scenario-count", risk.scenario_count, (x) => fmtNum(x, 0)))),
      row("VaR 1d 99%", num("var-1d-99", day.var_usd ?? null, fmtUsd)),
      row("ES 1d 99%", num("es-1d-99", day.es_usd ?? null, fmtUsd)),
    ),
    risk.flags?.length ? h("div", { class: "faint", style: "margin-top:8px" }, `flags: ${risk.flags.join(", ")}`) : null,
  );
}

// ---------- venues ----------

function checkText(v) {
  if (v.matches_onchain === null || v.matches_onchain === undefined) return ["–", "muted"];
  if (!v.matches_onchain) return ["MISMATCH", "bad"];
  return [v.kind === "lending" ? "exact" : "agrees", "good"];
}

function renderVenues(health, risk, order) {
  if (!health.venues.length) {
    fill("venues", empty("no venue snapshot yet", "venues-empty"));
    return;
  }
  const margins = risk?.venue_margins_usd ?? {};
  const cards = health.venues.map((v) => {
    const name = v.venue;
    const hf = v.health_factor;
    const [check, checkCls] = checkText(v);
    const kv = [];
    const row = (label, value) => kv.push(h("dt", {}, label), h("dd", {}, value));
    row("Collateral", num(`venue-collateral-${name}`, v.collateral_usd, fmtUsd));
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
    if (name in margins) row("Scenario margin", num(`venue-margin-${name}`, margins[name], fmtUsd));
    row("Check", h("span", { class: checkCls, "data-testid": `venue-check-${name}` }, check));
    const usage = typeof hf === "number" && hf > 0 ? Math.min(1, 1 / hf) : 0;
    return h("article", {
      class: "venue", "data-testid": `venue-${name}`, style: `border-left-color:${venueColour(order.get(name) ?? 0)}`,
    },
    h("header", {},
      h("span", { class: "name", title: name }, name),
      h("span", { class: "badge" }, v.kind),
      h("span", { class: `badge ${v.status === "ok" ? "ok" : "bad"}`, "data-testid": `venue-status-${name}` }, v.status)),
    h("div", { class: "hf-label" }, hf === null && v.kind === "lp" ? "health factor (no liquidation)" : "health factor"),
    num(`venue-hf-${name}`, hf, fmtHf, `hf ${hfClass(hf)}`),
    h("div", { class: "gauge", title: "debt ÷ liquidation capacity (1 ÷ health factor)" },
      h("div", { style: `width:${(usage * 100).toFixed(1)}%;background:${hfColour(hf)}` })),
    h("dl", { class: "kv" }, kv),
    v.error ? h("div", { class: "error" }, v.error) : null,
    v.flags?.length ? h("div", { class: "faint" }, v.flags.join(", ")) : null);
  });
  fill("venues", cards);
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
      h("td", {}, p.venue),
      h("td", {}, p.asset),
      h("td", { class: p.side === "below" ? "bad" : "warn" }, p.side === "below" ? "↓ below" : "↑ above"),
      h("td", { class: "r" }, num(`liq-price-${key}`, p.price_usd, fmtPrice)),
      h("td", { class: "r" }, num(`liq-current-${key}`, p.current_price_usd, fmtPrice, "muted")),
      h("td", { class: "r" }, num(`liq-distance-${key}`, p.distance, (x) => fmtPct(x, { signed: true }),
        near ? "bad" : "")));
  });
  document.getElementById("liq-note").textContent = "nearest first";
  fill("liq-prices", h("table", {},
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
    ])));
}

// ---------- heatmap ----------

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
  const { svg, maxAbs } = heatmap(grid);
  let worst = null;
  grid.pnl_usd.forEach((row, vi) => row.forEach((v, pi) => {
    if (typeof v === "number" && (worst === null || v < worst.v)) worst = { v, vi, pi };
  }));
  if (Array.isArray(grid.underlyings) && grid.underlyings.length) {
    document.getElementById("heatmap-note").textContent =
      `liquidation-aware P&L, joint move of ${grid.underlyings.join(", ")} × volatility shift`;
  }
  fill("heatmap", svg,
    h("div", { class: "legend" },
      h("span", {}, num("grid-min", -maxAbs, fmtUsd), h("span", { class: "ramp" }), num("grid-max", maxAbs, fmtUsd)),
      h("span", {}, h("span", { class: "liq-key" }), "a venue liquidates"),
      h("span", {}, "white outline: no move"),
      worst ? h("span", {}, "worst ", num("grid-worst", worst.v, (x) => fmtUsd(x, { signed: true }), "bad"),
        ` at price ${fmtPct(grid.price_moves[worst.pi], { dp: 0, signed: true })}, vol ${fmtPct(grid.vol_shifts[worst.vi], { dp: 0, signed: true })}`) : null));
}

// ---------- history ----------

function renderHistory(history, historyError, order) {
  if (!history) {
    fill("history", empty(historyError || "no history yet", "history-empty"));
    return;
  }
  const byVenue = new Map();
  for (const item of history.items ?? []) {
    const hf = item.health_factor;
    if (typeof hf !== "number" || !Number.isFinite(hf) || hf <= 0) continue;
    if (!byVenue.has(item.venue)) byVenue.set(item.venue, []);
    byVenue.get(item.venue).push({ block: item.block, hf });
  }
  const series = [...byVenue.entries()].sort(([a], [b]) => a.localeCompare(b))
    .map(([venue, points]) => ({ venue, points, colour: venueColour(order.get(venue) ?? 0) }));
  const svg = historyChart(series);
  fill("history", svg,
    series.length ? null : empty("no health factor recorded yet", "history-empty"),
    h("div", { class: "legend" },
      series.map((sr) => h("span", {}, h("span", { class: "swatch", style: `background:${sr.colour}` }), sr.venue)),
      h("span", {}, h("span", { class: "swatch", style: "background:var(--red)" }), "liquidation (1.0)"),
      history.next_before_block !== null && history.next_before_block !== undefined
        ? h("span", { class: "faint" }, `newest ${HISTORY_LIMIT} points`) : null));
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
  fill("alerts", h("table", {},
    h("thead", {}, h("tr", {}, ["severity", "kind", "message", "value", "threshold", "block", "fired", "state"]
      .map((c) => h("th", { class: ["value", "threshold", "block"].includes(c) ? "r" : null }, c)))),
    h("tbody", {}, items.map((a) => h("tr", { "data-testid": `alert-${a.id}`, "data-value": rawValue(a.value) },
      h("td", { class: `sev-${a.severity}` }, a.severity ?? ""),
      h("td", {}, a.kind ?? a.rule_id ?? ""),
      h("td", { class: "msg" }, a.message ?? ""),
      h("td", { class: "r" }, num(`alert-value-${a.id}`, a.value ?? null, generic)),
      h("td", { class: "r" }, num(`alert-threshold-${a.id}`, a.threshold ?? null, generic, "muted")),
      h("td", { class: "r" }, num(`alert-block-${a.id}`, a.block ?? null, (x) => (x === null ? "—" : String(x)))),
      h("td", { title: a.fired_at ?? "" }, a.fired_at ? ago(Date.now() - Date.parse(a.fired_at)) : "—"),
      h("td", {}, a.state ?? ""))))));
}

// ---------- refresh loop ----------

function outcome(settled) {
  if (settled.status === "fulfilled") return { doc: settled.value, error: null, failed: false };
  const err = settled.reason;
  if (err instanceof ApiError && err.status === 404) return { doc: null, error: null, failed: false };
  return { doc: null, error: describeError(err), failed: true };
}

async function refreshAll(health) {
  const [riskR, historyR, alertsR] = await Promise.allSettled([
    api(`${base}/risk`), api(`${base}/history?limit=${HISTORY_LIMIT}`), api(`${base}/alerts?limit=${ALERT_LIMIT}`),
  ]);
  const risk = outcome(riskR);
  const history = outcome(historyR);
  const alerts = outcome(alertsR);
  const behind = risk.doc && typeof risk.doc.block === "number" && risk.doc.block < health.block;
  const incomplete = behind || risk.failed || history.failed || alerts.failed;
  state.healthBlock = health.block;
  const order = venueOrder([...health.venues.map((v) => v.venue), ...(history.doc?.items ?? []).map((i) => i.venue)]);
  renderHeader(health);
  renderUnified(risk.doc, risk.error);
  renderVenues(health, risk.doc, order);
  renderLiquidationPrices(risk.doc, risk.error);
  renderExposure(risk.doc, risk.error);
  renderHeatmap(risk.doc, risk.error);
  renderHistory(history.doc, history.error, order);
  renderAlerts(alerts.doc, alerts.error);
  state.alertsJson = alerts.doc ? JSON.stringify(alerts.doc) : null;
  const computed = risk.doc?.computed_at ? Date.parse(risk.doc.computed_at) : NaN;
  state.updatedAt = Number.isFinite(computed) ? Math.min(computed, Date.now()) : Date.now();
  tickUpdated();
  if (incomplete && state.tries < RETRIES) {
    state.tries += 1; // drawn, but read again on the next poll
    return;
  }
  state.tries = 0;
  state.renderedBlock = health.block;
  document.body.dataset.block = String(health.block);
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
  for (const id of ["unified", "venues", "liq-prices", "exposure", "heatmap", "history", "alerts"]) {
    fill(id, empty(message));
  }
}

async function poll() {
  if (state.busy || state.stopped) return;
  state.busy = true;
  try {
    const health = await api(`${base}/health`);
    setLive(true);
    banner(null);
    if (health.block !== state.renderedBlock) await refreshAll(health);
    else await refreshAlerts();
  } catch (err) {
    if (err instanceof ApiError) {
      setLive(err.status === 404);
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
      setLive(false);
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
  setInterval(tickUpdated, 1000);
  loadLabel();
  poll();
}

start();
