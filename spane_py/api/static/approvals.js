// Everything waiting for a person: the wait nodes waiting for their resume token across
// executions (GET /api/approvals), each linked to its execution's approval form.
"use strict";

(() => {
  const { api, el, badge, fmtTime, fmtRelative, showError } = Spane;

  function when(iso, empty) {
    if (!iso) return el("span", { class: "muted" }, empty);
    return el("span", { title: fmtTime(iso) }, fmtRelative(iso));
  }

  function row(a) {
    const review = `/executions/${encodeURIComponent(a.execution_id)}?node=${encodeURIComponent(a.node_id)}`;
    const input = a.input === null || a.input === undefined ? "" : JSON.stringify(a.input);
    const timeout = a.times_out_at
      ? el("span", {}, when(a.times_out_at), el("span", { class: "muted" }, a.on_timeout === "continue" ? " then continues" : " then fails"))
      : when(null, "no timeout");
    return el("tr", { dataset: { executionId: a.execution_id, nodeId: a.node_id } },
      el("td", { class: "mono" }, el("a", { href: `/executions/${a.execution_id}`, title: a.execution_id }, a.execution_id),
        a.execution_status !== "running" ? [" ", badge(a.execution_status)] : null),
      el("td", {}, el("a", { href: `/workflows?workflow=${encodeURIComponent(a.workflow_id)}` }, a.workflow_id),
        el("span", { class: "muted" }, ` v${a.workflow_version}`)),
      el("td", { class: "mono" }, a.node_name && a.node_name !== a.node_id ? `${a.node_name} (${a.node_id})` : a.node_id),
      el("td", {}, when(a.waiting_since, "—")),
      el("td", {}, timeout),
      el("td", {}, when(a.token_expires_at, "never")),
      el("td", { class: "mono clip", title: input }, input.length > 80 ? `${input.slice(0, 79)}…` : input),
      el("td", {}, el("a", { class: "button review", href: review }, "Review →")));
  }

  async function refresh() {
    try {
      const items = await api("/api/approvals");
      document.querySelector("#approvals tbody").replaceChildren(...items.map(row));
      document.getElementById("empty").classList.toggle("hidden", items.length > 0);
      const count = document.getElementById("approvals-count");
      if (count) count.textContent = items.length ? String(items.length) : "";
      showError(null);
    } catch (err) {
      showError(err.message);
    }
  }

  Spane.setupChrome("approvals");
  Spane.live(refresh, { pollMs: 3000 });
})();
