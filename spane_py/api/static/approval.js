// The approval panel of an execution page: each `wait` node waiting for its resume token,
// what it waits for (its input, to decide on), when it times out and when its token
// expires, and a form to approve it (resume it with JSON data) or reject it (cancel the
// execution and revoke the token). A form is kept across refreshes: what was typed stays.
"use strict";

const SpaneApproval = (() => {
  const { api, el, json, fmtTime, fmtRelative, showError, showInfo } = Spane;

  function when(iso) {
    return iso ? el("span", {}, fmtTime(iso), el("span", { class: "muted" }, ` (${fmtRelative(iso)})`)) : null;
  }

  function facts(a) {
    const timeout = a.times_out_at
      ? el("span", {}, when(a.times_out_at), a.on_timeout === "continue"
        ? " — then it continues with its default output" : " — then the node fails")
      : el("span", { class: "muted" }, "never: it waits until it is resumed or the execution is cancelled");
    const rows = [
      ["Waits for", "a person (or a system) to resume it with its token"],
      ["Waiting since", when(a.waiting_since) || "—"],
      ["Times out", timeout],
      ["Token expires", when(a.token_expires_at) || "never"],
    ];
    if (a.execution_status !== "running") rows.push(["Execution", `${a.execution_status}: resumed, it goes on once the execution runs`]);
    return el("dl", { class: "facts" }, rows.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v)]));
  }

  function form(a, onDone) {
    const data = el("textarea", { class: "approve-data", rows: "3", spellcheck: "false", "aria-label": "resume data (JSON)" },
      '{"approved": true}');
    const reason = el("input", { class: "reject-reason", type: "text", placeholder: "why (optional)", "aria-label": "rejection reason" });
    const approve = el("button", { type: "button", class: "primary approve" }, "Approve: resume with this data");
    const reject = el("button", { type: "button", class: "danger reject" }, "Reject: cancel the execution");
    const busy = (on) => { approve.disabled = on; reject.disabled = on; };
    approve.addEventListener("click", async () => {
      let value = null;
      const text = data.value.trim();
      if (text) {
        try { value = JSON.parse(text); } catch (err) {
          showError(`The data is not valid JSON: ${err.message}`);
          return;
        }
      }
      busy(true);
      try {
        await api("/api/resume", { method: "POST", body: { token: a.token, data: value } });
        showInfo(`Approved: node ${a.node_id} resumed with the data given; the execution goes on.`);
      } catch (err) {
        showError(err.message);
      }
      busy(false);
      onDone();
    });
    reject.addEventListener("click", async () => {
      if (!window.confirm(`Reject: cancel execution ${a.execution_id} and revoke the token of node ${a.node_id}?`)) return;
      busy(true);
      const why = reason.value.trim();
      try {
        await api(`/api/executions/${encodeURIComponent(a.execution_id)}/cancel`, {
          method: "POST", body: { reason: why ? `rejected at ${a.node_id}: ${why}` : `rejected at ${a.node_id}` },
        });
        // The cancel ends the wait; the token could no longer resume anything, but it is
        // revoked too so that no list shows it as usable.
        await api("/api/resume-tokens/revoke", { method: "POST", body: { token: a.token } }).catch(() => null);
        showInfo(`Rejected: the execution is cancelled and the token of node ${a.node_id} revoked.`);
      } catch (err) {
        showError(err.message);
      }
      busy(false);
      onDone();
    });
    return el("div", { class: "approval-form" },
      el("label", {}, "Data to resume it with (JSON): the node's output, what the next nodes get"),
      data,
      el("div", { class: "actions" }, approve, reject, reason),
      el("p", { class: "note" },
        "Reject cancels the whole execution (with the reason) and revokes the token. ",
        "To take the token back and leave the node waiting until its timeout, revoke it with ",
        el("code", {}, "POST /api/resume-tokens/revoke"), "."));
  }

  // approvals: /api/approvals?execution_id= ; stuck: ids of wait nodes that wait with no
  // usable token (revoked or expired).
  function render(container, approvals, stuck, onDone) {
    const keep = new Map([...container.querySelectorAll(".approval")].map((box) => [box.dataset.nodeId, box]));
    const boxes = approvals.map((a) => {
      let box = keep.get(a.node_id);
      if (!box || box.dataset.tokenCreated !== a.token_created_at) {
        box = el("div", { class: "approval", dataset: { nodeId: a.node_id, tokenCreated: a.token_created_at } },
          el("h3", {}), el("div", { class: "approval-facts" }), el("div", { class: "approval-input" }), form(a, onDone));
      }
      const title = a.node_name && a.node_name !== a.node_id ? `${a.node_name} (${a.node_id})` : a.node_id;
      box.querySelector("h3").replaceChildren(`Node ${title} waits for approval`,
        a.node_description ? el("div", { class: "muted" }, a.node_description) : "");
      box.querySelector(".approval-facts").replaceChildren(facts(a));
      box.querySelector(".approval-input").replaceChildren(el("h2", {}, "Its input: what is to be approved"), json(a.input));
      return box;
    });
    const others = stuck.map((id) => el("div", { class: "approval stuck", dataset: { nodeId: id } },
      el("h3", {}, `Node ${id} waits, but has no usable token`),
      el("p", {}, "Its token was revoked or has expired: it ends at its timeout, if it has one. Cancel the execution to end it now.")));
    container.replaceChildren(...boxes, ...others);
    return boxes.length + others.length;
  }

  return { render };
})();
