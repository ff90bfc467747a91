// Shared helpers of the dashboard pages: calling the API, building DOM safely (text
// nodes only: node outputs and error messages are user data, never HTML), formatting,
// and live updates (Server-Sent Events when the server has them, polling otherwise).
"use strict";

const Spane = (() => {
  const TOKEN_KEY = "spane.apiToken";

  class ApiError extends Error {
    constructor(status, body) {
      const err = (body && body.error) || {};
      super(err.message || `HTTP ${status}`);
      this.status = status;
      this.code = err.code || "HTTP_ERROR";
    }
  }

  function token() {
    return window.localStorage.getItem(TOKEN_KEY);
  }

  async function api(path, { method = "GET", body } = {}) {
    const headers = { Accept: "application/json" };
    const t = token();
    if (t) headers.Authorization = `Bearer ${t}`;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const res = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    let data = null;
    const text = await res.text();
    if (text) {
      try { data = JSON.parse(text); } catch (_) { data = { error: { message: text } }; }
    }
    if (!res.ok) {
      if (res.status === 401) askForToken();
      throw new ApiError(res.status, data);
    }
    return data;
  }

  // el("td", {class: "x", dataset: {id: "1"}, onclick: fn}, "text", child, ...)
  function el(tag, attrs, ...children) {
    const svg = ["svg", "g", "rect", "path", "text", "line", "title", "defs", "marker", "tspan"];
    const node = svg.includes(tag)
      ? document.createElementNS("http://www.w3.org/2000/svg", tag)
      : document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (key === "dataset") Object.assign(node.dataset, value);
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else if (key === "text") node.textContent = value;
      else node.setAttribute(key, value === true ? "" : String(value));
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function badge(status) {
    return el("span", { class: `badge status-${status}`, dataset: { status } }, status);
  }

  function shortId(id) {
    return id ? id.slice(0, 8) : "";
  }

  function fmtTime(iso) {
    if (!iso) return "";
    const d = new Date(iso);
    const pad = (n, w = 2) => String(n).padStart(w, "0");
    const today = new Date();
    const time = `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
    if (d.toDateString() === today.toDateString()) return time;
    return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${time}`;
  }

  // The date beside the time, always: "2030-01-31 14:05:09" (the browser's time zone).
  function fmtDateTime(iso) {
    if (!iso) return "";
    const d = new Date(iso);
    const pad = (n) => String(n).padStart(2, "0");
    return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  }

  function fmtDuration(ms) {
    if (ms === null || ms === undefined || Number.isNaN(ms)) return "";
    if (ms < 1) return `${ms.toFixed(2)} ms`;
    if (ms < 1000) return `${ms.toFixed(ms < 10 ? 1 : 0)} ms`;
    if (ms < 60000) return `${(ms / 1000).toFixed(2)} s`;
    const m = Math.floor(ms / 60000);
    return `${m} min ${Math.round((ms % 60000) / 1000)} s`;
  }

  // "in 59 min", "3.2 s ago": a time relative to now, for deadlines and heartbeats.
  function fmtRelative(iso) {
    if (!iso) return "";
    const ms = Date.parse(iso) - Date.now();
    const text = fmtSpan(Math.abs(ms));
    return ms >= 0 ? `in ${text}` : `${text} ago`;
  }

  function fmtSpan(ms) {
    if (ms < 60000) return `${(ms / 1000).toFixed(ms < 10000 ? 1 : 0)} s`;
    if (ms < 3600000) return `${Math.round(ms / 60000)} min`;
    if (ms < 86400000 * 2) return `${(ms / 3600000).toFixed(1)} h`;
    return `${Math.round(ms / 86400000)} days`;
  }

  function json(value) {
    return el("pre", { class: "json" }, value === undefined ? "" : JSON.stringify(value, null, 2));
  }

  function showError(message) {
    const box = document.getElementById("banner");
    if (!box) return;
    box.className = message ? "banner error" : "banner hidden";
    box.textContent = message || "";
  }

  function showInfo(...content) {
    const box = document.getElementById("banner");
    if (!box) return;
    box.className = "banner info";
    box.replaceChildren(...content);
  }

  function askForToken() {
    const form = document.getElementById("token-form");
    if (form) form.classList.remove("hidden");
  }

  function setupChrome(page) {
    for (const a of document.querySelectorAll("header nav a")) {
      if (a.dataset.nav === page) a.classList.add("active");
    }
    const form = document.getElementById("token-form");
    if (form) {
      form.addEventListener("submit", (ev) => {
        ev.preventDefault();
        const value = form.querySelector("input").value.trim();
        if (value) window.localStorage.setItem(TOKEN_KEY, value);
        else window.localStorage.removeItem(TOKEN_KEY);
        window.location.reload();
      });
    }
    refreshDlqCount();
    window.setInterval(refreshDlqCount, 10000);
    refreshApprovalCount();
    window.setInterval(refreshApprovalCount, 10000);
    checkWorkers();
    window.setInterval(checkWorkers, WORKER_CHECK_MS);
  }

  async function refreshApprovalCount() {
    const badgeEl = document.getElementById("approvals-count");
    if (!badgeEl) return;
    try {
      const waiting = await api("/api/approvals");
      badgeEl.textContent = waiting.length ? String(waiting.length) : "";
    } catch (_) { /* the pages show their own errors */ }
  }

  // The banner of every page when work cannot progress: jobs wait on a queue that no live
  // worker consumes, or no worker is alive at all while executions run. `queues` is an
  // answer of /api/queues when the caller has one (the workers page), else it is fetched.
  const WORKER_CHECK_MS = 5000;
  async function checkWorkers(queues) {
    const main = document.querySelector("main");
    if (!main) return;
    let box = document.getElementById("worker-banner");
    if (!box) {
      box = el("div", { id: "worker-banner", class: "banner warn hidden", role: "status" });
      main.prepend(box);
    }
    try {
      const all = queues || await api("/api/queues");
      const unserved = all.filter((q) => q.unserved);
      const lines = unserved.map((q) => el("div", { class: "unserved", dataset: { queue: q.name } },
        `${q.queued} job${q.queued === 1 ? "" : "s"} wait${q.queued === 1 ? "s" : ""} on queue `,
        el("b", {}, q.name),
        q.oldest_waiting_s ? ` (the oldest for ${fmtSpan(q.oldest_waiting_s * 1000)})` : "",
        " and no live worker consumes it: start one with ",
        el("code", {}, `spane worker APP --queues ${q.name}`), "."));
      if (!unserved.length && all.every((q) => q.workers === 0)) {
        const stats = await api("/api/stats");
        const running = stats.executions.running || 0;
        if (running) {
          lines.push(el("div", { class: "no-worker" },
            `No worker is alive, and ${running} execution${running === 1 ? " is" : "s are"} running: `,
            "they make no progress until a worker starts (", el("code", {}, "spane worker APP"), ")."));
        }
      }
      box.dataset.unserved = unserved.map((q) => q.name).join(",");
      if (lines.length) {
        box.replaceChildren(...lines, el("a", { href: "/workers" }, "Workers and queues →"));
        box.classList.remove("hidden");
      } else {
        box.replaceChildren();
        box.classList.add("hidden");
      }
    } catch (_) { /* the pages show their own errors */ }
  }

  async function refreshDlqCount() {
    const badgeEl = document.getElementById("dlq-count");
    if (!badgeEl) return;
    try {
      const page = await api("/api/dlq?limit=1");
      badgeEl.textContent = page.total ? String(page.total) : "";
    } catch (_) { /* the pages show their own errors */ }
  }

  // The event stream, read with fetch() so that the token goes in the Authorization
  // header, never in the URL (which servers and proxies log): onEvent() per frame that
  // carries an event, onOpen() once it is open, onDown() when it is refused or dropped.
  // A dropped stream is opened again after the server's retry delay; one refused for good
  // (401: no or a wrong token, 501: the engine has none) is not.
  function eventStream(query, { onEvent, onOpen, onDown }) {
    let stopped = false;
    let controller = null;
    let retryMs = 3000;
    const frame = (text) => {
      let named = false;
      for (const line of text.split(/\r?\n/)) {
        if (line.startsWith("retry:")) {
          const ms = Number(line.slice(6).trim());
          if (Number.isFinite(ms) && ms > 0) retryMs = ms;
        } else if (line.startsWith("event:") || line.startsWith("data:")) {
          named = true;
        }
      }
      if (named) onEvent();
    };
    const connect = async () => {
      if (stopped) return;
      controller = new AbortController();
      const headers = { Accept: "text/event-stream" };
      const t = token();
      if (t) headers.Authorization = `Bearer ${t}`;
      let again = true;
      try {
        const res = await fetch(`/api/events${query ? `?${query}` : ""}`, {
          headers, cache: "no-store", signal: controller.signal,
        });
        if (!res.ok || !res.body) {
          if (res.status === 401) askForToken();
          again = res.status !== 401 && res.status !== 501;
        } else {
          onOpen();
          const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
          let buffer = "";
          for (;;) {
            const { value, done } = await reader.read();
            if (done) break;
            buffer += value;
            let end;
            while ((end = buffer.search(/\r?\n\r?\n/)) >= 0) {
              frame(buffer.slice(0, end));
              buffer = buffer.slice(end).replace(/^\r?\n\r?\n/, "");
            }
          }
        }
      } catch (_) { /* dropped, or stopped */ }
      if (stopped) return;
      onDown();
      if (again) window.setTimeout(connect, retryMs);
    };
    connect();
    return { stop: () => { stopped = true; if (controller) controller.abort(); } };
  }

  // Live updates: refresh() runs on every server event (debounced) when the event stream
  // works, and every pollMs otherwise. The indicator says which.
  function live(refresh, { pollMs = 1000, query = "" } = {}) {
    const indicator = document.getElementById("live");
    let timer = null;
    let pending = false;
    let stopped = false;
    let stream = null;
    const run = async () => {
      if (pending || stopped) return;
      pending = true;
      try { await refresh(); } finally { pending = false; }
    };
    const setMode = (mode, text) => {
      if (!indicator) return;
      indicator.className = `live ${mode}`;
      indicator.textContent = text;
      indicator.dataset.mode = mode === "on" && text.includes("events") ? "sse" : "poll";
    };
    const poll = (ms) => {
      if (timer) window.clearInterval(timer);
      timer = window.setInterval(run, ms);
    };
    const fallback = () => {
      setMode("on", `live (polling every ${pollMs / 1000} s)`);
      poll(pollMs);
    };
    if (window.fetch && window.ReadableStream && window.TextDecoderStream) {
      let debounce = null;
      const onEvent = () => {
        if (debounce) return;
        debounce = window.setTimeout(() => { debounce = null; run(); }, 150);
      };
      stream = eventStream(query, {
        onEvent,
        onOpen: () => {
          setMode("on", "live (events)");
          poll(Math.max(pollMs * 10, 10000)); // a slow safety net
        },
        // Refused or dropped: poll until it is open again.
        onDown: fallback,
      });
    }
    fallback(); // until the stream opens
    run();
    return {
      stop: () => {
        stopped = true;
        if (timer) window.clearInterval(timer);
        if (stream) stream.stop();
      },
      refresh: run,
    };
  }

  // Refresh every `ms` (for what the event stream does not announce: heartbeats, queue
  // depths); the indicator says so.
  function poll(refresh, ms) {
    const indicator = document.getElementById("live");
    if (indicator) {
      indicator.className = "live on";
      indicator.dataset.mode = "poll";
      indicator.textContent = `live (every ${ms / 1000} s)`;
    }
    let pending = false;
    const run = async () => {
      if (pending) return;
      pending = true;
      try { await refresh(); } finally { pending = false; }
    };
    run();
    const timer = window.setInterval(run, ms);
    return { stop: () => window.clearInterval(timer), refresh: run };
  }

  return {
    api, ApiError, el, badge, shortId, fmtTime, fmtDateTime, fmtDuration, fmtRelative, fmtSpan, json,
    showError, showInfo, setupChrome, live, poll, token, checkWorkers,
  };
})();
