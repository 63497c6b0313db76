// Markets: every tracked instrument with its last price, standard deviation and volatility over 24 hours,
// 7 and 30 days with their ranks, a sparkline each, sortable by any column; above, a chart of the
// instrument that moved most.
import { all, api } from "../api.js";
import { candleChart } from "../chart.js";
import { errorMessage, h, info, replace } from "../dom.js";
import { DASH, instrumentLabel, isNumber, number, nullable, time } from "../format.js";
import { sparkline } from "../sparkline.js";
import { compareBy, sortableTable } from "../table.js";

export const title = "Markets";
const WINDOWS = ["24h", "7d", "30d"];
const SPARK_QUERY = { range: "1m", points: 60 };
const SPARK_CONCURRENCY = 4;

async function load() {
  const lists = await Promise.all(WINDOWS.flatMap((window) => ["stdev", "volatility"].map(
    (rankBy) => all("/api/metrics", { window, rank_by: rankBy }))));
  const rows = new Map();
  WINDOWS.forEach((window, w) => {
    for (const [r, rankBy] of ["stdev", "volatility"].entries()) {
      for (const item of lists[w * 2 + r].data) {
        const row = rows.get(item.id) || { ...item, last_price: null, last_time: null, stdev: {}, volatility: {},
                                           rank: {}, vrank: {} };
        if (row.last_price === null && isNumber(item.last_price)) {
          row.last_price = item.last_price;
          row.last_time = item.last_time;
        }
        row.stdev[window] = item.stdev;
        row.volatility[window] = item.volatility;
        row[rankBy === "stdev" ? "rank" : "vrank"][window] = item.rank;
        rows.set(item.id, row);
      }
    }
  });
  return { rows: [...rows.values()], changed: lists.some((list) => list.changed) };
}

function figure(value, rank, digits) {
  if (!isNumber(value)) return nullable(DASH);
  return [number(value, digits), rank ? h("span", { class: "rank", title: `Rank ${rank}` }, `#${rank}`) : null];
}

function columns(sparks) {
  const list = [
    { key: "instrument", label: "Instrument", left: true, sort: (row) => instrumentLabel(row).toLowerCase(),
      cell: (row) => h("a", { href: `/instruments/${row.id}` }, instrumentLabel(row)) },
    { key: "price", label: "Last price", sort: (row) => row.last_price,
      cell: (row) => [number(row.last_price), h("br"), h("span", { class: "muted small" }, time(row.last_time, { day: row.interval === "1day" }))] },
    { key: "trend", label: "Trend (30 d)", sortable: false, cell: (row) => sparks.cell(row) },
  ];
  for (const window of WINDOWS) {
    list.push({ key: `stdev_${window}`, label: `σ ${window}`, title: `Standard deviation of the close over ${window} (rank)`,
                sort: (row) => row.stdev[window], cell: (row) => figure(row.stdev[window], row.rank[window]) });
    list.push({ key: `volatility_${window}`, label: `Vol. ${window} %`,
                title: `Volatility: standard deviation of the returns over ${window}, in percent (rank)`,
                sort: (row) => row.volatility[window],
                cell: (row) => figure(row.volatility[window], row.vrank[window], { digits: 4 }) });
  }
  return list;
}

/** Sparklines fetched as their rows scroll into view, a few at a time, each kept for the refresh. */
class Sparks {
  constructor() {
    this.values = new Map();
    this.queue = [];
    this.running = 0;
    this.observer = new IntersectionObserver((entries) => {
      for (const entry of entries) {
        if (entry.isIntersecting) {
          this.observer.unobserve(entry.target);
          this.enqueue(Number(entry.target.dataset.id), entry.target);
        }
      }
    }, { rootMargin: "200px" });
  }

  cell(row) {
    const cell = h("div", { class: "spark-cell", "data-id": row.id });
    if (this.values.has(row.id)) replace(cell, sparkline(this.values.get(row.id), instrumentLabel(row)));
    else this.observer.observe(cell);
    cell.dataset.label = instrumentLabel(row);
    return cell;
  }

  enqueue(id, cell) {
    this.queue.push([id, cell]);
    this.pump();
  }

  pump() {
    while (this.running < SPARK_CONCURRENCY && this.queue.length) {
      const [id, cell] = this.queue.shift();
      this.running += 1;
      api.get(`/api/metrics/${id}/candles`, SPARK_QUERY)
        .then(({ data }) => {
          const closes = data.candles.map((candle) => candle.close);
          this.values.set(id, closes);
          replace(cell, sparkline(closes, cell.dataset.label));
        }, () => replace(cell, h("span", { class: "null", title: "Could not load the trend" }, DASH)))
        .finally(() => { this.running -= 1; this.pump(); });
    }
  }

  async refresh() {
    const cells = [...document.querySelectorAll(".spark-cell")].filter((cell) => this.values.has(Number(cell.dataset.id)));
    await Promise.all(cells.map(async (cell) => {
      const { data, changed } = await api.get(`/api/metrics/${cell.dataset.id}/candles`, SPARK_QUERY);
      if (changed) {
        const closes = data.candles.map((candle) => candle.close);
        this.values.set(Number(cell.dataset.id), closes);
        replace(cell, sparkline(closes, cell.dataset.label));
      }
    }));
  }

  destroy() { this.observer.disconnect(); this.queue = []; }
}

function topMover(rows) {
  for (const window of WINDOWS) {
    const top = rows.find((row) => row.rank[window] === 1);
    if (top) return { row: top, window };
  }
  return null;
}

export async function render(root, ctx) {
  const sort = { key: ctx.query.get("sort") || "stdev_24h", dir: ctx.query.get("dir") === "asc" ? "asc" : "desc" };
  const sparks = new Sparks();
  const featured = h("section", { class: "panel", "aria-labelledby": "featured-title" });
  const tablePanel = h("section", { class: "panel", "aria-labelledby": "markets-title" });
  replace(root, h("div", { class: "head" }, h("h1", {}, "Markets"),
                  h("span", { class: "muted small" }, "Figures as of the last ingest; click a row to open it")),
          featured, tablePanel);
  let rows = [];
  let chartKey = null;

  function drawTable() {
    const cols = columns(sparks);
    const column = cols.find((c) => c.key === sort.key) || cols[3];
    const sorted = [...rows].sort(compareBy(column.sort, sort.dir));
    replace(tablePanel, h("h2", { id: "markets-title" }, `Tracked instruments (${rows.length})`),
            sortableTable({
              columns: cols, rows: sorted, sort, rowHref: (row) => `/instruments/${row.id}`,
              empty: "No instrument is tracked yet: run an ingest (get_raw_data.py) or add one to your watchlist.",
              onSort: (key) => {
                sort.dir = sort.key === key && sort.dir === "desc" ? "asc" : "desc";
                if (key === "instrument" && sort.key !== key) sort.dir = "asc";
                sort.key = key;
                ctx.navigate(`/?sort=${key}&dir=${sort.dir}`, { replace: true, quiet: true });
                drawTable();
                tablePanel.querySelector(`button[data-key="${key}"]`)?.focus();
              },
            }));
  }

  async function drawFeatured() {
    const top = topMover(rows);
    if (!top) {
      replace(featured, h("h2", { id: "featured-title" }, "Chart"), info("No instrument has figures yet."));
      return;
    }
    const intraday = top.row.interval && top.row.interval !== "1day";
    const query = { range: intraday ? "1d" : "1m" };
    const { data, changed } = await api.get(`/api/metrics/${top.row.id}/candles`, query);
    const key = `${top.row.id}:${query.range}`;
    if (!changed && chartKey === key) return;
    const chart = featured.querySelector(".chart") || h("div", { class: "chart", id: "featured-chart" });
    if (chartKey !== key) {
      replace(featured, h("div", { class: "head" },
                          h("h2", { id: "featured-title" },
                            `Highest ${top.window} standard deviation: ${instrumentLabel(top.row)}`),
                          h("a", { href: `/instruments/${top.row.id}` }, "Open the instrument →")),
              h("p", { class: "muted small" }, intraday ? "Last 24 hours" : "Last 30 days",
                ` · ${data.candles.length} candles of ${data.bucket_seconds / 60 >= 1440 ? "1 day" : `${data.bucket_seconds / 60} min`}`),
              chart);
    }
    chartKey = key;
    await candleChart(chart, data.candles, { uirevision: key });
  }

  async function update(first) {
    const loaded = await load();
    if (first || loaded.changed) {
      rows = loaded.rows;
      drawTable();
    }
    await drawFeatured().catch((error) => replace(featured, errorMessage(error, "The chart could not be loaded")));
  }

  await update(true);
  return {
    async refresh() {
      await update(false);
      await sparks.refresh();
    },
    destroy() { sparks.destroy(); },
  };
}
