// The executions page: a search (id prefix, workflow, status or waiting, creation time,
// metadata and input fields), status filters with counts, a form that starts an
// execution, and the list (newest first, keyset-paginated), refreshed live; sub-workflow
// executions under their parents on request; selection and bulk actions (bulk.js).
"use strict";

(() => {
  const { api, el, badge, fmtDateTime, fmtDuration, showError, showInfo } = Spane;
  const STATUSES = ["queued", "running", "paused", "completed", "failed", "cancelled"];
  const params = new URLSearchParams(window.location.search);
  const state = {
    status: params.get("status") || "",
    workflow: params.get("workflow") || "",
    id: params.get("id") || "",
    from: params.get("from") || "", // datetime-local values (the browser's time zone)
    to: params.get("to") || "",
    where: params.getAll("where"),
    group: params.get("group") === "1",
    extraPages: [], // rows loaded with "Older executions", kept below the live first page
    cursor: null,
    shown: [], // the ids of the rows shown, in order
  };
  const tbody = document.querySelector("#executions tbody");

  // "metadata.tenant=acme input.tags=["a", "b"]" -> each field match: split on spaces
  // outside quotes and brackets.
  function splitFields(text) {
    const out = [];
    let token = "";
    let depth = 0;
    let quoted = false;
    for (let i = 0; i < text.length; i++) {
      const c = text[i];
      if (quoted) {
        if (c === "\\") { token += c + (text[i + 1] || ""); i++; continue; }
        if (c === '"') quoted = false;
      } else if (c === '"') quoted = true;
      else if (c === "[" || c === "{") depth++;
      else if (c === "]" || c === "}") depth = Math.max(0, depth - 1);
      else if (/\s/.test(c) && depth === 0) {
        if (token) out.push(token);
        token = "";
        continue;
      }
      token += c;
    }
    if (token) out.push(token);
    return out;
  }

  function iso(local) {
    const d = new Date(local);
    return Number.isNaN(d.getTime()) ? null : d.toISOString();
  }

  // The list's query: the search and the page size (`extra`: cursor, limit, ...).
  function searchQuery(extra = {}) {
    const q = new URLSearchParams({ limit: "50", ...extra });
    if (state.status) q.set("status", state.status);
    if (state.workflow) q.set("workflow_id", state.workflow);
    if (state.id) q.set("id_prefix", state.id);
    if (state.from && iso(state.from)) q.set("since", iso(state.from));
    if (state.to && iso(state.to)) q.set("until", iso(state.to));
    for (const w of state.where) q.append("where", w);
    return q;
  }

  function query(extra = {}) {
    const q = searchQuery(extra);
    if (state.group) q.set("roots_only", "true");
    return q;
  }

  function row(x, depth = 0) {
    const idCell = el("td", { class: "mono" });
    if (depth) idCell.append(el("span", { class: "nest" }, "↳ "));
    idCell.append(el("a", { href: `/executions/${x.execution_id}`, title: x.execution_id }, x.execution_id));
    if (!depth && x.parent_execution_id) {
      idCell.append(el("div", { class: "parent-link" }, "sub-workflow of ",
        el("a", { href: `/executions/${x.parent_execution_id}`, title: x.parent_execution_id }, Spane.shortId(x.parent_execution_id))));
    }
    return el("tr", {
      class: depth ? `child depth-${Math.min(depth, 4)}` : "",
      dataset: { executionId: x.execution_id, status: x.status, parent: x.parent_execution_id || "", depth: String(depth) },
    },
    el("td", { class: "select" }, bulk.checkbox(x.execution_id)),
    idCell,
    el("td", {}, x.workflow_id, el("span", { class: "muted" }, ` v${x.workflow_version}`)),
    el("td", { class: "status" }, badge(x.status)),
    el("td", { class: "when" }, fmtDateTime(x.created_at)),
    el("td", {}, fmtDuration(x.duration_ms)),
    el("td", { class: "error", title: x.error || "" }, x.error || ""),
    );
  }

  // The children of the executions listed, level by level (a parent's children are read
  // with one request per 100 parents), for "group sub-workflows".
  async function childrenOf(items) {
    const byParent = new Map();
    let level = items.map((x) => x.execution_id);
    for (let depth = 0; level.length && depth < 10; depth++) {
      const next = [];
      for (let i = 0; i < level.length; i += 100) {
        const q = new URLSearchParams({ limit: "500" });
        for (const id of level.slice(i, i + 100)) q.append("parent_id", id);
        const page = await api(`/api/executions?${q}`);
        for (const child of page.items) {
          if (!byParent.has(child.parent_execution_id)) byParent.set(child.parent_execution_id, []);
          byParent.get(child.parent_execution_id).push(child);
          next.push(child.execution_id);
        }
      }
      level = next;
    }
    return byParent;
  }

  async function refreshList() {
    const page = await api(`/api/executions?${query()}`);
    const items = [...page.items, ...state.extraPages];
    const byParent = state.group ? await childrenOf(items) : new Map();
    const rows = [];
    const add = (x, depth) => {
      rows.push(row(x, depth));
      for (const child of byParent.get(x.execution_id) || []) add(child, depth + 1);
    };
    for (const x of items) add(x, 0);
    state.shown = rows.map((r) => r.dataset.executionId);
    tbody.replaceChildren(...rows);
    document.getElementById("empty").classList.toggle("hidden", rows.length > 0);
    if (!state.extraPages.length) state.cursor = page.next_cursor;
    document.getElementById("more").classList.toggle("hidden", !state.cursor);
    bulk.render();
  }

  async function refreshCounts() {
    const q = state.workflow ? `?workflow_id=${encodeURIComponent(state.workflow)}` : "";
    const stats = await api(`/api/stats${q}`);
    const total = STATUSES.reduce((n, s) => n + (stats.executions[s] || 0), 0);
    const button = (value, label, n) => el("button", {
      type: "button",
      class: value === state.status ? "active" : "",
      dataset: { status: value },
      title: value === "waiting" ? "running, with a node waiting (a timer, a person, a sub-workflow)" : undefined,
      onclick: () => { state.status = value; sync(); },
    }, label, n === null ? "" : el("span", { class: "n" }, String(n)));
    const buttons = [button("", "all", total), ...STATUSES.map((s) => button(s, s, stats.executions[s] || 0))];
    buttons.splice(3, 0, button("waiting", "waiting", null)); // after running
    document.getElementById("status-filters").replaceChildren(...buttons);
  }

  let ticks = 0;
  async function refresh() {
    try {
      await refreshList();
      if (ticks++ % 3 === 0) await refreshCounts(); // counts are dearer: every 3rd time
      showErrorOnce(null);
    } catch (err) {
      showErrorOnce(err.message);
    }
  }

  let lastError = null;
  function showErrorOnce(message) {
    if (message === lastError) return;
    lastError = message;
    if (message || document.getElementById("banner").classList.contains("error")) showError(message);
  }

  // The search in the URL (a link to it shows the same list), then a fresh first page.
  function sync() {
    const q = new URLSearchParams();
    if (state.status) q.set("status", state.status);
    if (state.workflow) q.set("workflow", state.workflow);
    if (state.id) q.set("id", state.id);
    if (state.from) q.set("from", state.from);
    if (state.to) q.set("to", state.to);
    for (const w of state.where) q.append("where", w);
    if (state.group) q.set("group", "1");
    window.history.replaceState(null, "", q.toString() ? `/?${q}` : "/");
    state.extraPages = [];
    state.cursor = null;
    ticks = 0;
    live.refresh();
  }

  function fillForm() {
    document.getElementById("search-id").value = state.id;
    document.getElementById("search-from").value = state.from;
    document.getElementById("search-to").value = state.to;
    document.getElementById("search-where").value = state.where.join(" ");
    document.getElementById("group-children").checked = state.group;
    document.getElementById("workflow-filter").value = state.workflow;
  }

  async function loadWorkflows() {
    const workflows = await api("/api/workflows");
    const options = workflows.map((w) => el("option", { value: w.workflow_id }, `${w.workflow_id} (v${w.version})`));
    document.getElementById("enqueue-workflow").replaceChildren(...options);
    const filter = document.getElementById("workflow-filter");
    filter.replaceChildren(el("option", { value: "" }, "all"),
      ...workflows.map((w) => el("option", { value: w.workflow_id }, w.workflow_id)));
    filter.value = state.workflow;
    if (!workflows.length) showInfo("No workflow is registered yet: register one with POST /api/workflows or from your application.");
  }

  document.getElementById("workflow-filter").addEventListener("change", (ev) => {
    state.workflow = ev.target.value;
    sync();
  });

  document.getElementById("search-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const where = splitFields(document.getElementById("search-where").value.trim());
    const bad = where.find((w) => !/^(metadata|input)\.[^=]+=/.test(w));
    if (bad) {
      showError(`"${bad}" is not a field match: write metadata.<key>=<value> or input.<key>=<value> (for example metadata.tenant=acme)`);
      return;
    }
    state.id = document.getElementById("search-id").value.trim();
    state.from = document.getElementById("search-from").value;
    state.to = document.getElementById("search-to").value;
    state.where = where;
    state.workflow = document.getElementById("workflow-filter").value;
    sync();
  });

  document.getElementById("search-clear").addEventListener("click", () => {
    Object.assign(state, { status: "", workflow: "", id: "", from: "", to: "", where: [] });
    fillForm();
    sync();
  });

  document.getElementById("group-children").addEventListener("change", (ev) => {
    state.group = ev.target.checked;
    sync();
  });

  document.getElementById("more").addEventListener("click", async () => {
    try {
      const page = await api(`/api/executions?${query({ cursor: state.cursor })}`);
      state.extraPages.push(...page.items);
      state.cursor = page.next_cursor;
      await refreshList();
    } catch (err) { showError(err.message); }
  });

  document.getElementById("enqueue-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const workflow = document.getElementById("enqueue-workflow").value;
    const text = document.getElementById("enqueue-input").value.trim();
    const priority = document.getElementById("enqueue-priority").value;
    let input = null;
    if (text) {
      try { input = JSON.parse(text); } catch (err) {
        showError(`The input is not valid JSON: ${err.message}`);
        return;
      }
    }
    const body = { input };
    if (priority) body.priority = Number(priority);
    const button = document.getElementById("enqueue-button");
    button.disabled = true;
    try {
      const started = await api(`/api/workflows/${encodeURIComponent(workflow)}/executions`, { method: "POST", body });
      showInfo("Started ", el("a", { id: "started-link", href: `/executions/${started.execution_id}` }, started.execution_id), ".");
      lastError = null;
      live.refresh();
    } catch (err) {
      showError(err.message);
    } finally {
      button.disabled = false;
    }
  });

  const bulk = SpaneBulk.setup({
    visibleIds: () => state.shown,
    matchingQuery: (extra) => searchQuery(extra), // children too, when grouped
    onDone: () => live.refresh(),
  });
  fillForm();
  Spane.setupChrome("executions");
  const live = Spane.live(refresh, { pollMs: 1000 });
  loadWorkflows().catch((err) => showError(err.message));
})();
