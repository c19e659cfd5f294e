// Pocket dashboard: draws the live cluster from the server's Server-Sent Events feed (/api/live).
// Plain JavaScript, no build step and nothing from elsewhere. Every value from the cluster (job
// names come from drivers) is set as text, never as markup.
"use strict";

(() => {
  const SVG_NS = "http://www.w3.org/2000/svg";
  const TIERS = ["dram", "nvme", "disk"];
  const NODE_STATES = ["provisioning", "active", "draining", "failed"];
  const SERIES = [
    { key: "cpu", label: "CPU" },
    { key: "network", label: "Network" },
    { key: "capacity", label: "Capacity" },
    { key: "reserved", label: "Reserved" },
  ];
  const TIMELINE_KINDS = new Set([
    "node.launch", "node.launch-failed", "node.active", "node.draining", "node.migrate", "node.removed", "node.failed", "scale.out", "scale.in",
  ]);
  const MARKS = {
    "node.launch": { glyph: "▲", cls: "mark-launch" },
    "node.launch-failed": { glyph: "✕", cls: "mark-failed" },
    "node.active": { glyph: "●", cls: "mark-active" },
    "node.draining": { glyph: "▼", cls: "mark-draining" },
    "node.migrate": { glyph: "▼", cls: "mark-draining" },
    "node.removed": { glyph: "✕", cls: "mark-removed" },
    "node.failed": { glyph: "✕", cls: "mark-failed" },
  };
  /** The shortest time span the charts show, so that a fresh dashboard does not stretch a few seconds across the page. */
  const MIN_SPAN_MS = 60_000;
  const RETRY_MS = 5_000;

  /** What the page shows: the latest state and bounded copies of the history, the feed and the timeline. */
  const view = {
    state: null,
    history: [],
    events: [],
    timeline: [],
    limits: { snapshotIntervalMs: 1000, historyMax: 600, eventsMax: 200, timelineMax: 200 },
    /** JSON of what the node table and the job cards last showed: redrawn only when it changes. */
    drawn: { nodes: "", jobs: "" },
  };

  // ------------------------------------------------------------ DOM helpers

  function append(node, children) {
    for (const c of children) {
      if (c === null || c === undefined || c === false) continue;
      node.append(typeof c === "string" || typeof c === "number" ? document.createTextNode(String(c)) : c);
    }
    return node;
  }

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
    return append(node, children);
  }

  function svg(tag, attrs, ...children) {
    const node = document.createElementNS(SVG_NS, tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
    return append(node, children);
  }

  function byId(id) {
    return document.getElementById(id);
  }

  // ------------------------------------------------------------ formatting

  function bytes(n) {
    const units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let v = Number(n) || 0;
    let i = 0;
    while (v >= 1024 && i < units.length - 1) {
      v /= 1024;
      i++;
    }
    return `${i === 0 || v >= 10 ? v.toFixed(0) : v.toFixed(1)} ${units[i]}`;
  }

  function pct(x) {
    const v = (Number(x) || 0) * 100;
    return `${v > 0 && v < 10 ? v.toFixed(1) : v.toFixed(0)}%`;
  }

  function clockTime(ms) {
    return new Date(ms).toTimeString().slice(0, 8);
  }

  function seconds(ms) {
    return `${(ms / 1000).toFixed(ms % 1000 === 0 ? 0 : 1)} s`;
  }

  function timeEl(ms) {
    return el("time", { datetime: new Date(ms).toISOString() }, clockTime(ms));
  }

  function reservedOf(m) {
    return Math.max(m.reservedCapacity, m.reservedThroughput);
  }

  function kindClass(kind) {
    if (kind.startsWith("node.")) return "kind-node";
    if (kind.startsWith("job.")) return "kind-job";
    return "kind-scale";
  }

  /** One line about an event, from the fields decisions carry. */
  function describe(ev) {
    const parts = [];
    if (ev.nodeId !== undefined) parts.push(`node ${ev.nodeId}`);
    if (ev.jobId !== undefined) parts.push(`job ${ev.jobId}${ev.name !== undefined ? ` (${ev.name})` : ""}`);
    if (ev.tier !== undefined) parts.push(`on ${ev.tier}`);
    if (Array.isArray(ev.weights)) {
      parts.push(`weights ${ev.weights.map((w) => `${w.nodeId} ${Number(w.weight).toFixed(2)}`).join(", ") || "none"}`);
    }
    if (typeof ev.launch === "number") parts.push(`launching ${ev.launch}`);
    const why = [ev.reason, ev.message].filter((x) => x !== undefined).map(String).join("; ");
    return why ? `${parts.join(" ")}: ${why}` : parts.join(" ");
  }

  // ------------------------------------------------------------ header

  function renderStatus(st) {
    if (st.controller.ok) {
      setConnection("live", "Live");
      byId("updated").textContent = ` · updated ${clockTime(st.atMs)}`;
    } else {
      setConnection("error", `The controller has not answered since ${clockTime(st.controller.sinceMs)} ` +
        `(${st.controller.code}: ${st.controller.message}); showing what it said last.`);
      byId("updated").textContent = "";
    }
  }

  /** The connection's state, in a live region: changed only when the state does, so that it is not read out every second. */
  function setConnection(state, text) {
    const s = byId("status");
    s.dataset.state = state;
    if (s.textContent !== text) s.textContent = text;
  }

  function renderSummary(st) {
    const sc = st.scaling;
    const items = [
      ["Active nodes", st.nodes.filter((n) => n.state === "active").length],
      ["Nodes", st.nodes.length],
      ["Jobs", st.jobs.length],
      ["Shards", st.shards.filter((s) => s.state === "active").length],
      ["Band", sc ? `${pct(sc.bandLow)}–${pct(sc.bandHigh)}` : "–"],
    ];
    byId("summary").replaceChildren(...items.map(([k, v]) => el("div", {}, el("dt", {}, k), el("dd", {}, String(v)))));
  }

  // ------------------------------------------------------------ nodes

  /** Tiers that have nodes or may have some (a maximum above 0), in a fixed order. */
  function tiersShown(st) {
    const set = new Set(st.nodes.map((n) => n.tier));
    for (const t of (st.scaling && st.scaling.tiers) || []) if (t.maxNodes > 0 || t.measurements.nodes > 0) set.add(t.tier);
    return TIERS.filter((t) => set.has(t)).concat([...set].filter((t) => !TIERS.includes(t)).sort());
  }

  function renderTierCounts(st) {
    const table = byId("tier-counts");
    table.tHead.replaceChildren(el("tr", {},
      el("th", { scope: "col" }, "Tier"),
      ...NODE_STATES.map((s) => el("th", { scope: "col", class: "num" }, s)),
      el("th", { scope: "col", class: "num" }, "total")));
    table.tBodies[0].replaceChildren(...tiersShown(st).map((tier) => {
      const of = st.nodes.filter((n) => n.tier === tier);
      return el("tr", { "data-tier": tier },
        el("th", { scope: "row", class: `tier-${tier}` }, tier),
        ...NODE_STATES.map((s) => el("td", { class: "num", "data-state": s }, of.filter((n) => n.state === s).length)),
        el("td", { class: "num", "data-state": "total" }, of.length));
    }));
  }

  function num(text) {
    return el("td", { class: "num" }, text);
  }

  function nodeRow(n, names) {
    const u = n.utilisation;
    const weights = n.jobWeights.map((w) => `${names.get(w.jobId) || w.jobId} ${Number(w.weight).toFixed(2)}`).join(", ");
    return el("tr", { "data-node-id": n.nodeId, "data-tier": n.tier, "data-state": n.state },
      el("th", { scope: "row" }, el("code", { class: "node-id" }, n.nodeId),
        n.launched ? el("span", { title: "launched by the controller" }, "*") : null),
      el("td", { class: `tier tier-${n.tier}` }, n.tier),
      el("td", {}, el("span", { class: `state state-${n.state}` }, n.state)),
      el("td", {}, el("code", {}, n.addr || "–")),
      num(bytes(n.usedBytes)), num(bytes(n.capacityBytes)),
      num(pct(u.cpu)), num(pct(u.network)), num(pct(u.capacity)), num(bytes(n.reservedBytes)),
      el("td", {}, weights || "–"));
  }

  function renderNodes(st) {
    const names = new Map(st.jobs.map((j) => [j.jobId, j.name]));
    const key = JSON.stringify([st.nodes, [...names]]);
    if (key === view.drawn.nodes) return;
    view.drawn.nodes = key;
    byId("node-table").tBodies[0].replaceChildren(...st.nodes.map((n) => nodeRow(n, names)));
  }

  // ------------------------------------------------------------ jobs

  function bar(weight) {
    const fill = el("span", {});
    fill.style.width = `${Math.max(0, Math.min(1, Number(weight) || 0)) * 100}%`;
    return el("div", { class: "bar" }, fill);
  }

  function weightTable(j) {
    const rows = [...j.weights].sort((a, b) => b.weight - a.weight || (a.nodeId < b.nodeId ? -1 : 1));
    if (rows.length === 0) return el("p", {}, "No node weights yet.");
    return el("table", { class: "weights" },
      el("caption", { class: "visually-hidden" }, `Weight map of job ${j.jobId}`),
      el("thead", {}, el("tr", {},
        el("th", { scope: "col" }, "Node"), el("th", { scope: "col", class: "num" }, "Weight"), el("th", { scope: "col" }, "Share"))),
      el("tbody", {}, ...rows.map((w) => el("tr", { "data-node-id": w.nodeId, "data-weight": String(w.weight) },
        el("td", {}, el("code", {}, w.nodeId)),
        el("td", { class: "num weight" }, Number(w.weight).toFixed(3)),
        el("td", { class: "bar-cell", "aria-hidden": "true" }, bar(w.weight))))));
  }

  function jobCard(j) {
    const headingId = `job-${j.jobId}`;
    return el("article", { class: "job", "data-job-id": j.jobId, "aria-labelledby": headingId },
      el("h3", { id: headingId }, j.name, " ", el("code", { class: "job-id" }, j.jobId)),
      el("p", {}, el("span", { class: `tier-${j.tier}` }, j.tier), " · ", el("span", { class: `state state-${j.state}` }, j.state),
        ` · shard ${j.shardId} · since `, timeEl(j.registeredAtMs)),
      weightTable(j));
  }

  function renderJobs(st) {
    const key = JSON.stringify(st.jobs);
    if (key === view.drawn.jobs) return;
    view.drawn.jobs = key;
    byId("no-jobs").hidden = st.jobs.length > 0;
    byId("job-list").replaceChildren(...st.jobs.map(jobCard));
  }

  // ------------------------------------------------------------ charts

  /** The time span both charts show: the history kept (and the timeline's decisions), at least a minute. */
  function timeWindow() {
    const last = view.history.length > 0 ? view.history[view.history.length - 1].atMs : Date.now();
    const lastEvent = view.timeline.length > 0 ? Number(view.timeline[view.timeline.length - 1].event.atMs) || 0 : 0;
    const t1 = Math.max(last, lastEvent);
    const keptMs = view.limits.historyMax * view.limits.snapshotIntervalMs;
    let t0 = view.history.length > 0 ? view.history[0].atMs : t1;
    for (const e of view.timeline) t0 = Math.min(t0, Number(e.event.atMs) || t0);
    t0 = Math.max(t0, t1 - keptMs);
    return { t0: Math.min(t0, t1 - MIN_SPAN_MS), t1 };
  }

  /** A plot area of `w`×`h` (viewBox units) with margins, mapping time and value to coordinates. */
  function frame(w, h, win, yMax) {
    const m = { left: 44, right: 14, top: 12, bottom: 26 };
    const pw = w - m.left - m.right;
    const ph = h - m.top - m.bottom;
    return {
      w, h, m, pw, ph,
      x: (t) => m.left + ((t - win.t0) / Math.max(1, win.t1 - win.t0)) * pw,
      y: (v) => m.top + (1 - Math.max(0, Math.min(yMax, v)) / yMax) * ph,
    };
  }

  function timeAxis(f, win) {
    const y = f.m.top + f.ph;
    const mid = (win.t0 + win.t1) / 2;
    return [
      svg("line", { class: "axis", x1: f.m.left, x2: f.m.left + f.pw, y1: y, y2: y }),
      svg("text", { x: f.m.left, y: y + 16 }, clockTime(win.t0)),
      svg("text", { x: f.x(mid), y: y + 16, "text-anchor": "middle" }, clockTime(mid)),
      svg("text", { x: f.m.left + f.pw, y: y + 16, "text-anchor": "end" }, clockTime(win.t1)),
    ];
  }

  /** An SVG path through the points; a missing value (null) breaks the line. */
  function pathOf(points) {
    let d = "";
    let pen = false;
    for (const p of points) {
      if (p === null) {
        pen = false;
        continue;
      }
      d += `${pen ? "L" : "M"}${p[0].toFixed(1)},${p[1].toFixed(1)}`;
      pen = true;
    }
    return d;
  }

  function bandElements(f, sc) {
    const yHigh = f.y(sc.bandHigh);
    const yLow = f.y(sc.bandLow);
    const x2 = f.m.left + f.pw;
    return [
      svg("rect", { class: "band", x: f.m.left, y: yHigh, width: f.pw, height: yLow - yHigh }),
      svg("line", { class: "band-line", "data-band": "high", "data-value": sc.bandHigh, x1: f.m.left, x2, y1: yHigh, y2: yHigh }),
      svg("line", { class: "band-line", "data-band": "low", "data-value": sc.bandLow, x1: f.m.left, x2, y1: yLow, y2: yLow }),
      svg("text", { class: "band-label", x: x2 - 4, y: yHigh - 4, "text-anchor": "end" }, `upper ${pct(sc.bandHigh)}`),
      svg("text", { class: "band-label", x: x2 - 4, y: yLow + 13, "text-anchor": "end" }, `lower ${pct(sc.bandLow)}`),
    ];
  }

  function percentGrid(f) {
    return [0, 0.25, 0.5, 0.75, 1].flatMap((v) => [
      svg("line", { class: "grid", x1: f.m.left, x2: f.m.left + f.pw, y1: f.y(v), y2: f.y(v) }),
      svg("text", { x: f.m.left - 6, y: f.y(v) + 4, "text-anchor": "end" }, `${v * 100}%`),
    ]);
  }

  function seriesPath(f, tier, key) {
    const points = view.history.map((s) => {
      const m = s.tiers[tier];
      if (!m || m.nodes === 0) return null;
      return [f.x(s.atMs), f.y(key === "reserved" ? reservedOf(m) : m[key])];
    });
    return svg("path", { class: `series series-${key}`, "data-series": key, d: pathOf(points) });
  }

  function utilChart(tier, sc, win, width) {
    const f = frame(width, 220, win, 1);
    const title = `Utilisation of the ${tier} tier from ${clockTime(win.t0)} to ${clockTime(win.t1)} against the band ${pct(sc.bandLow)} to ${pct(sc.bandHigh)}`;
    return svg("svg", { class: "plot util-chart", viewBox: `0 0 ${f.w} ${f.h}`, role: "img", "aria-label": title, "data-tier": tier },
      svg("title", {}, title),
      ...percentGrid(f),
      ...bandElements(f, sc),
      ...SERIES.map((s) => seriesPath(f, tier, s.key)),
      ...timeAxis(f, win));
  }

  function seriesLegend() {
    return el("ul", { class: "legend" },
      ...SERIES.map((s) => el("li", {}, el("span", { class: `swatch swatch-${s.key}`, "aria-hidden": "true" }), s.label)),
      el("li", {}, el("span", { class: "swatch swatch-band", "aria-hidden": "true" }), "target band"));
  }

  /** A chart's width in pixels: its holder's, once laid out (one viewBox unit per pixel keeps text at its size). */
  function widthOf(holder) {
    return Math.max(280, Math.floor(holder.clientWidth || 720));
  }

  function utilFigure(t, sc) {
    const m = t.measurements;
    const caption = `${t.tier}: ${m.nodes} active node${m.nodes === 1 ? "" : "s"} (minimum ${t.minNodes}, maximum ${t.maxNodes})`;
    const now = `Now: CPU ${pct(m.cpu)}, network ${pct(m.network)}, capacity ${pct(m.capacity)}, reserved ${pct(reservedOf(m))} ` +
      `(throughput ${pct(m.reservedThroughput)}, capacity ${pct(m.reservedCapacity)}).`;
    return el("figure", { "data-tier": t.tier },
      el("figcaption", {}, caption), el("div", { class: "chart" }), el("p", { class: "note current" }, now), seriesLegend());
  }

  function renderUtilisation(st, win) {
    const sc = st.scaling;
    const box = byId("util-charts");
    if (!sc) {
      byId("band-text").textContent = "The controller has not said its band yet.";
      box.replaceChildren();
      return;
    }
    byId("band-text").textContent =
      `Target band ${pct(sc.bandLow)}–${pct(sc.bandHigh)}. A tier whose CPU, network or capacity use stays above ${pct(sc.bandHigh)} for ` +
      `${seconds(sc.sustainMs)} gets more nodes; one under ${pct(sc.bandLow)} in every dimension (reservations too) for ${seconds(sc.sustainMs)} ` +
      `drains one; at most one change per ${seconds(sc.cooldownMs)}. Use is averaged over ${seconds(sc.windowMs)}.` +
      (sc.scaling ? "" : " Autoscaling is off: the controller keeps only each tier's minimum.");
    const tiers = sc.tiers.filter((t) => t.maxNodes > 0 || t.measurements.nodes > 0);
    const figures = tiers.map((t) => utilFigure(t, sc));
    box.replaceChildren(...figures);
    // Drawn once the figures are laid out, at the width they got.
    figures.forEach((figure, i) => {
      const holder = figure.querySelector(".chart");
      holder.replaceChildren(utilChart(tiers[i].tier, sc, win, widthOf(holder)));
    });
  }

  // ------------------------------------------------------------ scaling timeline

  function nodeCountPaths(f, tiers) {
    return tiers.map((tier) => {
      let d = "";
      let prev = null;
      for (const s of view.history) {
        const m = s.tiers[tier];
        const n = m ? m.nodes : 0;
        const x = f.x(s.atMs).toFixed(1);
        d += prev === null ? `M${x},${f.y(n).toFixed(1)}` : `H${x}V${f.y(n).toFixed(1)}`;
        prev = n;
      }
      return svg("path", { class: `nodes-line tier-${tier}`, "data-tier": tier, d });
    });
  }

  function timelineMark(f, fe) {
    const ev = fe.event;
    const at = Number(ev.atMs) || 0;
    const label = `${clockTime(at)} ${ev.kind}: ${describe(ev)}`;
    if (ev.kind === "scale.out" || ev.kind === "scale.in") {
      return svg("line", { class: "scale-line", "data-kind": ev.kind, x1: f.x(at), x2: f.x(at), y1: f.m.top, y2: f.m.top + f.ph },
        svg("title", {}, label));
    }
    const mark = MARKS[ev.kind] || MARKS["node.active"];
    const lane = ev.kind === "node.launch" || ev.kind === "node.launch-failed" ? 0 : ev.kind === "node.active" ? 1 : 2;
    return svg("text", {
      class: `mark ${mark.cls}`, "data-kind": ev.kind, "data-node-id": ev.nodeId === undefined ? "" : String(ev.nodeId),
      x: f.x(at), y: f.m.top + 12 + lane * 14, "text-anchor": "middle",
    }, mark.glyph, svg("title", {}, label));
  }

  function renderTimelineChart(st, win) {
    const tiers = tiersShown(st);
    let yMax = 2;
    for (const s of view.history) for (const t of tiers) if (s.tiers[t]) yMax = Math.max(yMax, s.tiers[t].nodes);
    for (const t of (st.scaling && st.scaling.tiers) || []) if (tiers.includes(t.tier)) yMax = Math.max(yMax, t.maxNodes);
    const holder = byId("timeline-chart");
    const f = frame(widthOf(holder), 180, win, yMax);
    const ticks = [...new Set([0, Math.round(yMax / 2), yMax])];
    const inView = view.timeline.filter((e) => Number(e.event.atMs) >= win.t0);
    const title = `Active nodes per tier and the node launches, activations, drains and removals from ${clockTime(win.t0)} to ${clockTime(win.t1)}`;
    holder.replaceChildren(svg("svg", { class: "plot", viewBox: `0 0 ${f.w} ${f.h}`, role: "img", "aria-label": title },
      svg("title", {}, title),
      ...ticks.flatMap((v) => [
        svg("line", { class: "grid", x1: f.m.left, x2: f.m.left + f.pw, y1: f.y(v), y2: f.y(v) }),
        svg("text", { x: f.m.left - 6, y: f.y(v) + 4, "text-anchor": "end" }, String(v)),
      ]),
      ...nodeCountPaths(f, tiers),
      ...inView.map((e) => timelineMark(f, e)),
      ...timeAxis(f, win)));
  }

  function logEntry(fe) {
    const ev = fe.event;
    const kind = String(ev.kind);
    return el("li", { "data-seq": fe.seq, "data-kind": kind },
      timeEl(Number(ev.atMs) || 0), el("span", { class: `kind ${kindClass(kind)}` }, kind), describe(ev));
  }

  function renderTimelineList() {
    byId("no-timeline").hidden = view.timeline.length > 0;
    byId("timeline-list").replaceChildren(...[...view.timeline].reverse().map(logEntry));
  }

  // ------------------------------------------------------------ event feed

  function trimList(list, max) {
    while (list.children.length > max) list.lastElementChild.remove();
  }

  function renderFeed() {
    byId("event-feed").replaceChildren(...[...view.events].reverse().map(logEntry));
  }

  function onEvent(fe) {
    view.events.push(fe);
    if (view.events.length > view.limits.eventsMax) view.events.splice(0, view.events.length - view.limits.eventsMax);
    const feed = byId("event-feed");
    feed.prepend(logEntry(fe));
    trimList(feed, view.limits.eventsMax);
    if (!TIMELINE_KINDS.has(String(fe.event.kind))) return;
    view.timeline.push(fe);
    if (view.timeline.length > view.limits.timelineMax) view.timeline.splice(0, view.timeline.length - view.limits.timelineMax);
    renderTimelineList();
    if (view.state) renderTimelineChart(view.state, timeWindow());
  }

  /** The server dropped events this page was too slow to take: say so in the feed. */
  function onDropped(d) {
    const feed = byId("event-feed");
    feed.prepend(el("li", { class: "dropped" }, `${d.count} event${d.count === 1 ? "" : "s"} dropped here: this page fell behind the feed (${d.total} in all).`));
    trimList(feed, view.limits.eventsMax);
  }

  // ------------------------------------------------------------ wiring

  function renderState() {
    const st = view.state;
    const win = timeWindow();
    renderStatus(st);
    renderSummary(st);
    renderTierCounts(st);
    renderNodes(st);
    renderJobs(st);
    renderUtilisation(st, win);
    renderTimelineChart(st, win);
  }

  function onInit(full) {
    view.limits = full.limits;
    view.history = full.history.slice(-full.limits.historyMax);
    view.events = full.events.slice(-full.limits.eventsMax);
    view.timeline = full.timeline.slice(-full.limits.timelineMax);
    view.state = full;
    view.drawn = { nodes: "", jobs: "" };
    renderFeed();
    renderTimelineList();
    renderState();
  }

  function onSnapshot(st) {
    if (!view.state) return;
    view.state = st;
    if (st.sample) {
      view.history.push(st.sample);
      if (view.history.length > view.limits.historyMax) view.history.splice(0, view.history.length - view.limits.historyMax);
    }
    renderState();
  }

  function listen(source, name, handle) {
    source.addEventListener(name, (m) => handle(JSON.parse(m.data)));
  }

  function connect() {
    const source = new EventSource("/api/live");
    listen(source, "init", onInit);
    listen(source, "snapshot", onSnapshot);
    listen(source, "event", onEvent);
    listen(source, "dropped", onDropped);
    source.addEventListener("error", () => {
      if (source.readyState === EventSource.CLOSED) {
        // Refused (too many pages) or gone: try again in a while.
        setConnection("error", `Not connected to the dashboard server; retrying in ${RETRY_MS / 1000} s.`);
        byId("updated").textContent = "";
        setTimeout(connect, RETRY_MS);
      } else {
        setConnection("connecting", "Reconnecting…");
        byId("updated").textContent = "";
      }
    });
  }

  connect();
})();
