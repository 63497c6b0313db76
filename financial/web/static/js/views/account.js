// Account: sign up, log in, log out (the token lives in sessionStorage, sent as a bearer token); the
// watchlist (add by exchange:pair, or by a market's symbol, and remove), its ranking and its alerts.
import { ApiError, api, session } from "../api.js";
import { errorMessage, h, info, replace } from "../dom.js";
import { DASH, instrumentLabel, isNumber, number, time } from "../format.js";
import { sortableTable } from "../table.js";

export const title = "Account";

function credentialsForm({ id, legend, button, autocomplete, onSubmit }) {
  const email = h("input", { type: "email", name: "email", required: true, autocomplete: "email", id: `${id}-email` });
  const password = h("input", { type: "password", name: "password", required: true, minlength: 8,
                                autocomplete, id: `${id}-password` });
  const submit = h("button", { type: "submit", class: "primary" }, button);
  const result = h("div", { "aria-live": "polite" });
  const form = h("form", { class: "stack", id, "aria-labelledby": `${id}-title` },
                 h("h2", { id: `${id}-title` }, legend),
                 h("label", { for: `${id}-email` }, "E-mail", email),
                 h("label", { for: `${id}-password` }, "Password (at least 8 characters)", password),
                 submit, result);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    submit.disabled = true;
    replace(result);
    try {
      await onSubmit(email.value.trim(), password.value);
    } catch (error) {
      replace(result, errorMessage(error));
    } finally {
      submit.disabled = false;
    }
  });
  return form;
}

async function logIn(email, password) {
  const { data } = await api.post("/api/auth/login", { email, password });
  session.start(data.token, email.toLowerCase());
}

/** "kraken:btcusd" → {exchange, ticker}; a bare symbol is looked up among the known markets. */
export async function parseMarket(text) {
  const value = text.trim();
  if (!value) throw new ApiError("Type a market as exchange:pair, e.g. kraken:btcusd.", 400);
  const colon = value.indexOf(":");
  if (colon > 0) return { exchange: value.slice(0, colon).trim(), ticker: value.slice(colon + 1).trim() };
  const { data } = await api.get("/api/search", { name: value, limit: 20 });
  const wanted = value.toLowerCase().replace(/[^a-z0-9]/g, "");
  const markets = data.filter((match) => match.exchange && match.symbol.toLowerCase() === wanted);
  if (markets.length === 1) return { exchange: markets[0].exchange, ticker: markets[0].symbol };
  const known = markets.map((match) => `${match.exchange}:${match.symbol}`).join(", ");
  throw new ApiError(markets.length
    ? `${value} is listed on several exchanges (${known}); type one of them.`
    : `No known market is called ${value}; type it with its exchange, as exchange:pair (e.g. kraken:btcusd).`, 400);
}

function signedOut(root, rerender, notice) {
  const login = credentialsForm({ id: "login", legend: "Log in", button: "Log in", autocomplete: "current-password",
                                  onSubmit: async (email, password) => { await logIn(email, password); rerender(); } });
  const signup = credentialsForm({ id: "signup", legend: "Create an account", button: "Sign up",
                                   autocomplete: "new-password",
                                   onSubmit: async (email, password) => {
                                     await api.post("/api/auth/signup", { email, password });
                                     await logIn(email, password);
                                     rerender();
                                   } });
  replace(root, h("div", { class: "head" }, h("h1", {}, "Account")), notice ? info(notice) : null,
          h("div", { class: "grid two" }, h("section", { class: "panel" }, login),
            h("section", { class: "panel" }, signup)));
  return {};
}

function watchlistTable(markets, remove) {
  return sortableTable({
    columns: [
      { key: "market", label: "Market", left: true,
        cell: (m) => h("a", { href: `/instruments/${m.instrument_id}` }, `${m.exchange}:${m.ticker}`) },
      { key: "name", label: "Name", left: true, cell: (m) => m.name },
      { key: "added", label: "Added", cell: (m) => time(m.added_at) },
      { key: "remove", label: "", cell: (m) => h("button", { type: "button", "data-remove": `${m.exchange}:${m.ticker}`,
                                                           "aria-label": `Remove ${m.exchange}:${m.ticker}`,
                                                           onclick: () => remove(m) }, "Remove") },
    ],
    rows: markets, empty: "Your watchlist is empty: add a market above.",
  });
}

function rankingsTable(rankings) {
  return sortableTable({
    columns: [
      { key: "rank", label: "Rank", left: true, cell: (m) => (m.rank ? `#${m.rank}` : DASH) },
      { key: "market", label: "Market", left: true, cell: (m) => h("a", { href: `/instruments/${m.id}` }, instrumentLabel(m)) },
      { key: "price", label: "Last price", cell: (m) => number(m.last_price) },
      { key: "stdev", label: "σ 24h", cell: (m) => number(m.stdev) },
      { key: "volatility", label: "Vol. 24h %", cell: (m) => number(m.volatility, { digits: 4 }) },
      { key: "points", label: "Points", cell: (m) => (isNumber(m.points) ? m.points.toLocaleString() : DASH) },
    ],
    rows: rankings, empty: "Nothing to rank yet.",
  });
}

function alertsTable(alerts) {
  return sortableTable({
    columns: [
      { key: "time", label: "Bar", left: true, cell: (a) => time(a.bar_time) },
      { key: "market", label: "Market", left: true, cell: (a) => `${a.exchange}:${a.ticker}` },
      { key: "quantity", label: "What", left: true, cell: (a) => a.quantity },
      { key: "value", label: "Value", cell: (a) => number(a.value) },
      { key: "average", label: "Average", cell: (a) => number(a.average) },
      { key: "ratio", label: "× average", cell: (a) => number(a.ratio) },
      { key: "email", label: "E-mail", cell: (a) => a.email || DASH },
    ],
    rows: alerts, empty: "No alerts yet: one is raised when a price or volume reaches 3× its last-hour average.",
  });
}

function signedIn(root, rerender) {
  const input = h("input", { type: "text", id: "watch-market", required: true, autocomplete: "off",
                             placeholder: "kraken:btcusd or btcusd", "aria-label": "Market to watch" });
  const add = h("button", { type: "submit", class: "primary" }, "Add");
  const addResult = h("div", { "aria-live": "polite", id: "watch-result" });
  const form = h("form", { class: "row", id: "watch-form", "aria-label": "Add a market" }, input, add);
  const lists = { markets: h("div", { id: "watchlist" }), rankings: h("div", { id: "my-rankings" }),
                  alerts: h("div", { id: "my-alerts" }) };
  const logout = h("button", { type: "button", id: "logout" }, "Log out");
  replace(root,
          h("div", { class: "head" }, h("h1", {}, "Account"),
            h("span", {}, h("span", { class: "muted" }, `Signed in as ${session.email} `), logout)),
          h("section", { class: "panel", "aria-labelledby": "watchlist-title" },
            h("h2", { id: "watchlist-title" }, "Watchlist"),
            h("p", { class: "muted small" }, "Add a crypto market as exchange:pair; minute ingests track it from then on."),
            form, addResult, lists.markets),
          h("div", { class: "grid two" },
            h("section", { class: "panel", "aria-labelledby": "rankings-title" },
              h("h2", { id: "rankings-title" }, "Your ranking (24 h standard deviation)"), lists.rankings),
            h("section", { class: "panel", "aria-labelledby": "alerts-title" },
              h("h2", { id: "alerts-title" }, "Alerts"), lists.alerts)));

  async function draw() {
    const results = await Promise.allSettled([
      api.get("/api/me/markets", { limit: 1000 }, { auth: true }),
      api.get("/api/me/rankings", { limit: 1000 }, { auth: true }),
      api.get("/api/me/alerts", { limit: 100 }, { auth: true }),
    ]);
    const expired = results.find((r) => r.status === "rejected" && r.reason.status === 401);
    if (expired) { rerender("Your session has ended; log in again."); return; }
    const [markets, rankings, alerts] = results;
    replace(lists.markets, markets.status === "fulfilled" ? watchlistTable(markets.value.data, remove) : errorMessage(markets.reason));
    replace(lists.rankings, rankings.status === "fulfilled" ? rankingsTable(rankings.value.data) : errorMessage(rankings.reason));
    replace(lists.alerts, alerts.status === "fulfilled" ? alertsTable(alerts.value.data) : errorMessage(alerts.reason));
  }

  async function remove(market) {
    try {
      await api.delete(`/api/me/markets/${encodeURIComponent(market.exchange)}/${encodeURIComponent(market.ticker)}`,
                       { auth: true });
      replace(addResult, info(`Removed ${market.exchange}:${market.ticker}.`));
      await draw();
      input.focus();
    } catch (error) {
      replace(addResult, errorMessage(error));
    }
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    add.disabled = true;
    replace(addResult);
    try {
      const market = await parseMarket(input.value);
      const answer = await api.post("/api/me/markets", market, { auth: true });
      const entry = answer.data;
      replace(addResult, info(answer.status === 201 ? `Added ${entry.name}.` : `${entry.name} is already on your watchlist.`));
      input.value = "";
      await draw();
    } catch (error) {
      if (error.status === 401) { rerender("Your session has ended; log in again."); return; }
      replace(addResult, errorMessage(error));
    } finally {
      add.disabled = false;
    }
  });
  logout.addEventListener("click", async () => {
    try { await api.post("/api/auth/logout", undefined, { auth: true }); } catch { /* signed out here either way */ }
    session.end();
    rerender("You are logged out.");
  });
  return { refresh: draw, draw };
}

export async function render(root) {
  let controller = null;
  const rerender = (notice) => {
    controller = session.token ? signedIn(root, rerender) : signedOut(root, rerender, notice);
    if (controller.draw) return controller.draw();
    return undefined;
  };
  await rerender();
  return { refresh: () => controller && controller.refresh ? controller.refresh() : undefined };
}
