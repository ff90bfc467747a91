// The workflows page: every workflow; the selected one (?workflow=) with its success rate,
// a form that starts it, its triggers (schedules with their next fire time, pause and
// resume; webhooks), its recent executions, its versions with a diff of two of them, and
// the graph and definition of a version. Triggers, executions and counts refresh every 5 s.
"use strict";

(() => {
  const { api, el, badge, fmtTime, fmtDuration, fmtRelative, json, showError, showInfo } = Spane;
  const POLL_MS = 5000;
  const state = {
    workflow: new URLSearchParams(window.location.search).get("workflow"),
    versions: [], // oldest first
    definitions: new Map(), // version -> definition
    shown: null, // the version whose graph is drawn
    a: null,
    b: null,
  };
  const $ = (id) => document.getElementById(id);
  const enc = encodeURIComponent;

  // Secrets (a webhook's) are not shown on a page, nor in a diff.
  function redact(value) {
    if (Array.isArray(value)) return value.map(redact);
    if (value && typeof value === "object") {
      return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, k === "secret" && v ? "•••" : redact(v)]));
    }
    return value;
  }

  async function definition(version) {
    if (!state.definitions.has(version)) {
      const v = await api(`/api/workflows/${enc(state.workflow)}/versions/${version}`);
      state.definitions.set(version, redact(v.definition));
    }
    return state.definitions.get(version);
  }

  async function loadList() {
    const workflows = await api("/api/workflows?limit=1000");
    $("no-workflows").classList.toggle("hidden", workflows.length > 0);
    if (!state.workflow && workflows.length) state.workflow = workflows[0].workflow_id;
    $("workflow-list").querySelector("tbody").replaceChildren(...workflows.map((w) => el("tr", {
      class: w.workflow_id === state.workflow ? "selected" : "",
      dataset: { workflowId: w.workflow_id },
      onclick: () => select(w.workflow_id),
    },
    el("td", {}, el("a", { href: `/workflows?workflow=${enc(w.workflow_id)}`, class: "mono", onclick: (ev) => ev.preventDefault() }, w.workflow_id),
      w.name && w.name !== w.workflow_id ? el("div", { class: "muted" }, w.name) : null),
    el("td", { class: "num" }, `v${w.version}`),
    el("td", { class: "num" }, String(w.node_count)))));
  }

  function select(workflowId) {
    state.workflow = workflowId;
    window.history.replaceState(null, "", `/workflows?workflow=${enc(workflowId)}`);
    for (const tr of $("workflow-list").querySelectorAll("tbody tr")) {
      tr.classList.toggle("selected", tr.dataset.workflowId === workflowId);
    }
    loadWorkflow().catch((err) => showError(err.message));
  }

  async function loadWorkflow() {
    const id = state.workflow;
    if (!id) return;
    state.versions = await api(`/api/workflows/${enc(id)}/versions`);
    state.definitions = new Map();
    const latest = state.versions[state.versions.length - 1];
    $("workflow-detail").classList.remove("hidden");
    $("wf-title").textContent = id;
    $("wf-version").textContent = `v${latest.version}${latest.active ? "" : " (inactive)"}`;
    $("wf-description").textContent = [latest.name !== id ? latest.name : "", latest.description || ""].filter(Boolean).join(": ");
    $("wf-facts").replaceChildren(...[
      ["Versions", String(state.versions.length)],
      ["Latest", `v${latest.version}, registered ${fmtTime(latest.created_at)}`],
      ["Nodes", String(latest.node_count)],
    ].flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v)]));
    $("all-executions").href = `/?workflow=${enc(id)}`;
    startForm(latest);
    state.b = latest.version;
    state.a = state.versions.length > 1 ? state.versions[state.versions.length - 2].version : latest.version;
    versionTable();
    await Promise.all([showDiff(), showGraph(latest.version), refreshDynamic()]);
  }

  // Any stored version can be started; the latest is chosen first.
  function startForm(latest) {
    const options = [...state.versions].reverse().map((v) => el("option", {
      value: String(v.version),
    }, v.version === latest.version ? `v${v.version} (latest)` : `v${v.version}`));
    $("start-version").replaceChildren(...options);
    $("start-version").value = String(latest.version);
    $("start-note").textContent = "Starts the chosen version: its executions stay on it, even after a newer one is registered.";
  }

  function versionTable() {
    const radio = (side, v) => el("input", {
      type: "radio", name: `diff-${side}`, value: String(v.version), checked: state[side] === v.version,
      "aria-label": `${side.toUpperCase()}: v${v.version}`,
      onchange: () => { state[side] = v.version; showDiff().catch((err) => showError(err.message)); },
    });
    $("versions").querySelector("tbody").replaceChildren(...[...state.versions].reverse().map((v) => el("tr", {
      dataset: { version: String(v.version) },
    },
    el("td", {}, radio("a", v)),
    el("td", {}, radio("b", v)),
    el("td", {}, el("a", {
      href: "#graph", onclick: (ev) => { ev.preventDefault(); showGraph(v.version).catch((err) => showError(err.message)); },
      title: "show its graph and definition",
    }, `v${v.version}`)),
    el("td", {}, fmtTime(v.created_at)),
    el("td", { class: "num" }, String(v.node_count)),
    el("td", { class: "mono", title: v.content_hash }, v.content_hash.slice(0, 12)),
    el("td", {}, v.change_notes || ""))));
  }

  async function showDiff() {
    const box = $("diff-box");
    if (state.a === state.b) {
      box.replaceChildren(el("p", { class: "muted", id: "diff-empty" },
        state.versions.length > 1 ? "Pick two different versions." : "One version only: nothing to compare."));
      return;
    }
    const [a, b] = [Math.min(state.a, state.b), Math.max(state.a, state.b)];
    const [da, db] = await Promise.all([definition(a), definition(b)]);
    const { pre, added, removed } = SpaneDiff.render(SpaneDiff.lines(JSON.stringify(da, null, 2), JSON.stringify(db, null, 2)));
    box.replaceChildren(el("p", { class: "note", id: "diff-title" },
      `v${a} → v${b}: ${added} line${added === 1 ? "" : "s"} added, ${removed} removed`), pre);
  }

  // A definition's nodes as the graph SpaneDag draws (no execution: no status).
  function graphOf(def) {
    const nodes = def.nodes || [];
    const parents = new Map(nodes.map((n) => [n.id, new Set(n.inputs || [])]));
    const children = new Map(nodes.map((n) => [n.id, new Set(n.outputs || [])]));
    for (const n of nodes) {
      for (const c of n.outputs || []) parents.get(c)?.add(n.id);
      for (const p of n.inputs || []) children.get(p)?.add(n.id);
    }
    return {
      nodes: nodes.map((n) => ({
        id: n.id, name: n.name, type: n.type, status: "pending",
        parents: [...parents.get(n.id)], children: [...children.get(n.id)],
      })),
    };
  }

  async function showGraph(version) {
    const def = await definition(version);
    state.shown = version;
    $("graph-version").textContent = `v${version}`;
    SpaneDag.draw($("dag"), graphOf(def), { selected: null, onSelect: () => {}, showStatus: false });
    $("definition").replaceChildren(json(def));
  }

  function scheduleRow(s) {
    const action = s.paused ? "resume" : "pause";
    const button = el("button", {
      type: "button", class: `schedule-${action}`, dataset: { action },
      onclick: async () => {
        button.disabled = true;
        try {
          const res = await api(`/api/schedules/${enc(s.schedule_id)}/${action}`, { method: "POST" });
          showInfo(`Schedule ${s.cron} ${res.schedule.paused ? "paused: it fires no more until resumed" : "resumed: it fires again from its next tick"}.`);
        } catch (err) {
          showError(err.message);
        }
        await refreshDynamic();
      },
    }, s.paused ? "Resume" : "Pause");
    return el("tr", { dataset: { scheduleId: s.schedule_id, paused: String(s.paused) } },
      el("td", { class: "mono" }, s.schedule_id),
      el("td", { class: "mono" }, s.cron),
      el("td", {}, s.timezone),
      el("td", {}, s.missed === "run_once" ? "run once" : "skipped"),
      el("td", {}, s.paused ? badge("paused") : el("span", { class: "badge ok" }, "active")),
      el("td", {}, s.last_tick ? fmtTime(s.last_tick) : "—"),
      el("td", { class: "next-tick" }, s.next_tick ? [fmtTime(s.next_tick), el("span", { class: "muted" }, ` (${fmtRelative(s.next_tick)})`)] : "— (paused)"),
      el("td", {}, button));
  }

  function webhookRow(w) {
    const url = `${window.location.origin}${w.url}`;
    return el("tr", { dataset: { path: w.path } },
      el("td", { class: "mono" }, w.method),
      el("td", { class: "mono" }, url),
      el("td", {}, w.signed ? "required (secret set)" : el("span", { class: "muted" }, "none")),
      el("td", {}, w.created_at ? fmtTime(w.created_at) : "—"));
  }

  function rate(stats) {
    const n = stats.executions;
    const ok = n.completed || 0, bad = n.failed || 0, other = n.cancelled || 0;
    const finished = ok + bad + other;
    const active = (n.queued || 0) + (n.running || 0) + (n.paused || 0);
    if (!finished) {
      return el("div", { id: "rate", dataset: { rate: "" } }, el("div", { class: "rate" }, "—"),
        el("div", { class: "muted" }, `no execution finished yet${active ? `; ${active} active` : ""}`));
    }
    const bar = el("div", { class: "rate-bar" });
    for (const [cls, count] of [["ok", ok], ["bad", bad], ["other", other]]) {
      const part = el("span", { class: cls, title: `${count} ${cls === "ok" ? "completed" : cls === "bad" ? "failed" : "cancelled"}` });
      part.style.flexGrow = String(count); // CSSOM, not a style attribute: the CSP allows it
      bar.append(part);
    }
    const pct = Math.round((ok / finished) * 1000) / 10;
    return el("div", { id: "rate", dataset: { rate: String(pct) } },
      el("div", { class: "rate" }, `${pct}%`),
      el("div", { class: "muted" }, `succeeded: ${ok} of ${finished} finished`),
      bar,
      el("div", { class: "muted" }, `${bad} failed, ${other} cancelled${active ? `, ${active} active` : ""}`));
  }

  function executionRow(x) {
    return el("tr", { dataset: { executionId: x.execution_id, status: x.status } },
      el("td", { class: "mono" }, el("a", { href: `/executions/${x.execution_id}`, title: x.execution_id }, x.execution_id)),
      el("td", {}, `v${x.workflow_version}`),
      el("td", {}, badge(x.status)),
      el("td", {}, fmtTime(x.created_at)),
      el("td", {}, fmtDuration(x.duration_ms)),
      el("td", { class: "error", title: x.error || "" }, x.error || ""));
  }

  async function refreshDynamic() {
    const id = state.workflow;
    if (!id) return;
    const q = `workflow_id=${enc(id)}`;
    const [schedules, webhooks, recent, stats] = await Promise.all([
      api(`/api/schedules?${q}`), api(`/api/webhook-triggers?${q}`),
      api(`/api/executions?${q}&limit=20`), api(`/api/stats?${q}`),
    ]);
    if (id !== state.workflow) return; // another one was picked meanwhile
    $("schedules").querySelector("tbody").replaceChildren(...schedules.map(scheduleRow));
    $("no-schedules").classList.toggle("hidden", schedules.length > 0);
    $("webhooks").querySelector("tbody").replaceChildren(...webhooks.map(webhookRow));
    $("no-webhooks").classList.toggle("hidden", webhooks.length > 0);
    $("recent").querySelector("tbody").replaceChildren(...recent.items.map(executionRow));
    $("no-recent").classList.toggle("hidden", recent.items.length > 0);
    $("success-rate").replaceChildren(rate(stats));
  }

  $("start-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const text = $("start-input").value.trim();
    let input = null;
    if (text) {
      try { input = JSON.parse(text); } catch (err) {
        showError(`The input is not valid JSON: ${err.message}`);
        return;
      }
    }
    const body = { input, version: Number($("start-version").value) };
    if ($("start-priority").value) body.priority = Number($("start-priority").value);
    $("start-button").disabled = true;
    try {
      const started = await api(`/api/workflows/${enc(state.workflow)}/executions`, { method: "POST", body });
      showInfo("Started ", el("a", { id: "started-link", href: `/executions/${started.execution_id}` }, started.execution_id),
        ` (v${$("start-version").value}).`);
      await refreshDynamic();
    } catch (err) {
      showError(err.message);
    } finally {
      $("start-button").disabled = false;
    }
  });

  Spane.setupChrome("workflows");
  loadList()
    .then(() => loadWorkflow())
    .then(() => Spane.poll(() => refreshDynamic().catch((err) => showError(err.message)), POLL_MS))
    .catch((err) => showError(err.status === 404 ? `Workflow ${state.workflow} is not registered.` : err.message));
})();
