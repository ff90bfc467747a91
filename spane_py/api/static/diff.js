// A line diff of two texts (the workflows page compares two versions' definitions as
// pretty JSON): the longest common subsequence of their lines, after the common head and
// tail are set aside, drawn as a unified diff with a few lines of context.
"use strict";

const SpaneDiff = (() => {
  const { el } = Spane;
  const MAX_CELLS = 4e6; // past this the middle is shown as removed, then added

  // [{op: " " | "-" | "+", text}]
  function lines(before, after) {
    const a = before.split("\n"), b = after.split("\n");
    let head = 0;
    while (head < a.length && head < b.length && a[head] === b[head]) head++;
    let tail = 0;
    while (tail < a.length - head && tail < b.length - head && a[a.length - 1 - tail] === b[b.length - 1 - tail]) tail++;
    const x = a.slice(head, a.length - tail), y = b.slice(head, b.length - tail);
    const out = a.slice(0, head).map((text) => ({ op: " ", text }));
    if (x.length * y.length > MAX_CELLS) {
      out.push(...x.map((text) => ({ op: "-", text })), ...y.map((text) => ({ op: "+", text })));
    } else {
      const n = x.length, m = y.length, w = m + 1;
      const len = new Int32Array((n + 1) * w); // len[i][j]: LCS of x[i:], y[j:]
      for (let i = n - 1; i >= 0; i--) {
        for (let j = m - 1; j >= 0; j--) {
          len[i * w + j] = x[i] === y[j] ? len[(i + 1) * w + j + 1] + 1 : Math.max(len[(i + 1) * w + j], len[i * w + j + 1]);
        }
      }
      let i = 0, j = 0;
      while (i < n || j < m) {
        if (i < n && j < m && x[i] === y[j]) { out.push({ op: " ", text: x[i] }); i++; j++; }
        else if (i < n && (j === m || len[(i + 1) * w + j] >= len[i * w + j + 1])) out.push({ op: "-", text: x[i++] });
        else out.push({ op: "+", text: y[j++] });
      }
    }
    out.push(...a.slice(a.length - tail).map((text) => ({ op: " ", text })));
    return out;
  }

  // A <pre class="diff">: changed lines with `context` lines around them; the unchanged
  // runs between are folded into one line that says how many.
  function render(ops, context = 3) {
    const changed = ops.map((o) => o.op !== " ");
    const near = ops.map((_, i) => {
      for (let k = Math.max(0, i - context); k <= Math.min(ops.length - 1, i + context); k++) if (changed[k]) return true;
      return false;
    });
    const spans = [];
    for (let i = 0; i < ops.length;) {
      if (near[i]) {
        const o = ops[i++];
        spans.push(el("span", { class: o.op === "+" ? "add" : o.op === "-" ? "del" : "same" }, `${o.op} ${o.text}`));
      } else {
        let k = i;
        while (k < ops.length && !near[k]) k++;
        spans.push(el("span", { class: "skip" }, `  … ${k - i} unchanged line${k - i === 1 ? "" : "s"}`));
        i = k;
      }
    }
    const added = ops.filter((o) => o.op === "+").length, removed = ops.filter((o) => o.op === "-").length;
    const pre = el("pre", { class: "diff", id: "diff", dataset: { added: String(added), removed: String(removed) } }, spans);
    return { pre, added, removed };
  }

  return { lines, render };
})();
