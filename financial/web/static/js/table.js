// A table whose column headers sort it: buttons in the headers (keyboard reachable), aria-sort on the
// sorted one. Sorting itself is the caller's (in the page for markets, by the API for the dashboard).
import { h } from "./dom.js";

/**
 * columns: [{key, label, title?, left?, sortable?, cell(row) -> Node|string}]
 * sort: {key, dir: "asc"|"desc"}; onSort(key) is called when a header is chosen.
 */
export function sortableTable({ columns, rows, sort, onSort, rowHref, caption, empty = "Nothing to show." }) {
  const head = h("tr", {}, columns.map((column) => {
    const sorted = sort && sort.key === column.key;
    const attrs = { scope: "col", class: column.left ? "left" : null, title: column.title || null,
                    "aria-sort": sorted ? (sort.dir === "asc" ? "ascending" : "descending") : null };
    if (column.sortable === false || !onSort) return h("th", attrs, column.label);
    return h("th", attrs, h("button", { type: "button", class: "sort", "data-key": column.key,
                                        onclick: () => onSort(column.key) }, column.label));
  }));
  const body = rows.length
    ? rows.map((row) => {
      const href = rowHref ? rowHref(row) : null;
      return h("tr", { class: href ? "clickable" : null, "data-href": href,
                       onclick: href ? (event) => openRow(event, href) : null },
               columns.map((column) => h("td", { class: column.left ? "left" : null }, column.cell(row))));
    })
    : [h("tr", {}, h("td", { class: "left muted", colspan: columns.length }, empty))];
  return h("div", { class: "table-wrap" },
           h("table", {}, caption ? h("caption", { class: "muted small left" }, caption) : null,
             h("thead", {}, head), h("tbody", {}, body)));
}

function openRow(event, href) {
  // A click anywhere on the row opens it, unless it was on a link or button of its own.
  if (event.target.closest("a, button, input")) return;
  event.currentTarget.dispatchEvent(new CustomEvent("navigate", { bubbles: true, detail: href }));
}

/** Compare two values for sorting: numbers and text, nulls always last whatever the direction. */
export function compareBy(key, dir) {
  const sign = dir === "asc" ? 1 : -1;
  return (a, b) => {
    const x = key(a);
    const y = key(b);
    const xNull = x === null || x === undefined || Number.isNaN(x);
    const yNull = y === null || y === undefined || Number.isNaN(y);
    if (xNull || yNull) return xNull === yNull ? 0 : xNull ? 1 : -1;
    if (typeof x === "string" || typeof y === "string") return sign * String(x).localeCompare(String(y));
    return sign * (x - y);
  };
}
