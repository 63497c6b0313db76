// How figures and times read on the page: nulls as "–", times in the browser's zone with UTC on hover.
import { h } from "./dom.js";

export const DASH = "–";

export function isNumber(value) {
  return typeof value === "number" && Number.isFinite(value);
}

/** A number with about `significant` significant digits, grouped; prices keep their cents. */
export function number(value, { digits } = {}) {
  if (!isNumber(value)) return DASH;
  const magnitude = Math.abs(value);
  const fraction = digits ?? (magnitude >= 1000 ? 2 : magnitude >= 1 ? 2 : magnitude >= 0.01 ? 4 : 6);
  return value.toLocaleString(undefined, { minimumFractionDigits: Math.min(fraction, 2), maximumFractionDigits: fraction });
}

export function compact(value) {
  if (!isNumber(value)) return DASH;
  return value.toLocaleString(undefined, { notation: "compact", maximumFractionDigits: 2 });
}

export function percent(value, digits = 2) {
  if (!isNumber(value)) return DASH;
  const sign = value > 0 ? "+" : "";
  return `${sign}${value.toFixed(digits)}%`;
}

/** A table cell's content for a percent change: coloured and marked ▲/▼ (not by colour alone). */
export function change(value) {
  if (!isNumber(value)) return h("span", { class: "null" }, DASH);
  const direction = value > 0 ? "up" : value < 0 ? "down" : "";
  const arrow = value > 0 ? "▲ " : value < 0 ? "▼ " : "";
  return h("span", { class: direction }, arrow + percent(value));
}

export function nullable(text) {
  return text === DASH ? h("span", { class: "null" }, DASH) : text;
}

const LOCAL = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });
const LOCAL_DAY = new Intl.DateTimeFormat(undefined, { dateStyle: "medium" });

export function utcText(date) {
  return date.toISOString().replace("T", " ").replace(/:\d\d\.\d+Z$/, " UTC").replace(/\.\d+Z$/, " UTC");
}

/** A <time> element: local time as text, UTC in its title (shown on hover). */
export function time(iso, { day = false } = {}) {
  if (!iso) return h("span", { class: "null" }, DASH);
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return String(iso);
  if (day) return h("time", { datetime: iso, title: `${iso.slice(0, 10)} (UTC)` }, LOCAL_DAY.format(date));
  return h("time", { datetime: iso, title: utcText(date) }, LOCAL.format(date));
}

/** "YYYY-MM-DD HH:MM:SS" in the browser's zone: how Plotly's date axis is given local wall-clock times. */
export function localWallClock(iso) {
  const d = new Date(iso);
  const pad = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

export function zoneName() {
  return Intl.DateTimeFormat().resolvedOptions().timeZone || "local time";
}

export function duration(seconds) {
  if (!isNumber(seconds)) return DASH;
  if (seconds % 86400 === 0) return `${seconds / 86400} day${seconds === 86400 ? "" : "s"}`;
  if (seconds % 3600 === 0) return `${seconds / 3600} h`;
  return `${seconds / 60} min`;
}

/** An instrument as people name it: "BTC/USD · kraken" for a market, the symbol for stocks and coins. */
export function instrumentLabel(item) {
  if (item.exchange) {
    const pair = item.base && item.quote ? `${item.base}/${item.quote}` : item.symbol;
    return `${pair} · ${item.exchange}`;
  }
  return item.symbol;
}
