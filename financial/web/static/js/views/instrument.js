// One instrument: a candlestick chart with volume (interval and range chosen in the address), its figures
// over 24 hours, 7 and 30 days, and for stocks the averages of /api/statistics over a chosen range.
import { api } from "../api.js";
import { candleChart } from "../chart.js";
import { errorMessage, h, replace, whileLoading } from "../dom.js";
import { DASH, duration, instrumentLabel, isNumber, number, time } from "../format.js";

export const title = "Instrument";
const RANGES = [["1d", "1D"], ["7d", "7D"], ["1m", "1M"], ["1y", "1Y"], ["all", "All"]];
const INTERVALS = [["1min", 60], ["5min", 300], ["15min", 900], ["30min", 1800], ["60min", 3600], ["1day", 86400]];
const WINDOWS = ["24h", "7d", "30d"];

function seconds(interval) {
  return (INTERVALS.find(([name]) => name === interval) || [null, Infinity])[1];
}

function figuresTable(figures) {
  const rows = [
    ["Points", (m) => (isNumber(m.points) ? m.points.toLocaleString() : DASH)],
    ["Mean close", (m) => number(m.mean)],
    ["Std. deviation", (m) => number(m.stdev)],
    ["Volatility %", (m) => number(m.volatility, { digits: 4 })],
    ["Rank (σ)", (m) => (m.rank ? `#${m.rank}` : DASH)],
  ];
  return h("div", { class: "table-wrap" }, h("table", { id: "window-figures" },
    h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Window"), WINDOWS.map((w) => h("th", { scope: "col" }, w)))),
    h("tbody", {}, rows.map(([label, cell]) => h("tr", {}, h("th", { scope: "row", class: "left" }, label),
                                                    figures.map((m) => h("td", {}, cell(m))))))));
}

function statisticsPanel(symbol, defaults) {
  const result = h("div", { id: "statistics-result", "aria-live": "polite" });
  const start = h("input", { type: "date", name: "start_date", required: true, value: defaults.start });
  const end = h("input", { type: "date", name: "end_date", required: true, value: defaults.end });
  const submit = h("button", { type: "submit", class: "primary" }, "Compute");
  const form = h("form", { class: "row", id: "statistics-form", "aria-label": "Statistics over a range" },
                 h("label", {}, "From", start), h("label", {}, "To", end), submit);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    submit.disabled = true;
    try {
      const { data } = await whileLoading(result, api.get("/api/statistics", {
        symbol, start_date: start.value, end_date: end.value }));
      replace(result, h("dl", { class: "figures" },
        h("dt", {}, "Average daily open"), h("dd", {}, number(data.average_daily_open_price)),
        h("dt", {}, "Average daily close"), h("dd", {}, number(data.average_daily_close_price)),
        h("dt", {}, "Average daily volume"), h("dd", {}, data.average_daily_volume.toLocaleString())));
    } catch (error) {
      replace(result, errorMessage(error));
    } finally {
      submit.disabled = false;
    }
  });
  return h("section", { class: "panel", "aria-labelledby": "statistics-title" },
           h("h2", { id: "statistics-title" }, "Statistics"),
           h("p", { class: "muted small" }, "Averages of the daily bars in a date range (/api/statistics)."),
           form, result);
}

export async function render(root, ctx) {
  const id = Number(ctx.params[0]);
  const metric24 = await api.get(`/api/metrics/${id}`, { window: "24h" });
  const intraday = metric24.data.interval && metric24.data.interval !== "1day";
  const choice = {
    range: ctx.query.get("range") || (intraday ? "1d" : "1y"),
    interval: ctx.query.get("interval") || null,
  };
  const heading = h("h1", {}, instrumentLabel(metric24.data));
  const subtitle = h("p", { class: "muted small", id: "instrument-subtitle" });
  const controls = h("div", { class: "controls" });
  const chartNote = h("p", { class: "muted small", id: "chart-note" });
  const chart = h("div", { class: "chart", id: "instrument-chart" });
  const chartBox = h("div", {}, chart);
  const side = h("div", {});
  const price = h("p", { class: "price", id: "last-price" });
  replace(root, h("div", { class: "head" }, h("div", {}, heading, subtitle), h("a", { href: "/" }, "← All markets")),
          h("div", { class: "grid instrument" },
            h("section", { class: "panel", "aria-label": "Chart" }, controls, chartNote, chartBox),
            h("aside", {}, h("section", { class: "panel", "aria-labelledby": "figures-title" },
                             h("h2", { id: "figures-title" }, "Last price"), price,
                             h("h2", {}, "Window figures"), side))));
  let candles = null;
  let statistics = null;

  function drawControls(data) {
    const finest = seconds(data.intervals[0]);
    const select = h("select", { id: "interval", "aria-label": "Candle interval" },
                     INTERVALS.filter(([, s]) => s >= finest).map(([name]) =>
                       h("option", { value: name, selected: name === data.interval ? true : null }, name)));
    select.addEventListener("change", () => choose({ interval: select.value }));
    replace(controls,
            h("div", { class: "segmented", role: "group", "aria-label": "Range" }, RANGES.map(([value, label]) =>
              h("button", { type: "button", "data-range": value, "aria-pressed": String(value === choice.range),
                            onclick: () => choose({ range: value }) }, label))),
            h("label", { class: "inline" }, "Interval", select));
  }

  function choose(change) {
    Object.assign(choice, change);
    const query = new URLSearchParams();
    query.set("range", choice.range);
    if (choice.interval) query.set("interval", choice.interval);
    ctx.navigate(`/instruments/${id}?${query}`);
  }

  async function drawChart(first) {
    const answer = await api.get(`/api/metrics/${id}/candles`, { range: choice.range, interval: choice.interval });
    if (!first && !answer.changed) return;
    const data = answer.data;
    candles = data;
    subtitle.textContent = `${data.name} · ${data.asset_class}${data.exchange ? ` · ${data.exchange}` : ""} · stored: ${data.intervals.join(", ") || "no bars"}`;
    drawControls(data);
    if (!data.candles.length) {
      replace(chartBox, h("p", { class: "message info" }, "No bars are stored for this instrument yet."));
      return;
    }
    const wider = data.bucket_seconds > seconds(data.interval);
    replace(chartNote, `${data.candles.length} candles of ${duration(data.bucket_seconds)}`,
            wider ? ` (widened from ${data.interval} to fit the range)` : "",
            ` from ${data.bars.toLocaleString()} stored ${data.source_interval} bars; newest `,
            time(data.last_time, { day: data.source_interval === "1day" }),
            ". Drag to zoom, double-click to reset.");
    if (!chartBox.contains(chart)) replace(chartBox, chart);
    await candleChart(chart, data.candles, { uirevision: `${id}:${choice.range}:${data.bucket_seconds}` });
    if (data.asset_class === "stock" && !statistics) {
      const first = data.candles[0].time.slice(0, 10);
      const last = data.last_time.slice(0, 10);
      statistics = statisticsPanel(data.symbol, { start: first, end: last });
      root.append(statistics);
    }
  }

  async function drawFigures(first) {
    const answers = await Promise.all(WINDOWS.map((window) =>
      (window === "24h" && first ? Promise.resolve(metric24) : api.get(`/api/metrics/${id}`, { window }))));
    if (!first && !answers.some((answer) => answer.changed)) return;
    const last = answers.map((answer) => answer.data).find((m) => isNumber(m.last_price)) || answers[0].data;
    replace(price, number(last.last_price), " ", h("span", { class: "muted small" }, time(last.last_time, { day: last.interval === "1day" })));
    replace(side, figuresTable(answers.map((answer) => answer.data)));
  }

  const results = await Promise.allSettled([drawChart(true), drawFigures(true)]);
  if (results[0].status === "rejected") replace(chartBox, errorMessage(results[0].reason, "The chart could not be loaded"));
  if (results[1].status === "rejected") replace(side, errorMessage(results[1].reason));
  return {
    title: instrumentLabel(metric24.data),
    async refresh() { await Promise.all([drawChart(false), drawFigures(false)]); },
    get candles() { return candles; },
  };
}
