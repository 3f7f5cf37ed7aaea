// ict-trader dashboard: reads /api/*, re-reads on every server-sent `update`, never reloads.
// Money arrives as decimal strings; it is only formatted here, never recomputed, so the page
// shows the store's figures to the cent. Each figure also carries its raw value in data-value.
"use strict";

const NY = "America/New_York";
const timeFmt = new Intl.DateTimeFormat("en-US", { timeZone: NY, hour: "2-digit", minute: "2-digit", hour12: false });
const dateTimeFmt = new Intl.DateTimeFormat("en-US", { timeZone: NY, month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", hour12: false });
const $ = (id) => document.getElementById(id);

function money(text, signed = false) {
  if (text === null || text === undefined) return "–";
  const value = Number(text);
  const abs = Math.abs(value).toLocaleString("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 });
  const sign = value < 0 ? "−" : (signed && value > 0 ? "+" : "");
  return `${sign}$${abs}`;
}
// Prices as people write them: cents, with more digits only for a sub-penny average fill.
function price(text) {
  if (text === null || text === undefined) return "–";
  const value = Number(text);
  return Number.isInteger(Math.round(value * 1e6) / 1e4) ? value.toFixed(2) : String(value);
}
// A net position in units: negative is short.
function position(units) {
  if (units === null || units === undefined) return "–";
  return units > 0 ? `long ${units}` : units < 0 ? `short ${-units}` : "flat";
}
function pct(rate) { return rate === null || rate === undefined ? "–" : `${(rate * 100).toFixed(1)}%`; }
function nyTime(iso) { return iso ? timeFmt.format(new Date(iso)) : "–"; }
function nyDateTime(iso) { return iso ? dateTimeFmt.format(new Date(iso)) : "–"; }
// Plotly draws ISO times with a Z in UTC; the charts show New York wall-clock time instead.
const nyParts = new Intl.DateTimeFormat("en-CA", { timeZone: NY, year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", hourCycle: "h23" });
function nyPlot(iso) {
  const p = Object.fromEntries(nyParts.formatToParts(new Date(iso)).map((x) => [x.type, x.value]));
  return `${p.year}-${p.month}-${p.day} ${p.hour}:${p.minute}`;
}
function tone(text) { const v = Number(text); return v > 0 ? "pos" : v < 0 ? "neg" : ""; }

function setFigure(id, raw, text, cls) {
  const el = $(id);
  el.textContent = text;
  el.dataset.value = raw === null || raw === undefined ? "" : String(raw);
  if (cls !== undefined) el.className = cls;
}

// `extra.modelled`: the figure comes from a modelled option premium, so it carries the label;
// `extra.sub`: a second, smaller line (an option's OCC symbol under its readable name).
function cell(text, cls, extra = {}) {
  const td = document.createElement("td");
  td.textContent = text;
  if (cls) td.className = cls;
  if (extra.modelled) td.append(modelledBadge());
  if (extra.sub) {
    const sub = document.createElement("small");
    sub.className = "sub";
    sub.textContent = extra.sub;
    td.append(sub);
  }
  return td;
}
function modelledBadge() {
  const badge = document.createElement("span");
  badge.className = "badge modelled";
  badge.title = "from the pricing model's option premium, not a market price";
  badge.textContent = "modelled";
  return badge;
}
// Option trades: the contract by name (OCC symbol below), contracts, premiums, greeks at entry.
function isModelled(row) { return Boolean(row.option && row.option.modelled); }
function symbolCell(row) {
  return row.option ? [row.option.contract, "sym", { sub: row.symbol }] : [row.symbol, "sym"];
}
// A call or put is always bought: its side is that, on the signal's direction.
function side(row) { return row.option ? `bought (${row.direction} signal)` : row.direction; }
function units(row) {
  if (!row.option) return String(row.shares);
  return `${row.contracts} contract${row.contracts === 1 ? "" : "s"}`;
}
function greeks(option) {
  if (!option) return "–";
  const delta = option.delta === null ? "?" : `${option.delta >= 0 ? "+" : ""}${option.delta.toFixed(2)}`;
  const iv = option.iv === null ? "?" : `${(option.iv * 100).toFixed(1)}%`;
  return `${delta} / ${iv}`;
}
function premium(option, key) {
  if (!option || option[key] === null) return "–";
  return `${money(option[key])} (${money(option[`${key}_per_contract`])} each)`;
}
function target(row) {
  if (row.option && row.option.underlying_target !== null) return `${row.option.underlying} ${price(row.option.underlying_target)}`;
  return price(row.target_price === "None" ? null : row.target_price);
}

function fillTable(id, rows, columns, emptyText) {
  const body = $(id).querySelector("tbody");
  body.replaceChildren();
  if (rows.length === 0) {
    const tr = document.createElement("tr");
    const td = cell(emptyText, "empty");
    td.colSpan = $(id).querySelectorAll("thead th").length;
    tr.append(td);
    body.append(tr);
    return;
  }
  for (const row of rows) {
    const tr = document.createElement("tr");
    if (row.trade_id) tr.dataset.tradeId = row.trade_id;
    else if (row.symbol) tr.dataset.symbol = row.symbol;
    for (const column of columns) {
      const [text, cls, extra] = column(row);
      tr.append(cell(text, cls, extra));
    }
    body.append(tr);
  }
}

async function getJSON(path) {
  const response = await fetch(path, { cache: "no-store" });
  if (!response.ok) throw new Error(`${path}: HTTP ${response.status}`);
  return response.json();
}

const THRESHOLD_UNITS = {
  daily_loss: (v) => `$${v}`, rapid_loss: (v) => `$${v}`, error_rate: (v) => `${v} errors`, drawdown: (v) => `${v}%`,
  stale_data: (v) => `${v} min`,
};

function renderStatus(s) {
  $("mode").textContent = [s.mode || "no run yet", s.feed, s.symbol].filter(Boolean).join(" · ");
  const state = $("state");
  state.textContent = s.state;
  state.className = `state ${s.state}`;
  $("state-reason").textContent = s.state_reason ? `${s.state_reason} (${s.state_actor || "?"})` : "";
  $("last-bar").textContent = nyDateTime(s.last_bar);
  const account = s.account || {};
  setFigure("equity", account.equity, money(account.equity));
  setFigure("cash", account.cash, money(account.cash));
  $("account-time").textContent = nyTime(account.time);
  setFigure("pnl-today", s.pnl.today, money(s.pnl.today, true), tone(s.pnl.today));
  $("pnl-today-realized").textContent = money(s.pnl.today_realized, true);
  $("pnl-today-unrealized").textContent = money(s.pnl.today_unrealized, true);
  setFigure("pnl-total", s.pnl.total, money(s.pnl.total, true), tone(s.pnl.total));
  setFigure("win-rate", s.trades.win_rate, pct(s.trades.win_rate));
  $("wins").textContent = s.trades.wins;
  $("closed").textContent = s.trades.closed;
  const symbols = Object.entries(s.symbols || {}).map(([symbol, f]) => ({ symbol, ...f }));
  fillTable("symbols", symbols, [
    (f) => [f.symbol],
    (f) => [position(f.position) + (f.contracts ? ` · ${f.contracts} contract${f.contracts === 1 ? "" : "s"}` : ""), "num"],
    (f) => [price(f.last_close), "num"],
    (f) => [money(f.realized, true), `num ${tone(f.realized)}`, { modelled: f.model_priced }],
    (f) => [money(f.unrealized, true), `num ${tone(f.unrealized)}`, { modelled: f.model_priced }],
  ], "no symbol yet");
  const profiles = Object.entries(s.profiles).map(([name, p]) => ({ name, ...p }));
  const traded = { options: " (options)", both: " (shares + options)" };
  fillTable("profiles", profiles, [
    (p) => [p.name + (traded[p.instrument] || "")], (p) => [String(p.closed ?? 0), "num"], (p) => [String(p.wins ?? 0), "num"],
    (p) => [pct(p.win_rate), "num"], (p) => [String(p.open ?? 0), "num"],
    (p) => [money(p.pnl_today, true), `num ${tone(p.pnl_today)}`, { modelled: p.model_priced }],
    (p) => [money(p.unrealized, true), `num ${tone(p.unrealized)}`, { modelled: p.model_priced }],
    (p) => [money(p.pnl_total, true), `num ${tone(p.pnl_total)}`, { modelled: p.model_priced }],
  ], "no trades yet");
  const layers = [{ name: "kill switch / state", threshold: "–", on: s.state !== "active", text: s.state }];
  for (const [name, b] of Object.entries(s.breakers)) {
    const unit = THRESHOLD_UNITS[name] || ((v) => v);
    layers.push({ name: name.replace("_", " "), threshold: b.threshold === null ? "–" : unit(b.threshold), on: b.tripped, text: b.tripped ? "TRIPPED" : "ok" });
  }
  fillTable("breakers", layers, [
    (b) => [b.name], (b) => [String(b.threshold)], (b) => [b.text, b.on ? "tripped" : ""],
  ], "");
}

// An option trade's prices are premiums per share; a modelled one carries the label on each.
function renderPositions(rows) {
  fillTable("positions", rows, [
    symbolCell, (p) => [p.profile], (p) => [side(p)], (p) => [units(p), "num"],
    (p) => [price(p.entry_price), "num", { modelled: isModelled(p) }], (p) => [nyTime(p.entry_time)], (p) => [target(p), "num"],
    (p) => [price(p.mark), "num", { modelled: isModelled(p) }],
    (p) => [money(p.unrealized, true), `num ${tone(p.unrealized)}`, { modelled: isModelled(p) }],
    (p) => [p.minutes_left === null ? "–" : `${p.minutes_left} min`, "num"],
    (p) => [premium(p.option, "premium_paid"), "num options-only", { modelled: isModelled(p) }],
    (p) => [greeks(p.option), "num options-only"],
  ], "flat");
}

function renderTrades(rows) {
  fillTable("trades", rows, [
    (t) => [nyDateTime(t.entry_time)], symbolCell, (t) => [t.profile], (t) => [side(t)],
    (t) => [units(t), "num"], (t) => [price(t.entry_price), "num", { modelled: isModelled(t) }],
    (t) => [nyTime(t.exit_time)], (t) => [price(t.exit_price), "num", { modelled: isModelled(t) && t.exit_price !== null }],
    (t) => [t.exit_reason ?? t.status], (t) => [money(t.pnl, true), `num ${tone(t.pnl)}`, { modelled: isModelled(t) && t.pnl !== null }],
    (t) => [t.entry_order ?? "–"], (t) => [t.exit_orders.join(", ") || "–"],
    (t) => [premium(t.option, "premium_paid"), "num options-only", { modelled: isModelled(t) }],
    (t) => [premium(t.option, "premium_received"), "num options-only", { modelled: isModelled(t) && t.exit_price !== null }],
    (t) => [greeks(t.option), "num options-only"],
  ], "no trades yet");
}

function renderEvents(rows) {
  const list = $("events");
  list.replaceChildren();
  for (const e of rows) {
    const li = document.createElement("li");
    const when = document.createElement("time");
    when.textContent = nyDateTime(e.time);
    li.append(when, `${e.kind} · ${e.actor} · ${e.message}`);
    list.append(li);
  }
}

const chartLayout = {
  paper_bgcolor: "#182028", plot_bgcolor: "#182028", font: { color: "#dde3ea", size: 11 },
  margin: { l: 50, r: 20, t: 10, b: 30 }, showlegend: true, legend: { orientation: "h", y: 1.08 },
  xaxis: { gridcolor: "#2a3542", rangeslider: { visible: false } }, yaxis: { gridcolor: "#2a3542" },
};
const plotConfig = { displaylogo: false, responsive: true };

// The session charted: the latest (following live) unless the user picked an earlier one.
let pickedDay = "";
function renderDays(days, shown) {
  const select = $("day");
  const wanted = pickedDay || shown || "";
  if (select.options.length !== days.length) {
    select.replaceChildren(...days.slice().reverse().map((d) => new Option(d, d)));
  }
  select.value = wanted;
}

// The symbol charted: the server's first (the settings' first) unless the user picked another.
let pickedSymbol = "";
function renderSymbolPicker(symbols, shown) {
  const select = $("symbol");
  if (Array.from(select.options).map((o) => o.value).join(",") !== symbols.join(",")) {
    select.replaceChildren(...symbols.map((s) => new Option(s, s)));
  }
  select.value = shown || "";
}

function renderCandles(b) {
  if (!window.Plotly) return;
  const t = b.bars.map((x) => nyPlot(x.t));
  const traces = [{
    type: "candlestick", name: `${b.symbol || ""} 1m`.trim(), x: t, open: b.bars.map((x) => x.o), high: b.bars.map((x) => x.h),
    low: b.bars.map((x) => x.l), close: b.bars.map((x) => x.c),
    increasing: { line: { color: "#26a69a" } }, decreasing: { line: { color: "#ef5350" } },
  }];
  const marker = (rows, name, symbol, color, price, text) => ({
    type: "scatter", mode: "markers", name, x: rows.map((r) => nyPlot(r.t)), y: rows.map(price),
    text: rows.map(text), hoverinfo: "text+x", marker: { symbol, size: 11, color, line: { width: 1, color: "#fff" } },
  });
  traces.push(marker(b.signals, "signal", "star", "#f0b429", (s) => Number(s.close), (s) => `${s.direction} signal`));
  // An option trade's marks sit at the underlying's price; the hover names the contract and premium.
  const bought = (e) => (e.contract ? ` · ${e.contract} @ ${e.premium}${e.modelled ? " (modelled)" : ""}` : "");
  const exits = b.exits.filter((e) => e.price !== "None");
  traces.push(marker(b.entries, "entry", "triangle-right", "#42a5f5", (e) => Number(e.price), (e) => `${e.profile} ${e.direction} entry @ ${e.price}${bought(e)}`));
  traces.push(marker(exits, "exit", "x", "#ffffff", (e) => Number(e.price), (e) => `${e.profile} ${e.reason} exit @ ${e.price}${bought(e)} · P&L ${e.pnl}${e.modelled ? " (modelled)" : ""}`));
  window.Plotly.react("candles", traces, chartLayout, plotConfig);
}

// The equity curve runs on market time: every session with data is one slot of 390 minutes from
// 09:30 New York, so nights, weekends, holidays and days without data take no room. (On a date
// axis the curve drew a flat line across every night and squeezed the trading into slivers.)
const SESSION_MINUTES = 390;
const OPEN_MINUTE = 9 * 60 + 30;
const dayLabelFmt = new Intl.DateTimeFormat("en-US", { timeZone: "UTC", month: "short", day: "2-digit" });
function nyDayMinute(iso) {
  const p = Object.fromEntries(nyParts.formatToParts(new Date(iso)).map((x) => [x.type, x.value]));
  return [`${p.year}-${p.month}-${p.day}`, Number(p.hour) * 60 + Number(p.minute)];
}
function dayLabel(day) { return dayLabelFmt.format(new Date(`${day}T12:00:00Z`)); }

function marketAxis(days, times) {
  const all = new Set(days);
  for (const t of times) all.add(nyDayMinute(t)[0]);
  const order = Array.from(all).sort();
  const slot = new Map(order.map((day, index) => [day, index]));
  const x = (iso) => {
    const [day, minute] = nyDayMinute(iso);
    return slot.get(day) * SESSION_MINUTES + Math.min(Math.max(minute - OPEN_MINUTE, 0), SESSION_MINUTES);
  };
  return { order, x };
}

// Hours for a day or two, session dates (each under the middle of its session) beyond that; no
// more ticks than the width holds.
function marketTicks(order, width) {
  const most = Math.max(2, Math.floor(width / 80));
  const values = [];
  const labels = [];
  let year = "";
  order.forEach((day, index) => {
    const start = index * SESSION_MINUTES;
    const date = day.slice(0, 4) === year ? dayLabel(day) : `${dayLabel(day)}<br>${day.slice(0, 4)}`;
    year = day.slice(0, 4);
    if (order.length > 2) {
      values.push(start + SESSION_MINUTES / 2);
      labels.push(date);
      return;
    }
    for (let hour = 10; hour <= 15; hour += 1) {
      values.push(start + hour * 60 - OPEN_MINUTE);
      labels.push(hour === 10 ? `10:00<br>${dayLabel(day)}` : `${hour}:00`);
    }
  });
  const step = Math.ceil(values.length / most);
  return { values: values.filter((_, i) => i % step === 0), labels: labels.filter((_, i) => i % step === 0) };
}

function renderEquity(rows, days, lastBar) {
  if (!window.Plotly) return;
  const points = rows.slice();
  if (points.length && lastBar) {  // equity is unchanged since its last snapshot: draw it to the last bar
    const close = Date.parse(lastBar) + 60_000;
    const last = points[points.length - 1];
    if (close > Date.parse(last.t)) points.push({ t: new Date(close).toISOString(), equity: last.equity });
  }
  const axis = marketAxis(days, points.map((r) => r.t));
  const y = points.map((r) => Number(r.equity));
  // A flat curve gets a few dollars either side, and whole-dollar ticks (not "100.0005k").
  const low = Math.min(...y);
  const high = Math.max(...y);
  const pad = Math.max((high - low) * 0.1, 10);
  const ticks = marketTicks(axis.order, $("equity-chart").clientWidth || 800);
  const separators = axis.order.length > 60 ? [] : axis.order.slice(1).map((_, i) => ({
    type: "line", xref: "x", yref: "paper", x0: (i + 1) * SESSION_MINUTES, x1: (i + 1) * SESSION_MINUTES, y0: 0, y1: 1,
    line: { color: "#3a4656", width: 1, dash: "dot" },
  }));
  window.Plotly.react("equity-chart", [{
    type: "scatter", mode: "lines", name: "equity", x: points.map((r) => axis.x(r.t)), y,
    customdata: points.map((r) => nyPlot(r.t)), hovertemplate: "%{customdata}<br>%{y:$,.2f}<extra></extra>",
    line: { color: "#42a5f5", shape: "hv" },  // equity changes only at the recorded snapshots
  }], {
    ...chartLayout, showlegend: false, shapes: separators,
    xaxis: { ...chartLayout.xaxis, type: "linear", autorange: false, range: [0, Math.max(axis.order.length, 1) * SESSION_MINUTES],
      tickmode: "array", tickvals: ticks.values, ticktext: ticks.labels, zeroline: false },
    yaxis: { ...chartLayout.yaxis, automargin: true, tickformat: "$,.0f", nticks: 6,
      autorange: y.length === 0, range: y.length ? [low - pad, high + pad] : undefined },
  }, plotConfig);
}

// The latest `ict-trader audit`, as kept in the store (the dashboard never asks Alpaca itself).
const VERDICT_CLASS = { "OK": "ok", "SIGNALS DIFFER": "warn", "RECORDS DIFFER": "bad" };
const SIGNAL_WORDS = { same: "same", shifted: "shifted", missing: "missing on the live feed (SIP only)", extra: "extra (live feed only)" };
function interval(ci, digits, scale = 1, suffix = "") {
  return ci ? ` (${(ci[0] * scale).toFixed(digits)}${suffix}-${(ci[1] * scale).toFixed(digits)}${suffix})` : "";
}
function rateText(r) {
  return r.rate === null ? "– (0 trades)" : `${(r.rate * 100).toFixed(0)}% of ${r.trials}${interval(r.ci95, 0, 100, "%")}`;
}
function renderAudit(a) {
  const verdict = $("audit-verdict");
  if (!a) { verdict.className = "verdict"; return; }
  verdict.textContent = a.verdict;
  verdict.className = `verdict ${VERDICT_CLASS[a.status] || ""}`;
  verdict.dataset.status = a.status;
  $("audit-when").textContent = `${a.period.from} … ${a.period.to}, run ${nyDateTime(a.generated_at)}`;
  const lines = $("audit-lines");
  lines.replaceChildren();
  for (const [text, cls] of [...a.errors.map((e) => [e, "error"]), ...a.orders.notes.map((n) => [n, "muted"]), ...a.notes.map((n) => [n, "muted"])]) {
    const li = document.createElement("li");
    li.textContent = text;
    li.className = cls;
    lines.append(li);
  }
  $("audit-feed").textContent = (a.feed || "live").toUpperCase();
  const several = (a.symbols || []).length > 1;  // then each row names its symbol
  fillTable("audit-signals", a.signals.pairs, [
    (p) => [several && p.symbol ? `${p.symbol} ${p.direction}` : p.direction], (p) => [p.live ? nyDateTime(p.live) : "–"], (p) => [p.sip ? nyDateTime(p.sip) : "–"],
    (p) => [SIGNAL_WORDS[p.status] || p.status, p.status === "same" ? "" : "tripped"],
  ], "no signal on either feed");
  const live = a.expectation.live, back = a.expectation.backtest_sip;
  const rows = [];
  if (live && back) {
    rows.push(["signals", String(live.signals), String(back.signals)]);
    const week = (f) => (f.signals_per_week === null ? "–" : `${f.signals_per_week.toFixed(2)}${interval(f.signals_per_week_ci95, 2)}`);
    rows.push(["signals / week", week(live), week(back)]);
    for (const name of Object.keys(live.profiles)) {
      rows.push([`${name}: target hit`, rateText(live.profiles[name].target_hit), rateText(back.profiles[name].target_hit)]);
      rows.push([`${name}: win rate`, rateText(live.profiles[name].win), rateText(back.profiles[name].win)]);
    }
    for (const symbol of several ? a.symbols : []) {
      const mine = (a.by_symbol || {})[symbol];
      if (mine && mine.expectation && mine.expectation.live && mine.expectation.backtest_sip) {
        rows.push([`${symbol}: signals`, String(mine.expectation.live.signals), String(mine.expectation.backtest_sip.signals)]);
      }
    }
  }
  fillTable("audit-expectation", rows, [(r) => [r[0]], (r) => [r[1], "num"], (r) => [r[2], "num"]], "–");
  const b = a.bars;
  const barRows = b ? [
    ["SIP minutes compared", String(b.minutes)], ["minutes without a live bar", String(b.missing_live)],
    ["bars with another open/high/low/close", String(b.different)], ["high or low outside SIP's range", String(b.outside_range)],
    ["largest |close difference|", b.max_close_difference === null ? "–" : `$${b.max_close_difference.toFixed(4)}`],
    ["live volume ÷ SIP volume", b.volume_share === null ? "–" : pct(b.volume_share)],
    ...(several ? a.symbols.flatMap((symbol) => {
      const mine = ((a.by_symbol || {})[symbol] || {}).bars;
      return mine ? [[`${symbol}: minutes without a live bar`, String(mine.missing_live)],
        [`${symbol}: bars with another open/high/low/close`, String(mine.different)]] : [];
    }) : []),
  ] : [];
  fillTable("audit-bars", barRows, [(r) => [r[0]], (r) => [r[1], "num"]], "no live bars compared");
  fillTable("audit-slippage", a.slippage, [
    (t) => [t.trade_id], (t) => [t.entry ? price(t.entry.live) : "–", "num"], (t) => [t.entry ? price(t.entry.simulated) : "–", "num"],
    (t) => [t.entry ? t.entry.per_share : "–", "num"], (t) => [t.entry ? t.entry.bps : "–", "num"],
    (t) => [t.exit ? price(t.exit.live) : "–", "num"], (t) => [t.exit ? price(t.exit.simulated) : "–", "num"],
    (t) => [t.exit ? t.exit.per_share : "–", "num"],
  ], "no live trade");
}

let refreshing = null;
let again = false;
async function refresh() {
  if (refreshing) { again = true; return refreshing; }
  refreshing = (async () => {
    do {
      again = false;
      try {
        const query = new URLSearchParams();
        if (pickedDay) query.set("day", pickedDay);
        if (pickedSymbol) query.set("symbol", pickedSymbol);
        const barsPath = query.toString() ? `/api/bars?${query}` : "/api/bars";
        const [status, positions, trades, bars, equity, events, days, audit] = await Promise.all([
          getJSON("/api/status"), getJSON("/api/positions"), getJSON("/api/trades"),
          getJSON(barsPath), getJSON("/api/equity"), getJSON("/api/events?limit=50"),
          getJSON("/api/days"), getJSON("/api/audit"),
        ]);
        document.body.classList.toggle("several", Object.keys(status.symbols || {}).length > 1 || bars.symbols.length > 1);
        document.body.classList.toggle("options", trades.some((t) => t.option) || positions.some((p) => p.option));
        document.body.classList.toggle("modelled", Boolean(status.model_priced));
        renderStatus(status); renderPositions(positions); renderTrades(trades);
        renderSymbolPicker(bars.symbols, bars.symbol); renderDays(days, bars.day); renderCandles(bars); renderEquity(equity, days, status.last_bar);
        renderEvents(events); renderAudit(audit);
        document.body.dataset.version = String((Number(document.body.dataset.version) || 0) + 1);
      } catch (error) {
        console.warn("refresh failed", error);
      }
    } while (again);
  })();
  try { await refreshing; } finally { refreshing = null; }
}

function connect() {
  const live = $("live");
  const source = new EventSource("/api/stream");
  source.addEventListener("update", () => { live.className = "live on"; refresh(); });
  source.onerror = () => { live.className = "live off"; };  // EventSource reconnects itself
}

function confirmControl(kind) {
  const dialog = $("confirm");
  $("confirm-title").textContent = kind === "kill" ? "Engage the kill switch?" : "Resume trading?";
  $("confirm-text").textContent = kind === "kill"
    ? "Cancels every open ict-trader order, closes every position it opened at market, and blocks new entries until resumed."
    : "Allows new entries again.";
  $("confirm-error").textContent = "";
  $("confirm-reason").value = "";
  $("confirm-token").value = sessionStorage.getItem("ict-trader-token") || "";
  dialog.dataset.kind = kind;
  dialog.showModal();
}

async function sendControl(event) {
  const dialog = $("confirm");
  if (event.submitter && event.submitter.value !== "go") return;
  event.preventDefault();
  const token = $("confirm-token").value.trim();
  const reason = $("confirm-reason").value.trim();
  const response = await fetch(`/api/${dialog.dataset.kind}`, {
    method: "POST",
    headers: { "Content-Type": "application/json", Authorization: `Bearer ${token}` },
    body: JSON.stringify({ reason }),
  });
  if (response.ok) {
    sessionStorage.setItem("ict-trader-token", token);
    dialog.close();
    refresh();
  } else {
    const body = await response.json().catch(() => ({}));
    $("confirm-error").textContent = `${response.status}: ${body.error || "refused"}`;
    if (response.status === 401) sessionStorage.removeItem("ict-trader-token");
  }
}

document.addEventListener("DOMContentLoaded", () => {
  $("kill").addEventListener("click", () => confirmControl("kill"));
  $("resume").addEventListener("click", () => confirmControl("resume"));
  $("confirm-form").addEventListener("submit", sendControl);
  $("symbol").addEventListener("change", (event) => {
    pickedSymbol = event.target.value;
    refresh();
  });
  $("day").addEventListener("change", (event) => {
    const days = Array.from(event.target.options).map((o) => o.value);
    pickedDay = event.target.value === days[0] ? "" : event.target.value;  // newest: follow live
    refresh();
  });
  refresh();
  connect();
});
