// The wallet list: every tracked wallet with its newest unified health and its lowest venue health, riskiest first.

import {
  ApiError, ago, api, banner, describeError, fill, fmtHf, fmtUsd, h, hfClass, num, rawValue, refreshSeconds,
  setupAuth,
} from "./common.js";

const REFRESH_S = refreshSeconds(5);
const CONCURRENCY = 6;
const cache = new Map(); // address → {block, health, risk, error}
const state = { timer: null, busy: false, updatedAt: null };

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
  try {
    health = await api(`${path}/health`);
  } catch (err) {
    if (err instanceof ApiError && err.status === 404) return { wallet, health: null, risk: null, error: "no data yet" };
    return { wallet, health: known?.health ?? null, risk: known?.risk ?? null, error: describeError(err), failed: true };
  }
  if (known && known.health && known.health.block === health.block && !known.failed) return { ...known, wallet, health };
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
  return { wallet, health, risk, error, failed };
}

function minVenue(health) {
  let best = null;
  for (const v of health.venues) {
    if (typeof v.health_factor === "number" && (best === null || v.health_factor < best.health_factor)) best = v;
  }
  return best;
}

function riskOf(row) {
  if (!row.health) return Infinity;
  const m = minVenue(row.health);
  const u = row.risk?.unified_health;
  return Math.min(m ? m.health_factor : Infinity, typeof u === "number" ? u : Infinity);
}

function render(rows) {
  const sorted = [...rows].sort((a, b) => (a.health === null) - (b.health === null) || riskOf(a) - riskOf(b));
  document.getElementById("wallet-count").textContent = `${rows.length} tracked · riskiest first`;
  if (!rows.length) {
    fill("wallets", h("div", { class: "empty", "data-testid": "wallets-empty" },
      "no wallet is tracked yet — add one with `xmargin wallet add ADDRESS`"));
    return;
  }
  const body = sorted.map((row) => {
    const a = row.wallet.address;
    const href = `/ui/wallet/${encodeURIComponent(a)}`;
    const cells = [
      h("td", {}, h("a", { href, "data-testid": `wallet-link-${a}` },
        h("div", {}, row.wallet.label || "—"), h("div", { class: "address muted" }, a))),
    ];
    if (!row.health) {
      cells.push(h("td", { colspan: 5, class: "muted" }, row.error || "no data yet"));
    } else {
      const low = minVenue(row.health);
      const lowHf = low ? low.health_factor : null;
      const u = row.risk ? row.risk.unified_health : undefined;
      const okCount = row.health.venues.filter((v) => v.status === "ok").length;
      cells.push(
        h("td", { class: "r" }, num(`wallet-block-${a}`, row.health.block, (x) => (x === null ? "—" : String(x)))),
        h("td", { class: "r" }, u === undefined ? h("span", { class: "muted" }, "—")
          : num(`wallet-unified-${a}`, u, fmtHf, hfClass(u))),
        h("td", { class: "r" }, num(`wallet-minhf-${a}`, lowHf, fmtHf, hfClass(lowHf)),
          low ? h("span", { class: "muted" }, ` ${low.venue}`) : null),
        h("td", { class: "r" }, row.risk ? num(`wallet-equity-${a}`, row.risk.equity_usd, fmtUsd) : "—"),
        h("td", { class: okCount === row.health.venues.length ? "" : "warn" },
          `${okCount}/${row.health.venues.length} ok`, row.error ? h("span", { class: "bad" }, ` · ${row.error}`) : null),
      );
    }
    return h("tr", { "data-testid": `wallet-row-${a}` }, cells);
  });
  fill("wallets", h("table", { class: "wallets" },
    h("thead", {}, h("tr", {},
      h("th", {}, "wallet"), h("th", { class: "r" }, "block"), h("th", { class: "r" }, "unified health"),
      h("th", { class: "r" }, "lowest venue health"), h("th", { class: "r" }, "equity"), h("th", {}, "venues"))),
    h("tbody", {}, body)));
}

function tick() {
  document.getElementById("updated").textContent =
    state.updatedAt === null ? "loading" : `updated ${ago(Date.now() - state.updatedAt)}`;
}

async function refresh() {
  if (state.busy) return;
  state.busy = true;
  try {
    const wallets = await api("/v1/wallets");
    const rows = await mapLimited(wallets, CONCURRENCY, load);
    cache.clear();
    for (const row of rows) cache.set(row.wallet.address, row);
    render(rows);
    const blocks = rows.map((r) => r.health?.block).filter((b) => typeof b === "number");
    const newest = blocks.length ? Math.max(...blocks) : null;
    const block = document.getElementById("block");
    block.dataset.value = rawValue(newest);
    block.textContent = newest === null ? "—" : String(newest);
    document.body.dataset.block = rawValue(newest);
    document.body.dataset.loaded = "1";
    document.getElementById("live-dot").className = "dot on";
    state.updatedAt = Date.now();
    tick();
    banner(null);
  } catch (err) {
    document.getElementById("live-dot").className = "dot off";
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
