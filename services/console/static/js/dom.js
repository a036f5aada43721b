// Building the DOM from data: every value goes in as text (textContent) or an attribute, never
// as markup, so nothing an alert, an institution or a record carries can become HTML or script.

export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") el.className = value;
    else if (key.startsWith("on") && typeof value === "function") el.addEventListener(key.slice(2), value);
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  append(el, children);
  return el;
}

export function append(el, children) {
  for (const child of [children].flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

export function clear(el) {
  while (el.firstChild) el.removeChild(el.firstChild);
  return el;
}

// a table from column headers and rows of cells (each cell a value or a node)
export function table(headers, rows, attrs) {
  return h("table", attrs || {},
    h("thead", null, h("tr", null, headers.map((name) => h("th", { scope: "col" }, name)))),
    h("tbody", null, rows.map((row) => (row instanceof Node ? row : h("tr", null, row.map((c) => h("td", null, c)))))));
}

// a table showing its first `shown` rows, with a button that shows the rest
export function longTable(headers, rows, shown, moreText, attrs) {
  const built = table(headers, rows.slice(0, shown), attrs);
  if (rows.length <= shown) return built;
  const more = h("button", { type: "button", class: "more" }, moreText);
  more.addEventListener("click", () => {
    const body = built.querySelector("tbody");
    for (const row of rows.slice(shown)) body.append(row instanceof Node ? row : h("tr", null, row.map((c) => h("td", null, c))));
    more.remove();
  });
  return h("div", null, built, more);
}

// a list of term / value pairs
export function facts(pairs) {
  return h("dl", { class: "facts" }, pairs.filter(([, v]) => v !== undefined && v !== null && v !== "")
    .map(([term, value]) => [h("dt", null, term), h("dd", null, value)]));
}

export function section(title, ...children) {
  return h("section", { class: "card" }, h("h2", null, title), ...children);
}

export function notice(text, kind) {
  return h("p", { class: `notice ${kind || ""}`, role: kind === "error" ? "alert" : "status" }, text);
}

export function link(href, text) {
  return h("a", { href }, text);
}
