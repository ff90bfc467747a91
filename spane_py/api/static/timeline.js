// Draws an execution's timeline (a Gantt chart) as SVG: one row per node attempt (span),
// a bar from its start to its end on a shared time axis starting at the execution's
// start. A node running or waiting now has no span yet: it gets an open bar up to now.
// The span of a delay, wait or sub-workflow node covers its wait (attributes.waited):
// its bar is drawn lighter with a dashed outline, and its row says "waited". Past 60% of
// the window's height the rows scroll, under an axis that stays on top.
"use strict";

const SpaneTimeline = (() => {
  const { el, fmtDuration } = Spane;
  const LABEL = 170, ROW = 24, BAR = 14, AXIS = 22, RIGHT = 70;

  function rows(trace) {
    const out = trace.spans.map((s) => ({
      node: s.node_id,
      label: s.attempt > 1 ? `${s.node_id} #${s.attempt}` : s.node_id,
      status: s.status,
      start: Date.parse(s.started_at),
      end: s.ended_at ? Date.parse(s.ended_at) : null,
      error: s.error,
      worker: s.worker_id,
      waited: waitOf(s.attributes || {}),
    }));
    const spanned = new Set(trace.spans.map((s) => `${s.node_id}#${s.attempt}`));
    for (const [id, r] of Object.entries(trace.execution.node_results)) {
      const open = ["running", "waiting"].includes(r.status);
      if (open && r.started_at && !spanned.has(`${id}#${r.attempts}`)) {
        out.push({
          node: id, label: r.attempts > 1 ? `${id} #${r.attempts}` : id, status: r.status,
          start: Date.parse(r.started_at), end: null, error: null, worker: null,
          waited: r.status === "waiting" ? "waiting" : null,
        });
      }
    }
    return out.sort((a, b) => a.start - b.start);
  }

  // How a span's wait ended, in words (null: the span is not a wait).
  function waitOf(attributes) {
    if (!attributes.waited) return null;
    if (attributes.wait === "event") return attributes.resumed ? "resumed" : "not resumed";
    if (attributes.wait === "child") return "sub-workflow";
    return attributes.wait === "timer" ? "delay" : "wait";
  }

  function ticks(span) {
    const steps = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 30000, 60000, 300000, 600000, 3600000];
    const step = steps.find((s) => span / s <= 6) || steps[steps.length - 1];
    const out = [];
    for (let t = 0; t <= span + 1e-9; t += step) out.push(t);
    return out;
  }

  // trace: the /api/executions/{id}/trace answer; onSelect(nodeId). Many rows scroll
  // under an axis that stays on top; the scroll position survives a redraw.
  function draw(container, trace, { now, selected, onSelect }) {
    const items = rows(trace);
    if (!items.length) {
      container.replaceChildren(el("p", { class: "muted", id: "timeline-empty" }, "No node has run yet."));
      return;
    }
    let scroller = container.querySelector(".timeline-scroll");
    if (!scroller) {
      scroller = el("div", { class: "timeline-scroll" });
      container.replaceChildren(scroller);
    }
    const exec = trace.execution;
    const t0 = Math.min(Date.parse(exec.started_at), ...items.map((r) => r.start));
    const tEnd = exec.completed_at ? Date.parse(exec.completed_at) : now;
    const t1 = Math.max(tEnd, ...items.map((r) => r.end || now), t0 + 1);
    const width = Math.max(scroller.clientWidth || container.clientWidth || 900, 520);
    const plot = width - LABEL - RIGHT;
    const x = (t) => LABEL + ((t - t0) / (t1 - t0)) * plot;
    const height = items.length * ROW + 6;
    const head = el("svg", { id: "timeline-axis", width, height: AXIS, viewBox: `0 0 ${width} ${AXIS}`, "aria-hidden": "true" });
    const svg = el("svg", { id: "timeline-svg", width, height, viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": "timeline" });

    const labels = el("g", { class: "axis" });
    const grid = el("g", { class: "axis" });
    for (const t of ticks(t1 - t0)) {
      const xt = x(t0 + t);
      labels.append(
        el("line", { x1: xt, x2: xt, y1: AXIS - 4, y2: AXIS }),
        el("text", { x: xt + 3, y: AXIS - 8 }, t === 0 ? "0" : fmtDuration(t)),
      );
      grid.append(el("line", { x1: xt, x2: xt, y1: 0, y2: height }));
    }
    head.append(labels);
    svg.append(grid);

    items.forEach((r, i) => {
      const y = i * ROW;
      const end = r.end || now;
      const x1 = x(r.start);
      const w = Math.max(x(end) - x1, 2); // a sub-millisecond node stays visible
      const waited = r.waited && r.end ? ` (waited: ${r.waited})` : "";
      const title = `${r.label}: ${r.status}${waited}, ${fmtDuration(end - r.start)}${r.end ? "" : " so far"}` +
        (r.worker ? ` on ${r.worker}` : "") + (r.error ? `\n${r.error}` : "");
      const dataset = { nodeId: r.node, status: r.status };
      if (r.waited) dataset.waited = r.waited;
      svg.append(el("g", {
        class: `span${r.node === selected ? " selected" : ""}`,
        dataset,
        onclick: () => onSelect(r.node),
      },
      el("rect", { class: "row-bg", x: 0, y, width, height: ROW }),
      el("text", { class: "label", x: 6, y: y + ROW / 2 + 4 }, r.label.length > 24 ? `${r.label.slice(0, 23)}…` : r.label),
      el("rect", { class: `bar status-${r.status}${r.waited ? " waited" : ""}`, x: x1, y: y + (ROW - BAR) / 2, width: w, height: BAR, rx: 3 },
        el("title", {}, title)),
      el("text", { class: "duration", x: x1 + w + 4, y: y + ROW / 2 + 3 }, `${fmtDuration(end - r.start)}${r.waited && r.end ? " waited" : ""}`)));
    });
    scroller.replaceChildren(head, svg);
  }

  return { draw, rows };
})();
