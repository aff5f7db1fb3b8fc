// Inline-SVG charts: the P&L heatmap, the health history and the exposure bars.

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

/** The liquidation-aware P&L grid: rows are volatility shifts (highest on top), columns joint price moves. */
export function heatmap(grid) {
  const moves = grid.price_moves;
  const vols = grid.vol_shifts;
  const P = moves.length;
  const V = vols.length;
  const left = 58;
  const top = 8;
  const bottom = 34;
  const cw = Math.max(26, Math.min(60, Math.floor(1100 / Math.max(P, 1))));
  const ch = 30;
  const width = left + P * cw + 8;
  const height = top + V * ch + bottom;
  let maxAbs = 0;
  for (const row of grid.pnl_usd) for (const v of row) if (typeof v === "number" && Number.isFinite(v)) maxAbs = Math.max(maxAbs, Math.abs(v));
  const svg = s("svg", {
    class: "chart heatmap", viewBox: `0 0 ${width} ${height}`, "data-testid": "pnl-heatmap",
    "data-rows": V, "data-cols": P, role: "img", "aria-label": "liquidation-aware P&L by price move and volatility shift",
  });
  const origin = { vi: vols.indexOf(0), pi: moves.indexOf(0) };
  const showText = cw >= 40;
  for (let vi = 0; vi < V; vi++) {
    const y = top + (V - 1 - vi) * ch;
    svg.append(s("text", {
      x: left - 6, y: y + ch / 2 + 3, "text-anchor": "end", "data-testid": `grid-vol-${vi}`,
      "data-value": rawValue(vols[vi]),
    }, `vol ${fmtPct(vols[vi], { dp: 0, signed: true })}`));
    for (let pi = 0; pi < P; pi++) {
      const x = left + pi * cw;
      const pnl = grid.pnl_usd?.[vi]?.[pi] ?? null;
      const loss = grid.liquidation_loss_usd?.[vi]?.[pi] ?? null;
      const liquidated = grid.liquidated?.[vi]?.[pi] ?? [];
      const tip = [
        `price ${fmtPct(moves[pi], { dp: 0, signed: true })} · vol ${fmtPct(vols[vi], { dp: 0, signed: true })}`,
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
      if (showText) {
        cell.append(s("text", { class: "cell-text", x: x + cw / 2, y: y + ch / 2 + 3, "text-anchor": "middle" }, fmtCompact(pnl)));
      }
      svg.append(cell);
    }
  }
  if (origin.vi >= 0 && origin.pi >= 0) {
    svg.append(s("rect", {
      class: "origin", x: left + origin.pi * cw + 1, y: top + (V - 1 - origin.vi) * ch + 1, width: cw - 2, height: ch - 2, rx: 2,
    }));
  }
  const step = P > 15 ? 2 : 1;
  for (let pi = 0; pi < P; pi += step) {
    svg.append(s("text", {
      x: left + pi * cw + cw / 2, y: top + V * ch + 14, "text-anchor": "middle", "data-testid": `grid-price-${pi}`,
      "data-value": rawValue(moves[pi]),
    }, fmtPct(moves[pi], { dp: 0, signed: true })));
  }
  svg.append(s("text", { x: left + (P * cw) / 2, y: height - 3, "text-anchor": "middle" }, "joint price move of the non-stable underlyings"));
  return { svg, maxAbs };
}

// ---------- health history ----------

const NICE_HF = [0.5, 0.8, 1, 1.25, 1.5, 2, 3, 5, 10, 20, 50, 100, 200, 500, 1000];

function ticks(lo, hi, count) {
  const span = hi - lo;
  if (span <= 0) return [lo];
  const raw = span / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((st) => st >= raw) || raw;
  const out = [];
  for (let t = Math.ceil(lo / step) * step; t <= hi + 1e-9; t += step) out.push(Math.round(t));
  return [...new Set(out)];
}

/**
 * Health factor per venue over blocks (log scale; a dashed line where the venue liquidates).
 * ``series``: [{venue, colour, points: [{block, hf}]}] with finite positive health factors.
 */
export function historyChart(series) {
  const width = 1100;
  const height = 260;
  const left = 52;
  const right = 14;
  const top = 10;
  const bottom = 26;
  const all = series.flatMap((sr) => sr.points);
  const svg = s("svg", {
    class: "chart history", viewBox: `0 0 ${width} ${height}`, "data-testid": "history-chart",
    "data-points": all.length, role: "img", "aria-label": "health factor per venue over blocks",
  });
  if (!all.length) return svg;
  let bLo = Math.min(...all.map((p) => p.block));
  let bHi = Math.max(...all.map((p) => p.block));
  if (bLo === bHi) {
    bLo -= 1;
    bHi += 1;
  }
  const hfs = all.map((p) => p.hf);
  const yLo = Math.log(Math.min(0.9, Math.min(...hfs) * 0.95));
  const yHi = Math.log(Math.max(1.5, Math.max(...hfs) * 1.08));
  const X = (b) => left + ((b - bLo) / (bHi - bLo)) * (width - left - right);
  const Y = (hf) => top + (1 - (Math.log(hf) - yLo) / (yHi - yLo)) * (height - top - bottom);
  const visible = NICE_HF.filter((v) => Math.log(v) >= yLo && Math.log(v) <= yHi);
  let lastLabelY = Infinity;
  for (const v of visible) {
    const cls = v === 1 ? "liq-line" : v === 1.25 ? "warn-line" : "grid";
    svg.append(s("line", { class: cls, x1: left, x2: width - right, y1: Y(v), y2: Y(v) }));
    if (lastLabelY - Y(v) >= 11 || v === 1) { // labels bottom-up, none overlapping (1.0 always)
      svg.append(s("text", { x: left - 6, y: Y(v) + 3, "text-anchor": "end" }, String(v)));
      lastLabelY = Y(v);
    }
  }
  for (const b of ticks(bLo, bHi, 8)) {
    if (b < bLo || b > bHi) continue;
    svg.append(s("line", { class: "grid", x1: X(b), x2: X(b), y1: top, y2: height - bottom }));
    svg.append(s("text", { x: X(b), y: height - bottom + 14, "text-anchor": "middle" }, String(b)));
  }
  svg.append(s("line", { class: "axis", x1: left, x2: left, y1: top, y2: height - bottom }));
  svg.append(s("line", { class: "axis", x1: left, x2: width - right, y1: height - bottom, y2: height - bottom }));
  for (const sr of series) {
    const pts = [...sr.points].sort((a, b) => a.block - b.block);
    if (pts.length > 1) {
      svg.append(s("polyline", {
        fill: "none", stroke: sr.colour, "stroke-width": 1.8, "stroke-linejoin": "round",
        points: pts.map((p) => `${X(p.block).toFixed(1)},${Y(p.hf).toFixed(1)}`).join(" "),
      }));
    }
    for (const p of pts) {
      svg.append(s("circle", {
        cx: X(p.block), cy: Y(p.hf), r: 2.8, fill: sr.colour, "data-testid": `history-point-${sr.venue}-${p.block}`,
        "data-value": rawValue(p.hf),
      }, s("title", {}, `${sr.venue} · block ${p.block} · health ${fmtHf(p.hf)}`)));
    }
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
