// Candlestick charts with volume, drawn by Plotly (its bundle comes from the installed plotly package,
// served by this service under a fingerprinted URL; see the <meta name="plotly"> of index.html).
import { localWallClock, zoneName } from "./format.js";
import { candlePreview } from "./preview.js";

let plotly = null;

/** Plotly, from the async <script id="plotly"> of index.html (a script of our own origin, as the CSP wants). */
export function loadPlotly() {
  if (!plotly) {
    plotly = new Promise((resolve, reject) => {
      const ready = () => { performance.mark("plotly-ready"); resolve(window.Plotly); };
      if (window.Plotly) { ready(); return; }
      const script = document.getElementById("plotly");
      script.addEventListener("load", ready);
      script.addEventListener("error", () => reject(new Error("The chart library could not be loaded.")));
    });
  }
  return plotly;
}

function colours() {
  const style = getComputedStyle(document.documentElement);
  const value = (name) => style.getPropertyValue(name).trim();
  return { text: value("--text"), muted: value("--muted"), grid: value("--grid"), up: value("--up"),
           down: value("--down"), panel: value("--panel") };
}

let firstChart = false;
let interactive = false;

/** Draw (or redraw in place) a candlestick chart of `candles` with their volume below; resolves once drawn. */
export async function candleChart(element, candles, { title = "", uirevision = "chart" } = {}) {
  if (!firstChart) performance.mark("first-chart-data"); // (bench/web.py: where the first chart's time goes)
  if (!window.Plotly && !element.classList.contains("js-plotly-plot")) {
    // Plotly still loading (a first visit compiles its 4.8 MB): the candles now, the interactive chart next.
    candlePreview(element, candles, title || "Price and volume");
    if (!firstChart) {
      firstChart = true;
      performance.mark("first-chart");
    }
  }
  const Plotly = await loadPlotly();
  element.querySelector(":scope > .chart-preview")?.remove();
  const c = colours();
  const x = candles.map((candle) => localWallClock(candle.time));
  const utc = candles.map((candle) => candle.time);
  const up = candles.map((candle) => (candle.close >= candle.open ? c.up : c.down));
  const data = [
    { type: "candlestick", name: "Price", x, open: candles.map((k) => k.open), high: candles.map((k) => k.high),
      low: candles.map((k) => k.low), close: candles.map((k) => k.close), text: utc, hoverinfo: "x+y+text",
      increasing: { line: { color: c.up }, fillcolor: c.up }, decreasing: { line: { color: c.down }, fillcolor: c.down },
      xaxis: "x", yaxis: "y" },
    { type: "bar", name: "Volume", x, y: candles.map((k) => k.volume), marker: { color: up }, opacity: 0.55,
      xaxis: "x", yaxis: "y2", hovertemplate: "Volume %{y:,.4~f}<extra></extra>" },
  ];
  const axis = { gridcolor: c.grid, zerolinecolor: c.grid, linecolor: c.grid, tickfont: { color: c.muted } };
  const layout = {
    title: title ? { text: title, font: { size: 14, color: c.text }, x: 0, xanchor: "left" } : undefined,
    paper_bgcolor: c.panel, plot_bgcolor: c.panel, font: { color: c.text, family: "system-ui, sans-serif" },
    margin: { l: 56, r: 16, t: title ? 36 : 12, b: 40 }, showlegend: false, hovermode: "x unified",
    dragmode: "zoom", uirevision, // the same revision keeps the reader's zoom when new data is drawn
    xaxis: { ...axis, type: "date", anchor: "y2", rangeslider: { visible: false }, title: { text: zoneName(), font: { size: 11, color: c.muted } } },
    yaxis: { ...axis, domain: [0.3, 1], title: { text: "Price", font: { size: 11, color: c.muted } }, fixedrange: false },
    yaxis2: { ...axis, domain: [0, 0.22], title: { text: "Volume", font: { size: 11, color: c.muted } } },
  };
  const config = { responsive: true, displaylogo: false, modeBarButtonsToRemove: ["select2d", "lasso2d"] };
  // Plotly.react resolves once the plot is drawn (after its "plotly_afterplot" event). The Performance API
  // marks the page's first chart, preview or Plotly's ("first-chart"), and its first interactive one
  // ("first-interactive-chart"); bench/web.py reads both.
  await Plotly.react(element, data, layout, config);
  if (!firstChart) {
    firstChart = true;
    performance.mark("first-chart");
  }
  if (!interactive) {
    interactive = true;
    performance.mark("first-interactive-chart");
  }
  return element;
}

export function purge(element) {
  if (window.Plotly && element) window.Plotly.purge(element);
}

// Charts follow the system's light/dark switch while the page is open.
matchMedia("(prefers-color-scheme: dark)").addEventListener("change", () => {
  for (const element of document.querySelectorAll(".js-plotly-plot")) {
    const c = colours();
    window.Plotly.relayout(element, { paper_bgcolor: c.panel, plot_bgcolor: c.panel, "font.color": c.text });
  }
});
