// Selecting executions on the list and acting on them at once: a checkbox per row, one
// for every row on the page, "select all matching" (every execution the search finds, up
// to the bulk route's limit), and Cancel, Retry and Replay through
// POST /api/executions/bulk/{action}, with each execution's outcome shown.
"use strict";

const SpaneBulk = (() => {
  const { api, el, showError } = Spane;
  const CAP = 1000; // the bulk route takes at most this many ids
  const LABEL = { cancel: "Cancel", retry: "Retry", replay: "Replay" };

  // `visibleIds()`: the ids of the rows shown; `matchingQuery(extra)`: the list's query
  // with the search (URLSearchParams); `onDone()`: refresh the list.
  function setup({ visibleIds, matchingQuery, onDone }) {
    const selected = new Set();
    let note = "";
    const bar = document.getElementById("bulk-bar");
    const count = document.getElementById("selected-count");
    const pageBox = document.getElementById("select-page");
    const result = document.getElementById("bulk-result");

    function render() {
      const shown = visibleIds();
      const onPage = shown.filter((id) => selected.has(id)).length;
      count.textContent = selected.size
        ? `${selected.size} selected${selected.size > onPage ? ` (${onPage} on this page)` : ""}${note}`
        : "none selected";
      count.classList.toggle("muted", !selected.size);
      bar.dataset.selected = String(selected.size);
      for (const b of bar.querySelectorAll("button[data-bulk], #select-none")) b.disabled = !selected.size;
      pageBox.checked = shown.length > 0 && onPage === shown.length;
      pageBox.indeterminate = onPage > 0 && onPage < shown.length;
      for (const box of document.querySelectorAll("#executions td.select input")) {
        box.checked = selected.has(box.dataset.executionId);
      }
    }

    function checkbox(executionId) {
      return el("input", {
        type: "checkbox",
        "aria-label": `select ${executionId}`,
        dataset: { executionId },
        checked: selected.has(executionId),
        onchange: (ev) => {
          if (ev.target.checked) selected.add(executionId); else selected.delete(executionId);
          note = "";
          render();
        },
      });
    }

    pageBox.addEventListener("change", () => {
      for (const id of visibleIds()) {
        if (pageBox.checked) selected.add(id); else selected.delete(id);
      }
      note = "";
      render();
    });

    document.getElementById("select-none").addEventListener("click", () => {
      selected.clear();
      note = "";
      render();
    });

    // Every execution the search finds, newest first, up to CAP (pages of 500).
    const matchingButton = document.getElementById("select-matching");
    matchingButton.addEventListener("click", async () => {
      matchingButton.disabled = true;
      try {
        const ids = [];
        let cursor = null;
        let more = false;
        do {
          const q = matchingQuery({ limit: String(Math.min(500, CAP - ids.length)) });
          if (cursor) q.set("cursor", cursor);
          const page = await api(`/api/executions?${q}`);
          ids.push(...page.items.map((x) => x.execution_id));
          cursor = page.next_cursor;
          more = Boolean(cursor);
        } while (cursor && ids.length < CAP);
        if (more && !window.confirm(`More than ${CAP} executions match: select the newest ${CAP}?`)) return;
        selected.clear();
        for (const id of ids) selected.add(id);
        note = more ? ` (the newest ${CAP} of more that match)` : " (all that match)";
        render();
      } catch (err) {
        showError(err.message);
      } finally {
        matchingButton.disabled = false;
      }
    });

    for (const button of bar.querySelectorAll("button[data-bulk]")) {
      button.addEventListener("click", () => act(button.dataset.bulk));
    }

    async function act(action) {
      const ids = [...selected];
      if (!ids.length) return;
      const what = `${ids.length} execution${ids.length === 1 ? "" : "s"}`;
      if (!window.confirm(`${LABEL[action]} ${what}?`)) return;
      for (const b of bar.querySelectorAll("button[data-bulk]")) b.disabled = true;
      try {
        const body = { execution_ids: ids };
        if (action === "cancel") body.reason = "cancelled from the dashboard";
        const res = await api(`/api/executions/bulk/${action}`, { method: "POST", body });
        showResult(action, ids, res);
        selected.clear();
        note = "";
      } catch (err) {
        showError(err.message);
      }
      render();
      onDone();
    }

    // Each execution's outcome: changed, unchanged (already so), refused (why), and a
    // replay's new execution.
    function showResult(action, ids, res) {
      const changed = new Set(res.changed);
      const unchanged = new Set(res.unchanged);
      const rows = ids.map((id) => {
        let outcome = "error";
        let text = res.errors[id] || "";
        if (changed.has(id)) { outcome = "changed"; text = action === "replay" ? "replayed as " : "done"; }
        else if (unchanged.has(id)) { outcome = "unchanged"; text = "nothing to do"; }
        const created = res.created[id];
        return el("tr", { dataset: { executionId: id, outcome } },
          el("td", { class: "mono" }, el("a", { href: `/executions/${id}` }, id)),
          el("td", {}, el("span", { class: `outcome ${outcome}` }, outcome)),
          el("td", {}, text, created ? el("a", { class: "mono", href: `/executions/${created}` }, created) : ""));
      });
      const errors = Object.keys(res.errors).length;
      result.replaceChildren(
        el("div", { class: "row" },
          el("h2", { class: "grow" }, `${LABEL[action]}: ${res.changed.length} done, ${res.unchanged.length} unchanged, ${errors} refused`),
          el("button", { type: "button", onclick: () => result.classList.add("hidden") }, "Close")),
        el("div", { class: "bulk-table" }, el("table", {}, el("tbody", {}, rows))));
      result.dataset.action = action;
      result.classList.remove("hidden");
    }

    render();
    return { checkbox, render, selected };
  }

  return { setup, CAP };
})();
