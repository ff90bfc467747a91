// Draws a workflow's DAG as SVG, left to right, as a layered (Sugiyama-style) drawing that
// stays readable at 50-200 nodes:
//   1. layers: a node's column is its longest distance from an entry node (a source that
//      feeds only later columns moves right, next to its first child);
//   2. an edge spanning several columns gets a virtual point in each column it crosses,
//      so it is routed between the nodes, never through them;
//   3. order within a column: barycentre sweeps down and up, keeping the order with the
//      fewest crossings;
//   4. heights: each node pulled towards its neighbours (pool-adjacent-violators: the
//      closest placement that keeps the order and the gaps), a few sweeps.
// The drawing fits its box at first; the wheel or the buttons zoom, a drag pans, "Fit"
// goes back. A redraw (every refresh of a running execution) keeps the view. Nodes carry
// their status as a class (status-<name>), so colours live in CSS.
"use strict";

const SpaneDag = (() => {
  const { el } = Spane;
  const W = 160, H = 46, GAP_X = 64, GAP_Y = 18, PAD = 16;
  const POINT_H = 6, POINT_GAP = 8; // a virtual point of a long edge, and its gap
  const SWEEPS = 8, PLACEMENTS = 6;
  const MIN_SCALE = 0.08, MAX_SCALE = 3;

  function layers(nodes, byId) {
    const layer = new Map();
    const indegree = new Map(nodes.map((n) => [n.id, n.parents.filter((p) => byId.has(p)).length]));
    const queue = nodes.filter((n) => indegree.get(n.id) === 0).map((n) => n.id);
    for (const id of queue) layer.set(id, 0);
    for (let i = 0; i < queue.length; i++) { // Kahn's algorithm: longest path
      const id = queue[i];
      for (const child of byId.get(id).children) {
        if (!byId.has(child)) continue;
        layer.set(child, Math.max(layer.get(child) || 0, layer.get(id) + 1));
        indegree.set(child, indegree.get(child) - 1);
        if (indegree.get(child) === 0) queue.push(child);
      }
    }
    for (const n of nodes) if (!layer.has(n.id)) layer.set(n.id, 0); // cycles cannot be stored
    for (const n of nodes) { // a source sits just before its first child
      const kids = n.children.filter((c) => byId.has(c));
      if (!n.parents.some((p) => byId.has(p)) && kids.length) {
        layer.set(n.id, Math.max(0, Math.min(...kids.map((c) => layer.get(c))) - 1));
      }
    }
    return layer;
  }

  // The layered graph: real nodes and virtual points, each {id, layer, up, down, h, real}.
  function layered(nodes) {
    const byId = new Map(nodes.map((n) => [n.id, n]));
    const layer = layers(nodes, byId);
    const verts = new Map();
    const add = (id, l, real) => {
      const v = { id, layer: l, up: [], down: [], h: real ? H : POINT_H, real };
      verts.set(id, v);
      return v;
    };
    for (const n of nodes) add(n.id, layer.get(n.id), true);
    const chains = [];
    for (const n of nodes) {
      for (const child of n.children) {
        if (!byId.has(child)) continue;
        const chain = [n.id];
        for (let l = layer.get(n.id) + 1; l < layer.get(child); l++) {
          chain.push(add(`\u0000${n.id}\u0000${child}\u0000${l}`, l, false).id);
        }
        chain.push(child);
        for (let i = 0; i + 1 < chain.length; i++) {
          verts.get(chain[i]).down.push(chain[i + 1]);
          verts.get(chain[i + 1]).up.push(chain[i]);
        }
        chains.push({ from: n.id, to: child, chain });
      }
    }
    const columns = [];
    for (const v of verts.values()) (columns[v.layer] ||= []).push(v.id);
    for (let l = 0; l < columns.length; l++) columns[l] ||= [];
    return { verts, columns, chains };
  }

  function crossings(columns, verts) {
    let total = 0;
    for (let l = 0; l + 1 < columns.length; l++) {
      const at = new Map(columns[l + 1].map((id, i) => [id, i]));
      const edges = [];
      columns[l].forEach((id, i) => { for (const d of verts.get(id).down) edges.push([i, at.get(d)]); });
      for (let a = 0; a < edges.length; a++) {
        for (let b = a + 1; b < edges.length; b++) {
          if ((edges[a][0] - edges[b][0]) * (edges[a][1] - edges[b][1]) < 0) total++;
        }
      }
    }
    return total;
  }

  function order(columns, verts) {
    const index = new Map();
    const number = (cols) => cols.forEach((ids) => ids.forEach((id, i) => index.set(id, i)));
    const sortBy = (ids, side) => {
      const score = new Map(ids.map((id) => {
        const ns = verts.get(id)[side];
        return [id, ns.length ? ns.reduce((s, n) => s + index.get(n), 0) / ns.length : index.get(id)];
      }));
      ids.sort((a, b) => score.get(a) - score.get(b) || index.get(a) - index.get(b));
      ids.forEach((id, i) => index.set(id, i));
    };
    number(columns);
    let best = columns.map((ids) => ids.slice());
    let bestCount = crossings(columns, verts);
    for (let sweep = 0; sweep < SWEEPS && bestCount > 0; sweep++) {
      if (sweep % 2 === 0) for (let l = 1; l < columns.length; l++) sortBy(columns[l], "up");
      else for (let l = columns.length - 2; l >= 0; l--) sortBy(columns[l], "down");
      const count = crossings(columns, verts);
      if (count < bestCount) { bestCount = count; best = columns.map((ids) => ids.slice()); }
    }
    return best;
  }

  // The tops closest to `want` (least squares) that keep the column's order and gaps.
  function pack(ids, verts, want) {
    const gap = (a, b) => (verts.get(a).real && verts.get(b).real ? GAP_Y : POINT_GAP);
    const offset = [0];
    for (let i = 1; i < ids.length; i++) offset.push(offset[i - 1] + verts.get(ids[i - 1]).h + gap(ids[i - 1], ids[i]));
    const blocks = []; // pool adjacent violators over want - offset
    ids.forEach((id, i) => {
      blocks.push({ sum: want.get(id) - offset[i], n: 1 });
      while (blocks.length > 1) {
        const b = blocks[blocks.length - 1], a = blocks[blocks.length - 2];
        if (a.sum / a.n <= b.sum / b.n) break;
        blocks.pop();
        a.sum += b.sum; a.n += b.n;
      }
    });
    const top = new Map();
    let i = 0;
    for (const b of blocks) for (let k = 0; k < b.n; k++, i++) top.set(ids[i], b.sum / b.n + offset[i]);
    return top;
  }

  function place(columns, verts) {
    const top = new Map();
    for (const ids of columns) { // start packed from the top
      let y = 0;
      ids.forEach((id, i) => {
        top.set(id, y);
        const next = ids[i + 1];
        y += verts.get(id).h + (next && verts.get(id).real && verts.get(next).real ? GAP_Y : POINT_GAP);
      });
    }
    const centre = (id) => top.get(id) + verts.get(id).h / 2;
    for (let round = 0; round < PLACEMENTS; round++) {
      const down = round % 2 === 0;
      const cols = down ? columns.slice(1) : columns.slice(0, -1).reverse();
      for (const ids of cols) {
        const want = new Map(ids.map((id) => {
          const ns = verts.get(id)[down ? "up" : "down"];
          const c = ns.length ? ns.reduce((s, n) => s + centre(n), 0) / ns.length : centre(id);
          return [id, c - verts.get(id).h / 2];
        }));
        for (const [id, t] of pack(ids, verts, want)) top.set(id, t);
      }
    }
    const least = Math.min(0, ...top.values());
    const pos = new Map();
    for (const [id, t] of top) pos.set(id, { x: PAD + verts.get(id).layer * (W + GAP_X), y: PAD + t - least });
    return pos;
  }

  function layout(nodes) {
    const { verts, columns, chains } = layered(nodes);
    const pos = place(order(columns, verts), verts);
    let bottom = 0;
    for (const [id, p] of pos) bottom = Math.max(bottom, p.y + verts.get(id).h);
    const routes = chains.map(({ from, to, chain }) => {
      const points = [];
      chain.forEach((id, i) => {
        const p = pos.get(id), v = verts.get(id);
        const y = p.y + v.h / 2;
        if (i > 0) points.push([p.x, y]); // in at its left side
        if (i < chain.length - 1) points.push([p.x + W, y]); // out at its right side
      });
      return { from, to, points };
    });
    const real = nodes.map((n) => n.id);
    return {
      pos: new Map(real.map((id) => [id, pos.get(id)])),
      routes,
      width: PAD * 2 + columns.length * W + Math.max(0, columns.length - 1) * GAP_X,
      height: PAD + bottom,
    };
  }

  // A smooth path through the points: a curve between columns, straight through a column.
  function pathOf(points) {
    let d = `M ${points[0][0]} ${points[0][1]}`;
    for (let i = 1; i < points.length; i++) {
      const [x1, y1] = points[i - 1], [x2, y2] = points[i];
      const last = i === points.length - 1 ? 2 : 0;
      if (i % 2 === 1) { const mid = (x1 + x2) / 2; d += ` C ${mid} ${y1}, ${mid} ${y2}, ${x2 - last} ${y2}`; }
      else d += ` L ${x2} ${y2}`;
    }
    return d;
  }

  function clip(text, max) {
    return text.length > max ? `${text.slice(0, max - 1)}…` : text;
  }

  // The view (the SVG's viewBox) of each container, kept across redraws.
  const views = new WeakMap();

  function setView(view, box) {
    Object.assign(view, box);
    view.svg.setAttribute("viewBox", `${view.x} ${view.y} ${view.w} ${view.h}`);
    const scale = view.svg.clientWidth / view.w;
    view.level.textContent = `${Math.round(scale * 100)}%`;
    view.svg.dataset.scale = scale.toFixed(4);
  }

  // The whole graph in the box: no larger than 1:1, centred; the box as tall as the graph
  // then is (within 160 px and 65% of the window).
  function fit(view) {
    const boxW = Math.max(view.svg.clientWidth || view.container.clientWidth || 900, 200);
    const maxH = Math.max(300, Math.round(window.innerHeight * 0.65));
    const scale = Math.min(1, boxW / view.width, maxH / view.height);
    const boxH = Math.max(160, Math.ceil(view.height * scale));
    view.svg.setAttribute("height", String(boxH));
    const w = boxW / scale, h = boxH / scale;
    view.fitted = true;
    setView(view, { x: scale < 1 ? (view.width - w) / 2 : 0, y: (view.height - h) / 2, w, h });
  }

  // Zoom by `factor` around (cx, cy), a point of the box in pixels.
  function zoom(view, factor, cx, cy) {
    const boxW = view.svg.clientWidth, boxH = view.svg.clientHeight;
    const scale = Math.min(MAX_SCALE, Math.max(MIN_SCALE, (boxW / view.w) * factor));
    const w = boxW / scale, h = boxH / scale;
    const px = view.x + (cx / boxW) * view.w, py = view.y + (cy / boxH) * view.h;
    view.fitted = false;
    setView(view, { x: px - (cx / boxW) * w, y: py - (cy / boxH) * h, w, h });
  }

  function build(container) {
    const svg = el("svg", {
      id: "dag-svg", role: "img", "aria-label": "workflow graph", preserveAspectRatio: "xMinYMin meet",
    });
    const content = el("g", { class: "dag-content" });
    const button = (id, text, title, onclick) => el("button", { type: "button", id, title, onclick }, text);
    const level = el("span", { id: "dag-zoom-level" });
    const view = { container, svg, content, level, fitted: true, x: 0, y: 0, w: 1, h: 1, width: 1, height: 1 };
    const centre = (f) => zoom(view, f, svg.clientWidth / 2, svg.clientHeight / 2);
    const tools = el("div", { class: "dag-tools" },
      button("dag-zoom-out", "−", "zoom out", () => centre(1 / 1.25)),
      button("dag-zoom-in", "+", "zoom in", () => centre(1.25)),
      button("dag-fit", "Fit", "the whole graph in view", () => fit(view)),
      level,
      el("span", {}, "· wheel to zoom, drag to pan"));
    svg.append(el("defs", {}, el("marker", {
      id: "arrow", viewBox: "0 0 10 10", refX: "9", refY: "5", markerWidth: "7", markerHeight: "7", orient: "auto-start-reverse",
    }, el("path", { d: "M 0 0 L 10 5 L 0 10 z", fill: "#6b7385" }))), content);

    svg.addEventListener("wheel", (ev) => {
      ev.preventDefault();
      const r = svg.getBoundingClientRect();
      const delta = ev.deltaMode === 1 ? ev.deltaY * 16 : ev.deltaY;
      zoom(view, Math.exp(-delta * 0.0015), ev.clientX - r.left, ev.clientY - r.top);
    }, { passive: false });
    let drag = null;
    svg.addEventListener("pointerdown", (ev) => {
      if (ev.button !== 0) return;
      drag = { id: ev.pointerId, sx: ev.clientX, sy: ev.clientY, x: view.x, y: view.y, moved: false };
    });
    svg.addEventListener("pointermove", (ev) => {
      if (!drag || ev.pointerId !== drag.id) return;
      const dx = ev.clientX - drag.sx, dy = ev.clientY - drag.sy;
      if (!drag.moved && Math.hypot(dx, dy) < 4) return; // a click, so far
      if (!drag.moved) { drag.moved = true; svg.setPointerCapture(ev.pointerId); svg.classList.add("dragging"); }
      const scale = svg.clientWidth / view.w;
      view.fitted = false;
      setView(view, { x: drag.x - dx / scale, y: drag.y - dy / scale });
    });
    const end = () => {
      if (drag && drag.moved) {
        svg.classList.remove("dragging");
        // The click that ends a drag selects nothing.
        svg.addEventListener("click", (e) => e.stopPropagation(), { capture: true, once: true });
      }
      drag = null;
    };
    svg.addEventListener("pointerup", end);
    svg.addEventListener("pointercancel", end);
    window.addEventListener("resize", () => { if (view.fitted) fit(view); });
    container.replaceChildren(tools, svg);
    views.set(container, view);
    return view;
  }

  // graph: {nodes: [{id, name, type, parents, children, status}]}; onSelect(nodeId).
  // showStatus false: a definition (no execution), nodes say only their type.
  function draw(container, graph, { selected, onSelect, showStatus = true }) {
    let view = views.get(container);
    if (!view || !container.contains(view.svg)) view = build(container);
    // The layout depends on the nodes and edges only: a refresh (statuses) reuses it.
    const shape = graph.nodes.map((n) => `${n.id}>${n.children.join(",")}`).join(";");
    if (view.shape !== shape) { view.layout = layout(graph.nodes); view.shape = shape; }
    const { pos, routes, width, height } = view.layout;
    const status = new Map(graph.nodes.map((n) => [n.id, n.status]));
    const parts = [];
    for (const r of routes) {
      const active = status.get(r.from) === "succeeded" && !["pending", "skipped"].includes(status.get(r.to));
      parts.push(el("path", {
        class: `edge${active ? " active" : ""}`, d: pathOf(r.points), "marker-end": "url(#arrow)",
        dataset: { from: r.from, to: r.to },
      }));
    }
    for (const n of graph.nodes) {
      const p = pos.get(n.id);
      const label = n.name && n.name !== n.id ? n.name : n.id;
      parts.push(el("g", {
        class: `node status-${n.status}${n.id === selected ? " selected" : ""}`,
        transform: `translate(${p.x} ${p.y})`,
        tabindex: "0",
        dataset: { nodeId: n.id, status: n.status },
        onclick: () => onSelect(n.id),
        onkeydown: (ev) => { if (ev.key === "Enter") onSelect(n.id); },
      },
      el("title", {}, showStatus ? `${n.id} (${n.type}): ${n.status}` : `${n.id} (${n.type})`),
      el("rect", { width: W, height: H, rx: 7 }),
      el("text", { x: 10, y: 19 }, clip(label, 21)),
      el("text", { x: 10, y: 35, class: "sub" }, clip(showStatus ? `${n.status} · ${n.type}` : n.type, 26))));
    }
    view.content.replaceChildren(...parts);
    const resized = view.width !== width || view.height !== height;
    view.width = width;
    view.height = height;
    view.svg.dataset.nodes = String(graph.nodes.length);
    if (view.fitted || resized) fit(view);
  }

  return { draw, layout };
})();
