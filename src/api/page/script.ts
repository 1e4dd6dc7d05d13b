/**
 * The status page's script: hand-written, no framework, no third-party request. It asks for
 * the API key once, keeps it in sessionStorage (this tab only), and sends it as any API
 * client does (Authorization: Bearer). It reads GET /status (every 15 s, every second while
 * a backup runs) and GET /backups?details=1, draws the charts as SVG elements, and uses
 * POST /backups and GET /backups/{file}/link for its buttons. Paths are relative, so the page
 * also works where the app is mounted under a prefix (served at "<prefix>/").
 *
 * Kept free of backquotes and dollar-brace so that it can live in a String.raw literal.
 */
export const PAGE_JS = String.raw`"use strict";
(function () {
  var STORE = "sqlite-edge-backup.apiKey";
  var FAST_MS = 1000, SLOW_MS = 15000;
  var key = null;
  var dbs = {};          // name -> { status, backups, listedFor, els, triggering }
  var order = [];
  var timer = null;

  function $(id) { return document.getElementById(id); }
  function el(tag, props) {
    var e = document.createElement(tag);
    if (props) for (var k in props) {
      if (k === "text") e.textContent = props[k];
      else if (k === "class") e.className = props[k];
      else if (k.indexOf("on") === 0) e.addEventListener(k.slice(2), props[k]);
      else e.setAttribute(k, props[k]);
    }
    for (var i = 2; i < arguments.length; i++) {
      var c = arguments[i];
      if (c === null || c === undefined || c === false) continue;
      e.append(c);
    }
    return e;
  }
  var SVG = "http://www.w3.org/2000/svg";
  function s(tag, attrs, text) {
    var e = document.createElementNS(SVG, tag);
    for (var k in attrs) e.setAttribute(k, String(attrs[k]));
    if (text !== undefined) e.textContent = text;
    return e;
  }

  function bytes(n) {
    if (n === undefined || n === null) return "–";
    var units = ["B", "KiB", "MiB", "GiB", "TiB"], i = 0;
    while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
    return (i === 0 ? String(n) : n.toFixed(n < 10 ? 2 : 1)) + " " + units[i];
  }
  function duration(ms) {
    if (ms === undefined || ms === null) return "–";
    if (ms < 1000) return Math.round(ms) + " ms";
    if (ms < 60000) return (ms / 1000).toFixed(1) + " s";
    return Math.floor(ms / 60000) + " min " + Math.round((ms % 60000) / 1000) + " s";
  }
  function ago(iso) {
    var d = (Date.now() - Date.parse(iso)) / 1000, future = d < 0;
    d = Math.abs(d);
    var t = d < 60 ? Math.round(d) + " s" : d < 3600 ? Math.round(d / 60) + " min" : d < 172800 ? Math.round(d / 3600) + " h" : Math.round(d / 86400) + " days";
    return future ? "in " + t : t + " ago";
  }
  function when(iso) {
    var t = el("time", { datetime: iso, title: iso, text: new Date(iso).toLocaleString() });
    return el("span", null, t, " (" + ago(iso) + ")");
  }

  // ------------------------------------------------------------------------------ the API
  function AuthError(status, message) { this.status = status; this.message = message; }
  function api(path, method) {
    return fetch(path, { method: method || "GET", headers: { Authorization: "Bearer " + key }, cache: "no-store", credentials: "omit" })
      .then(function (res) {
        return res.text().then(function (text) {
          var body = null;
          try { body = text ? JSON.parse(text) : null; } catch (e) { body = null; }
          var msg = body && body.error && body.error.message ? body.error.message : "HTTP " + res.status;
          if (res.status === 401 || res.status === 403) throw new AuthError(res.status, msg);
          return { status: res.status, body: body, message: msg };
        });
      });
  }
  function q(name) { return "name=" + encodeURIComponent(name); }

  // ---------------------------------------------------------------------------- the key
  function showLogin(message) {
    key = null;
    sessionStorage.removeItem(STORE);
    if (timer) { clearTimeout(timer); timer = null; }
    dbs = {}; order = [];
    $("dashboard").hidden = true;
    $("dashboard").replaceChildren();
    $("loading").hidden = true;
    $("forget").hidden = true;
    $("login").hidden = false;
    $("login-error").textContent = message || "";
    $("key").value = "";
    $("key").focus();
  }
  function authMessage(err) {
    if (err.status === 401) return "The API key was not accepted (HTTP 401). Check it and try again.";
    return "The server refused access (HTTP 403): " + err.message;
  }
  function fail(err) {
    if (err instanceof AuthError) showLogin(authMessage(err));
    else {
      $("loading").hidden = false;
      $("loading").textContent = "Could not reach the server: " + (err && err.message ? err.message : String(err)) + ". Retrying…";
      schedule(SLOW_MS);
    }
  }

  // ------------------------------------------------------------------------ loading data
  function refresh() {
    timer = null;
    return api("status").then(function (r) {
      if (r.status !== 200) throw new Error(r.message);
      var list = r.body.databases || [r.body];
      var first = order.length === 0;
      var loads = [];
      list.forEach(function (st) {
        var d = dbs[st.name];
        if (!d) { d = dbs[st.name] = { status: st, backups: null, listedFor: null, triggering: false }; order.push(st.name); }
        d.status = st;
        // The listing changes when a run ends: fetch it again when the newest run is not the one it was fetched for.
        var mark = (st.runs && st.runs[0] ? st.runs[0].finishedAt : "") + "|" + (st.lastRun ? st.lastRun.finishedAt : "");
        if (d.listedFor !== mark) loads.push(listBackups(d, mark));
      });
      return Promise.all(loads).then(function () {
        if (first) {
          $("login").hidden = true;
          $("loading").hidden = true;
          $("forget").hidden = false;
          $("dashboard").hidden = false;
        }
        order.forEach(function (name) { render(dbs[name]); });
        var busy = order.some(function (n) { return dbs[n].status.running || dbs[n].triggering; });
        schedule(busy ? FAST_MS : SLOW_MS);
      });
    }).catch(fail);
  }
  function listBackups(d, mark) {
    return api("backups?" + q(d.status.name) + "&details=1").then(function (r) {
      if (r.status !== 200) throw new Error(r.message);
      d.backups = r.body.backups;
      d.listedFor = mark;
      d.listChanged = true;
    });
  }
  function schedule(ms) {
    if (timer) clearTimeout(timer);
    timer = setTimeout(refresh, ms);
  }

  // --------------------------------------------------------------------------- rendering
  function section(d) {
    if (d.els) return d.els;
    var name = d.status.name;
    var id = "db-" + name;
    var badge = el("span", { class: "badge none" });
    var facts = el("dl", { class: "facts" });
    var msg = el("span", { class: "msg", role: "status", "aria-live": "polite" });
    var button = el("button", { type: "button", class: "primary", text: "Back up now", onclick: function () { trigger(d); } });
    var charts = el("div", { class: "charts" });
    var count = el("span", { class: "muted" });
    var tbody = el("tbody");
    var table = el("table", { "aria-describedby": id + "-backups" },
      el("thead", null, el("tr", null,
        el("th", { scope: "col", text: "Made" }), el("th", { scope: "col", text: "Stored" }), el("th", { scope: "col", text: "Image" }),
        el("th", { scope: "col", text: "SHA-256 (image)" }), el("th", { scope: "col", text: "Verified" }), el("th", { scope: "col", text: "Download" }))),
      tbody);
    var node = el("section", { class: "card db", id: id, "aria-labelledby": id + "-title", "data-name": name },
      el("div", { class: "db-head" }, el("h2", { id: id + "-title", text: name }), badge),
      facts,
      el("div", { class: "row" }, button, msg),
      charts,
      el("h3", { id: id + "-backups" }, "Backups ", count),
      el("div", { class: "table-wrap" }, table));
    $("dashboard").append(node);
    d.els = { badge: badge, facts: facts, msg: msg, button: button, charts: charts, count: count, tbody: tbody };
    return d.els;
  }

  function lastOf(st) { return st.runs && st.runs[0] ? st.runs[0] : st.lastRun ? Object.assign({ result: st.lastRun.ok ? "ok" : "failed" }, st.lastRun) : null; }

  function render(d) {
    var st = d.status, e = section(d), last = lastOf(st);
    var state = st.running ? "running" : last ? last.result : "none";
    e.badge.className = "badge " + state;
    e.badge.textContent = st.running ? "running" : last ? (last.result === "ok" ? "last run ok" : last.result === "failed" ? "last run failed" : "last run skipped") : "no run yet";
    e.button.disabled = d.triggering;

    var f = [];
    function fact(label, value, cls) { f.push(el("dt", { text: label }), el("dd", cls ? { class: cls } : null, value)); }
    if (last) {
      fact("Last run", el("span", null, when(last.finishedAt), " · ", last.trigger === "schedule" ? "scheduled" : last.trigger === "api" ? "on request" : "", " · took " + duration(last.durationMs)));
      if (last.result === "ok") {
        fact("Result", el("span", { class: "ok" }, last.unchanged ? "ok, unchanged since the newest backup (nothing uploaded)" : "ok"));
        fact("Size", bytes(last.bytes) + " image, " + bytes(last.gzipBytes) + " compressed" + (last.bytes ? " (" + Math.round((100 * last.gzipBytes) / last.bytes) + " %)" : ""));
        if (last.error) fact("Warning", last.error.code + ": " + last.error.message, "warn");
      } else if (last.result === "failed") {
        fact("Result", el("span", { class: "bad" }, "failed: " + (last.error ? last.error.code + " — " + last.error.message : "")));
      } else {
        fact("Result", el("span", { class: "muted" }, "skipped: " + (last.reason || "")));
      }
    } else {
      var newest = d.backups && d.backups[0];
      fact("Last run", newest ? el("span", null, "none since this server started; newest backup ", when(newest.lastModified)) : "none yet");
    }
    fact("Next scheduled run", st.nextRun ? when(st.nextRun) : el("span", { class: "muted" }, "not known here"));
    if (st.running) {
      var p = st.progress || {};
      var parts = [el("span", null, "running since ", when(st.runningSince), " · " + (p.phase || "starting"))];
      if (p.bytesTotal && p.bytesDone !== undefined) {
        parts.push(" ", el("progress", { max: String(p.bytesTotal), value: String(p.bytesDone), "aria-label": "bytes read" }),
          " " + bytes(p.bytesDone) + " of " + bytes(p.bytesTotal) + " (" + Math.floor((100 * p.bytesDone) / p.bytesTotal) + " %)");
      } else if (p.bytesDone !== undefined) parts.push(" · " + bytes(p.bytesDone) + " read");
      if (p.uploadedBytes !== undefined) parts.push(" · " + bytes(p.uploadedBytes) + " sent");
      fact("Now", el.apply(null, ["span", null].concat(parts)));
    } else fact("Now", "idle");
    e.facts.replaceChildren.apply(e.facts, f);

    if (d.listChanged && d.backups) {
      d.listChanged = false;
      renderBackups(d);
    }
    renderCharts(d);
  }

  function verifiedOf(d, b) {
    if (b.verified) return b.verified;
    var runs = d.status.runs || [];
    for (var i = 0; i < runs.length; i++) if (runs[i].key === b.key && runs[i].verified) return runs[i].verified;
    return null;
  }
  var VERIFIED = { head: "size and metadata", full: "content re-read" };

  function renderBackups(d) {
    var e = d.els, rows = [];
    e.count.textContent = "(" + d.backups.length + ")";
    d.backups.forEach(function (b) {
      var v = verifiedOf(d, b);
      var btn = el("button", { type: "button", text: "Download", "aria-label": "Download " + b.file, "data-file": b.file });
      btn.addEventListener("click", function () { download(d, b, btn); });
      rows.push(el("tr", { "data-key": b.key },
        el("td", { "data-label": "Made" }, when(new Date(madeAt(b)).toISOString())),
        el("td", { class: "num", "data-label": "Stored" }, bytes(b.size) + (b.encrypted ? " (age)" : "")),
        el("td", { class: "num", "data-label": "Image" }, bytes(b.bytes)),
        el("td", { "data-label": "SHA-256" }, b.sha256 ? el("code", { title: b.sha256, class: "sha" }, b.sha256.slice(0, 16) + "…") : "–"),
        el("td", { "data-label": "Verified" }, v ? "✓ " + VERIFIED[v] : el("span", { class: "muted", title: "Every stored backup passed verification when it was made; this server did not make this one." }, "✓ at upload")),
        el("td", null, btn)));
    });
    if (!rows.length) rows.push(el("tr", null, el("td", { colspan: "6", class: "muted", text: "No backups yet." })));
    e.tbody.replaceChildren.apply(e.tbody, rows);
  }

  // ------------------------------------------------------------------------------ charts
  /** points: [{t, y, label, cls}] per series; one y scale for all series. */
  function chart(title, series, fmt, W) {
    var H = 220, L = 64, R = 12, T = 14, B = 30;
    var all = [];
    series.forEach(function (sr) { all = all.concat(sr.points); });
    var svg = s("svg", { viewBox: "0 0 " + W + " " + H, class: "chart", role: "img", "aria-label": title });
    svg.append(s("title", {}, title));
    if (!all.length) {
      svg.append(s("text", { x: W / 2, y: H / 2, "text-anchor": "middle" }, "no data yet"));
      return svg;
    }
    var t0 = Math.min.apply(null, all.map(function (p) { return p.t; })), t1 = Math.max.apply(null, all.map(function (p) { return p.t; }));
    var ymax = Math.max.apply(null, all.map(function (p) { return p.y; })) || 1;
    ymax *= 1.1;
    function x(t) { return t1 === t0 ? L + (W - L - R) / 2 : L + ((t - t0) / (t1 - t0)) * (W - L - R); }
    function y(v) { return T + (1 - v / ymax) * (H - T - B); }
    svg.append(s("line", { x1: L, y1: H - B, x2: W - R, y2: H - B, class: "axis" }), s("line", { x1: L, y1: T, x2: L, y2: H - B, class: "axis" }));
    [0, 0.5, 1].forEach(function (f) {
      svg.append(s("text", { x: L - 6, y: y(ymax * f / 1.1) + 4, "text-anchor": "end" }, fmt(ymax * f / 1.1)));
    });
    svg.append(s("text", { x: L, y: H - 8, "text-anchor": "start" }, new Date(t0).toLocaleString()));
    if (t1 !== t0 && W > 500) svg.append(s("text", { x: W - R, y: H - 8, "text-anchor": "end" }, new Date(t1).toLocaleString()));
    series.forEach(function (sr) {
      var pts = sr.points.slice().sort(function (a, b) { return a.t - b.t; });
      if (sr.line && pts.length > 1) svg.append(s("polyline", { class: sr.line, points: pts.map(function (p) { return x(p.t).toFixed(1) + "," + y(p.y).toFixed(1); }).join(" ") }));
      pts.forEach(function (p) {
        var c = s("circle", { cx: x(p.t).toFixed(1), cy: y(p.y).toFixed(1), r: 4, class: sr.point + (p.cls ? " " + p.cls : ""), "data-series": sr.name });
        c.append(s("title", {}, p.label));
        svg.append(c);
      });
    });
    return svg;
  }
  function legend(items) {
    return el.apply(null, ["figcaption", null].concat(items.map(function (it) { return el("span", { class: "key " + it[0], text: it[1] }); })));
  }
  /** When a backup was made: its key's timestamp (milliseconds), else the store's (seconds). */
  function madeAt(b) {
    var m = /-(\d{4})-(\d{2})-(\d{2})T(\d{2})-(\d{2})-(\d{2})-(\d{3})Z-[0-9a-f]{6}\.sqlite\.gz(\.age)?$/.exec(b.file);
    return m ? Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5], +m[6], +m[7]) : Date.parse(b.lastModified);
  }
  function renderCharts(d) {
    var list = d.backups || [], runs = (d.status.runs || []).filter(function (r) { return r.result !== "skipped"; });
    var sig = list.map(function (b) { return b.key; }).join() + "|" + runs.map(function (r) { return r.finishedAt; }).join();
    if (d.chartSig === sig) return;
    d.chartSig = sig;
    var image = [], stored = [], took = [];
    list.forEach(function (b) {
      var t = madeAt(b);
      if (b.bytes !== undefined) image.push({ t: t, y: b.bytes, label: b.file + ": image " + bytes(b.bytes) });
      stored.push({ t: t, y: b.size, label: b.file + ": stored " + bytes(b.size) });
    });
    runs.forEach(function (r) {
      took.push({ t: Date.parse(r.startedAt), y: r.durationMs, cls: r.result === "failed" ? "failed" : "", label: new Date(r.startedAt).toLocaleString() + ": " + r.result + ", " + duration(r.durationMs) });
    });
    var sizes = chart("Size of each of the " + list.length + " backups in the bucket, image and compressed", [
      { name: "image", points: image, line: "s1", point: "p1" },
      { name: "stored", points: stored, line: "s2", point: "p2" },
    ], bytes, 640);
    var times = chart("Duration of the last " + runs.length + " runs of this server", [{ name: "duration", points: took, point: "p3" }], duration, 420);
    d.els.charts.replaceChildren(
      el("figure", { class: "chart-sizes" }, sizes, legend([["k1", "image"], ["k2", "compressed (stored)"]])),
      el("figure", { class: "chart-runs" }, times, legend([["k3", "run duration (red: failed)"]])));
  }

  // ------------------------------------------------------------------------------ actions
  function trigger(d) {
    var e = d.els;
    d.triggering = true;
    e.button.disabled = true;
    e.msg.className = "msg muted";
    e.msg.textContent = "Backing up…";
    schedule(300); // show the run's progress while the request is open
    api("backups?" + q(d.status.name), "POST").then(function (r) {
      if (r.status === 201) {
        e.msg.className = "msg ok";
        e.msg.textContent = r.body.unchanged ? "Unchanged since the newest backup: nothing uploaded." : "Backed up: " + r.body.file + " (" + bytes(r.body.gzipBytes) + ").";
      } else if (r.status === 409) {
        e.msg.className = "msg warn";
        e.msg.textContent = "Already running: " + r.message;
      } else {
        e.msg.className = "msg bad";
        e.msg.textContent = "Backup failed: " + r.message;
      }
    }).catch(function (err) {
      if (err instanceof AuthError) return showLogin(authMessage(err));
      e.msg.className = "msg bad";
      e.msg.textContent = "Backup request failed: " + err.message;
    }).then(function () {
      d.triggering = false;
      if (key) { d.listedFor = null; return refresh(); }
    });
  }
  function download(d, b, btn) {
    btn.disabled = true;
    api("backups/" + encodeURIComponent(b.file) + "/link?" + q(d.status.name)).then(function (r) {
      if (r.status !== 200) throw new Error(r.message);
      // The signed URL answers with Content-Disposition: attachment, so the page stays.
      window.location.assign(r.body.url);
    }).catch(function (err) {
      if (err instanceof AuthError) return showLogin(authMessage(err));
      d.els.msg.className = "msg bad";
      d.els.msg.textContent = "No download link: " + err.message;
    }).then(function () { btn.disabled = false; });
  }

  // -------------------------------------------------------------------------------- start
  function start() {
    $("login").addEventListener("submit", function (ev) {
      ev.preventDefault();
      var typed = $("key").value.trim();
      if (!typed) return;
      key = typed;
      $("login-error").textContent = "";
      api("status").then(function (r) {
        if (r.status !== 200) throw new Error(r.message);
        sessionStorage.setItem(STORE, typed);
        $("loading").hidden = false;
        $("loading").textContent = "Loading…";
        $("login").hidden = true;
        return refresh();
      }).catch(function (err) {
        if (err instanceof AuthError) showLogin(authMessage(err));
        else $("login-error").textContent = "Could not reach the server: " + err.message;
      });
    });
    $("forget").addEventListener("click", function () { showLogin(""); });
    key = sessionStorage.getItem(STORE);
    if (key) refresh();
    else showLogin("");
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
`;
