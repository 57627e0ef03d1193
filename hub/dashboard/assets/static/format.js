// Formatting and DOM helpers. Text always goes in as text (textContent),
// never as HTML: store names, reasons and ids come from tills.

// h builds an element: h("td", {class: "num", title: "…"}, child, "text", …).
export function h(tag, attrs, ...kids) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") el.className = v;
    else if (k === "dataset") Object.assign(el.dataset, v);
    else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const kid of kids.flat()) {
    if (kid === undefined || kid === null || kid === false) continue;
    el.append(kid instanceof Node ? kid : document.createTextNode(String(kid)));
  }
  return el;
}

const nf = new Intl.NumberFormat("en");
export const num = (n) => (n === undefined || n === null ? "—" : nf.format(n));

export function ms(t) {
  return t ? Date.parse(t) : 0;
}

// span is a duration in words: "12 s", "3 min", "2 h 5 min", "4 d 3 h".
export function span(millis) {
  const s = Math.max(0, Math.round(millis / 1000));
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min`;
  const hr = Math.floor(m / 60);
  if (hr < 24) return m % 60 ? `${hr} h ${m % 60} min` : `${hr} h`;
  const d = Math.floor(hr / 24);
  return hr % 24 ? `${d} d ${hr % 24} h` : `${d} d`;
}

// ago is a relative time: "now", "12 s ago", "3 min ago", "in 20 s".
export function ago(t, now) {
  if (!t) return "never";
  const d = now - ms(t);
  if (Math.abs(d) < 1500) return "now";
  return d > 0 ? `${span(d)} ago` : `in ${span(-d)}`;
}

// latency formats milliseconds: "0.4 ms", "12 ms", "1.3 s", "4 min".
export function latency(v) {
  if (v === undefined || v === null) return "—";
  if (v < 1) return `${v.toFixed(2)} ms`;
  if (v < 10) return `${v.toFixed(1)} ms`;
  if (v < 1000) return `${Math.round(v)} ms`;
  if (v < 60000) return `${(v / 1000).toFixed(1)} s`;
  return span(v);
}

export function absTime(t) {
  if (!t) return "";
  return new Date(ms(t)).toLocaleString("en-GB", { dateStyle: "medium", timeStyle: "medium" });
}

// rel is an element showing t relative to the hub's time, kept current by
// refreshRel; its title is the absolute time.
export function rel(t, opts = {}) {
  const el = h("span", { class: t ? null : "unknown", title: t ? absTime(t) : opts.title });
  if (t) {
    el.dataset.t = t;
    if (opts.mode) el.dataset.mode = opts.mode;
  }
  el.textContent = t ? "…" : opts.none || "never";
  return el;
}

export function refreshRel(root, now) {
  for (const el of root.querySelectorAll("[data-t]")) {
    const t = el.dataset.t;
    const mode = el.dataset.mode;
    if (mode === "age") el.textContent = span(now - ms(t));
    else if (mode === "past") el.textContent = `${span(Math.max(now - ms(t), 1000))} ago`; // gone: never "now"
    else el.textContent = ago(t, now);
  }
}

export function chip(kind, text, title) {
  return h("span", { class: `chip ${kind}`, title }, text);
}

export const unknown = (title) => h("span", { class: "unknown", title: title || "not reported" }, "—");
