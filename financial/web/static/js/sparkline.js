// A small SVG line of closes, drawn here (no chart library for a 96-pixel picture).
import { h } from "./dom.js";
import { number } from "./format.js";

export function sparkline(values, label) {
  const points = values.filter((value) => Number.isFinite(value));
  if (points.length < 2) return h("span", { class: "null", title: "Not enough data for a line" }, "–");
  const low = Math.min(...points);
  const high = Math.max(...points);
  const spread = high - low || 1;
  const step = 100 / (points.length - 1);
  const coordinates = points.map((value, i) => `${(i * step).toFixed(2)},${(23 - ((value - low) / spread) * 22).toFixed(2)}`);
  const first = points[0];
  const last = points[points.length - 1];
  const direction = last > first ? "up" : last < first ? "down" : "";
  const description = `${label}: from ${number(first)} to ${number(last)}`;
  return h("svg", { class: ["spark", direction], viewBox: "0 0 100 24", preserveAspectRatio: "none", role: "img",
                    "aria-label": description, "data-points": points.length },
           h("title", {}, description),
           h("polyline", { points: coordinates.join(" ") }));
}
