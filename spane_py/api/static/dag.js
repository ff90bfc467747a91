// Draws a workflow's DAG as SVG, left to right: a node's column is its longest distance
// from an entry node; within a column nodes are ordered by the mean row of their parents
// (one barycentre pass), which keeps most edges short and uncrossed for workflow-sized
// graphs. Nodes carry their status as a class (status-<name>), so colours live in CSS.
"use strict";

const SpaneDag = (() => {
  const { el } = Spane;
  const W = 160, H = 46, GAP_X = 64, GAP_Y = 18, PAD = 12;

  function layout(nodes) {
    const byId = new Map(nodes.map((n) => [n.id, n]));
    const column = new Map();
    const indegree = new Map(nodes.map((n) => [n.id, n.parents.filter((p) => byId.has(p)).length]));
    const queue = nodes.filter((n) => indegree.get(n.id) === 0).map((n) => n.id);
    for (const id of queue) column.set(id, 0);
    while (queue.length) { // Kahn's algorithm: columns by longest path
      const id = queue.shift();
      for (const child of byId.get(id).children) {
        if (!byId.has(child)) continue;
        column.set(child, Math.max(column.get(child) || 0, column.get(id) + 1));
        indegree.set(child, indegree.get(child) - 1);
        if (indegree.get(child) === 0) queue.push(child);
      }
    }
    for (const n of nodes) if (!column.has(n.id)) column.set(n.id, 0); // cycles cannot be stored
    const columns = [];
    for (const n of nodes) (columns[column.get(n.id)] ||= []).push(n.id);
    const row = new Map();
    columns.forEach((ids, c) => {
      if (c > 0) {
        const score = (id) => {
          const ps = byId.get(id).parents.filter((p) => row.has(p));
          return ps.length ? ps.reduce((s, p) => s + row.get(p), 0) / ps.length : 0;
        };
        ids.sort((a, b) => score(a) - score(b));
      }
      ids.forEach((id, r) => row.set(id, r));
    });
    const tallest = Math.max(1, ...columns.map((ids) => ids.length));
    const pos = new Map();
    columns.forEach((ids, c) => {
      const offset = ((tallest - ids.length) * (H + GAP_Y)) / 2; // centre short columns
      ids.forEach((id, r) => pos.set(id, { x: PAD + c * (W + GAP_X), y: PAD + offset + r * (H + GAP_Y) }));
    });
    return {
      pos,
      width: PAD * 2 + columns.length * W + Math.max(0, columns.length - 1) * GAP_X,
      height: PAD * 2 + tallest * H + (tallest - 1) * GAP_Y,
    };
  }

  function clip(text, max) {
    return text.length > max ? `${text.slice(0, max - 1)}…` : text;
  }

  // graph: {nodes: [{id, name, type, parents, children, status}]}; onSelect(nodeId)
  function draw(container, graph, { selected, onSelect }) {
    const { pos, width, height } = layout(graph.nodes);
    const svg = el("svg", {
      id: "dag-svg", width, height, viewBox: `0 0 ${width} ${height}`,
      role: "img", "aria-label": "workflow graph",
    });
    svg.append(el("defs", {}, el("marker", {
      id: "arrow", viewBox: "0 0 10 10", refX: "9", refY: "5", markerWidth: "7", markerHeight: "7", orient: "auto-start-reverse",
    }, el("path", { d: "M 0 0 L 10 5 L 0 10 z", fill: "#6b7385" }))));
    const status = new Map(graph.nodes.map((n) => [n.id, n.status]));
    for (const n of graph.nodes) {
      for (const child of n.children) {
        if (!pos.has(child)) continue;
        const a = pos.get(n.id), b = pos.get(child);
        const x1 = a.x + W, y1 = a.y + H / 2, x2 = b.x, y2 = b.y + H / 2, mid = (x1 + x2) / 2;
        const active = status.get(n.id) === "succeeded" && !["pending", "skipped"].includes(status.get(child));
        svg.append(el("path", {
          class: `edge${active ? " active" : ""}`,
          d: `M ${x1} ${y1} C ${mid} ${y1}, ${mid} ${y2}, ${x2 - 2} ${y2}`,
          "marker-end": "url(#arrow)",
          dataset: { from: n.id, to: child },
        }));
      }
    }
    for (const n of graph.nodes) {
      const p = pos.get(n.id);
      const label = n.name && n.name !== n.id ? n.name : n.id;
      const g = el("g", {
        class: `node status-${n.status}${n.id === selected ? " selected" : ""}`,
        transform: `translate(${p.x} ${p.y})`,
        tabindex: "0",
        dataset: { nodeId: n.id, status: n.status },
        onclick: () => onSelect(n.id),
        onkeydown: (ev) => { if (ev.key === "Enter") onSelect(n.id); },
      },
      el("title", {}, `${n.id} (${n.type}): ${n.status}`),
      el("rect", { width: W, height: H, rx: 7 }),
      el("text", { x: 10, y: 19 }, clip(label, 21)),
      el("text", { x: 10, y: 35, class: "sub" }, clip(`${n.status} · ${n.type}`, 26)));
      svg.append(g);
    }
    container.replaceChildren(svg);
  }

  return { draw, layout };
})();
