// Dashboard: each coin's price and its 24h / 7d / 1m changes on a date, sorted by any column (by the API),
// changes coloured and marked, nulls as "–". Date and order live in the address.
import { all, findInstrumentId } from "../api.js";
import { h, replace } from "../dom.js";
import { change, compact, number } from "../format.js";
import { sortableTable } from "../table.js";

export const title = "Dashboard";
const COLUMNS = [
  { key: "crypto", label: "Name", left: true, cell: (row) => (row.link ? h("a", { href: row.link }, row.crypto) : row.crypto) },
  { key: "symbol", label: "Symbol", left: true, cell: (row) => row.symbol },
  { key: "price", label: "Price", cell: (row) => number(row.price) },
  { key: "24h", label: "24h", cell: (row) => change(row["24h"]) },
  { key: "7d", label: "7d", cell: (row) => change(row["7d"]) },
  { key: "1m", label: "1m", cell: (row) => change(row["1m"]) },
  { key: "24h-volume", label: "24h volume", cell: (row) => compact(row["24h-volume"]) },
  { key: "market-cap", label: "Market cap", cell: (row) => compact(row["market-cap"]) },
];

function nextDirection(state, key) {
  if (state.order_by === key) return state.order_type === "desc" ? "asc" : "desc";
  return key === "crypto" || key === "symbol" ? "asc" : "desc";
}

export async function render(root, ctx) {
  const state = {
    date: ctx.query.get("date") || "",
    order_by: ctx.query.get("order_by") || "market-cap",
    order_type: ctx.query.get("order_type") === "asc" ? "asc" : "desc",
  };
  const date = h("input", { type: "date", id: "dashboard-date", value: state.date });
  const latest = h("button", { type: "button" }, "Latest");
  const tableBox = h("div", {});
  replace(root,
          h("div", { class: "head" }, h("h1", {}, "Dashboard"),
            h("span", { class: "muted small" }, "Changes against the close 1, 7 and 30 days before the date")),
          h("section", { class: "panel", "aria-label": "Price changes" },
            h("div", { class: "controls" }, h("label", { class: "inline" }, "Date", date), latest,
              h("span", { class: "muted small", id: "dashboard-note" }, state.date ? "" : "Latest date with data")),
            tableBox));

  function go(change, focus) {
    const next = { ...state, ...change };
    const query = new URLSearchParams();
    if (next.date) query.set("date", next.date);
    query.set("order_by", next.order_by);
    query.set("order_type", next.order_type);
    ctx.navigate(`/dashboard?${query}`, { focus });
  }
  date.addEventListener("change", () => go({ date: date.value }, "#dashboard-date"));
  latest.addEventListener("click", () => go({ date: "" }, "#dashboard-date"));

  async function draw(first) {
    const answer = await all("/api/dashboard", { date: state.date, order_by: state.order_by, order_type: state.order_type });
    if (!first && !answer.changed) return;
    const rows = await Promise.all(answer.data.map(async (row) => {
      const id = await findInstrumentId({ exchange: null, symbol: row.symbol }).catch(() => null);
      return { ...row, link: id ? `/instruments/${id}` : null };
    }));
    replace(tableBox, sortableTable({
      columns: COLUMNS, rows, sort: { key: state.order_by, dir: state.order_type },
      empty: `No daily bars on or before ${state.date || "today"}.`,
      rowHref: (row) => row.link,
      onSort: (key) => go({ order_by: key, order_type: nextDirection(state, key) }, `button[data-key="${key}"]`),
    }));
  }

  await draw(true);
  return { refresh: () => draw(false) };
}
