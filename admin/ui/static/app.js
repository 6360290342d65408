// hookbay inspector. No framework and no build step: the DOM is built
// with h(), which sets text, never HTML, because every name, header and
// body shown here came from a client nobody vouches for.
"use strict";

var API = "/api/v1/";
var view = document.getElementById("view");
var info = { senders: ["bubblehouse", "svix", "bloomreach"], replay: true, report: true };

// ---------------------------------------------------------------- helpers

function h(tag, attrs) {
  var el = document.createElement(tag);
  if (attrs) {
    Object.keys(attrs).forEach(function (k) {
      var v = attrs[k];
      if (v === undefined || v === null || v === false) return;
      if (k === "class") el.className = v;
      // Through the CSSOM: the page's Content-Security-Policy refuses
      // inline style attributes.
      else if (k === "style") el.style.cssText = v;
      else if (k === "text") el.textContent = v;
      else if (k.slice(0, 2) === "on") el.addEventListener(k.slice(2), v);
      else if (k === "dataset") Object.keys(v).forEach(function (d) { el.dataset[d] = v[d]; });
      else el.setAttribute(k, v === true ? "" : v);
    });
  }
  for (var i = 2; i < arguments.length; i++) append(el, arguments[i]);
  return el;
}

function append(el, c) {
  if (c === undefined || c === null || c === false) return;
  if (Array.isArray(c)) { c.forEach(function (x) { append(el, x); }); return; }
  el.appendChild(typeof c === "object" ? c : document.createTextNode(String(c)));
}

function clear(el) { while (el.firstChild) el.removeChild(el.firstChild); }

function api(path, opts) {
  opts = opts || {};
  var init = { method: opts.method || "GET", headers: { "Accept": "application/json" }, credentials: "same-origin" };
  if (opts.body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(opts.body);
  }
  return fetch(API + path, init).then(function (res) {
    if (res.status === 401) { location.href = "/login?next=" + encodeURIComponent(location.pathname + location.search); }
    var ct = res.headers.get("Content-Type") || "";
    var body = ct.indexOf("json") >= 0 ? res.json() : res.text();
    return body.then(function (b) {
      if (!res.ok) throw new Error((b && b.error) || ("HTTP " + res.status));
      return b;
    });
  });
}

var toastTimer;
function toast(msg, bad) {
  var t = document.getElementById("toast");
  t.textContent = msg;
  t.className = "show" + (bad ? " bad" : "");
  clearTimeout(toastTimer);
  toastTimer = setTimeout(function () { t.className = ""; }, bad ? 7000 : 3500);
}

function fail(err) { toast(err.message || String(err), true); }

// ask shows a dialog; ok runs when confirmed. With no ok, it only shows.
function ask(title, body, okText, ok) {
  var d = document.getElementById("dialog");
  document.getElementById("dialog-title").textContent = title;
  var b = document.getElementById("dialog-body");
  clear(b);
  append(b, body);
  var okb = document.getElementById("dialog-ok");
  okb.style.display = ok ? "" : "none";
  okb.textContent = okText || "OK";
  d.onclose = function () { if (ok && d.returnValue === "ok") ok(); };
  d.returnValue = "";
  d.showModal();
  (ok ? okb : document.getElementById("dialog-cancel")).focus();
}

function time(iso) {
  var d = new Date(iso);
  if (isNaN(d)) return "";
  var p = function (n, w) { return String(n).padStart(w || 2, "0"); };
  return p(d.getHours()) + ":" + p(d.getMinutes()) + ":" + p(d.getSeconds()) + "." + p(d.getMilliseconds(), 3);
}

function dateTime(iso) {
  var d = new Date(iso);
  return isNaN(d) || d.getFullYear() < 1971 ? "" : d.toLocaleDateString() + " " + time(iso);
}

function ms(v) {
  if (v === undefined || v === null) return "";
  return v >= 1000 ? (v / 1000).toFixed(2) + " s" : v >= 10 ? v.toFixed(0) + " ms" : v.toFixed(1) + " ms";
}

function bytes(n) { return n < 1024 ? n + " B" : n < 1048576 ? (n / 1024).toFixed(1) + " KiB" : (n / 1048576).toFixed(1) + " MiB"; }

function statusBadge(s) { return h("span", { class: "badge s" + String(s).charAt(0), text: s }); }

var verdictTone = { delivered: "ok", item_failed: "warn", retry: "warn", not_implemented: "warn", hold_queue: "bad", stop_campaign: "bad", failed: "bad" };

function stateBadge(state) {
  var tone = { done: "ok", dead: "bad", available: "warn", running: "", mixed: "warn", none: "" }[state];
  return h("span", { class: "badge " + (tone || ""), text: state });
}

function deliveryCell(d) {
  if (!d) return h("span", { class: "muted", text: "…" });
  if (d.state === "none") return h("span", { class: "muted", text: "—" });
  var label = d.state;
  if (d.counts) label = Object.keys(d.counts).map(function (k) { return d.counts[k] + " " + k; }).join(", ");
  else if (d.jobs > 1) label = d.jobs + " " + d.state;
  return h("span", { class: "badge " + ({ done: "ok", dead: "bad", available: "warn", mixed: "warn" }[d.state] || ""), text: label });
}

function qs(params) {
  var u = new URLSearchParams();
  Object.keys(params).forEach(function (k) { if (params[k] !== "" && params[k] !== undefined && params[k] !== null) u.set(k, params[k]); });
  var s = u.toString();
  return s ? "?" + s : "";
}

// ---------------------------------------------------------------- routing

var route = { name: "", cleanup: null };

function go(path, replace) {
  if (replace) history.replaceState(null, "", path); else history.pushState(null, "", path);
  render();
}

document.addEventListener("click", function (e) {
  var a = e.target.closest && e.target.closest("a[data-nav]");
  if (!a || e.metaKey || e.ctrlKey || e.shiftKey || e.button !== 0) return;
  e.preventDefault();
  go(a.getAttribute("href"));
});
window.addEventListener("popstate", render);

function render() {
  if (route.cleanup) route.cleanup();
  route.cleanup = null;
  route.reload = null;
  clear(view);
  var p = location.pathname, m;
  if ((m = /^\/requests\/(\d+)$/.exec(p))) { route.name = "detail"; showDetail(Number(m[1])); }
  else if (p === "/dead") { route.name = "dead"; showDead(); }
  else if (p === "/faults") { route.name = "faults"; showFaults(); }
  else if (p === "/report") { route.name = "report"; showReport(); }
  else { route.name = "list"; showList(); }
  document.querySelectorAll(".top nav a").forEach(function (a) {
    a.classList.toggle("active", a.dataset.route === route.name || (route.name === "detail" && a.dataset.route === "list"));
  });
  updateLive();
}

// ---------------------------------------------------------------- live stream

var live = { es: null, connected: false, handlers: [] };

function connect() {
  var es = new EventSource(API + "stream");
  live.es = es;
  es.addEventListener("hello", function () { live.connected = true; updateLive(); });
  es.addEventListener("request", function (e) { dispatch("request", JSON.parse(e.data)); });
  es.addEventListener("job", function (e) { dispatch("job", JSON.parse(e.data)); });
  es.addEventListener("jobs", function (e) { dispatch("jobs", JSON.parse(e.data)); });
  es.addEventListener("dropped", function (e) { dispatch("dropped", JSON.parse(e.data)); });
  es.onerror = function () { live.connected = false; updateLive(); };
}

function dispatch(kind, data) { live.handlers.forEach(function (f) { f(kind, data); }); }

function onLive(f) {
  live.handlers.push(f);
  return function () { live.handlers = live.handlers.filter(function (g) { return g !== f; }); };
}

function updateLive() {
  var el = document.getElementById("live");
  if (!live.connected) { el.className = "live off"; el.textContent = "reconnecting"; return; }
  if (route.name === "list" && list.paused) {
    el.className = "live paused";
    el.textContent = "paused" + (list.pending.length || list.missed ? " · " + (list.pending.length + list.missed) + " new" : "");
    return;
  }
  el.className = "live on";
  el.textContent = "live";
}

// ---------------------------------------------------------------- list

var filterKeys = ["sender", "name", "status", "request_id", "q", "since", "until"];
var list = { rows: [], byId: new Map(), refreshing: false, paused: false, pending: [], incoming: [], flush: null, missed: 0, dirty: false, next: 0, sel: -1, filters: {}, older: false };
var maxRows = 500, flushMax = 25;

function flushIncoming() {
  list.flush = null;
  var rs = list.incoming;
  list.incoming = [];
  if (rs.length > flushMax) { rs = rs.slice(rs.length - flushMax); list.dirty = true; }
  insertRows(rs);
  trimRows();
}

// trimRows keeps the live list to maxRows rows, unless older pages were
// asked for.
function trimRows() {
  if (list.older || list.byId.size <= maxRows) return;
  var trs = rowsEls();
  for (var i = maxRows; i < trs.length; i++) { list.byId.delete(Number(trs[i].dataset.id)); trs[i].remove(); }
  if (list.rows.length > maxRows) list.rows.length = maxRows;
}

function readFilters() {
  var u = new URLSearchParams(location.search), f = {};
  filterKeys.concat(["before"]).forEach(function (k) { f[k] = u.get(k) || ""; });
  return f;
}

// matches says whether a live request belongs in the list under the
// filters: "yes", "no", or "maybe" when only the server can tell (a text
// search), so that the list is read again.
function matches(r, f) {
  if (f.until) {
    // A time already past lets nothing new in; a duration ("5m") moves
    // with the clock, and a time to come may: the server tells.
    var t = Date.parse(f.until);
    if (!isNaN(t) && t <= Date.now()) return "no";
    return "maybe";
  }
  if (f.sender && r.sender !== f.sender) return "no";
  if (f.name && r.name !== f.name) return "no";
  if (f.request_id && r.request_id !== f.request_id) return "no";
  if (f.status) {
    var s = f.status.toLowerCase();
    if (/^[1-5]xx$/.test(s) ? String(r.status).charAt(0) !== s.charAt(0) : String(r.status) !== s) return "no";
  }
  if (f.q) return "maybe";
  return "yes";
}

function showList() {
  list.url = location.pathname + location.search;
  list.filters = readFilters();
  list.rows = []; list.pending = []; list.missed = 0; list.next = 0; list.sel = -1; list.older = false;
  var f = list.filters;
  var form = h("form", { class: "filters", id: "filters", onsubmit: function (e) {
      e.preventDefault();
      var nf = {};
      filterKeys.forEach(function (k) { nf[k] = form.elements[k].value.trim(); });
      go("/" + qs(nf));
    } },
    h("select", { name: "sender", title: "sender" }, h("option", { value: "", text: "all senders" }),
      info.senders.map(function (s) { return h("option", { value: s, text: s, selected: f.sender === s }); })),
    h("input", { name: "name", placeholder: "hook / webhook / endpoint", value: f.name }),
    h("input", { name: "status", placeholder: "status: 503, 5xx", value: f.status, size: 8 }),
    h("input", { name: "request_id", placeholder: "request ID / msg id", value: f.request_id }),
    h("input", { name: "q", id: "search", type: "search", placeholder: "search body and headers  ( / )", value: f.q }),
    h("input", { name: "since", placeholder: "since: 2h, RFC 3339", value: f.since }),
    h("input", { name: "until", placeholder: "until", value: f.until }),
    h("button", { type: "submit", class: "primary", text: "Filter" }),
    h("button", { type: "button", text: "Clear", onclick: function () { go("/"); } }),
    h("span", { class: "grow" }),
    h("button", { type: "button", id: "pause", text: list.paused ? "Resume (p)" : "Pause (p)", onclick: togglePause }),
    h("a", { class: "button", id: "export-jsonl", href: API + "requests/export" + qs(Object.assign({ format: "jsonl" }, f)), download: "", text: "Export JSONL" }),
    h("a", { class: "button", id: "export-har", href: API + "requests/export" + qs(Object.assign({ format: "har" }, f)), download: "", text: "Export HAR" }));
  var banner = h("div", { class: "banner", id: "pending", style: "display:none" });
  var tbody = h("tbody", { id: "rows" });
  var table = h("table", { class: "list", id: "list" },
    h("thead", null, h("tr", null, ["#", "Received", "Sender", "Name", "Request ID", "Status", "Latency", "Delivery", "Contract verdict"].map(function (t) { return h("th", { text: t }); }))),
    tbody);
  var more = h("div", { class: "more" });
  var searched = h("div", { class: "muted", id: "searched" });
  append(view, [form, banner, searched, table, more]);
  list.tbody = tbody; list.banner = banner; list.more = more; list.searched = searched;
  load(f.before || "", false);

  var off = onLive(function (kind, d) {
    if (kind === "request") {
      if (list.filters.before) return; // an older page: new requests are not on it
      var m = matches(d, list.filters);
      if (m !== "yes") { if (m === "maybe") list.dirty = true; return; }
      if (list.paused) {
        if (list.pending.length < maxRows) list.pending.push(d); else list.missed++;
        updatePending();
        return;
      }
      // Under a burst, rows go in a few times a second, at most flushMax
      // at a time: a browser that cannot keep up reads the list again
      // instead of falling behind.
      list.incoming.push(d);
      if (!list.flush) list.flush = setTimeout(flushIncoming, 300);
    } else if (kind === "job") {
      if (list.byId.has(d.event)) list.dirty = true;
    } else if (kind === "jobs") {
      list.dirty = true;
    } else if (kind === "dropped") {
      list.missed += d.dropped; list.dirty = true; updatePending();
    }
  });
  // Stream events show at once; a read of the first page every three
  // seconds, when something changed, brings the delivery states, search
  // matches and anything a slow connection lost.
  var timer = setInterval(function () {
    if (list.dirty && !list.paused && !list.filters.before && !list.refreshing) { list.dirty = false; refresh(); }
  }, 3000);
  route.cleanup = function () { off(); clearInterval(timer); clearTimeout(list.flush); list.flush = null; list.incoming = []; };
}

function load(before, olderPage) {
  var f = Object.assign({}, list.filters, { before: before, limit: 100 });
  return api("requests" + qs(f)).then(function (page) {
    if (!olderPage) { clear(list.tbody); list.rows = []; list.byId = new Map(); }
    page.requests.forEach(function (r) { list.tbody.appendChild(row(r)); list.rows.push(r); });
    list.next = page.next_before || 0;
    clear(list.more);
    if (list.next) append(list.more, h("button", { id: "older", text: "Older", onclick: function () { list.older = true; load(list.next, true); } }));
    clear(list.searched);
    if (page.searched) append(list.searched, "Searched records #" + page.searched.from + "–#" + page.searched.to + " (a text search or a request ID reads at most " + page.searched.window.toLocaleString() + " records at a time; Older goes on).");
    if (!list.rows.length) append(list.more, h("div", { class: "empty", id: "empty", text: "No requests yet. They appear here as they arrive." }));
    if (list.sel < 0 && list.rows.length) select(0, true);
  }).catch(fail);
}

// refresh reads the first page again and merges it: new rows in, the
// rows whose delivery changed redrawn, the scroll position kept.
function refresh() {
  var f = Object.assign({}, list.filters, { limit: 100 });
  list.refreshing = true;
  api("requests" + qs(f)).then(function (page) {
    list.refreshing = false;
    var fresh = [];
    page.requests.forEach(function (r) {
      var tr = list.byId.get(r.id);
      if (tr) {
        if (tr.dataset.delivery !== deliveryKey(r.delivery)) tr.replaceWith(row(r, tr.classList.contains("selected")));
      } else if (!list.rows.length || r.id > list.rows[0].id) fresh.push(r);
    });
    if (fresh.length) { insertRows(fresh, true); trimRows(); }
    if (list.missed) { list.missed = 0; updatePending(); }
  }).catch(function () { list.refreshing = false; });
}

function deliveryKey(d) { return d ? JSON.stringify(d) : ""; }

function row(r, selected) {
  var tr = h("tr", { "data-id": r.id, "data-delivery": deliveryKey(r.delivery), tabindex: "-1", class: selected ? "selected" : "", onclick: function () { go("/requests/" + r.id); } },
    h("td", { class: "num mono" }, h("a", { href: "/requests/" + r.id, "data-nav": true, text: r.id })),
    h("td", { class: "mono", title: r.received_at, text: time(r.received_at) }),
    h("td", null, h("span", { class: "sender " + r.sender, text: r.sender })),
    h("td", { class: "name", text: r.name }),
    h("td", { class: "rid mono", title: r.request_id, text: r.request_id || "—" }),
    h("td", { class: "status" }, statusBadge(r.status), r.duplicate_of ? h("span", { class: "muted", title: "duplicate of #" + r.duplicate_of, text: " dup" }) : null),
    h("td", { class: "num mono", text: ms(r.latency_ms) }),
    h("td", { class: "delivery" }, deliveryCell(r.delivery)),
    h("td", { class: "verdict v-" + r.verdict.kind, text: r.verdict.text }));
  list.byId.set(r.id, tr);
  return tr;
}

// insertRows puts newer rows on top, keeping what the reader looks at in
// place when the list is scrolled.
function insertRows(rs, merged) {
  rs.sort(function (a, b) { return b.id - a.id; });
  var keep = window.scrollY > 0, before = document.documentElement.scrollHeight;
  var first = list.tbody.firstChild;
  var empty = document.getElementById("empty");
  if (empty) empty.remove();
  var highlight = rs.length <= 5; // a burst is not animated
  rs.forEach(function (r) {
    if (list.byId.has(r.id)) return;
    var tr = row(r);
    if (highlight) tr.classList.add("fresh");
    list.tbody.insertBefore(tr, first);
    list.rows.unshift(r);
  });
  list.rows.sort(function (a, b) { return b.id - a.id; });
  if (keep) window.scrollBy(0, document.documentElement.scrollHeight - before);
  if (list.sel >= 0) list.sel = rowsEls().findIndex(function (tr) { return tr.classList.contains("selected"); });
  if (!merged) list.dirty = true; // for the delivery state
}

function updatePending() {
  var n = list.pending.length + list.missed;
  list.banner.style.display = list.paused && n ? "" : "none";
  clear(list.banner);
  if (list.paused && n) append(list.banner, [n + " new while paused.", h("button", { text: "Resume", onclick: togglePause })]);
  updateLive();
}

function togglePause() {
  list.paused = !list.paused;
  var b = document.getElementById("pause");
  if (b) b.textContent = list.paused ? "Resume (p)" : "Pause (p)";
  if (!list.paused) {
    if (list.pending.length) { insertRows(list.pending); trimRows(); }
    list.pending = [];
    if (list.missed) { list.missed = 0; list.dirty = true; }
  }
  updatePending();
}

function rowsEls() { return Array.prototype.slice.call(list.tbody.querySelectorAll("tr[data-id]")); }

function select(i, quiet) {
  var trs = rowsEls();
  if (!trs.length) return;
  i = Math.max(0, Math.min(trs.length - 1, i));
  trs.forEach(function (tr) { tr.classList.remove("selected"); });
  trs[i].classList.add("selected");
  list.sel = i;
  if (!quiet) trs[i].scrollIntoView({ block: "nearest" });
}

// ---------------------------------------------------------------- detail

function showDetail(id) {
  append(view, h("div", { class: "muted", text: "Loading request " + id + "…" }));
  var load = function () {
    return api("requests/" + id).then(function (d) { clear(view); append(view, detail(d)); }).catch(function (e) {
      clear(view);
      append(view, h("div", { class: "empty", text: e.message }));
    });
  };
  load();
  // Its own job's change soon; after lost events (a burst), at a calmer
  // pace, in case one of them was its.
  reloadOnLive(load, function (kind, d) {
    if ((kind === "job" && d.event === id) || kind === "jobs") return 300;
    return kind === "dropped" ? 3000 : 0;
  });
  route.reload = load;
}

// reloadOnLive calls load again a moment after a live event for which
// after(kind, data) gives a delay in milliseconds (0: not this one), once
// for all the events of that moment, until the page is left.
function reloadOnLive(load, after) {
  var pending = null;
  var off = onLive(function (kind, d) {
    var ms = after(kind, d);
    if (ms && !pending) pending = setTimeout(function () { pending = null; load(); }, ms);
  });
  route.cleanup = function () { off(); clearTimeout(pending); };
}

function detail(d) {
  var refused = d.status >= 300 || d.duplicate_of;
  var head = h("div", { class: "detail-head" },
    h("a", { href: "/" , "data-nav": true, class: "button", title: "Back (Esc)", text: "←" }),
    h("h1", null, "#" + d.id + " ", h("span", { class: "sender " + d.sender, text: d.sender }), " ", d.name),
    statusBadge(d.status),
    h("span", { class: "badge " + (verdictTone[d.verdict.kind] || ""), id: "verdict-kind", text: d.verdict.kind }),
    h("span", { class: "actions" },
      info.replay ? h("button", { id: "replay", class: "primary", text: "Replay", onclick: function () { replay(d, refused); } }) : null,
      h("button", { id: "copy-curl", text: "Copy as curl", onclick: function () { copyCurl(d.id); } }),
      h("a", { class: "button", id: "download", href: API + "requests/" + d.id + "/body", download: "", text: "Download body" })));

  var kv = function (pairs) {
    return h("dl", { class: "kv" }, pairs.filter(function (p) { return p; }).map(function (p) { return [h("dt", { text: p[0] }), h("dd", null, p[1])]; }));
  };
  var overview = h("div", { class: "card" }, h("h2", { text: "Request" }), kv([
    ["Received", dateTime(d.received_at)],
    ["Request ID", h("span", { class: "mono", id: "request-id", text: d.request_id || "— (none sent)" })],
    ["Urgency", d.urgency || "—"],
    ["Method, path", h("span", { class: "mono", text: d.method + " " + d.path })],
    ["From", h("span", { class: "mono", text: d.remote_addr })],
    ["Answered in", ms(d.latency_ms)],
    d.duplicate_of ? ["Duplicate of", h("a", { href: "/requests/" + d.duplicate_of, "data-nav": true, id: "duplicate-of", text: "#" + d.duplicate_of })] : null,
    d.duplicates.length ? ["Answered again", d.duplicates.map(function (x) { return [h("a", { href: "/requests/" + x, "data-nav": true, text: "#" + x }), " "]; })] : null,
    d.related.length ? ["Same request ID", d.related.map(function (x) { return [h("a", { href: "/requests/" + x.id, "data-nav": true, title: x.status + " at " + x.received_at, text: "#" + x.id }), " "]; })] : null
  ]));
  var verdict = h("div", { class: "card verdict-card" }, h("h2", { text: "Contract verdict" }),
    h("div", { class: "big v-" + d.verdict.kind, id: "verdict", text: d.verdict.text }),
    h("h2", { text: "Authentication", style: "margin-top:10px" }),
    h("div", { id: "auth", class: "auth-" + d.auth.state }, stateBadge(d.auth.state), " ", d.auth.text),
    d.notes.length ? [h("h2", { text: "Notes", style: "margin-top:10px" }), h("ul", { class: "notes", id: "notes" }, d.notes.map(function (n) { return h("li", { text: n }); }))] : null);
  var grid = h("div", { class: "grid" }, overview, verdict);

  var headers = h("div", { class: "card" }, h("h2", { text: "Headers (secrets redacted)" }),
    h("table", { class: "headers", id: "headers" }, h("tbody", null, Object.keys(d.headers).sort().map(function (k) {
      return h("tr", null, h("td", { text: k }), h("td", { class: "mono", text: d.headers[k].join(", ") }));
    }))));
  var bodyCard = bodyView("Body", d.body, "body");
  var answer = bodyView("Answer " + d.status, d.response, "answer");
  var jobs = h("div", { class: "card", id: "jobs" }, h("h2", { text: "Delivery: jobs and attempts" }),
    d.jobs.length ? d.jobs.map(jobView) : h("div", { class: "muted", text: "Nothing was queued for this request." }));
  return [head, grid, h("div", { class: "grid" }, bodyCard, answer), headers, jobs];
}

function bodyView(title, b, id) {
  var pre = h("pre", { class: "code", id: id + "-content" });
  var modes = [];
  if (b.json !== undefined) modes.push("pretty");
  modes.push("raw");
  var show = function (mode) {
    pre.textContent = mode === "pretty" ? JSON.stringify(b.json, null, 2)
      : b.text !== undefined ? b.text
      : b.size ? "(not UTF-8 text: " + b.size + " bytes, base64)\n" + b.base64 : "(empty)";
    tabs.querySelectorAll("button").forEach(function (x) { x.classList.toggle("on", x.dataset.mode === mode); });
  };
  var tabs = h("div", { class: "tabs" }, h("h2", { text: title, style: "margin:0 8px 0 0" }),
    modes.map(function (m) { return h("button", { type: "button", dataset: { mode: m }, id: id + "-" + m, text: m, onclick: function () { show(m); } }); }),
    h("span", { class: "size muted", id: id + "-size", text: bytes(b.size) }));
  var card = h("div", { class: "card" }, tabs, pre);
  show(modes[0]);
  return card;
}

function jobView(j) {
  var actions = [];
  if (j.state === "dead" || (j.state === "available" && j.attempts > 0)) {
    actions.push(h("button", { class: j.state === "dead" ? "primary" : "", dataset: { job: j.id }, text: "Retry", onclick: function () { retryJob(j.id); } }));
  }
  var items = j.history.map(function (a) {
    return h("li", { class: "attempt o-" + a.outcome },
      h("b", { text: "#" + a.attempt }), " ", dateTime(a.started_at), " · ", ms(a.duration_ns / 1e6), " · ",
      h("span", { class: "badge " + ({ ok: "ok", failed: "warn", dead: "bad" }[a.outcome] || ""), text: a.outcome }),
      a.error ? h("div", { class: "err", text: a.error }) : null);
  });
  if (j.next_retry) items.push(h("li", { class: "next muted", text: "next retry at " + dateTime(j.next_retry) }));
  return h("div", { class: "job st-" + j.state, id: "job-" + j.id },
    h("div", { class: "job-head" }, h("b", { text: "Job " + j.id }), j.name, stateBadge(j.state),
      h("span", { class: "muted", text: j.attempts + " attempt" + (j.attempts === 1 ? "" : "s") }),
      j.finished_at ? h("span", { class: "muted", text: "finished " + dateTime(j.finished_at) }) : null, actions),
    j.last_error && !j.history.length ? h("div", { class: "err", text: j.last_error }) : null,
    items.length ? h("ol", { class: "timeline" }, items) : h("div", { class: "muted", text: j.state === "done" ? "Stored: no action to run." : "No attempt yet." }));
}

function replay(d, refused) {
  var run = function (force) {
    document.getElementById("replay").disabled = true;
    api("requests/" + d.id + "/replay" + (force ? "?force=true" : ""), { method: "POST" }).then(function (r) {
      toast(r.ok ? "Replayed: " + r.jobs.map(function (j) { return "job " + j.job + " " + j.outcome; }).join(", ")
        : "Replay did not succeed: " + (r.error || r.jobs.map(function (j) { return "job " + j.job + " " + j.outcome + (j.error ? ": " + j.error : ""); }).join("; ")), !r.ok);
      route.reload && route.reload();
    }).catch(function (e) { fail(e); var b = document.getElementById("replay"); if (b) b.disabled = false; });
  };
  if (refused) {
    ask("Replay a request that was " + (d.duplicate_of ? "a duplicate" : "answered " + d.status) + "?",
      h("p", { text: "Its sender never had it accepted: replaying runs its action anyway." }), "Replay anyway", function () { run(true); });
  } else run(false);
}

function retryJob(id) {
  return api("jobs/" + id + "/retry", { method: "POST" }).then(function () {
    toast("Job " + id + " queued again");
    route.reload && route.reload();
  }).catch(fail);
}

function copyCurl(id) {
  api("requests/" + id + "/curl").then(function (text) {
    var pre = h("pre", { class: "code", id: "curl", text: text });
    var done = function () { toast("Copied as curl (secrets elided)"); };
    if (navigator.clipboard && window.isSecureContext) navigator.clipboard.writeText(text).then(done, function () {});
    ask("Copy as curl", pre);
  }).catch(fail);
}

// ---------------------------------------------------------------- dead letters

function showDead() {
  var tbody = h("tbody", { id: "dead-rows" });
  var count = h("span", { class: "muted" });
  var since = h("input", { id: "dead-since", placeholder: "died since: 2h, RFC 3339 (all)" });
  append(view, [
    h("div", { class: "detail-head" }, h("h1", { text: "Dead letters" }), count,
      h("span", { class: "actions" }, since, h("button", { id: "retry-all", class: "danger", text: "Retry all dead…", onclick: function () {
        var s = since.value.trim();
        ask("Retry every dead job" + (s ? " that died since " + s : "") + "?",
          h("p", { text: "Each starts over with a full set of attempts and is delivered by the running workers." }), "Retry all", function () {
            api("jobs/retry", { method: "POST", body: s ? { dead: true, since: s } : { dead: true } }).then(function (r) {
              toast(r.retried + " job(s) queued again"); render();
            }).catch(fail);
          });
      } }))),
    h("table", { class: "list" }, h("thead", null, h("tr", null, ["Job", "Request", "Sender", "Name", "Attempts", "Died", "Last error", ""].map(function (t) { return h("th", { text: t }); }))), tbody)]);
  var seq = 0;
  var load = function () {
    var mine = ++seq;
    return api("jobs?state=dead&limit=500").then(function (r) {
      if (mine !== seq) return; // a later read is on its way
      clear(tbody);
      count.textContent = r.jobs.length + (r.next_after ? "+" : "") + " dead job(s)";
      if (!r.jobs.length) append(tbody, h("tr", null, h("td", { colspan: 8, class: "empty", text: "No dead jobs." })));
      r.jobs.forEach(function (j) {
        append(tbody, h("tr", { "data-job": j.id, onclick: function (e) { if (e.target.tagName !== "BUTTON") go("/requests/" + j.event); } },
          h("td", { class: "mono", text: j.id }),
          h("td", null, h("a", { href: "/requests/" + j.event, "data-nav": true, text: "#" + j.event })),
          h("td", null, h("span", { class: "sender " + j.sender, text: j.sender })),
          h("td", { text: j.name }), h("td", { class: "num", text: j.attempts }),
          h("td", { class: "mono", text: j.finished_at ? dateTime(j.finished_at) : "" }),
          h("td", { class: "err", style: "white-space:normal", text: j.last_error }),
          h("td", null, h("button", { dataset: { job: j.id }, text: "Retry", onclick: function () { retryJob(j.id).then(render); } }))));
      });
    }).catch(fail);
  };
  load();
  // A job that dies, or jobs retried (here or elsewhere), change the list:
  // it is read again a moment later.
  reloadOnLive(load, function (kind, d) {
    var listed = kind === "job" && (d.state === "dead" || tbody.querySelector('[data-job="' + d.id + '"]'));
    return listed || kind === "jobs" || kind === "dropped" ? 1000 : 0;
  });
}

// ---------------------------------------------------------------- faults

function showFaults() {
  var tbody = h("tbody", { id: "fault-rows" });
  var form = h("form", { class: "inline", id: "fault-form", onsubmit: function (e) {
      e.preventDefault();
      var el = form.elements, body = { sender: el.sender.value, name: el.name.value.trim() };
      var v = el.value.value.trim();
      if (el.kind.value === "status") body.status = Number(v);
      else if (el.kind.value === "delay") body.delay = v;
      else body.drop = true;
      if (el.count.value) body.count = Number(el.count.value);
      if (el.percent.value) body.percent = Number(el.percent.value);
      if (el.for.value.trim()) body.for = el.for.value.trim();
      api("faults", { method: "POST", body: body }).then(function (f) { toast("Fault " + f.id + " added"); render(); }).catch(fail);
    } },
    h("select", { name: "sender" }, info.senders.map(function (s) { return h("option", { value: s, text: s }); })),
    h("input", { name: "name", placeholder: "name (all)" }),
    h("select", { name: "kind" }, ["status", "delay", "drop"].map(function (k) { return h("option", { value: k, text: k }); })),
    h("input", { name: "value", placeholder: "503 or 2s", size: 6 }),
    h("input", { name: "count", type: "number", min: 1, placeholder: "count (∞)" }),
    h("input", { name: "percent", type: "number", min: 1, max: 100, placeholder: "% (100)" }),
    h("input", { name: "for", placeholder: "for: 10m (until removed)" }),
    h("button", { type: "submit", class: "primary", id: "fault-add", text: "Add fault" }));
  append(view, [
    h("div", { class: "detail-head" }, h("h1", { text: "Faults" }),
      h("span", { class: "muted", text: "Answers injected on purpose, to watch how a sender retries. Servers pick changes up within a second." }),
      h("span", { class: "actions" }, h("button", { class: "danger", id: "fault-clear", text: "Clear all…", onclick: function () {
        ask("Remove every fault?", h("p", { text: "Expired ones included." }), "Clear all", function () {
          api("faults?all=true", { method: "DELETE" }).then(function (r) { toast(r.cleared + " fault(s) cleared"); render(); }).catch(fail);
        });
      } }))),
    form,
    h("table", { class: "list" }, h("thead", null, h("tr", null, ["ID", "Sender", "Name", "Fault", "Remaining", "Percent", "Expires", ""].map(function (t) { return h("th", { text: t }); }))), tbody)]);
  api("faults").then(function (r) {
    if (!r.faults.length) append(tbody, h("tr", null, h("td", { colspan: 8, class: "empty", text: "No faults in force." })));
    r.faults.forEach(function (f) {
      var what = f.kind === "status" ? "answer " + f.status : f.kind === "delay" ? "delay " + (f.delay_ns / 1e9) + " s" : "drop the connection";
      append(tbody, h("tr", { "data-fault": f.id },
        h("td", { class: "mono", text: f.id }), h("td", null, h("span", { class: "sender " + f.sender, text: f.sender })),
        h("td", { text: f.name || "(all)" }), h("td", { text: what }),
        h("td", { text: f.remaining < 0 ? "no limit" : f.remaining }), h("td", { text: f.percent + "%" }),
        h("td", { text: f.expires_at && f.expires_at.slice(0, 4) !== "0001" ? dateTime(f.expires_at) : "when removed" }),
        h("td", null, h("button", { dataset: { fault: f.id }, text: "Remove", onclick: function () {
          api("faults/" + f.id, { method: "DELETE" }).then(function () { toast("Fault " + f.id + " removed"); render(); }).catch(fail);
        } }))));
    });
  }).catch(fail);
}

// ---------------------------------------------------------------- report

function showReport() {
  var u = new URLSearchParams(location.search);
  var form = h("form", { class: "inline", onsubmit: function (e) {
      e.preventDefault();
      go("/report" + qs({ sender: form.elements.sender.value, since: form.elements.since.value.trim() }));
    } },
    h("select", { name: "sender" }, h("option", { value: "", text: "all senders" }),
      info.senders.map(function (s) { return h("option", { value: s, text: s, selected: u.get("sender") === s }); })),
    h("input", { name: "since", placeholder: "since: 24h", value: u.get("since") || "" }),
    h("button", { type: "submit", class: "primary", text: "Report" }));
  var out = h("div", { class: "report", id: "report" }, h("div", { class: "muted", text: "Reading…" }));
  append(view, [h("div", { class: "detail-head" }, h("h1", { text: "Sender report" }),
    h("span", { class: "muted", text: "How each sender behaved: statuses, notes, and departures from its documented retry behaviour (hookbay report)." })), form, out]);
  api("report" + qs({ sender: u.get("sender") || "", since: u.get("since") || "" })).then(function (b) {
    clear(out);
    var senders = Object.keys(b.senders || {}).sort();
    if (!senders.length) append(out, h("div", { class: "empty", text: "No requests since " + dateTime(b.since) + "." }));
    senders.forEach(function (s) {
      var sum = b.senders[s];
      append(out, h("div", { class: "card", style: "margin-bottom:10px" },
        h("h3", null, h("span", { class: "sender " + s, text: s }), " · " + sum.requests + " requests, " + sum.request_ids + " request IDs, " + sum.request_ids_with_findings + " with findings"),
        h("table", { class: "headers" }, h("tbody", null,
          Object.keys(sum.statuses).sort().map(function (st) { return h("tr", null, h("td", null, "status ", statusBadge(st)), h("td", { text: sum.statuses[st] })); }),
          Object.keys(sum.notes).sort().map(function (n) { return h("tr", null, h("td", { text: "note: " + n }), h("td", { text: sum.notes[n] })); })))));
    });
    var multi = (b.requests || []).filter(function (r) { return r.attempts.length > 1 || (r.findings && r.findings.length); });
    if (multi.length) append(out, h("h3", { text: "Request IDs delivered more than once, or with findings" }));
    multi.forEach(function (r) {
      append(out, h("div", { class: "card", style: "margin-bottom:8px" },
        h("b", null, h("span", { class: "sender " + r.sender, text: r.sender }), " ", h("span", { class: "mono", text: r.request_id }), " (" + r.name + "): " + r.attempts.length + " attempts"),
        h("ol", { class: "timeline" }, r.attempts.map(function (a) {
          return h("li", { class: "o-" + (a.status < 300 ? "ok" : "failed") }, dateTime(a.at), a.gap_ns ? " (+" + ms(a.gap_ns / 1e6) + ")" : "", " → ", statusBadge(a.status), " ",
            h("a", { href: "/requests/" + a.event, "data-nav": true, text: "#" + a.event }));
        })),
        (r.findings || []).map(function (f) { return h("div", { class: "finding", text: "! " + f }); })));
    });
  }).catch(function (e) { clear(out); append(out, h("div", { class: "error", text: e.message })); });
}

// ---------------------------------------------------------------- keyboard

document.addEventListener("keydown", function (e) {
  var t = e.target, typing = t.tagName === "INPUT" || t.tagName === "SELECT" || t.tagName === "TEXTAREA";
  if (document.getElementById("dialog").open) return;
  if (e.key === "Escape") {
    if (typing) { t.blur(); return; }
    if (route.name !== "list") go(list.url || "/");
    return;
  }
  if (typing || e.metaKey || e.ctrlKey || e.altKey) return;
  if (e.key === "/") { e.preventDefault(); if (route.name !== "list") go("/"); var s = document.getElementById("search"); if (s) s.focus(); return; }
  if (e.key === "?") { help(); return; }
  if (route.name !== "list") return;
  if (e.key === "j" || e.key === "ArrowDown") { e.preventDefault(); select(list.sel + 1); }
  else if (e.key === "k" || e.key === "ArrowUp") { e.preventDefault(); select(list.sel - 1); }
  else if (e.key === "Enter") { var tr = rowsEls()[list.sel]; if (tr) go("/requests/" + tr.dataset.id); }
  else if (e.key === "p") togglePause();
});

function help() {
  ask("Keyboard", h("dl", { class: "kv" }, [["j / ↓", "next request"], ["k / ↑", "previous request"], ["Enter", "open it"],
    ["/", "search"], ["p", "pause or resume the live list"], ["Esc", "back, or leave a field"], ["?", "this help"]].map(function (p) {
    return [h("dt", null, h("kbd", { text: p[0] })), h("dd", { text: p[1] })];
  })));
}
document.getElementById("help-button").addEventListener("click", help);

// ---------------------------------------------------------------- start

api("info").then(function (i) { info = i; }).catch(function () {}).then(function () { connect(); render(); });
