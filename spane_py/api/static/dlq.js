// The dead-letter queue: items grouped by the first line of their error (each group with
// a count and a Retry all button), and every item newest first, each with a Retry button.
"use strict";

(() => {
  const { api, el, fmtTime, fmtDateTime, showError, showInfo } = Spane;
  const LIMIT = 1000; // the newest items read (the route's most)
  const includeRetried = document.getElementById("include-retried");

  function row(item) {
    const retry = el("button", {
      type: "button",
      class: "retry",
      disabled: item.retried_at !== null,
      title: item.retried_at ? `retried at ${fmtTime(item.retried_at)}` : "run the node again",
      onclick: async () => {
        retry.disabled = true;
        try {
          await api(`/api/dlq/${item.dlq_id}/retry`, { method: "POST" });
          showInfo(`Item ${item.dlq_id} retried: `, el("a", { href: `/executions/${item.execution_id}` }, "its execution"), " runs again.");
        } catch (err) {
          showError(err.message);
        }
        refresh();
      },
    }, item.retried_at ? "Retried" : "Retry");
    return el("tr", { dataset: { dlqId: String(item.dlq_id) } },
      el("td", {}, String(item.dlq_id)),
      el("td", { class: "mono" }, el("a", { href: `/executions/${item.execution_id}`, title: item.execution_id }, item.execution_id)),
      el("td", {}, item.workflow_id),
      el("td", { class: "mono" }, item.node_id),
      el("td", {}, String(item.attempts)),
      el("td", {}, fmtTime(item.failed_at)),
      el("td", { class: "error", title: item.error }, item.error),
      el("td", {}, retry));
  }

  function firstLine(error) {
    return (error || "").split(/\r?\n/, 1)[0].trim() || "(no message)";
  }

  // The items not retried yet, by the first line of their error, most items first.
  function groups(items) {
    const byLine = new Map();
    for (const item of items) {
      if (item.retried_at !== null) continue;
      const line = firstLine(item.error);
      if (!byLine.has(line)) byLine.set(line, []);
      byLine.get(line).push(item);
    }
    return [...byLine.entries()]
      .map(([line, members]) => ({ line, members }))
      .sort((a, b) => b.members.length - a.members.length || (a.line < b.line ? -1 : 1));
  }

  function groupRow({ line, members }) {
    const uniq = (key) => [...new Set(members.map((m) => m[key]))].sort().join(", ");
    const last = members.reduce((t, m) => (m.failed_at > t ? m.failed_at : t), "");
    const button = el("button", {
      type: "button",
      class: "retry-all",
      onclick: () => retryAll(line, members, button),
    }, `Retry all (${members.length})`);
    return el("tr", { dataset: { count: String(members.length), error: line } },
      el("td", { class: "error-line", title: line }, line),
      el("td", { class: "num" }, String(members.length)),
      el("td", {}, uniq("workflow_id")),
      el("td", { class: "mono" }, uniq("node_id")),
      el("td", { class: "when" }, fmtDateTime(last)),
      el("td", {}, button));
  }

  async function retryAll(line, members, button) {
    const n = members.length;
    if (!window.confirm(`Retry ${n} dead letter${n === 1 ? "" : "s"} failed with "${line}"?`)) return;
    button.disabled = true;
    try {
      const res = await api("/api/dlq/retry", { method: "POST", body: { dlq_ids: members.map((m) => m.dlq_id) } });
      const refused = Object.entries(res.errors);
      showInfo(`Retried ${res.retried.length} of ${n}: their executions run again.`,
        ...refused.map(([id, why]) => el("div", { class: "refused", dataset: { dlqId: id } }, `Item ${id}: ${why}`)));
    } catch (err) {
      showError(err.message);
    }
    refresh();
  }

  async function refresh() {
    try {
      const page = await api(`/api/dlq?limit=${LIMIT}&include_retried=${includeRetried.checked}`);
      document.querySelector("#dlq tbody").replaceChildren(...page.items.map(row));
      document.getElementById("empty").classList.toggle("hidden", page.items.length > 0);
      const found = groups(page.items);
      document.querySelector("#dlq-groups tbody").replaceChildren(...found.map(groupRow));
      document.getElementById("groups-empty").classList.toggle("hidden", found.length > 0);
      const note = document.getElementById("groups-note");
      note.textContent = page.total > page.items.length ? `Grouped: the newest ${page.items.length} of ${page.total} items.` : "";
      note.classList.toggle("hidden", !note.textContent);
    } catch (err) {
      showError(err.message);
    }
  }

  includeRetried.addEventListener("change", refresh);
  document.getElementById("purge").addEventListener("click", async () => {
    if (!window.confirm("Delete every dead-letter item?")) return;
    try {
      const res = await api("/api/dlq", { method: "DELETE" });
      showInfo(`Purged ${res.purged} item(s).`);
    } catch (err) {
      showError(err.message);
    }
    refresh();
  });

  Spane.setupChrome("dlq");
  Spane.live(refresh, { pollMs: 3000 });
})();
