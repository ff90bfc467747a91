// The executions page: status filters with counts, a workflow filter, a form that starts
// an execution, and the list (newest first), refreshed live.
"use strict";

(() => {
  const { api, el, badge, fmtTime, fmtDuration, showError, showInfo } = Spane;
  const STATUSES = ["queued", "running", "paused", "completed", "failed", "cancelled"];
  const params = new URLSearchParams(window.location.search);
  const state = {
    status: params.get("status") || "",
    workflow: params.get("workflow") || "",
    extraPages: [], // rows loaded with "Older executions", kept below the live first page
    cursor: null,
  };
  const tbody = document.querySelector("#executions tbody");

  function query(extra = {}) {
    const q = new URLSearchParams({ limit: "50", ...extra });
    if (state.status) q.set("status", state.status);
    if (state.workflow) q.set("workflow_id", state.workflow);
    return q;
  }

  function row(x) {
    return el("tr", { dataset: { executionId: x.execution_id, status: x.status } },
      el("td", { class: "mono" }, el("a", { href: `/executions/${x.execution_id}`, title: x.execution_id }, x.execution_id)),
      el("td", {}, x.workflow_id, el("span", { class: "muted" }, ` v${x.workflow_version}`)),
      el("td", { class: "status" }, badge(x.status)),
      el("td", {}, fmtTime(x.created_at)),
      el("td", {}, fmtDuration(x.duration_ms)),
      el("td", { class: "error", title: x.error || "" }, x.error || ""),
    );
  }

  async function refreshList() {
    const page = await api(`/api/executions?${query()}`);
    const rows = [...page.items, ...state.extraPages].map(row);
    tbody.replaceChildren(...rows);
    document.getElementById("empty").classList.toggle("hidden", rows.length > 0);
    if (!state.extraPages.length) state.cursor = page.next_cursor;
    document.getElementById("more").classList.toggle("hidden", !state.cursor);
  }

  async function refreshCounts() {
    const q = state.workflow ? `?workflow_id=${encodeURIComponent(state.workflow)}` : "";
    const stats = await api(`/api/stats${q}`);
    const total = STATUSES.reduce((n, s) => n + (stats.executions[s] || 0), 0);
    const buttons = [["", "all", total], ...STATUSES.map((s) => [s, s, stats.executions[s] || 0])]
      .map(([value, label, n]) => el("button", {
        type: "button",
        class: value === state.status ? "active" : "",
        dataset: { status: value },
        onclick: () => { state.status = value; state.extraPages = []; sync(); },
      }, label, el("span", { class: "n" }, String(n))));
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

  function sync() {
    const q = new URLSearchParams();
    if (state.status) q.set("status", state.status);
    if (state.workflow) q.set("workflow", state.workflow);
    window.history.replaceState(null, "", q.toString() ? `/?${q}` : "/");
    ticks = 0;
    live.refresh();
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
    state.extraPages = [];
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

  Spane.setupChrome("executions");
  const live = Spane.live(refresh, { pollMs: 1000 });
  loadWorkflows().catch((err) => showError(err.message));
})();
