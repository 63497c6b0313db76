// A first picture of a candlestick chart, drawn in SVG by the page itself while Plotly's bundle is still
// being fetched and compiled (most of a first visit's wait): the candles and their volume at once, then
// Plotly's interactive chart (zoom, hover values) in their place as soon as it is ready.
import { h, replace } from "./dom.js";

const WIDTH = 1000;
const HEIGHT = 460;
const PRICE_BOTTOM = 0.7 * HEIGHT; // the price pane above, the volume pane below, as in the Plotly chart
const VOLUME_TOP = 0.78 * HEIGHT;

export function candlePreview(element, candles, label) {
  const shown = candles.filter((k) => [k.open, k.high, k.low, k.close, k.volume].every(Number.isFinite));
  if (!shown.length) return;
  const low = Math.min(...shown.map((k) => k.low));
  const high = Math.max(...shown.map((k) => k.high));
  const spread = high - low || 1;
  const most = Math.max(...shown.map((k) => k.volume)) || 1;
  const slot = WIDTH / shown.length;
  const body = Math.max(1, slot * 0.6);
  const y = (price) => (PRICE_BOTTOM - ((price - low) / spread) * (PRICE_BOTTOM - 8)).toFixed(1);
  const marks = shown.flatMap((k, i) => {
    const centre = (i + 0.5) * slot;
    const direction = k.close >= k.open ? "up" : "down";
    const top = Math.min(Number(y(k.open)), Number(y(k.close)));
    const volumeHeight = ((HEIGHT - VOLUME_TOP) * k.volume) / most;
    return [
      h("line", { class: ["wick", direction], x1: centre.toFixed(1), x2: centre.toFixed(1), y1: y(k.high),
                  y2: y(k.low) }),
      h("rect", { class: ["candle", direction], x: (centre - body / 2).toFixed(1), y: top.toFixed(1),
                  width: body.toFixed(1), height: Math.max(1, Math.abs(Number(y(k.open)) - Number(y(k.close)))).toFixed(1) }),
      h("rect", { class: ["volume", direction], x: (centre - body / 2).toFixed(1),
                  y: (HEIGHT - volumeHeight).toFixed(1), width: body.toFixed(1), height: volumeHeight.toFixed(1) }),
    ];
  });
  replace(element, h("svg", { class: "chart-preview", viewBox: `0 0 ${WIDTH} ${HEIGHT}`, preserveAspectRatio: "none",
                               role: "img", "aria-label": `${label}: ${shown.length} candles (loading the interactive chart)`,
                               "data-candles": shown.length }, h("title", {}, label), ...marks));
}
