// Inline-SVG charts laid out in real pixels for the width they get: the P&L heatmap, the health history, the net
// worth and the exposure bars.

import { fmtCompact, fmtHf, fmtPct, fmtUsd, rawValue, s } from "./common.js";

// ---------- colours ----------

const NEUTRAL = [27, 33, 48];
const RED = [224, 67, 63];
const GREEN = [40, 176, 106];

function mix(a, b, t) {
  return `rgb(${a.map((x, i) => Math.round(x + (b[i] - x) * t)).join(",")})`;
}

/** Diverging red/green for a P&L against the grid's largest absolute P&L (square-root scale). */
export function pnlColour(value, maxAbs) {
  if (typeof value !== "number" || !Number.isFinite(value)) return "#2a2f3a";
  if (maxAbs <= 0) return mix(NEUTRAL, NEUTRAL, 0);
  const t = Math.sqrt(Math.min(1, Math.abs(value) / maxAbs));
  return mix(NEUTRAL, value < 0 ? RED : GREEN, 0.15 + 0.85 * t);
}

// ---------- P&L heatmap ----------

function sameRow(a, b) {
  return a.length === b.length && a.every((x, i) => x === b[i] || (typeof x === "number" && typeof b[i] === "number"
    && Math.abs(x - b[i]) <= 1e-9 * Math.max(1, Math.abs(x))));
}

/**
 * Which volatility rows to draw: every row when volatility changes the P&L (options in the book), else the
 * no-shift row alone (the risk document then sends ``vol_shifts: [0.0]``; older documents send identical rows).
 */
export function heatmapRows(grid) {
  const vols = grid.vol_shifts;
  const all = vols.map((_, i) => i);
  if (vols.length <= 1) return { rows: all, collapsed: false };
  let base = vols.indexOf(0);
  if (base < 0) base = 0;
  const ref = grid.pnl_usd?.[base] ?? [];
  const identical = (grid.pnl_usd ?? []).every((row) => sameRow(row, ref))
    && (grid.liquidated ?? []).every((row) => sameRow(row.map((v) => (v ?? []).join(",")),
      (grid.liquidated[base] ?? []).map((v) => (v ?? []).join(","))));
  return identical ? { rows: [base], collapsed: true } : { rows: all, collapsed: false };
}

/** Which price columns fit ``maxCols``: the no-move column and every ``step``-th on either side of it. */
export function heatmapColumns(moves, maxCols) {
  const all = moves.map((_, i) => i);
  if (moves.length <= maxCols) return all;
  let zero = moves.indexOf(0);
  if (zero < 0) zero = Math.floor(moves.length / 2);
  for (let step = 2; step < moves.length; step++) {
    const picked = all.filter((i) => (i - zero) % step === 0);
    if (picked.length <= maxCols) return picked;
  }
  return [zero];
}

/**
 * The liquidation-aware P&L grid, laid out for ``width`` pixels: rows are volatility shifts (highest on top; one
 * row when volatility changes nothing), columns joint price moves (fewer on a narrow screen). Cells keep the API's
 * indices in their test ids: ``grid-cell-<vol index>-<price index>``.
 */
export function heatmap(grid, { width = 1100, narrow = false } = {}) {
  const moves = grid.price_moves;
  const vols = grid.vol_shifts;
  const { rows, collapsed } = heatmapRows(grid);
  const font = narrow ? 12 : 11;
  const left = rows.length === 1 ? 8 : narrow ? 62 : 68;
  const minCell = narrow ? 44 : 40;
  const usable = Math.max(width - left - 8, minCell);
  const cols = heatmapColumns(moves, Math.max(1, Math.floor(usable / minCell)));
  const cw = Math.min(72, Math.floor(usable / cols.length));
  const ch = narrow ? 38 : 32;
  const top = 6;
  const bottom = 40;
  const gridWidth = cols.length * cw;
  const x0 = left + Math.max(0, Math.floor((usable - gridWidth) / 2));
  const height = top + rows.length * ch + bottom;
  let maxAbs = 0;
  for (const vi of rows) for (const pi of cols) {
    const v = grid.pnl_usd?.[vi]?.[pi];
    if (typeof v === "number" && Number.isFinite(v)) maxAbs = Math.max(maxAbs, Math.abs(v));
  }
  const svg = s("svg", {
    class: "chart heatmap", viewBox: `0 0 ${width} ${height}`, width, height, "data-testid": "pnl-heatmap",
    "data-rows": rows.length, "data-cols": cols.length, "data-collapsed": collapsed ? "1" : "0", role: "img",
    "aria-label": "liquidation-aware P&L by price move" + (rows.length > 1 ? " and volatility shift" : ""),
    style: `--cell-font:${font}px`,
  });
  const zeroVol = vols.indexOf(0);
  const zeroMove = moves.indexOf(0);
  rows.forEach((vi, r) => {
    const y = top + (rows.length - 1 - r) * ch;
    if (rows.length > 1) {
      svg.append(s("text", {
        x: left - 6, y: y + ch / 2 + 4, "text-anchor": "end", "data-testid": `grid-vol-${vi}`,
        "data-value": rawValue(vols[vi]), "font-size": font,
      }, `vol ${fmtPct(vols[vi], { dp: 0, signed: true })}`));
    }
    cols.forEach((pi, c) => {
      const x = x0 + c * cw;
      const pnl = grid.pnl_usd?.[vi]?.[pi] ?? null;
      const loss = grid.liquidation_loss_usd?.[vi]?.[pi] ?? null;
      const liquidated = grid.liquidated?.[vi]?.[pi] ?? [];
      const tip = [
        `price ${fmtPct(moves[pi], { dp: 0, signed: true })}` + (rows.length > 1 ? ` · vol ${fmtPct(vols[vi], { dp: 0, signed: true })}` : ""),
        `P&L ${fmtUsd(pnl, { signed: true })}`,
        `liquidation loss ${fmtUsd(loss)}`,
        liquidated.length ? `liquidated: ${liquidated.join(", ")}` : "no venue liquidated",
      ].join("\n");
      const cell = s("g", {
        class: "cell", "data-testid": `grid-cell-${vi}-${pi}`, "data-value": rawValue(pnl),
        "data-liquidation-loss": rawValue(loss), "data-liquidated": liquidated.join(","),
      },
      s("title", {}, tip),
      s("rect", { class: "bg", x: x + 0.5, y: y + 0.5, width: cw - 1, height: ch - 1, rx: 2, fill: pnlColour(pnl, maxAbs) }));
      if (liquidated.length) {
        cell.append(s("rect", { class: "liq-mark", x: x + 3, y: y + 3, width: cw - 6, height: ch - 6, rx: 2 }));
      }
      cell.append(s("text", { class: "cell-text", x: x + cw / 2, y: y + ch / 2 + font / 3, "text-anchor": "middle",
        "font-size": font }, fmtCompact(pnl)));
      svg.append(cell);
      if ((vi === zeroVol || rows.length === 1) && pi === zeroMove) {
        svg.append(s("rect", { class: "origin", x: x + 1, y: y + 1, width: cw - 2, height: ch - 2, rx: 2 }));
      }
    });
  });
  const labelEvery = cw < 34 ? 2 : 1;
  cols.forEach((pi, c) => {
    if (c % labelEvery && pi !== zeroMove) return;
    svg.append(s("text", {
      x: x0 + c * cw + cw / 2, y: top + rows.length * ch + 15, "text-anchor": "middle", "data-testid": `grid-price-${pi}`,
      "data-value": rawValue(moves[pi]), "font-size": font,
    }, fmtPct(moves[pi], { dp: 0, signed: true })));
  });
  return { svg, maxAbs, rows, cols, collapsed };
}

// ---------- time axis ----------

function timeTicks(lo, hi, count) {
  const span = hi - lo;
  const steps = [1e3, 5e3, 15e3, 3e4, 6e4, 3e5, 9e5, 18e5, 36e5, 3 * 36e5, 6 * 36e5, 12 * 36e5, 864e5, 7 * 864e5, 30 * 864e5];
  const step = steps.find((st) => span / st <= count) ?? span / count;
  const out = [];
  for (let t = Math.ceil(lo / step) * step; t <= hi; t += step) out.push(t);
  return { ticks: out, step };
}

function timeLabel(t, span) {
  const iso = new Date(t).toISOString();
  if (span < 10 * 60e3) return iso.slice(11, 19);
  if (span < 2 * 864e5) return iso.slice(11, 16);
  return iso.slice(5, 10);
}

function timeAxis(svg, { lo, hi, X, y, count, left, right, top }) {
  const span = hi - lo;
  const { ticks } = timeTicks(lo, hi, count);
  for (const t of ticks) {
    const x = X(t);
    // Labels near an edge are anchored to it, so none is cut off by the chart's border.
    const anchor = x - left < 30 ? "start" : right - x < 30 ? "end" : "middle";
    svg.append(s("line", { class: "grid", x1: x, x2: x, y1: top, y2: y }));
    svg.append(s("text", { x, y: y + 15, "text-anchor": anchor }, timeLabel(t, span)));
  }
  svg.append(s("line", { class: "axis", x1: left, x2: right, y1: y, y2: y }));
  svg.append(s("text", { x: right, y: y + 30, "text-anchor": "end", class: "axis-title" },
    span < 2 * 864e5 ? `time (UTC, ${new Date(hi).toISOString().slice(0, 10)})` : "date (UTC)"));
}

function niceStep(span, count) {
  const raw = span / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  return [1, 2, 2.5, 5, 10].map((m) => m * mag).find((st) => st >= raw) || raw;
}

function timeRange(ts) {
  let lo = Math.min(...ts);
  let hi = Math.max(...ts);
  if (hi - lo < 1000) {
    lo -= 30e3;
    hi += 30e3;
  }
  return [lo, hi];
}

// ---------- health history ----------

/** Health factors above this are drawn on the top edge of the history chart (the axis is linear). */
export const HEALTH_CAP = 4;

/**
 * Health factor per venue over time on a linear axis, the liquidation line at 1 and, when given, the unified
 * health over time (dashed). ``series``: [{venue, colour, points: [{t (ms), block, hf}]}]; ``unified``:
 * [{t, block, value}] or null. Health factors above the axis top are drawn on its edge as ▲.
 */
export function historyChart(series, { width = 1100, narrow = false, unified = null } = {}) {
  const height = narrow ? 230 : 270;
  const left = narrow ? 34 : 44;
  const right = width - (narrow ? 10 : 16);
  const top = 12;
  const bottom = height - 40;
  const all = series.flatMap((sr) => sr.points);
  const uni = (unified ?? []).filter((p) => typeof p.value === "number" && Number.isFinite(p.value));
  const svg = s("svg", {
    class: "chart history", viewBox: `0 0 ${width} ${height}`, width, height, "data-testid": "history-chart",
    "data-points": all.length, "data-unified-points": uni.length, role: "img",
    "aria-label": "health factor per venue over time, linear scale, liquidation at 1",
  });
  if (!all.length && !uni.length) return { svg, yHi: null, over: false };
  const [tLo, tHi] = timeRange([...all, ...uni].map((p) => p.t));
  const values = [...all.map((p) => p.hf), ...uni.map((p) => p.value)];
  const yHi = Math.max(2, Math.min(HEALTH_CAP, Math.ceil(Math.max(...values) * 1.1 * 2) / 2));
  const X = (t) => left + ((t - tLo) / (tHi - tLo)) * (right - left);
  const Y = (v) => top + (1 - Math.min(v, yHi) / yHi) * (bottom - top);
  const step = yHi <= 2 ? 0.25 : 0.5;
  for (let v = 0; v <= yHi + 1e-9; v += step) {
    const cls = v === 1 ? "liq-line" : "grid";
    svg.append(s("line", { class: cls, x1: left, x2: right, y1: Y(v), y2: Y(v) }));
    if (Math.abs(v * 2 - Math.round(v * 2)) < 1e-9 || v === 1.25) {
      svg.append(s("text", { x: left - 5, y: Y(v) + 4, "text-anchor": "end" }, v.toFixed(v % 1 ? (v * 4) % 2 ? 2 : 1 : 0)));
    }
  }
  svg.append(s("text", { x: right - 4, y: Y(1) - 5, "text-anchor": "end", class: "liq-label" }, "liquidation (health 1)"));
  svg.append(s("line", { class: "axis", x1: left, x2: left, y1: top, y2: bottom }));
  timeAxis(svg, { lo: tLo, hi: tHi, X, y: bottom, count: narrow ? 3 : 7, left, right, top });
  const draw = (points, colour, testid, cls) => {
    const pts = [...points].sort((a, b) => a.t - b.t || a.block - b.block);
    if (pts.length > 1) {
      svg.append(s("polyline", {
        class: cls, fill: "none", stroke: colour, "stroke-width": narrow ? 2.2 : 1.8, "stroke-linejoin": "round",
        points: pts.map((p) => `${X(p.t).toFixed(1)},${Y(p.v).toFixed(1)}`).join(" "),
      }));
    }
    for (const p of pts) {
      const over = p.v > yHi;
      const title = s("title", {}, `${p.label} · block ${p.block} · ${new Date(p.t).toISOString().slice(0, 19)}Z · health ${fmtHf(p.v)}`);
      const attrs = { "data-testid": testid(p), "data-value": rawValue(p.v), fill: colour };
      if (over) {
        const x = X(p.t);
        const y = Y(yHi);
        svg.append(s("path", { ...attrs, class: "over", d: `M${x - 4},${y + 6} L${x + 4},${y + 6} L${x},${y} Z` }, title));
      } else {
        svg.append(s("circle", { ...attrs, cx: X(p.t), cy: Y(p.v), r: narrow ? 3.2 : 2.8 }, title));
      }
    }
  };
  for (const sr of series) {
    draw(sr.points.map((p) => ({ t: p.t, block: p.block, v: p.hf, label: sr.venue })), sr.colour,
      (p) => `history-point-${sr.venue}-${p.block}`, "venue-line");
  }
  if (uni.length) {
    draw(uni.map((p) => ({ t: p.t, block: p.block, v: p.value, label: "unified" })), "#ffffff",
      (p) => `history-unified-${p.block}`, "unified-line");
  }
  return { svg, yHi, over: values.some((v) => v > yHi) };
}

// ---------- net worth ----------

/** An axis label in USD with as many decimals as the step needs: "$1.25M", "$995", "−$12.5k". */
function axisUsd(v, step) {
  const a = Math.abs(v);
  const [unit, suffix] = a >= 1e6 || step >= 1e6 ? [1e6, "M"] : a >= 1e4 || step >= 1e3 ? [1e3, "k"] : [1, ""];
  const dp = Math.max(0, Math.min(3, Math.ceil(-Math.log10(step / unit) - 1e-9)));
  const text = (a / unit).toFixed(dp);
  return `${v < 0 && Number(text) !== 0 ? "\u2212" : ""}$${text}${suffix}`;
}

/** Net worth over time (USD; debt counts negative): ``points`` [{t, block, value}]. */
export function netWorthChart(points, { width = 1100, narrow = false } = {}) {
  const height = narrow ? 200 : 220;
  const left = narrow ? 52 : 64;
  const right = width - (narrow ? 10 : 16);
  const top = 12;
  const bottom = height - 40;
  const svg = s("svg", {
    class: "chart networth", viewBox: `0 0 ${width} ${height}`, width, height, "data-testid": "networth-chart",
    "data-points": points.length, role: "img", "aria-label": "net worth over time, USD",
  });
  if (!points.length) return svg;
  const [tLo, tHi] = timeRange(points.map((p) => p.t));
  const vals = points.map((p) => p.value);
  let vLo = Math.min(0, ...vals);
  let vHi = Math.max(0, ...vals);
  if (vHi - vLo <= 0) vHi = vLo + 1;
  // Zoom to the values when they sit far from zero (a change of 1 % should be visible), keeping zero when near.
  const spread = Math.max(...vals) - Math.min(...vals);
  if (Math.min(...vals) > 0 && spread < 0.5 * Math.max(...vals)) {
    vLo = Math.min(...vals) - Math.max(spread * 0.4, Math.abs(Math.min(...vals)) * 0.01);
    vHi = Math.max(...vals) + Math.max(spread * 0.4, Math.abs(Math.max(...vals)) * 0.01);
  }
  const step = niceStep(vHi - vLo, narrow ? 3 : 5);
  vLo = Math.floor(vLo / step) * step;
  vHi = Math.ceil(vHi / step) * step;
  const X = (t) => left + ((t - tLo) / (tHi - tLo)) * (right - left);
  const Y = (v) => top + (1 - (v - vLo) / (vHi - vLo)) * (bottom - top);
  for (let v = vLo; v <= vHi + step / 2; v += step) {
    svg.append(s("line", { class: Math.abs(v) < step / 2 ? "axis" : "grid", x1: left, x2: right, y1: Y(v), y2: Y(v) }));
    svg.append(s("text", { x: left - 5, y: Y(v) + 4, "text-anchor": "end" }, axisUsd(v, step)));
  }
  svg.append(s("line", { class: "axis", x1: left, x2: left, y1: top, y2: bottom }));
  timeAxis(svg, { lo: tLo, hi: tHi, X, y: bottom, count: narrow ? 3 : 7, left, right, top });
  const pts = [...points].sort((a, b) => a.t - b.t || a.block - b.block);
  if (pts.length > 1) {
    svg.append(s("polyline", { fill: "none", stroke: "var(--accent)", "stroke-width": 2, "stroke-linejoin": "round",
      points: pts.map((p) => `${X(p.t).toFixed(1)},${Y(p.value).toFixed(1)}`).join(" ") }));
  }
  for (const p of pts) {
    svg.append(s("circle", { cx: X(p.t), cy: Y(p.value), r: narrow ? 3.2 : 2.8, fill: p.value < 0 ? "var(--red)" : "var(--accent)",
      "data-testid": `networth-point-${p.block}`, "data-value": rawValue(p.value) },
    s("title", {}, `block ${p.block} · ${new Date(p.t).toISOString().slice(0, 19)}Z · net worth ${fmtUsd(p.value)}`)));
  }
  return svg;
}

// ---------- exposure bar ----------

/** A horizontal bar from the centre: long to the right (green), short to the left (red). */
export function exposureBar(value, maxAbs) {
  const w = 200;
  const half = w / 2;
  const len = maxAbs > 0 && Number.isFinite(value) ? (Math.abs(value) / maxAbs) * (half - 2) : 0;
  const x = value < 0 ? half - len : half;
  return s("svg", { viewBox: `0 0 ${w} 16`, preserveAspectRatio: "none" },
    s("rect", { x: 0, y: 7, width: w, height: 2, fill: "var(--line)" }),
    s("rect", { x, y: 2, width: Math.max(len, 0.5), height: 12, rx: 2, fill: value < 0 ? "var(--red)" : "var(--green)" }),
    s("line", { x1: half, x2: half, y1: 0, y2: 16, stroke: "var(--line-2)" }));
}
