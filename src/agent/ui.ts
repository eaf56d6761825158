/**
 * The agent's status page (`/ui` on the --healthz address): one HTML document with its CSS and JS
 * inline, no external assets and no build step (nodes may be air-gapped). It polls `/api/status`
 * (status-data.ts) every two seconds and shows the network picture (`/ui/graph.svg`, rendered by
 * Graphviz at request time, fetched again only when nodes or attachments change), the nodes, the
 * attachments, and CNI request latency charts drawn from the latency histograms.
 */

/** The page. */
export const UI_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>cnikit status</title>
<style>
  :root { --fg: #111827; --muted: #6b7280; --line: #e5e7eb; --bg: #f9fafb; --ok: #16a34a; --bad: #dc2626; --accent: #0284c7; }
  * { box-sizing: border-box; }
  body { margin: 0; font: 14px/1.4 system-ui, -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; color: var(--fg); background: var(--bg); }
  header { display: flex; align-items: center; gap: 16px; padding: 12px 20px; background: #fff; border-bottom: 1px solid var(--line); flex-wrap: wrap; }
  header h1 { font-size: 18px; margin: 0; }
  .pill { padding: 2px 10px; border-radius: 999px; font-weight: 600; font-size: 12px; color: #fff; background: var(--muted); }
  .pill.ok { background: var(--ok); } .pill.bad { background: var(--bad); }
  .facts { color: var(--muted); display: flex; gap: 14px; flex-wrap: wrap; }
  .facts b { color: var(--fg); font-weight: 600; }
  main { padding: 16px 20px; display: grid; gap: 16px; grid-template-columns: minmax(0, 1fr); }
  section { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 12px 16px; }
  section h2 { font-size: 15px; margin: 0 0 8px; }
  #graph { overflow: auto; text-align: center; min-height: 60px; }
  #graph svg { max-width: 100%; height: auto; }
  #nodes, #attachments, #counters { overflow-x: auto; }
  table { border-collapse: collapse; width: 100%; font-size: 13px; }
  th, td { text-align: left; padding: 4px 8px; border-bottom: 1px solid var(--line); white-space: nowrap; }
  th { color: var(--muted); font-weight: 600; }
  tr.self td { background: #e0f2fe; }
  td.mono, .mono { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 12px; }
  .empty { color: var(--muted); font-style: italic; }
  .charts { display: flex; flex-wrap: wrap; gap: 12px; }
  .chart { border: 1px solid var(--line); border-radius: 6px; padding: 8px; width: 300px; }
  .chart h3 { font-size: 13px; margin: 0 0 4px; }
  .chart .stats { color: var(--muted); font-size: 12px; }
  .err { color: var(--bad); }
  .grid2 { display: grid; gap: 16px; grid-template-columns: minmax(0, 1fr); }
  @media (min-width: 1700px) { .grid2 { grid-template-columns: minmax(0, 1fr) minmax(0, 1fr); } }
</style>
</head>
<body>
<header>
  <h1>cnikit <span id="host" class="mono"></span></h1>
  <span id="state" class="pill">loading</span>
  <div class="facts">
    <span>version <b id="version">-</b></span>
    <span>uptime <b id="uptime">-</b></span>
    <span>in flight <b id="inflight">-</b></span>
    <span>pending removals <b id="pending">-</b></span>
    <span>pods <b id="npods">-</b></span>
    <span>nodes <b id="nnodes">-</b></span>
    <span>updated <b id="updated">-</b></span>
  </div>
  <span id="error" class="err"></span>
</header>
<main>
  <section><h2>Network</h2><div id="graph"><span class="empty">drawing...</span></div></section>
  <div class="grid2">
    <section><h2>Nodes</h2><div id="nodes"></div></section>
    <section><h2>Attachments on this node</h2><div id="attachments"></div></section>
  </div>
  <section><h2>CNI request latency</h2><div id="charts" class="charts"></div></section>
  <section><h2>Counters</h2><div id="counters"></div></section>
</main>
<script>
(function () {
"use strict";
var graphKey = null;
var series = {};
var HISTORY = 60;

function el(tag, attrs, children) {
  var e = document.createElement(tag);
  for (var k in attrs || {}) e.setAttribute(k, attrs[k]);
  (children || []).forEach(function (c) { e.appendChild(typeof c === "string" ? document.createTextNode(c) : c); });
  return e;
}
function svgEl(tag, attrs) {
  var e = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (var k in attrs) e.setAttribute(k, attrs[k]);
  return e;
}
function age(sec) {
  if (sec < 0) return "expired";
  if (sec < 120) return Math.floor(sec) + "s";
  if (sec < 7200) return Math.floor(sec / 60) + "m";
  if (sec < 172800) return Math.floor(sec / 3600) + "h";
  return Math.floor(sec / 86400) + "d";
}
function ms(sec) { return sec >= 1 ? sec.toFixed(2) + " s" : (sec * 1000).toFixed(sec < 0.01 ? 2 : 1) + " ms"; }
function podName(a) {
  if (a.podName) return (a.podNamespace ? a.podNamespace + "/" : "") + a.podName;
  return a.containerId.length > 20 ? a.containerId.slice(0, 16) : a.containerId;
}
function table(head, rows, rowAttrs) {
  if (rows.length === 0) return el("div", { "class": "empty" }, ["none"]);
  var t = el("table", {}, [el("tr", {}, head.map(function (h) { return el("th", {}, [h]); }))]);
  rows.forEach(function (r, i) {
    t.appendChild(el("tr", rowAttrs ? rowAttrs(i) : {}, r.map(function (c, j) { return el("td", j > 0 ? { "class": "mono" } : {}, [String(c)]); })));
  });
  return t;
}
function replace(id, node) { var box = document.getElementById(id); box.textContent = ""; box.appendChild(node); }

/** Latency quantile from cumulative buckets (linear inside a bucket, as Prometheus does). */
function quantile(q, buckets, count) {
  if (!count) return NaN;
  var rank = q * count, prevLe = 0, prevN = 0;
  for (var i = 0; i < buckets.length; i++) {
    var le = buckets[i][0], n = buckets[i][1];
    if (n >= rank) {
      if (le === null || !isFinite(le)) return prevLe;
      return prevLe + (le - prevLe) * ((rank - prevN) / Math.max(n - prevN, 1));
    }
    prevLe = le; prevN = n;
  }
  return prevLe;
}

function chart(s) {
  var key = s.plugin + " " + s.verb;
  var h = series[key] || (series[key] = []);
  var last = h[h.length - 1];
  if (!last || last.count !== s.count) h.push({ t: Date.now(), count: s.count, sum: s.sum });
  if (h.length > HISTORY) h.shift();
  var W = 280, H = 90;
  var box = el("div", { "class": "chart", "data-series": key });
  box.appendChild(el("h3", {}, [key]));
  box.appendChild(el("div", { "class": "stats" }, [
    s.count + " calls, mean " + (s.count ? ms(s.sum / s.count) : "-") +
    ", p50 " + ms(quantile(0.5, s.buckets, s.count)) + ", p90 " + ms(quantile(0.9, s.buckets, s.count)) + ", p99 " + ms(quantile(0.99, s.buckets, s.count))]));
  // the distribution: calls per latency bucket
  var svg = svgEl("svg", { width: W, height: H + 18, viewBox: "0 0 " + W + " " + (H + 18), role: "img" });
  var per = s.buckets.map(function (b, i) { return [b[0], b[1] - (i ? s.buckets[i - 1][1] : 0)]; });
  var lo = 0, hi = per.length;
  while (lo < hi && per[lo][1] === 0) lo++;
  while (hi > lo && per[hi - 1][1] === 0) hi--;
  per = per.slice(Math.max(0, lo - 1), Math.min(per.length, hi + 1));
  var max = Math.max.apply(null, per.map(function (p) { return p[1]; }).concat([1]));
  var bw = W / Math.max(per.length, 1);
  per.forEach(function (p, i) {
    var bh = (p[1] / max) * H;
    svg.appendChild(svgEl("rect", { x: i * bw + 1, y: H - bh, width: Math.max(bw - 2, 1), height: bh, fill: "#0284c7" }));
    var lbl = svgEl("text", { x: i * bw + bw / 2, y: H + 12, "font-size": "9", "text-anchor": "middle", fill: "#6b7280" });
    lbl.textContent = p[0] === null || !isFinite(p[0]) ? "inf" : "<" + ms(p[0]).replace(" ", "");
    svg.appendChild(lbl);
  });
  box.appendChild(svg);
  // mean latency between polls, over time
  if (h.length > 1) {
    var pts = [];
    for (var i = 1; i < h.length; i++) {
      var dc = h[i].count - h[i - 1].count;
      if (dc > 0) pts.push([h[i].t, (h[i].sum - h[i - 1].sum) / dc]);
    }
    if (pts.length > 0) {
      var line = svgEl("svg", { width: W, height: 40, viewBox: "0 0 " + W + " 40" });
      var t0 = pts[0][0], t1 = Math.max(pts[pts.length - 1][0], t0 + 1);
      var vmax = Math.max.apply(null, pts.map(function (p) { return p[1]; }));
      var d = pts.map(function (p, i) { return (i ? "L" : "M") + ((p[0] - t0) / (t1 - t0) * (W - 4) + 2).toFixed(1) + " " + (38 - p[1] / vmax * 34).toFixed(1); }).join(" ");
      line.appendChild(svgEl("path", { d: d, fill: "none", stroke: "#16a34a", "stroke-width": "1.5" }));
      pts.forEach(function (p) { line.appendChild(svgEl("circle", { cx: ((p[0] - t0) / (t1 - t0) * (W - 4) + 2).toFixed(1), cy: (38 - p[1] / vmax * 34).toFixed(1), r: "2", fill: "#16a34a" })); });
      box.appendChild(el("div", { "class": "stats" }, ["mean per interval, max " + ms(vmax)]));
      box.appendChild(line);
    }
  }
  return box;
}

function render(doc) {
  document.getElementById("host").textContent = doc.host;
  var st = document.getElementById("state");
  st.textContent = doc.daemon.ready ? "ready" : "not ready";
  st.className = "pill " + (doc.daemon.ready ? "ok" : "bad");
  document.getElementById("version").textContent = doc.daemon.version;
  document.getElementById("uptime").textContent = age(doc.daemon.uptimeSec);
  document.getElementById("inflight").textContent = doc.daemon.inFlight;
  document.getElementById("pending").textContent = doc.daemon.pendingRemovals === undefined ? "n/a" : doc.daemon.pendingRemovals;
  document.getElementById("npods").textContent = doc.attachments.length;
  document.getElementById("nnodes").textContent = doc.nodes ? doc.nodes.length : "no etcd";
  document.getElementById("updated").textContent = new Date(doc.generatedMs).toLocaleTimeString();
  document.getElementById("error").textContent = doc.nodesError ? "etcd: " + doc.nodesError : "";

  var nodes = doc.nodes || [];
  // this node's BGP sessions with peers that are not nodes (route reflectors, external peers) follow the nodes
  var peers = doc.bgpPeers || [];
  replace("nodes", doc.nodes === null ? el("div", { "class": "empty" }, ["this agent runs without etcd: no cluster"]) :
    table(["name", "subnet", "public IP", "backend", "VTEP MAC", "lease left", "BGP"], nodes.map(function (n) {
      return [n.name + (n.self ? " (this node)" : ""), [n.subnet, n.subnet6].filter(Boolean).join(" "), [n.publicIP, n.publicIPv6].filter(Boolean).join(" "),
        n.backend + (n.datapath ? "/" + n.datapath : ""), [n.vtepMAC, n.vtepMAC6].filter(Boolean).join(" ") || "-", n.leaseTtlSec === undefined ? "-" : age(n.leaseTtlSec), n.bgp || "-"];
    }).concat(peers.map(function (p) {
      return [p.peerIP + (p.kind === "rr" ? " (route reflector)" : " (BGP peer)"), "-", p.peerIP, "bgp", "-", "-", p.state];
    })), function (i) { return i < nodes.length ? { "class": nodes[i].self ? "self" : "", "data-node": nodes[i].name } : { "data-bgp-peer": peers[i - nodes.length].peerIP }; }));

  var now = doc.generatedMs;
  replace("attachments", table(["pod", "network", "container", "netns", "ifname", "addresses", "MAC", "plugins", "age"], doc.attachments.map(function (a) {
    return [podName(a), a.network, a.containerId.slice(0, 16), a.netns || "-", a.ifName, a.addresses.join(" ") || "-", a.mac || "-", a.plugins.join(" > "), a.createdMs ? age((now - a.createdMs) / 1000) : "?"];
  }), function (i) { return { "data-pod": podName(doc.attachments[i]) }; }));

  var charts = el("div", { "class": "charts" });
  doc.latency.forEach(function (s) { charts.appendChild(chart(s)); });
  if (doc.latency.length === 0) charts.appendChild(el("div", { "class": "empty" }, ["no CNI call served by this daemon yet"]));
  replace("charts", charts);

  var names = Object.keys(doc.counters).sort();
  replace("counters", table(["metric", "value"], names.map(function (k) { return [k, doc.counters[k]]; })));

  var podKey = function (a) { return [a.containerId, a.ifName, a.addresses, a.podName]; };
  var key = JSON.stringify([nodes.map(function (n) { return [n.key, n.publicIP, n.self, n.bgp, (n.attachments || []).map(podKey)]; }), doc.attachments.map(podKey)]);
  if (key !== graphKey) {
    graphKey = key;
    fetch("/ui/graph.svg?t=" + Date.now()).then(function (r) { return r.text().then(function (t) { return [r.ok, t]; }); }).then(function (x) {
      var box = document.getElementById("graph");
      if (x[0]) box.innerHTML = x[1].replace(/^[\\s\\S]*?(<svg)/, "$1");
      else { box.textContent = ""; box.appendChild(el("span", { "class": "err" }, [x[1]])); }
    }).catch(function () { graphKey = null; });
  }
}

function poll() {
  fetch("/api/status", { cache: "no-store" }).then(function (r) { return r.json(); }).then(function (doc) {
    render(doc);
  }).catch(function (e) {
    var st = document.getElementById("state");
    st.textContent = "agent unreachable"; st.className = "pill bad";
    document.getElementById("error").textContent = String(e);
  }).then(function () { setTimeout(poll, 2000); });
}
poll();
})();
</script>
</body>
</html>
`;
