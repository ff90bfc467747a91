// One execution: facts, control buttons, the DAG, the timeline of its spans, the selected
// node's input, output, error and logs, and all log lines. Refreshed live until it ends.
"use strict";

(() => {
  const { api, el, badge, fmtTime, fmtDateTime, fmtDuration, json, showError, showInfo } = Spane;
  const executionId = decodeURIComponent(window.location.pathname.split("/").filter(Boolean).pop());
  const TERMINAL = ["completed", "failed", "cancelled"];
  // Which buttons an execution's status allows (the server refuses the rest with a 409).
  const ALLOWED = {
    pause: ["running"],
    resume: ["paused"],
    cancel: ["queued", "running", "paused"],
    retry: ["failed"],
    replay: ["queued", "running", "paused", "completed", "failed", "cancelled"],
  };
  let trace = null;
  let selected = new URLSearchParams(window.location.search).get("node"); // from the approvals page
  let liveUpdates = null;

  function facts(exec) {
    const rows = [
      ["Workflow", el("span", {}, exec.workflow_id, el("span", { class: "muted" }, ` v${exec.workflow_version}`))],
      ["Started", fmtTime(exec.started_at)],
      ["Completed", exec.completed_at ? fmtTime(exec.completed_at) : "—"],
      ["Duration", exec.completed_at ? fmtDuration(Date.parse(exec.completed_at) - Date.parse(exec.started_at)) : `${fmtDuration(Date.now() - Date.parse(exec.started_at))} so far`],
    ];
    if (exec.priority) rows.push(["Priority", String(exec.priority)]);
    if (exec.parent_execution_id) {
      // A sub-workflow's execution: back to its parent, on the node that started it.
      const node = exec.metadata && exec.metadata.parent_node_id;
      const href = `/executions/${exec.parent_execution_id}${node ? `?node=${encodeURIComponent(node)}` : ""}`;
      rows.push(["Parent", el("span", {}, el("a", { id: "parent-link", href }, exec.parent_execution_id),
        node ? el("span", { class: "muted" }, ` (node ${node})`) : "")]);
    }
    if (exec.metadata && exec.metadata.replayed_from) rows.push(["Replay of", el("a", { href: `/executions/${exec.metadata.replayed_from}` }, exec.metadata.replayed_from)]);
    if (exec.error) rows.push(["Error", el("span", { class: "error-text" }, exec.error)]);
    document.getElementById("facts").replaceChildren(...rows.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v)]));
  }

  function buttons(status) {
    for (const b of document.querySelectorAll("#actions button")) {
      b.disabled = !ALLOWED[b.dataset.action].includes(status);
    }
  }

  function nodeDetail() {
    const box = document.getElementById("node-detail");
    document.getElementById("node-title").textContent = selected || "";
    if (!selected || !trace) return;
    const graphNode = trace.graph ? trace.graph.nodes.find((n) => n.id === selected) : null;
    const result = trace.execution.node_results[selected];
    const status = result ? result.status : (graphNode ? graphNode.status : "pending");
    const parts = [];
    const rows = [["Status", badge(status)]];
    if (graphNode) rows.push(["Type", graphNode.type]);
    if (result) {
      rows.push(["Attempts", String(result.attempts)]);
      if (result.started_at) rows.push(["Started", fmtTime(result.started_at)]);
      if (result.completed_at) rows.push(["Completed", fmtTime(result.completed_at)]);
      if (result.started_at && result.completed_at) rows.push(["Duration", fmtDuration(Date.parse(result.completed_at) - Date.parse(result.started_at))]);
      if (result.next_nodes) rows.push(["Next nodes", result.next_nodes.join(", ") || "none"]);
    }
    parts.push(el("dl", { class: "facts" }, rows.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v)])));
    if (graphNode && graphNode.type === "sub-workflow") parts.push(...childLinks(selected));
    if (graphNode && graphNode.status !== "pending") parts.push(el("h2", {}, "Input"), el("div", { id: "node-input" }, json(graphNode.input)));
    if (result && result.status === "succeeded") parts.push(el("h2", {}, "Output"), el("div", { id: "node-output" }, json(result.data)));
    if (result && result.error) parts.push(el("h2", {}, "Error"), el("pre", { class: "json" }, result.error));
    const failedSpan = [...trace.spans].reverse().find((s) => s.node_id === selected && s.traceback);
    if (failedSpan) parts.push(el("h2", {}, "Traceback"), el("pre", { class: "json" }, failedSpan.traceback));
    const lines = trace.logs.filter((l) => l.node_id === selected);
    if (lines.length) {
      parts.push(el("h2", {}, "Logs"), el("table", { class: "logs" }, el("tbody", {}, lines.map(logRow))));
    }
    box.replaceChildren(...parts);
  }

  // A sub-workflow node's child executions (one per run of the node: a retry starts
  // another), newest first, each a link.
  function childLinks(nodeId) {
    const kids = trace.children
      .filter((c) => c.metadata && c.metadata.parent_node_id === nodeId)
      .sort((a, b) => (a.execution_id < b.execution_id ? 1 : -1));
    if (!kids.length) return [el("p", { class: "muted" }, "No child execution yet.")];
    return [el("h2", {}, kids.length === 1 ? "Child execution" : "Child executions"),
      el("ul", { id: "node-children", class: "children-list" }, kids.map((c) => el("li", {},
        el("a", { class: "mono", href: `/executions/${c.execution_id}`, dataset: { executionId: c.execution_id } }, c.execution_id),
        " ", badge(c.status), ` ${c.workflow_id}`)))];
  }

  function logRow(l) {
    const fields = l.fields && Object.keys(l.fields).length ? JSON.stringify(l.fields) : "";
    return el("tr", {},
      el("td", { class: "mono" }, fmtTime(l.timestamp)),
      el("td", { class: `level-${l.level}` }, l.level),
      el("td", { class: "mono" }, l.node_id || ""),
      el("td", {}, l.message),
      el("td", { class: "mono" }, fields));
  }

  // A size as a person reads it: "532 B", "12.4 KiB", "3.0 MiB" (the exact bytes in its title).
  function fmtBytes(n) {
    if (n < 1024) return `${n} B`;
    const units = ["KiB", "MiB", "GiB", "TiB"];
    let value = n / 1024;
    let unit = 0;
    while (value >= 1024 && unit < units.length - 1) { value /= 1024; unit += 1; }
    return `${value.toFixed(value < 10 ? 1 : 0)} ${units[unit]}`;
  }

  // The API route of an artifact's bytes, each segment of its name percent-encoded (a name
  // may hold slashes, spaces, "#", "?" ...). A "." or ".." segment would be resolved away by
  // the browser, even percent-encoded: such a name goes as one segment, its slashes too.
  // (A name that is just "." or "..": no URL reaches it, null.)
  function artifactUrl(name) {
    if (name === "." || name === "..") return null;
    const segments = name.split("/");
    const path = segments.some((s) => s === "." || s === "..")
      ? encodeURIComponent(name)
      : segments.map(encodeURIComponent).join("/");
    return `/api/executions/${encodeURIComponent(executionId)}/artifacts/${path}`;
  }

  function fileName(name) {
    return name.replace(/[/\\]/g, "_");
  }

  // With no API token the browser follows the link (the server answers with an attachment).
  // With one, the token goes in the Authorization header as for every other call, never in
  // the URL: the bytes are fetched, then saved from a blob.
  async function download(ev, info) {
    const t = Spane.token();
    if (!t) return;
    ev.preventDefault();
    try {
      const res = await fetch(ev.currentTarget.href, { headers: { Authorization: `Bearer ${t}` } });
      if (!res.ok) {
        let body = null;
        try { body = await res.json(); } catch (_) { /* not JSON */ }
        if (res.status === 401) {
          const form = document.getElementById("token-form");
          if (form) form.classList.remove("hidden");
        }
        throw new Spane.ApiError(res.status, body);
      }
      const url = URL.createObjectURL(await res.blob());
      const save = el("a", { href: url, download: fileName(info.name), class: "hidden" });
      document.body.append(save);
      save.click();
      save.remove();
      window.setTimeout(() => URL.revokeObjectURL(url), 60000);
    } catch (err) {
      showError(`Artifact ${info.name}: ${err.message}`);
    }
  }

  function artifacts() {
    const list = trace.artifacts || [];
    const rows = list.map((a) => el("tr", { dataset: { artifactName: a.name, nodeId: a.node_id || "" } },
      el("td", { class: "mono name" }, a.name),
      el("td", { class: "mono node" }, a.node_id || "—"),
      el("td", { class: "mono type" }, a.content_type),
      el("td", { class: "num size", title: `${a.size} bytes`, dataset: { bytes: String(a.size) } }, fmtBytes(a.size)),
      el("td", { class: "when" }, fmtDateTime(a.created_at)),
      el("td", {}, artifactUrl(a.name) === null
        ? el("span", { class: "muted", title: "no URL can name this artifact" }, "—")
        : el("a", {
          class: "download", href: artifactUrl(a.name), download: fileName(a.name),
          onclick: (ev) => download(ev, a),
        }, "Download"))));
    document.querySelector("#artifacts tbody").replaceChildren(...rows);
    document.getElementById("artifacts").classList.toggle("hidden", !list.length);
    document.getElementById("artifacts-empty").classList.toggle("hidden", list.length > 0);
    document.getElementById("artifacts-count").textContent = list.length ? `(${list.length})` : "";
  }

  function select(nodeId) {
    selected = nodeId;
    render();
  }

  function render() {
    const exec = trace.execution;
    document.title = `spane · ${exec.workflow_id} ${exec.status}`;
    document.getElementById("execution-id").textContent = exec.execution_id;
    document.getElementById("execution-id").title = exec.execution_id;
    document.getElementById("execution-status").replaceChildren(badge(exec.status));
    facts(exec);
    buttons(exec.status);
    if (trace.graph) {
      SpaneDag.draw(document.getElementById("dag"), trace.graph, { selected, onSelect: select });
    } else {
      document.getElementById("dag").replaceChildren(el("p", { class: "muted" }, "This workflow version is no longer stored."));
    }
    SpaneTimeline.draw(document.getElementById("timeline"), trace, { now: Date.now(), selected, onSelect: select });
    nodeDetail();
    document.getElementById("execution-data").replaceChildren(
      el("h2", {}, "Initial data"), json(exec.initial_data),
      el("h2", {}, "Metadata"), json(exec.metadata));
    const kids = trace.children.map((c) => el("li", {}, el("a", { href: `/executions/${c.execution_id}` }, c.execution_id), " ", badge(c.status), ` ${c.workflow_id}`));
    document.getElementById("children").replaceChildren(...(kids.length ? [el("h2", {}, "Sub-workflows"), el("ul", {}, kids)] : []));
    artifacts();
    const logs = document.querySelector("#logs tbody");
    logs.replaceChildren(...trace.logs.map(logRow));
    document.getElementById("logs-empty").classList.toggle("hidden", trace.logs.length > 0);
  }

  // The wait nodes waiting for a person: their approval forms (approval.js).
  async function refreshApprovals() {
    const panel = document.getElementById("approval-panel");
    const waits = (trace.graph ? trace.graph.nodes : []).filter((n) => n.type === "wait" && n.status === "waiting");
    if (!waits.length || TERMINAL.includes(trace.execution.status)) {
      panel.classList.add("hidden");
      document.getElementById("approvals").replaceChildren();
      return;
    }
    const approvals = await api(`/api/approvals?execution_id=${encodeURIComponent(executionId)}`);
    const listed = new Set(approvals.map((a) => a.node_id));
    const stuck = waits.map((n) => n.id).filter((id) => !listed.has(id));
    SpaneApproval.render(document.getElementById("approvals"), approvals, stuck, () => { startLive(); refresh(); });
    panel.classList.remove("hidden");
  }

  async function refresh() {
    try {
      trace = await api(`/api/executions/${encodeURIComponent(executionId)}/trace`);
      await refreshApprovals();
      if (selected === null) { // start on the failed node, else the first one
        const failed = Object.values(trace.execution.node_results).find((r) => r.status === "failed");
        selected = failed ? failed.node_id : (trace.graph && trace.graph.nodes.length ? trace.graph.nodes[0].id : null);
      }
      render();
      if (TERMINAL.includes(trace.execution.status) && liveUpdates) {
        liveUpdates.stop(); // nothing changes any more, unless a button is pressed
        liveUpdates = null;
        const indicator = document.getElementById("live");
        indicator.className = "live";
        indicator.textContent = `${trace.execution.status}`;
      }
    } catch (err) {
      showError(err.status === 404 ? `Execution ${executionId} does not exist.` : err.message);
      if (err.status === 404 && liveUpdates) { liveUpdates.stop(); liveUpdates = null; }
    }
  }

  function startLive() {
    if (!liveUpdates) liveUpdates = Spane.live(refresh, { pollMs: 1000, query: `execution_id=${encodeURIComponent(executionId)}` });
  }

  for (const b of document.querySelectorAll("#actions button")) {
    b.addEventListener("click", async () => {
      const action = b.dataset.action;
      if (action === "cancel" && !window.confirm("Cancel this execution?")) return;
      b.disabled = true;
      try {
        const res = await api(`/api/executions/${encodeURIComponent(executionId)}/${action}`, { method: "POST" });
        if (action === "replay") {
          showInfo("Replayed as ", el("a", { href: `/executions/${res.execution_id}` }, res.execution_id), ".");
        } else {
          showInfo(`${action}: ${res.changed ? "done" : "nothing to do"}, the execution is ${res.status}.`);
          startLive();
        }
      } catch (err) {
        showError(err.message);
      }
      await refresh();
    });
  }

  Spane.setupChrome("executions");
  startLive();
})();
