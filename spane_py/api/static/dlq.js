// The dead-letter queue: items newest first, each with a Retry button.
"use strict";

(() => {
  const { api, el, fmtTime, showError, showInfo } = Spane;
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

  async function refresh() {
    try {
      const page = await api(`/api/dlq?limit=200&include_retried=${includeRetried.checked}`);
      document.querySelector("#dlq tbody").replaceChildren(...page.items.map(row));
      document.getElementById("empty").classList.toggle("hidden", page.items.length > 0);
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
