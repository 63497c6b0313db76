// The header's search box: suggestions from /api/search as you type (debounced), a combobox that the
// keyboard drives (arrows, Enter, Escape); choosing one opens its instrument.
import { api, findInstrumentId } from "./api.js";
import { h, replace } from "./dom.js";

const DEBOUNCE_MS = 200;

export function setUpSearch({ input, list, navigate, showError }) {
  let timer = null;
  let matches = [];
  let active = -1;
  let asked = 0;

  function close() {
    list.hidden = true;
    input.setAttribute("aria-expanded", "false");
    input.removeAttribute("aria-activedescendant");
    active = -1;
  }

  function highlight(index) {
    active = index;
    [...list.children].forEach((item, i) => item.setAttribute("aria-selected", String(i === index)));
    if (index >= 0 && list.children[index]) {
      input.setAttribute("aria-activedescendant", list.children[index].id);
      list.children[index].scrollIntoView({ block: "nearest" });
    }
  }

  async function choose(match) {
    close();
    try {
      const id = await findInstrumentId(match);
      if (id === null) throw new Error(`${match.name} (${match.symbol}) has no page of its own yet.`);
      input.value = "";
      navigate(`/instruments/${id}`);
    } catch (error) {
      showError(error);
    }
  }

  function show(found, text) {
    matches = found;
    replace(list, found.length
      ? found.map((match, i) => h("li", { role: "option", id: `search-option-${i}`, "aria-selected": "false",
                                          onmousedown: (event) => { event.preventDefault(); choose(match); } },
                                  h("span", {}, match.name, match.name !== match.symbol ? h("span", { class: "muted" }, ` ${match.symbol}`) : null),
                                  h("span", { class: "badge" }, match.exchange || match.asset_class)))
      : [h("li", { class: "empty", role: "option", "aria-disabled": "true" }, `Nothing matches “${text}”.`)]);
    list.hidden = false;
    input.setAttribute("aria-expanded", "true");
    active = -1;
  }

  async function ask(text) {
    const number = ++asked;
    try {
      const { data } = await api.get("/api/search", { name: text, limit: 8 });
      if (number === asked && input.value.trim() === text) show(data, text);
    } catch (error) {
      if (number === asked) {
        replace(list, h("li", { class: "empty", role: "option", "aria-disabled": "true" }, error.message));
        list.hidden = false;
      }
    }
  }

  input.addEventListener("input", () => {
    clearTimeout(timer);
    const text = input.value.trim();
    if (!text) { close(); return; }
    timer = setTimeout(() => ask(text), DEBOUNCE_MS);
  });
  input.addEventListener("keydown", (event) => {
    if (event.key === "ArrowDown" && matches.length) { event.preventDefault(); if (list.hidden) list.hidden = false; highlight(Math.min(active + 1, matches.length - 1)); }
    else if (event.key === "ArrowUp" && matches.length) { event.preventDefault(); highlight(Math.max(active - 1, 0)); }
    else if (event.key === "Enter") {
      event.preventDefault();
      if (!list.hidden && matches.length) choose(matches[Math.max(active, 0)]);
    } else if (event.key === "Escape") { close(); }
  });
  input.addEventListener("blur", () => setTimeout(close, 150));
}
