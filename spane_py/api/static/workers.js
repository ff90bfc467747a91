// Workers and queues: each queue's depth, running jobs, oldest wait and live workers
// (an unserved one stands out), and the live workers with what they consume and run.
// Heartbeats are not events: the page polls every 3 s.
"use strict";

(() => {
  const { api, el, fmtTime, fmtSpan, showError } = Spane;
  const POLL_MS = 3000;

  function queueRow(q) {
    let state;
    if (q.unserved) state = el("span", { class: "badge status-failed" }, "unserved: no worker!");
    else if (!q.workers) state = el("span", { class: "muted" }, "idle, no worker");
    else if (q.queued) state = el("span", { class: "badge warn" }, "backlog");
    else state = el("span", { class: "badge ok" }, "served");
    return el("tr", { class: q.unserved ? "unserved" : "", dataset: { queue: q.name, unserved: String(q.unserved) } },
      el("td", { class: "mono" }, q.name),
      el("td", { class: "num depth" }, String(q.queued)),
      el("td", { class: "num" }, String(q.running)),
      el("td", { class: "num" }, q.oldest_waiting_s === null ? "—" : fmtSpan(q.oldest_waiting_s * 1000)),
      el("td", { class: "num workers" }, String(q.workers)),
      el("td", {}, state));
  }

  function workerRow(w) {
    const beat = new Date(Date.now() - w.seconds_since_beat * 1000).toISOString();
    const started = w.started_at ? new Date(w.started_at * 1000).toISOString() : null;
    const busy = w.concurrency ? w.running / w.concurrency : 0;
    return el("tr", { dataset: { workerId: w.worker_id } },
      el("td", { class: "mono", title: w.worker_id }, w.worker_id),
      el("td", {}, w.host || "—"),
      el("td", { class: "num" }, w.pid ? String(w.pid) : "—"),
      el("td", { class: "queues" }, el("span", { class: "chips" },
        w.queues.length ? w.queues.map((q) => el("span", { class: "chip mono", dataset: { queue: q } }, q)) : "—")),
      el("td", { class: "num" }, String(w.concurrency || "—")),
      el("td", { class: `num running${busy >= 1 ? " error-text" : ""}`, title: busy >= 1 ? "every slot is busy" : "" },
        String(w.running)),
      el("td", { title: fmtTime(beat) }, `${fmtSpan(w.seconds_since_beat * 1000)} ago`),
      el("td", {}, started ? fmtTime(started) : "—"));
  }

  async function refresh() {
    try {
      const [queues, workers] = await Promise.all([api("/api/queues"), api("/api/workers")]);
      document.querySelector("#queues tbody").replaceChildren(...queues.map(queueRow));
      document.querySelector("#workers tbody").replaceChildren(...workers.map(workerRow));
      document.getElementById("no-workers").classList.toggle("hidden", workers.length > 0);
      const slots = workers.reduce((n, w) => n + (w.concurrency || 0), 0);
      const running = workers.reduce((n, w) => n + (w.running || 0), 0);
      document.getElementById("worker-total").textContent =
        workers.length ? `${workers.length} · ${running} of ${slots} slots busy` : "";
      Spane.checkWorkers(queues); // the banner, from the same answer
      showError(null);
    } catch (err) {
      showError(err.message);
    }
  }

  Spane.setupChrome("workers");
  Spane.poll(refresh, POLL_MS);
})();
