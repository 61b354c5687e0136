// Live service page: poll live.json, redraw the split, the verdict and four SVG charts.
(function () {
  "use strict";
  const script = document.currentScript;
  const base = script && script.dataset.live;
  if (!base) return;
  const range = new URLSearchParams(location.search).get("range");
  const url = range ? base + "?range=" + encodeURIComponent(range) : base;
  const NS = "http://www.w3.org/2000/svg";
  const COLORS = { stable: "#2563eb", candidate: "#ea580c" };
  const esc = (s) => String(s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
  const pct = (x) => (x == null ? "—" : (x * 100).toFixed(2) + " %");
  // Rates compare as a ratio candidate/stable (1× = the same); latency as θ (½ = the tolerated slow-down).
  const ratio = (x) => (x == null ? "∞" : x.toFixed(2) + "×");
  const theta = (x) => (x == null ? "—" : "θ " + x.toFixed(3));
  const ms = (x) => (x == null ? "—" : x.toFixed(1) + " ms");
  const METRIC = {
    error_rate: { label: "error rate", value: pct, effect: ratio },
    guardrail_rate: { label: "guardrail flags", value: pct, effect: ratio },
    fallback_rate: { label: "fallbacks", value: pct, effect: ratio },
    latency: { label: "latency (p50)", value: ms, effect: theta },
    latency_tail: { label: "latency tail (share > p99)", value: pct, effect: ratio },
    ttft: { label: "time to first token (p50)", value: ms, effect: theta },
    feedback: { label: "negative feedback", value: pct, effect: ratio },
  };

  function el(tag, attrs) {
    const node = document.createElementNS(NS, tag);
    for (const k in attrs) node.setAttribute(k, attrs[k]);
    return node;
  }

  function drawSplit(split) {
    const holder = document.querySelector("#split-holder .split");
    if (!holder) return;
    holder.innerHTML = split.filter((s) => s.pct > 0).map((s) =>
      `<div class="seg ${esc(s.role)}" style="width:${s.pct.toFixed(2)}%" title="${esc(s.release)}"><span>${esc(s.release)} · ${+s.pct.toFixed(2)} %</span></div>`).join("");
  }

  function ciBar(m) {
    const top = m.ci_high == null ? Math.max(m.threshold, m.effect) * 2 : m.ci_high;
    const low = m.ci_low == null ? 0 : m.ci_low;
    m = Object.assign({}, m, { ci_low: low, ci_high: top });
    const lo = Math.min(m.ci_low, m.threshold, m.effect), hi = Math.max(m.ci_high, m.threshold, m.effect);
    const span = hi - lo || 1, x = (v) => (((v - lo) / span) * 92 + 4).toFixed(1);
    return `<svg class="ci" viewBox="0 0 100 14" preserveAspectRatio="none">` +
      `<line x1="${x(m.ci_low)}" x2="${x(m.ci_high)}" y1="7" y2="7" class="ci-range ${esc(m.outcome)}"/>` +
      `<circle cx="${x(m.effect)}" cy="7" r="2.4" class="ci-dot"/>` +
      `<line x1="${x(m.threshold)}" x2="${x(m.threshold)}" y1="1" y2="13" class="ci-tol"/></svg>`;
  }

  function drawVerdict(rollout) {
    const body = document.getElementById("verdict-body");
    if (!body || !rollout) return;
    const v = rollout.last_verdict;
    const badge = document.getElementById("verdict-outcome");
    if (!v) { badge.textContent = "no verdict yet"; return; }
    badge.textContent = v.outcome;
    badge.className = "badge outcome-" + v.outcome;
    document.getElementById("verdict-reason").textContent = v.reason;
    body.innerHTML = v.per_metric.map((m) => {
      const f = METRIC[m.metric] || { label: m.metric, value: pct, effect: ratio };
      return `<tr><td title="${esc(m.effect_label)}">${esc(f.label)}</td>` +
        `<td><span class="badge outcome-${esc(m.outcome)}">${esc(m.outcome)}</span></td>` +
        `<td>${f.value(m.stable_value)}</td><td>${f.value(m.candidate_value)}</td><td>${f.effect(m.effect)}</td>` +
        `<td class="ci-cell">${ciBar(m)}<span>[${f.effect(m.ci_low)}, ${f.effect(m.ci_high)}]</span></td>` +
        `<td title="smallest effect the data so far would expect to catch">${f.effect(m.mde)}</td>` +
        `<td>${m.n_candidate} / ${m.n_stable}</td></tr>`;
    }).join("");
  }

  function seriesFor(data, release) {
    const live = data.series.find((s) => s.release === release && s.traffic === "live");
    const shadow = data.series.find((s) => s.release === release && s.traffic === "shadow");
    return live && live.totals.requests ? live : shadow;
  }

  function drawChart(section, lines) {
    const svg = section.querySelector("svg");
    const W = 400, H = 150, L = 36, B = 22;
    svg.innerHTML = "";
    const all = lines.flatMap((l) => l.points.map((p) => p.y)).filter((y) => y != null);
    // The axis from the data with a small floor (0.1 % for rates, 1 ms for latency), in a nice
    // step (1, 2, 5 × 10^n), labelled with the decimals the step needs: 0.2 % never looks like 0.
    const key = section.dataset.chart, isRate = key.endsWith("rate");
    const floor = isRate ? 0.001 : key === "latency" ? 1 : 0.1, scale = isRate ? 100 : 1;
    const high = Math.max(...all, floor);
    const exp = Math.floor(Math.log10(high / 3));
    const step = [1, 2, 5, 10].map((m) => m * Math.pow(10, exp)).find((s) => s >= (high / 3) * (1 - 1e-9));
    const ticks = Math.ceil(high / step - 1e-9), top = step * ticks;
    let d = 0;
    while (d < 6 && Math.abs(Math.round(step * scale * Math.pow(10, d)) - step * scale * Math.pow(10, d)) > 1e-6) d++;
    const n = Math.max(...lines.map((l) => l.points.length), 2);
    for (let i = 0; i <= ticks; i++) {
      const y = B / 2 + ((H - B) * i) / ticks;
      svg.appendChild(el("line", { x1: L, x2: W, y1: y, y2: y, class: "grid" }));
      const t = el("text", { x: L - 4, y: y + 3, class: "axis", "text-anchor": "end" });
      t.textContent = ((top - i * step) * scale).toFixed(d) + (isRate ? "%" : "");
      svg.appendChild(t);
    }
    const span = section.dataset.span;
    if (span) {
      for (const [x, label, anchor] of [[L, span, "start"], [W, "now", "end"]]) {
        const t = el("text", { x, y: H - 1, class: "axis", "text-anchor": anchor });
        t.textContent = label;
        svg.appendChild(t);
      }
    }
    for (const line of lines) {
      let d = "", pen = false;
      line.points.forEach((p, i) => {
        if (p.y == null) { pen = false; return; }
        const x = L + ((W - L) * i) / (n - 1), y = B / 2 + (H - B) * (1 - p.y / top);
        d += (pen ? "L" : "M") + x.toFixed(1) + " " + y.toFixed(1);
        pen = true;
      });
      svg.appendChild(el("path", { d, class: "line" + (line.dashed ? " dashed" : ""), stroke: line.color }));
    }
    section.querySelector(".legend").innerHTML = lines.filter((l) => !l.dashed).map((l) =>
      `<span><i style="background:${l.color}"></i>${esc(l.name)}</span>`).join("") +
      (lines.some((l) => l.dashed) ? `<span class="muted">dashed: p50</span>` : "");
  }

  function drawCharts(data) {
    const r = data.rollout;
    const first = data.series[0];
    const secs = first ? (first.points.length * (Date.parse(first.points[1] ? first.points[1].t : first.points[0].t) - Date.parse(first.points[0].t))) / 1000 : 0;
    const span = secs >= 7200 ? "−" + Math.round(secs / 3600) + " h" : secs >= 120 ? "−" + Math.round(secs / 60) + " min" : secs > 0 ? "−" + Math.round(secs) + " s" : "";
    document.querySelectorAll("[data-chart]").forEach((s) => { s.dataset.span = span; });
    const sides = [{ role: "stable", release: r ? r.stable : data.stable }];
    if (r && r.candidate !== sides[0].release) sides.push({ role: "candidate", release: r.candidate });
    document.querySelectorAll("[data-chart]").forEach((section) => {
      const metric = section.dataset.chart, lines = [];
      for (const side of sides) {
        const s = seriesFor(data, side.release);
        if (!s) continue;
        const name = side.release + " (" + side.role + (s.traffic === "shadow" ? ", mirrored" : "") + ")";
        const has = (p) => p.requests > 0;
        if (metric === "latency") {
          lines.push({ name, color: COLORS[side.role], points: s.points.map((p) => ({ y: p.p95_ms })) });
          lines.push({ name, color: COLORS[side.role], dashed: true, points: s.points.map((p) => ({ y: p.p50_ms })) });
        } else {
          lines.push({ name, color: COLORS[side.role], points: s.points.map((p) => ({ y: has(p) || metric === "feedback_mean" ? p[metric] : null })) });
        }
      }
      drawChart(section, lines);
    });
  }

  async function poll() {
    try {
      const res = await fetch(url, { credentials: "same-origin", cache: "no-store" });
      if (res.status === 401) { location.href = "/login?next=" + encodeURIComponent(location.pathname); return; }
      if (!res.ok) return;
      const data = await res.json();
      drawSplit(data.split);
      document.getElementById("generation").textContent = data.generation;
      drawVerdict(data.rollout);
      drawCharts(data);
      const card = document.getElementById("rollout");
      const r = data.rollout;
      const typing = document.activeElement && document.activeElement.id === "reason";
      const shown = card ? card.dataset.rolloutId + ":" + card.dataset.version : "none";
      const now = r ? r.id + ":" + r.version : "none";
      if (shown !== now && !typing && !(document.getElementById("reason") || {}).value) location.reload();
    } catch (e) { /* the server may be restarting: try again on the next tick */ }
  }
  poll();
  setInterval(poll, 2000);
})();
