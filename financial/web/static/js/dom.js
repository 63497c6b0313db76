// Building the page's elements: no HTML strings (nothing the API sends can become markup) and no style
// attributes (the page's Content-Security-Policy refuses them); classes carry the looks.

export function h(tag, attrs = {}, ...children) {
  const element = document.createElementNS(
    SVG_TAGS.has(tag) ? "http://www.w3.org/2000/svg" : "http://www.w3.org/1999/xhtml", tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") element.addEventListener(name.slice(2), value);
    else if (name === "class") element.setAttribute("class", Array.isArray(value) ? value.filter(Boolean).join(" ") : value);
    else element.setAttribute(name, value === true ? "" : String(value));
  }
  append(element, children);
  return element;
}

const SVG_TAGS = new Set(["svg", "polyline", "title", "line", "rect"]);

function append(element, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

export function replace(element, ...children) {
  element.replaceChildren();
  append(element, children);
  return element;
}

export function loading(text = "Loading…") {
  return h("p", { class: "loading", role: "status" }, text);
}

/** An error as the page shows it: the API's own message (info.error), never a blank screen. */
export function errorMessage(error, what = "") {
  const text = error && error.message ? error.message : String(error);
  return h("p", { class: "message error", role: "alert" }, what ? `${what}: ${text}` : text);
}

export function info(text) {
  return h("p", { class: "message info" }, text);
}

/** Show `loading()` in `element` if `promise` takes longer than a moment (no flicker on fast answers). */
export function whileLoading(element, promise, delay = 150) {
  const timer = setTimeout(() => {
    element.setAttribute("aria-busy", "true");
    replace(element, loading());
  }, delay);
  const done = () => { clearTimeout(timer); element.removeAttribute("aria-busy"); };
  promise.then(done, done);
  return promise;
}
