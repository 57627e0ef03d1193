// The dashboard's page: one live stream (server-sent events) from the hub
// keeps every part current; nothing here polls.
import { h, num, ms, span, latency, absTime, rel, refreshRel, chip, unknown } from "./format.js";
import { draw } from "./chart.js";

const BASE = "/dashboard/";
const m = location.pathname.match(/^\/dashboard\/stores\/([^/]+)\/?$/);
const storeID = m ? decodeURIComponent(m[1]) : null;

let offset = 0; // the hub's clock minus the browser's
const now = () => Date.now() + offset;
let lastEvent = 0;

const data = { session: null, overview: null, samples: [], stores: [], rejections: [], ledger: null, store: null, alerts: { configured: false, firing: [] } };
const ui = { sortKey: "level", sortDir: -1, filter: "", attentionOnly: false, windowMin: 5, hover: { rate: null, lat: null } };

const $ = (id) => document.getElementById(id);

// ---- words for states and flags -------------------------------------------

const STATES = {
  online: ["ok", "Online"],
  offline: ["alert", "Offline"],
  never: ["idle", "Never seen"],
  unknown: ["idle", "Unknown"],
  partial: ["warn", "Partly online"],
  empty: ["idle", "No terminals"],
};

function stateChip(row) {
  const [kind, word] = STATES[row.state] || ["idle", row.state];
  let text = word;
  if (row.state === "partial") text = `${row.online} of ${row.terminals} online`;
  const title = {
    online: "connected to the hub's broker now",
    offline: "not connected to the hub's broker",
    never: "registered, but never connected nor sent a transaction",
    unknown: "the hub cannot see connections (external broker) and the till has not reported its status",
    partial: "some terminals are not connected",
    empty: "no terminal registered or seen",
  }[row.state];
  return chip(kind, text, title);
}

function flagChip(f) {
  const kind = f.level >= 2 ? "alert" : f.level === 1 ? "warn" : "idle";
  const since = (label) => {
    const s = h("span", {}, label);
    if (f.since) {
      const r = rel(f.since, { mode: "age" });
      s.append(" ", r);
    }
    return s;
  };
  switch (f.code) {
    case "offline": return chip(kind, since("Offline for"), "not connected since it was last seen");
    case "unsynced": return chip(kind, since("Unsynced for"), "its oldest transaction not yet at the hub was made this long ago");
    case "backlog": return chip(kind, `Backlog ${num(f.n)}`, "transactions waiting in the till's outbox as of its last batch");
    case "held": return chip(kind, `${num(f.n)} held back`, "the hub held transactions of its last batch (store not registered, or a return waiting for its sale)");
    case "never": return chip(kind, "Never connected", "registered, but the till never connected nor sent anything");
    case "scanner": return chip(kind, "Scanner disconnected", "the till reports its barcode scanner is not attached");
    case "clock": return chip(kind, `Clock ${f.n > 0 ? "ahead" : "behind"} ${span(Math.abs(f.n))}`, "the till's clock differs from the hub's");
    case "quiet": return chip(kind, since("Quiet for"), "nothing heard from it lately; the hub cannot see its connection");
    case "rejections": return chip(kind, `${num(f.n)} rejected`, "transactions the hub rejected in the last hour");
    case "unregistered": return chip(kind, "Not registered", "its tills send transactions but the coalition has not registered the store: they are held");
    default: return chip(kind, f.code);
  }
}

function flagsCell(flags) {
  if (!flags || flags.length === 0) return h("span", { class: "muted" }, "—");
  return h("div", { class: "flags" }, flags.map(flagChip));
}

const yesNo = (b, yes = "Yes", no = "No") => h("span", { class: b ? "yes" : "no" }, b ? yes : no);

function lagCell(v) {
  return v === undefined || v === null ? unknown("no batch since the hub started") : latency(v);
}

function ageCell(t) {
  return t ? rel(t, { mode: "age" }) : h("span", { class: "muted", title: "nothing waiting" }, "—");
}

// ---- the stores table ----------------------------------------------------

const sorters = {
  level: (a, b) => a.level - b.level || flagWeight(a) - flagWeight(b) || b.store.localeCompare(a.store),
  store: (a, b) => (a.name || a.store).localeCompare(b.name || b.store),
  partner: (a, b) => (a.partner || "").localeCompare(b.partner || ""),
  online: (a, b) => ratio(a.online, a.terminals) - ratio(b.online, b.terminals) || a.terminals - b.terminals,
  last_seen: (a, b) => ms(a.last_seen) - ms(b.last_seen),
  backlog: (a, b) => a.backlog - b.backlog,
  oldest_unsynced: (a, b) => (ms(b.oldest_unsynced) || Infinity) - (ms(a.oldest_unsynced) || Infinity),
  sync_lag_ms: (a, b) => (a.sync_lag_ms ?? -1) - (b.sync_lag_ms ?? -1),
  in_sync: (a, b) => Number(a.in_sync) - Number(b.in_sync),
  versions: (a, b) => (a.versions || []).join().localeCompare((b.versions || []).join()),
  scanners_ok: (a, b) => ratio(a.scanners_ok, a.scanners) - ratio(b.scanners_ok, b.scanners),
  flags: (a, b) => a.level - b.level || a.flags.length - b.flags.length,
};
const ratio = (x, n) => (n ? x / n : -1);
const flagWeight = (r) => r.flags.reduce((s, f) => s + f.level, 0);

function matches(r, q) {
  if (!q) return true;
  const hay = [r.store, r.name, r.partner, r.state, (STATES[r.state] || [])[1], ...(r.versions || []), ...r.flags.map((f) => f.code)]
    .join(" ").toLowerCase();
  return q.toLowerCase().split(/\s+/).every((w) => hay.includes(w));
}

function renderStores() {
  const tbody = $("stores").tBodies[0];
  let rows = data.stores.filter((r) => matches(r, ui.filter) && (!ui.attentionOnly || r.level >= 1));
  const cmp = sorters[ui.sortKey];
  rows = rows.slice().sort((a, b) => ui.sortDir * cmp(a, b) || a.store.localeCompare(b.store));
  tbody.replaceChildren(...rows.map(storeRow));
  $("stores-count").textContent = rows.length === data.stores.length ? num(data.stores.length) : `${num(rows.length)} of ${num(data.stores.length)}`;
  const empty = $("stores-empty");
  empty.hidden = rows.length > 0;
  if (data.stores.length === 0) {
    empty.replaceChildren("No stores yet. Register one with ", h("code", {}, "tillsync-hub store add"), " or a seed file; tills that connect show up here too.");
  } else empty.textContent = ui.attentionOnly && !ui.filter ? "Every store is fine." : `No store matches “${ui.filter}”.`;
  for (const th of $("stores").tHead.rows[0].cells) {
    const on = th.dataset.key === ui.sortKey;
    th.classList.toggle("sorted-asc", on && ui.sortDir > 0);
    th.classList.toggle("sorted-desc", on && ui.sortDir < 0);
    th.setAttribute("aria-sort", on ? (ui.sortDir > 0 ? "ascending" : "descending") : "none");
  }
  refreshRel(tbody, now());
}

function storeRow(r) {
  const href = BASE + "stores/" + encodeURIComponent(r.store);
  const name = h("a", { href, class: "store-name" }, r.name || r.store);
  const scanner = r.scanners > 0
    ? chip(r.scanners_ok === r.scanners ? "ok" : "alert", `${r.scanners_ok}/${r.scanners} connected`)
    : unknown("no till reported its scanner yet");
  return h("tr", { class: `lvl-${r.level}`, dataset: { store: r.store, state: r.state } },
    h("td", {}, stateChip(r)),
    h("td", { class: "store-cell" }, name, r.name ? h("div", { class: "store-id mono" }, r.store) : null),
    h("td", {}, r.partner || h("span", { class: "muted" }, "not registered")),
    h("td", { class: "num" }, `${r.online}/${r.terminals}`),
    h("td", {}, rel(r.last_seen, { mode: r.online ? null : "past" })),
    h("td", { class: "num" }, num(r.backlog)),
    h("td", {}, ageCell(r.oldest_unsynced)),
    h("td", { class: "num" }, lagCell(r.sync_lag_ms)),
    h("td", {}, r.terminals ? yesNo(r.in_sync) : h("span", { class: "muted" }, "—")),
    h("td", {}, r.versions && r.versions.length ? r.versions.join(", ") : unknown("no till reported its version yet")),
    h("td", {}, scanner),
    h("td", { class: "wide" }, flagsCell(r.flags)),
  );
}

// ---- rejections --------------------------------------------------------------

function answer(r) {
  if (r.refused) return chip("warn", "refused", "refused before the ledger: no answer was sent");
  return chip("alert", r.code || "rejected", "answered rejected; the till dropped it");
}

// storeLink names a store by its name when the table knows it.
function storeLink(id) {
  const s = data.stores.find((x) => x.store === id);
  return h("a", { href: BASE + "stores/" + encodeURIComponent(id), title: id }, (s && s.name) || id);
}

function renderRejections() {
  const list = data.rejections.slice(0, 100);
  $("rejections").tBodies[0].replaceChildren(...list.map((r) => h("tr", {},
    h("td", {}, rel(r.at)),
    h("td", {}, r.store ? storeLink(r.store) : unknown("topic refused")),
    h("td", { class: "mono" }, r.terminal || "—"),
    h("td", { class: "mono" }, r.tx || "—"),
    h("td", {}, r.kind || "—"),
    h("td", {}, answer(r)),
    h("td", { class: "reason", title: r.reason || "" }, r.reason || ""),
  )));
  $("rej-count").textContent = data.rejections.length ? num(data.rejections.length) : "";
  $("rej-empty").hidden = list.length > 0;
  refreshRel($("rejections"), now());
}

// ---- alerts ------------------------------------------------------------------

const SEVERITY = { critical: "alert", warning: "warn", info: "idle" };

function alertValue(unit, v) {
  if (unit === "seconds") return span(v * 1000);
  return (v * 100).toFixed(1) + " %";
}

function renderAlerts() {
  const a = data.alerts;
  $("alerts-card").hidden = !a.configured;
  if (!a.configured) return;
  $("alerts").tBodies[0].replaceChildren(...a.firing.map((x) => h("tr", { class: x.severity === "critical" ? "lvl-2" : "lvl-1" },
    h("td", {}, chip(SEVERITY[x.severity] || "idle", x.severity)),
    h("td", { class: "mono" }, x.alert),
    h("td", {}, storeLink(x.store)),
    h("td", {}, rel(x.fired_at)),
    h("td", { class: "num" }, alertValue(x.unit, x.value)),
    h("td", { class: "num" }, alertValue(x.unit, x.threshold)),
    h("td", { class: "reason", title: x.summary }, x.summary),
  )));
  $("alerts-count").textContent = a.firing.length ? num(a.firing.length) : "";
  $("alerts-empty").hidden = a.firing.length > 0;
  refreshRel($("alerts"), now());
}

// ---- KPIs ------------------------------------------------------------------------

function kpi(label, value, sub, cls, unit) {
  return h("div", { class: `kpi ${cls || ""}` },
    h("div", { class: "label" }, label),
    h("div", { class: "value" }, value, unit ? h("small", {}, unit) : null),
    h("div", { class: "sub", title: typeof sub === "string" ? sub : null }, sub));
}

// recent averages the last n seconds of samples: the rate, and the ack
// latencies weighted by the acks of each second.
function recent(n) {
  const s = data.samples.slice(-n);
  let tx = 0, acks = 0, p95 = 0, mean = 0;
  for (const x of s) { tx += x.tx; acks += x.acks; p95 += x.ack_p95_ms * x.acks; mean += x.ack_mean_ms * x.acks; }
  return { rate: s.length ? tx / s.length : null, acks, p95: acks ? p95 / acks : null, mean: acks ? mean / acks : null };
}

function rejectedLastHour() {
  const t = now() - 3600e3;
  return data.rejections.filter((r) => ms(r.at) >= t).length;
}

function renderKPIs() {
  const o = data.overview;
  if (!o) return;
  const r10 = recent(10), r60 = recent(60);
  const c = o.counters;
  const rejected = rejectedLastHour();
  const kids = [
    o.connections_known
      ? kpi("Stores online", num(o.stores_online), `${num(o.terminals_online)} of ${num(o.terminals)} terminals connected`,
        o.stores_online === o.stores ? "ok" : data.stores.some((x) => x.state === "offline") ? "alert" : "warn", `/ ${num(o.stores)}`)
      : kpi("Stores", num(o.stores), "the hub cannot see connections (external broker)", ""),
    kpi("Need attention", num(o.stores_attention), o.stores_attention ? "offline, behind, or rejecting" : "every store is fine",
      o.stores_attention ? "alert" : "ok"),
    kpi("Backlog", num(o.backlog), "waiting at the tills", o.backlog ? "warn" : "ok"),
    kpi("Ingest", r10.rate === null ? "—" : r10.rate.toFixed(r10.rate < 10 ? 1 : 0),
      c ? `${num(c.applied)} applied since start` : "", "", "tx/s"),
    kpi("Ack latency p95", r60.p95 === null ? "—" : latency(r60.p95),
      r60.acks ? `mean ${latency(r60.mean)} · last minute` : "no acks in the last minute", r60.p95 > 1000 ? "warn" : ""),
    kpi("Rejected", num(rejected), c && (c.refused || c.dropped) ? `last hour · ${num(c.refused)} refused since start` : "in the last hour",
      rejected ? "warn" : ""),
  ];
  $("kpis").replaceChildren(...kids);
}

// ---- charts ----------------------------------------------------------------------

function renderCharts() {
  const s = data.samples;
  // A hub younger than the window shows its life so far, at least a minute.
  const t1 = now();
  const first = s.length ? ms(s[0].at) - 1000 : t1;
  const t0 = Math.max(t1 - ui.windowMin * 60e3, Math.min(first, t1 - 60e3));
  const rate = s.map((x) => [ms(x.at), x.tx]);
  draw($("rate-chart"), {
    series: [{ points: rate, cls: "line", area: true }], t0, t1,
    fmt: (v) => (v >= 100 ? Math.round(v) : +v.toFixed(1)).toString(), minMax: 1,
    onHover: (i) => { ui.hover.rate = i; readouts(); },
  });
  draw($("lat-chart"), {
    series: [
      { points: s.map((x) => [ms(x.at), x.acks ? x.ack_p95_ms : null]), cls: "line", area: true },
      { points: s.map((x) => [ms(x.at), x.acks ? x.ack_mean_ms : null]), cls: "line-2" },
    ],
    t0, t1, fmt: (v) => (v === 0 ? "0" : latency(v).replace(" ", "")), minMax: 1,
    onHover: (i) => { ui.hover.lat = i; readouts(); },
  });
  readouts();
}

function readouts() {
  const s = data.samples;
  const at = (i) => new Date(ms(s[i].at)).toLocaleTimeString("en-GB");
  if (ui.hover.rate !== null && s[ui.hover.rate]) {
    const x = s[ui.hover.rate];
    $("rate-readout").textContent = `${at(ui.hover.rate)} · ${x.tx.toFixed(1)} tx/s`;
  } else {
    const r = recent(10);
    $("rate-readout").textContent = r.rate === null ? "" : `${r.rate.toFixed(1)} tx/s (10 s average)`;
  }
  if (ui.hover.lat !== null && s[ui.hover.lat]) {
    const x = s[ui.hover.lat];
    $("lat-readout").textContent = x.acks ? `${at(ui.hover.lat)} · p95 ${latency(x.ack_p95_ms)} · mean ${latency(x.ack_mean_ms)}` : `${at(ui.hover.lat)} · no acks`;
  } else {
    const r = recent(10);
    $("lat-readout").textContent = r.p95 === null ? "" : `p95 ${latency(r.p95)} (10 s)`;
  }
}

// ---- ledger health -------------------------------------------------------------

let verifyMsg = "";

function renderLedger() {
  const card = $("ledger-card");
  const l = data.ledger;
  card.hidden = !l;
  card.parentElement.style.gridTemplateColumns = l ? "" : "1fr 1fr";
  if (!l) return;
  const states = {
    ok: ["ok", "Verified"], problems: ["alert", "Problems found"], error: ["alert", "Could not verify"], never: ["idle", "Not verified yet"],
  };
  const [kind, word] = states[l.state] || ["idle", l.state];
  const big = h("div", { class: "ledger-big" }, chip(kind, word), l.last_run ? h("span", { class: "muted" }, rel(l.last_run)) : null);
  const facts = h("dl", { class: "ledger-facts" });
  const fact = (k, v) => facts.append(h("dt", {}, k), h("dd", {}, v));
  if (l.last_run && l.state !== "error") {
    fact("Hash chain", l.chain_intact ? yesNo(true, "intact") : h("span", { class: "no" }, "broken"));
    fact("Entries", `${num(l.entries)} journal entries, ${num(l.accounts)} accounts`);
    if (l.chain_head) fact("Chain head", h("span", { class: "mono", title: l.chain_head }, l.chain_head.slice(0, 16) + "…"));
    fact("Took", latency(l.duration_ms));
  }
  if (l.error) fact("Error", h("span", { class: "no", title: l.error }, l.error));
  if (l.next_run) fact("Next check", rel(l.next_run));
  const kids = [big, facts];
  if (l.details && l.details.length) {
    kids.push(h("ul", { class: "ledger-problems" }, l.details.map((d) => h("li", {}, d)),
      l.problems > l.details.length ? h("li", {}, `… and ${num(l.problems - l.details.length)} more: run tillsync-hub verify`) : null));
  }
  if (data.session && data.session.can_verify) {
    const btn = h("button", { class: "btn", type: "button", disabled: l.running, onclick: verifyNow }, l.running ? "Verifying…" : "Verify now");
    kids.push(h("div", { class: "ledger-actions" }, btn, h("span", { class: "msg" }, verifyMsg)));
  }
  $("ledger").replaceChildren(...kids);
  refreshRel($("ledger"), now());
}

async function verifyNow() {
  verifyMsg = "Asking…";
  renderLedger();
  try {
    const r = await fetch(BASE + "api/verify", { method: "POST", cache: "no-store" });
    if (r.status === 401) return signIn();
    const body = await r.json();
    verifyMsg = r.ok ? "Verification started" : (body.error && body.error.message) || `HTTP ${r.status}`;
    if (r.ok) data.ledger = body;
  } catch (e) {
    verifyMsg = "The hub did not answer";
  }
  renderLedger();
}

// ---- a store's page ------------------------------------------------------------

function kv(label, value) {
  return h("div", { class: "kpi" }, h("div", { class: "label" }, label), h("div", { class: "value" }, value));
}

function renderStorePage() {
  const d = data.store;
  if (!d) return;
  if (d.error) {
    $("store-title").textContent = storeID;
    $("store-sub").textContent = d.error;
    return;
  }
  const s = d.store;
  document.title = `${s.name || s.store} · tillsync hub`;
  $("crumb-store").textContent = s.name || s.store;
  $("store-title").textContent = s.name || s.store;
  $("store-sub").replaceChildren(h("span", { class: "mono" }, s.store), " · ",
    s.partner ? `partner ${s.partner}` : h("span", { class: "no" }, "not registered with the coalition"));
  $("store-state").replaceChildren(stateChip(s));
  const oldest = s.oldest_unsynced ? rel(s.oldest_unsynced, { mode: "age" }) : "—";
  $("store-kpis").replaceChildren(
    kv("Terminals online", `${s.online} / ${s.terminals}`),
    kv("Last seen", rel(s.last_seen)),
    kv("Backlog", num(s.backlog)),
    kv("Oldest unsynced", oldest),
    kv("Sync lag", lagCell(s.sync_lag_ms)),
    kv("Rejected (1 h)", num(s.recent_rejection)),
  );

  $("term-count").textContent = num(d.terminals.length);
  $("terminals").tBodies[0].replaceChildren(...d.terminals.map((t) => {
    const st = t.status || null;
    const scanner = !st || st.scanner_connected === undefined
      ? unknown(st ? "the till did not say" : "the till has not reported its status yet")
      : st.scanner_connected ? chip("ok", "Connected") : chip("alert", "Disconnected");
    const since = t.since ? ` since ${new Date(ms(t.since)).toLocaleTimeString("en-GB")}` : "";
    const c = stateChip(t);
    c.title += since;
    return h("tr", { class: `lvl-${t.level}`, dataset: { terminal: t.terminal, state: t.state } },
      h("td", { class: "mono" }, h("b", {}, t.terminal)),
      h("td", {}, c),
      h("td", {}, rel(t.last_seen, { mode: t.state === "online" ? null : "past" })),
      h("td", { class: "num" }, num(t.backlog)),
      h("td", {}, ageCell(t.oldest_unsynced)),
      h("td", { class: "num" }, lagCell(t.sync_lag_ms)),
      h("td", {}, yesNo(t.in_sync)),
      h("td", {}, st && st.version ? st.version : unknown("the till has not reported its version yet")),
      h("td", {}, scanner),
      h("td", {}, st && st.last_scan ? rel(st.last_scan) : unknown()),
      h("td", { class: "num" }, st && st.clock_offset_ms !== undefined ? `${st.clock_offset_ms >= 0 ? "+" : "−"}${latency(Math.abs(st.clock_offset_ms))}` : unknown()),
      h("td", { class: "num" }, num(t.applied)),
      h("td", { class: "wide" }, flagsCell(t.flags)),
    );
  }));

  const partner = data.session && data.session.partner;
  $("member-col").hidden = !!partner;
  const recent = d.recent || [];
  $("recent").tBodies[0].replaceChildren(...recent.map((e) => h("tr", {},
    h("td", {}, rel(e.at)),
    h("td", { class: "mono" }, e.terminal),
    h("td", {}, e.kind),
    partner ? null : h("td", { class: "mono" }, e.member),
    h("td", { class: "num" }, (e.points > 0 ? "+" : "") + num(e.points)),
    h("td", { class: "mono", title: e.original ? `undoes ${e.original}` : null }, e.tx_id),
    h("td", { class: "num", title: "from the till's creation to the hub's commit" }, latency(e.lag_ms)),
  )));
  $("recent-empty").hidden = recent.length > 0;

  $("store-rejections").tBodies[0].replaceChildren(...d.rejections.slice(0, 50).map((r) => h("tr", {},
    h("td", {}, rel(r.at)),
    h("td", { class: "mono" }, r.terminal || "—"),
    h("td", { class: "mono" }, r.tx || "—"),
    h("td", {}, answer(r)),
    h("td", { class: "reason", title: r.reason || "" }, r.reason || ""),
  )));
  $("store-rej-empty").hidden = d.rejections.length > 0;
  refreshRel($("store-page"), now());
}

// ---- who, liveness ---------------------------------------------------------------

function renderWho() {
  const s = data.session;
  if (!s) return;
  const role = s.role === "partner" ? `partner ${s.partner}` : s.role;
  const who = $("who");
  who.replaceChildren(h("b", {}, role), " · ", s.name || `token ${s.token_id}`);
  who.title = `signed in with API token ${s.token_id}`;
}

function setLive(state, text) {
  const el = $("live");
  el.className = `live live-${state}`;
  el.lastElementChild.textContent = text;
}

function signIn() {
  location.href = BASE + "login?next=" + encodeURIComponent(location.pathname);
}

// ---- the stream ---------------------------------------------------------------------

function on(es, name, fn) {
  es.addEventListener(name, (ev) => {
    lastEvent = Date.now();
    fn(JSON.parse(ev.data));
  });
}

let es = null;

function connect() {
  const url = BASE + "api/events" + (storeID ? "?store=" + encodeURIComponent(storeID) : "");
  es = new EventSource(url);
  es.onopen = () => setLive("on", "Live");
  es.onerror = async () => {
    setLive("wait", "Reconnecting…");
    if (es.readyState !== EventSource.CLOSED) return; // the browser retries by itself
    // The hub answered with an error: find out which.
    try {
      const r = await fetch(storeID ? BASE + "api/stores/" + encodeURIComponent(storeID) : BASE + "api/snapshot", { cache: "no-store" });
      if (r.status === 401) return signIn();
      if (!r.ok && storeID) {
        const body = await r.json().catch(() => ({}));
        data.store = { error: (body.error && body.error.message) || `HTTP ${r.status}` };
        renderStorePage();
        setLive("off", "Not available");
        return;
      }
    } catch (e) { /* the hub is away: retry */ }
    setTimeout(connect, 2000);
  };
  on(es, "session", (s) => { data.session = s; renderWho(); });
  on(es, "overview", (o) => {
    offset = ms(o.now) - Date.now();
    data.overview = o;
    if (!storeID) renderKPIs();
  });
  on(es, "samples", (s) => {
    data.samples = data.samples.concat(s).slice(-600);
    if (!storeID) { renderCharts(); renderKPIs(); }
  });
  on(es, "stores", (s) => { data.stores = s; renderStores(); renderRejections(); if (!storeID) renderKPIs(); });
  on(es, "alerts", (a) => { data.alerts = a; renderAlerts(); });
  on(es, "rejections", (r) => { data.rejections = r; renderRejections(); renderKPIs(); });
  on(es, "ledger", (l) => {
    if (data.ledger && data.ledger.running && !l.running && verifyMsg) verifyMsg = "";
    data.ledger = l;
    renderLedger();
  });
  on(es, "store", (d) => { data.store = d; renderStorePage(); });
  on(es, "signedout", () => { es.close(); signIn(); });
}

// ---- start -------------------------------------------------------------------------

function start() {
  if (storeID) {
    $("store-page").hidden = false;
    $("crumbs").append(h("span", { class: "sep" }, "›"), h("span", { id: "crumb-store" }, storeID));
    $("store-title").textContent = storeID;
  } else {
    $("overview-page").hidden = false;
    for (const th of $("stores").tHead.rows[0].cells) {
      th.tabIndex = 0;
      th.title = "Sort by this column; again to reverse";
      th.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); th.click(); } });
      th.addEventListener("click", () => {
        const k = th.dataset.key;
        if (!k) return;
        if (ui.sortKey === k) ui.sortDir = -ui.sortDir;
        else { ui.sortKey = k; ui.sortDir = k === "store" || k === "partner" || k === "versions" ? 1 : -1; }
        renderStores();
      });
    }
    $("filter").addEventListener("input", (e) => { ui.filter = e.target.value.trim(); renderStores(); });
    $("attention-only").addEventListener("change", (e) => { ui.attentionOnly = e.target.checked; renderStores(); });
    for (const b of $("window").querySelectorAll("button")) {
      b.addEventListener("click", () => {
        ui.windowMin = Number(b.dataset.min);
        for (const o of $("window").querySelectorAll("button")) o.classList.toggle("on", o === b);
        renderCharts();
      });
    }
    window.addEventListener("resize", renderCharts);
  }
  connect();
  setInterval(() => {
    refreshRel(document.body, now());
    if (lastEvent && Date.now() - lastEvent > 5000 && es && es.readyState === EventSource.OPEN) setLive("wait", "No news from the hub");
    if (!storeID) renderCharts(); // the time axis moves on
  }, 1000);
}

start();
