// The wallet list: every tracked wallet with its newest unified health, its lowest venue health and its first
// liquidation, riskiest first. It opens with the riskiest wallet's line, says how old each wallet's data is and
// shows a banner when any wallet's data is stale. On a phone the table becomes one card per wallet.

import {
  ApiError, api, banner, commonVerb, describeError, fill, fmtAge, fmtHf, fmtMove, fmtUsd, freshnessOf, h, headlineNodes, headlineOf,
  hfClass, morph, num, rawValue, refreshSeconds, setupAuth, staleBanner, staleMessage, tip, UNIFIED_TIP,
} from "./common.js";

const REFRESH_S = refreshSeconds(5);
const CONCURRENCY = 6;
const cache = new Map(); // address → {block, health, risk, error}
const state = { timer: null, busy: false, rows: [], reachable: true, loaded: false };

async function mapLimited(items, limit, fn) {
  const out = new Array(items.length);
  let next = 0;
  async function worker() {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]);
    }
  }
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

async function load(wallet) {
  const path = `/v1/wallets/${encodeURIComponent(wallet.address)}`;
  const known = cache.get(wallet.address);
  let health;
  let fetchedAt;
  try {
    health = await api(`${path}/health`);
    fetchedAt = Date.now();
  } catch (err) {
    if (err instanceof ApiError && err.status === 404) return { wallet, health: null, risk: null, error: "no data yet" };
    return { wallet, health: known?.health ?? null, risk: known?.risk ?? null, error: describeError(err), failed: true };
  }
  if (known && known.health && known.health.block === health.block && !known.failed) {
    return { ...known, wallet, health, fresh: freshnessOf(health, known.risk, fetchedAt) };
  }
  let risk = null;
  let error = null;
  let failed = false;
  try {
    risk = await api(`${path}/risk`);
  } catch (err) {
    if (!(err instanceof ApiError && err.status === 404)) {
      error = describeError(err);
      failed = true;
    }
  }
  return { wallet, health, risk, error, failed, fresh: freshnessOf(health, risk, fetchedAt) };
}

function riskOf(row) {
  if (!row.health) return Infinity;
  const line = headlineOf(row.health, row.risk);
  const u = line.unified;
  return Math.min(line.lowest ? line.lowest.health_factor : Infinity, typeof u === "number" ? u : Infinity);
}

function ageCell(row) {
  const age = row.fresh ? row.fresh.ageS(Date.now()) : null;
  const stale = row.fresh ? row.fresh.stale : false;
  return h("span", { class: stale ? "stale-text" : "muted", "data-testid": `wallet-age-${row.wallet.address}`,
    "data-stale": stale ? "1" : "0", "data-value": rawValue(age) },
  stale ? "STALE · " : "", age === null ? "" : `${fmtAge(age)} ago`);
}

function render(rows) {
  const sorted = [...rows].sort((a, b) => (a.health === null) - (b.health === null) || riskOf(a) - riskOf(b));
  document.getElementById("wallet-count").textContent = `${rows.length} tracked · riskiest first`;
  const top = sorted.find((r) => r.health);
  if (top) {
    fill("headline", h("span", { class: "part" }, h("span", { class: "muted" }, "riskiest: "),
      h("a", { href: `/ui/wallet/${encodeURIComponent(top.wallet.address)}`, "data-testid": "headline-wallet" },
        top.wallet.label || top.wallet.address)), h("span", { class: "sep" }, " — "),
    headlineNodes(headlineOf(top.health, top.risk), "headline"));
  } else {
    fill("headline", h("span", { class: "muted" }, rows.length ? "no wallet has data yet" : "no wallet is tracked yet"));
  }
  if (!rows.length) {
    fill("wallets", h("div", { class: "empty", "data-testid": "wallets-empty" },
      "no wallet is tracked yet — add one with `xmargin wallet add ADDRESS`"));
    return;
  }
  const body = sorted.map((row) => {
    const a = row.wallet.address;
    const href = `/ui/wallet/${encodeURIComponent(a)}`;
    const cells = [
      h("td", { class: "who" }, h("a", { href, "data-testid": `wallet-link-${a}` },
        h("div", { class: "strong" }, row.wallet.label || "—"), h("div", { class: "address muted" }, a))),
    ];
    if (!row.health) {
      cells.push(h("td", { colspan: 6, class: "muted" }, row.error || "no data yet"));
    } else {
      const line = headlineOf(row.health, row.risk);
      const low = line.lowest;
      const lowHf = low ? low.health_factor : null;
      const u = line.unified;
      const liq = line.liquidation;
      const stale = row.fresh?.stale ?? false;
      const okCount = row.health.venues.filter((v) => v.status === "ok" && !v.stale).length;
      cells.push(
        h("td", { class: "r", "data-label": "block" },
          num(`wallet-block-${a}`, row.health.block, (x) => (x === null ? "—" : String(x))), " ", ageCell(row)),
        h("td", { class: "r", "data-label": "unified health" }, u === undefined ? h("span", { class: "muted" }, "—")
          : num(`wallet-unified-${a}`, u, fmtHf, stale ? "muted" : hfClass(u))),
        h("td", { class: "r", "data-label": "lowest venue" }, num(`wallet-minhf-${a}`, lowHf, fmtHf, stale ? "muted" : hfClass(lowHf)),
          low ? h("span", { class: "muted" }, ` ${low.venue}`) : null),
        h("td", { class: "liq", "data-label": "first liquidation" }, liq && liq.common
          ? [h("span", { "data-testid": `wallet-liq-${a}` }, `${liq.venue} if ${liq.asset} ${commonVerb(liq)} `),
            num(`wallet-liq-move-${a}`, liq.move, fmtMove, Math.abs(liq.move) < 0.1 ? "bad" : "warn")]
          : liq
          ? [h("span", { "data-testid": `wallet-liq-${a}` }, `${liq.venue} if ${liq.asset} ${liq.direction} to `),
            num(`wallet-liq-price-${a}`, liq.price_usd, (x) => fmtUsd(x, { dp: Math.abs(x) < 10 ? 4 : 2 })), " (",
            num(`wallet-liq-move-${a}`, liq.move, fmtMove,
              Math.abs(liq.move) < 0.1 ? "bad" : "warn"), ")"]
          : h("span", { class: "muted", "data-testid": `wallet-liq-${a}` }, "none")),
        h("td", { class: "r", "data-label": "equity" }, row.risk ? num(`wallet-equity-${a}`, row.risk.equity_usd, fmtUsd) : "—"),
        h("td", { class: okCount === row.health.venues.length && !stale ? "" : "warn", "data-label": "venues" },
          `${okCount}/${row.health.venues.length} ok`, row.error ? h("span", { class: "bad" }, ` · ${row.error}`) : null),
      );
    }
    return h("tr", { "data-testid": `wallet-row-${a}`, class: row.fresh?.stale ? "stale-row" : null }, cells);
  });
  // Patched in place, not replaced: the list re-renders at every poll, and a click on a wallet's link must land.
  update("wallets", h("table", { class: "wallets cards" },
    h("thead", {}, h("tr", {},
      h("th", {}, "wallet"), h("th", { class: "r" }, "block · age"),
      h("th", { class: "r" }, tip(["unified health", h("span", { class: "i", "aria-hidden": "true" })], UNIFIED_TIP, "unified-tip")),
      h("th", { class: "r" }, "lowest venue health"), h("th", {}, "first liquidation"), h("th", { class: "r" }, "equity"),
      h("th", {}, "venues"))),
    h("tbody", {}, body)));
}

/** Show ``table`` in the element ``id``: the table already there is patched to match (:func:`morph`). */
function update(id, table) {
  const host = document.getElementById(id);
  const shown = host.firstElementChild;
  if (host.childNodes.length === 1 && shown !== null && shown.nodeName === table.nodeName) morph(shown, table);
  else fill(id, table);
}

/** The top bar's age and dot, the stale banner (the first stale wallet's reason), every row's age. */
function tick() {
  const rows = state.rows.filter((r) => r.fresh);
  const updated = document.getElementById("updated");
  const dot = document.getElementById("live-dot");
  const ages = rows.map((r) => r.fresh.ageS(Date.now())).filter((x) => typeof x === "number");
  const staleRows = rows.filter((r) => r.fresh.stale);
  const newest = ages.length ? Math.min(...ages) : null;
  if (!state.loaded) updated.textContent = state.reachable ? "loading" : "API unreachable";
  else updated.textContent = newest === null ? "no data yet"
    : `${staleRows.length ? "STALE · " : ""}synced ${fmtAge(newest)} ago`;
  updated.className = staleRows.length ? "stale-text" : "";
  dot.className = `dot ${!state.reachable ? "off" : staleRows.length ? "stale" : state.loaded ? "on" : ""}`;
  document.body.dataset.stale = staleRows.length ? "1" : "0";
  if (staleRows.length) {
    const first = staleRows[0];
    const who = staleRows.map((r) => r.wallet.label || r.wallet.address.slice(0, 10)).join(", ");
    staleBanner(`${staleMessage(first.fresh, first.health?.block)} (${staleRows.length === rows.length ? "every wallet" : who})`);
  } else {
    staleBanner(null);
  }
  for (const row of rows) {
    const node = document.querySelector(`[data-testid="wallet-age-${row.wallet.address}"]`);
    if (node) node.replaceWith(ageCell(row));
  }
}

async function refresh() {
  if (state.busy) return;
  state.busy = true;
  try {
    const wallets = await api("/v1/wallets");
    const rows = await mapLimited(wallets, CONCURRENCY, load);
    cache.clear();
    for (const row of rows) cache.set(row.wallet.address, row);
    state.rows = rows;
    state.reachable = true;
    state.loaded = true;
    render(rows);
    const blocks = rows.map((r) => r.health?.block).filter((b) => typeof b === "number");
    const newest = blocks.length ? Math.max(...blocks) : null;
    const block = document.getElementById("block");
    block.dataset.value = rawValue(newest);
    block.textContent = newest === null ? "—" : String(newest);
    document.body.dataset.block = rawValue(newest);
    document.body.dataset.loaded = "1";
    document.body.dataset.renders = String(Number(document.body.dataset.renders || 0) + 1);
    tick();
    banner(null);
  } catch (err) {
    state.reachable = err instanceof ApiError;
    tick();
    banner(err instanceof ApiError && err.status === 401 ? "This API needs a key: paste it below." : describeError(err));
  } finally {
    state.busy = false;
    clearTimeout(state.timer);
    state.timer = setTimeout(refresh, REFRESH_S * 1000);
  }
}

setupAuth(() => {
  cache.clear();
  clearTimeout(state.timer);
  refresh();
});
setInterval(tick, 1000);
refresh();
