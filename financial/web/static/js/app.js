// The page's entry point: one view per address (history API: bookmarks and the back button work), the
// header's search, and the live refresh of the open view each minute (conditional requests: unchanged
// data costs a 304 and no redraw).
import { h, errorMessage, loading, replace } from "./dom.js";
import { setUpSearch } from "./search.js";
import { session } from "./api.js";
import * as markets from "./views/markets.js";
import * as instrument from "./views/instrument.js";
import * as dashboard from "./views/dashboard.js";
import * as account from "./views/account.js";

const REFRESH_MS = 60_000;
const ROUTES = [
  [/^\/$/, markets, "/"],
  [/^\/instruments\/(\d+)$/, instrument, null],
  [/^\/dashboard$/, dashboard, "/dashboard"],
  [/^\/account$/, account, "/account"],
];

const main = document.getElementById("main");
const updated = document.getElementById("updated");
let current = null; // {view, controller, container}
let lastRefresh = 0;

function route(pathname) {
  for (const [pattern, view, nav] of ROUTES) {
    const match = pattern.exec(pathname);
    if (match) return { view, params: match.slice(1), nav };
  }
  return null;
}

function markNav(nav) {
  for (const link of document.querySelectorAll(".nav a")) {
    if (link.getAttribute("href") === nav) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  document.getElementById("account-link").textContent = session.token ? "Account ✓" : "Account";
}

function stamp() {
  lastRefresh = Date.now();
  const now = new Date();
  replace(updated, "Updated ", h("time", { datetime: now.toISOString(), title: now.toISOString() },
                                 now.toLocaleTimeString()));
}

async function show({ focus } = {}) {
  if (current && current.controller && current.controller.destroy) current.controller.destroy();
  const found = route(location.pathname);
  const container = h("div", {});
  replace(main, container);
  current = { controller: null, container };
  if (!found) {
    document.title = "Not found · Market data tracker";
    markNav(null);
    replace(container, h("h1", {}, "Page not found"),
            errorMessage(`There is no page at ${location.pathname}.`), h("a", { href: "/" }, "Go to the markets"));
    return;
  }
  markNav(found.nav);
  document.title = `${found.view.title} · Market data tracker`;
  replace(container, loading());
  const ctx = { params: found.params, query: new URLSearchParams(location.search), navigate };
  const mine = current;
  try {
    const controller = await found.view.render(container, ctx);
    mine.controller = controller || {};
    if (controller && controller.title) document.title = `${controller.title} · Market data tracker`;
  } catch (error) {
    if (mine === current) replace(container, h("h1", {}, found.view.title), errorMessage(error));
  }
  if (mine === current) {
    stamp();
    if (focus) container.querySelector(focus)?.focus();
  }
}

/** Go to an address of the page. `replace`: no new history entry; `quiet`: the view already shows it. */
export function navigate(href, { replace: replaceEntry = false, quiet = false, focus = null } = {}) {
  history[replaceEntry ? "replaceState" : "pushState"]({}, "", href);
  if (!quiet) {
    show({ focus });
    if (!focus) window.scrollTo(0, 0);
  }
}

async function refresh() {
  const mine = current;
  if (!mine || !mine.controller || !mine.controller.refresh) return;
  try {
    await mine.controller.refresh();
    if (mine === current) stamp();
  } catch (error) {
    if (mine === current) {
      const notice = errorMessage(error, "Refresh failed");
      mine.container.querySelector(".message.refresh-error")?.remove();
      notice.classList.add("refresh-error");
      mine.container.prepend(notice);
    }
  }
}

document.addEventListener("click", (event) => {
  const link = event.target.closest("a[href]");
  if (!link || event.defaultPrevented || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey ||
      event.altKey || link.target || link.hasAttribute("download")) return;
  const target = new URL(link.href, location.href);
  if (target.origin !== location.origin || !route(target.pathname)) return;
  event.preventDefault();
  navigate(target.pathname + target.search);
});
document.addEventListener("navigate", (event) => navigate(event.detail));
window.addEventListener("popstate", () => show());
document.getElementById("refresh").addEventListener("click", refresh);
document.addEventListener("app:refresh", refresh);
setInterval(() => { if (document.visibilityState === "visible") refresh(); }, REFRESH_MS);
document.addEventListener("visibilitychange", () => {
  if (document.visibilityState === "visible" && Date.now() - lastRefresh > REFRESH_MS) refresh();
});
window.addEventListener("unhandledrejection", (event) => {
  if (current) current.container.prepend(errorMessage(event.reason, "Something went wrong"));
});

setUpSearch({
  input: document.getElementById("search-input"),
  list: document.getElementById("search-results"),
  navigate,
  showError: (error) => current && current.container.prepend(errorMessage(error)),
});
show();
