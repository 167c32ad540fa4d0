// The cache dashboard: polls /internal/cache-stats (the numbers) and
// /internal/cache-stats/history (the charts) with the operator token from sessionStorage.
// The token only ever travels in the Authorization header.
"use strict";

(function () {
  const TOKEN_KEY = "gwd-operator-token";
  const POLL_MS = 3000;
  const COLORS = ["#2b6cb0", "#c05621", "#2f855a", "#9b2c2c", "#6b46c1", "#b7791f", "#319795"];
  const $ = (selector) => document.querySelector(selector);
  const metric = (name) => document.querySelector(`[data-metric="${name}"]`);

  let timer = null;
  const charts = {};

  function token() {
    return sessionStorage.getItem(TOKEN_KEY);
  }

  function showError(message) {
    const box = $("#error");
    box.textContent = message;
    box.hidden = !message;
  }

  async function fetchJson(path) {
    const headers = { Accept: "application/json" };
    const t = token();
    if (t) headers.Authorization = `Bearer ${t}`;
    const response = await fetch(path, { headers, cache: "no-store", credentials: "omit" });
    if (!response.ok) {
      const error = new Error(`${path}: HTTP ${response.status}`);
      error.status = response.status;
      throw error;
    }
    const body = await response.json();
    return body.data;
  }

  function stop() {
    if (timer) clearTimeout(timer);
    timer = null;
  }

  function askForToken(message) {
    stop();
    $("#data").hidden = true;
    // A refused token shows nothing of what an earlier one loaded.
    for (const el of document.querySelectorAll("[data-metric]")) {
      el.textContent = "–";
      delete el.dataset.value;
    }
    $("#sign-out").hidden = true;
    $("#login").hidden = false;
    showError(message || "");
    $("#token").focus();
  }

  const integer = (n) => (n ?? 0).toLocaleString("en-US");
  const percent = (r) => (r === null || r === undefined ? "–" : `${(r * 100).toFixed(1)}%`);

  function renderStats(stats) {
    const misses = Math.max(0, stats.l1.misses - stats.l2.hits);
    metric("hit-ratio").textContent = percent(stats.hitRatio);
    metric("hit-ratio").dataset.value = String(stats.hitRatio);
    metric("l1-hits").textContent = integer(stats.l1.hits);
    metric("l1-hits").dataset.value = String(stats.l1.hits);
    metric("l2-hits").textContent = integer(stats.l2.hits);
    metric("l2-hits").dataset.value = String(stats.l2.hits);
    metric("misses").textContent = integer(misses);
    metric("misses").dataset.value = String(misses);
    metric("l1-entries").textContent = `${integer(stats.l1.entries)} / ${integer(stats.l1.capacity)}`;
    metric("loads").textContent = integer(stats.loads);
    metric("coalesced").textContent = integer(stats.coalesced);
    metric("stale-served").textContent = integer(stats.staleServed);
    metric("l2-errors").textContent = `${integer(stats.l2.errors)} / ${integer(stats.l2.timeouts)}`;

    const breaker = stats.l2.breaker.replace("_", "-");
    const inMemory = stats.type === "in-memory";
    const state = metric("breaker");
    state.textContent = inMemory ? `${breaker} · in-memory` : breaker;
    state.dataset.breaker = stats.l2.breaker;
    state.dataset.cacheType = stats.type;
    const card = state.closest(".card");
    card.dataset.state = breaker === "closed" && !inMemory ? "ok" : breaker === "half-open" ? "warn" : "bad";
    $("#breaker-note").textContent = inMemory
      ? "in-memory mode: answering from L1 and Postgres"
      : "circuit breaker closed: Redis in use";
  }

  function series(history) {
    const points = history.points.slice();
    if (history.current && history.current.seconds > 0) points.push(history.current);
    return points;
  }

  const clock = (u, splits) =>
    splits.map((v) => new Date(v * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" }));

  function chartSize(el) {
    const width = Math.max(200, Math.floor(el.getBoundingClientRect().width));
    return { width, height: width < 500 ? 180 : 220 };
  }

  function draw(name, labels, data, opts) {
    const el = document.querySelector(`[data-chart="${name}"]`);
    const seriesOpts = [{}].concat(
      labels.map((label, n) => ({ label, stroke: COLORS[n % COLORS.length], width: 2, spanGaps: false, points: { size: 4 } })),
    );
    let chart = charts[name];
    if (!chart || chart.series.length !== seriesOpts.length) {
      if (chart) chart.destroy();
      el.textContent = "";
      // At least the last five minutes on the time axis: a young instance has one or two
      // points, which uPlot would otherwise spread over years.
      const x = { time: true, auto: false };
      const scales = Object.assign({ x }, opts.scales || {});
      chart = new uPlot(
        Object.assign({}, opts, { ...chartSize(el), series: seriesOpts, legend: { live: false }, scales, axes: [{ values: clock, space: 60 }, {}] }),
        data,
        el,
      );
      charts[name] = chart;
    } else {
      chart.setData(data, false);
    }
    const xs = data[0];
    if (xs.length) {
      const last = xs[xs.length - 1];
      chart.setScale("x", { min: Math.min(xs[0], last - 300), max: last });
    }
    // Hooks for tests and curious operators: how many values are plotted and their sum.
    let count = 0;
    let sum = 0;
    for (const ys of data.slice(1)) {
      for (const y of ys) {
        if (y !== null && y !== undefined) {
          count += 1;
          sum += y;
        }
      }
    }
    el.dataset.values = String(count);
    el.dataset.sum = String(Math.round(sum * 1000) / 1000);
  }

  function renderHistory(history) {
    $("#instance").textContent = history.instanceId;
    const points = series(history);
    const xs = points.map((p) => p.at / 1000);
    const resources = points.length ? points[0].resources.map((r) => r.resource) : [];

    const ratio = resources.map((name) =>
      points.map((p) => {
        const row = p.resources.find((r) => r.resource === name);
        return row && row.hitRatio !== null ? row.hitRatio * 100 : null;
      }),
    );
    draw("hit-ratio", resources, [xs, ...ratio], { scales: { y: { range: [0, 100] } } });

    const perSecond = (field) => points.map((p) => (p.seconds > 0 ? p[field] / p.seconds : null));
    draw("lookups", ["L1 hits/s", "L2 hits/s", "misses/s"], [xs, perSecond("l1Hits"), perSecond("l2Hits"), perSecond("misses")], {});
    // Lookups in the plotted hour: only grows with traffic (rates go up and down).
    document.querySelector('[data-chart="lookups"]').dataset.total = String(
      points.reduce((sum, p) => sum + p.l1Hits + p.l2Hits + p.misses, 0),
    );

    draw("l2-latency", ["p50", "p99"], [xs, points.map((p) => p.l2LatencyP50Ms), points.map((p) => p.l2LatencyP99Ms)], {});

    const inv = (field) => points.map((p) => p.invalidations[field]);
    draw("invalidations", ["sent", "acknowledged", "ack timeouts", "unconfirmed"], [xs, inv("sent"), inv("acknowledged"), inv("ackTimeouts"), inv("unconfirmed")], {});

    const totals = {};
    let sent = 0;
    let acked = 0;
    let expected = 0;
    let timeouts = 0;
    for (const p of points) {
      sent += p.invalidations.sent;
      acked += p.invalidations.acknowledged;
      expected += p.invalidations.receivers;
      timeouts += p.invalidations.ackTimeouts;
      for (const r of p.resources) {
        const t = (totals[r.resource] = totals[r.resource] || { l1: 0, l2: 0, l1Misses: 0 });
        t.l1 += r.l1Hits;
        t.l2 += r.l2Hits;
        t.l1Misses += r.l1Misses;
      }
    }
    metric("invalidations").textContent = `${integer(sent)} sent · ${integer(acked)}/${integer(expected)} acked · ${integer(timeouts)} timed out`;

    const body = $("#resources");
    body.textContent = "";
    for (const name of resources) {
      const t = totals[name];
      const lookups = t.l1 + t.l1Misses;
      const row = document.createElement("tr");
      for (const cell of [name, integer(t.l1), integer(t.l2), integer(Math.max(0, t.l1Misses - t.l2)), lookups ? percent((t.l1 + t.l2) / lookups) : "–"]) {
        const td = document.createElement("td");
        td.textContent = cell;
        row.appendChild(td);
      }
      body.appendChild(row);
    }
  }

  async function poll() {
    timer = null;
    try {
      const [stats, history] = await Promise.all([
        fetchJson("/internal/cache-stats"),
        fetchJson("/internal/cache-stats/history"),
      ]);
      $("#login").hidden = true;
      $("#data").hidden = false;
      $("#sign-out").hidden = !token();
      showError("");
      renderStats(stats);
      renderHistory(history);
      const updated = $("#updated");
      updated.textContent = `updated ${new Date().toLocaleTimeString()}`;
      updated.dataset.polls = String(Number(updated.dataset.polls || 0) + 1);
    } catch (error) {
      if (error.status === 401) {
        const had = token();
        sessionStorage.removeItem(TOKEN_KEY);
        return askForToken(had ? "The token was refused. Enter the operator token." : "");
      }
      if (error.status === 404) {
        stop();
        $("#data").hidden = true;
        return showError("The operator routes are off on this instance (production without INTERNAL_API_TOKEN).");
      }
      showError(`Could not load the numbers (${error.message}); retrying.`);
    }
    timer = setTimeout(poll, POLL_MS);
  }

  function start() {
    $("#login").addEventListener("submit", (event) => {
      event.preventDefault();
      const value = $("#token").value.trim();
      if (!value) return;
      sessionStorage.setItem(TOKEN_KEY, value);
      $("#token").value = "";
      stop();
      poll();
    });
    $("#sign-out").addEventListener("click", () => {
      sessionStorage.removeItem(TOKEN_KEY);
      askForToken("");
    });
    // Charts follow their container (window resizes, phone rotation, the grid reflowing).
    const resized = new ResizeObserver((entries) => {
      for (const entry of entries) {
        const chart = charts[entry.target.dataset.chart];
        if (!chart) continue;
        const size = chartSize(entry.target);
        if (size.width !== chart.width || size.height !== chart.height) chart.setSize(size);
      }
    });
    for (const el of document.querySelectorAll("[data-chart]")) resized.observe(el);
    // Without a stored token, the first poll finds out whether one is needed at all
    // (development without INTERNAL_API_TOKEN opens directly).
    poll();
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
