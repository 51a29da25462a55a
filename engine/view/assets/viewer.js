/* ttscale view: renders a trace, a search tree, an eval run or a curation report from the JSON embedded in the page
 * (<script id="ttscale-data">, written by engine/view/page.py from engine/view/load.py's View), or from files
 * opened in the page (ttscale serve's /view). Plain browser JavaScript: no framework, no network, no build step.
 * When a view is drawn, window.ttscaleView = {kind, ready: true, renderMs} (renderMs: ms since navigation start). */
(function () {
  "use strict";

  // ------------------------------------------------------------------ small helpers
  const $ = (sel, root) => (root || document).querySelector(sel);
  const ESC = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };
  const esc = (s) => String(s == null ? "" : s).replace(/[&<>"']/g, (c) => ESC[c]);
  const fmt = (x, d) => (x == null || Number.isNaN(x) ? "–" : Number(x).toFixed(d == null ? 3 : d));
  const pct = (x) => (x == null ? "–" : (100 * x).toFixed(1));
  const shown = (t) => String(t).replace(/\n/g, "↵\n").replace(/\t/g, "→\t");
  function settingLabel(s) {
    const keys = Object.keys(s || {}).sort();
    return keys.length ? keys.map((k) => `${k}=${s[k]}`).join(", ") : "default";
  }
  const canon = (s) => JSON.stringify(Object.keys(s || {}).sort().reduce((o, k) => ((o[k] = s[k]), o), {}));

  const tip = document.createElement("div");
  tip.id = "tip";
  document.body.appendChild(tip);
  function showTip(html, ev) {
    tip.innerHTML = html;
    tip.style.display = "block";
    const w = tip.offsetWidth, h = tip.offsetHeight;
    let x = ev.clientX + 14, y = ev.clientY + 14;
    if (x + w > window.innerWidth - 4) x = Math.max(4, ev.clientX - w - 14);
    if (y + h > window.innerHeight - 4) y = Math.max(4, ev.clientY - h - 14);
    tip.style.left = x + "px";
    tip.style.top = y + "px";
  }
  const hideTip = () => { tip.style.display = "none"; };

  function page(view) {
    document.title = "ttscale view · " + view.title;
    const root = $("#app");
    root.innerHTML = `<header><h1 id="title">${esc(view.title)}</h1><span class="src">${esc(view.source || "")}</span></header>` +
      `<main><div id="warnings">${(view.warnings || []).map((w) => `<div class="warning">⚠ ${esc(w)}</div>`).join("")}</div>` +
      `<div id="view"></div></main>`;
    return $("#view");
  }

  function done(kind) {
    requestAnimationFrame(() => setTimeout(() => {
      window.ttscaleView = { kind: kind, ready: true, renderMs: performance.now() };
      document.body.dataset.ready = kind;
    }, 0));
  }

  // ------------------------------------------------------------------ trace
  const REASONS = { min_budget: "min", ignore: "ignore", max_budget: "cap", delimiter: "delim", end_of_turn: "eot→delim",
                    max_answer: "answer cap", model_end: "model end" };
  const pBin = (p) => (p == null ? 9 : Math.min(9, Math.floor(p * 10)));
  const eBin = (e) => (e == null ? "x" : Math.min(9, Math.floor(e / 0.5)));   // 0.5 nats per step, >= 4.5 nats darkest

  function renderTrace(view) {
    const box = page(view);
    const prompts = view.data.prompts;
    box.innerHTML =
      `<div class="bar">${prompts.length > 1 ? `<label>prompt <select id="prompt-select">${prompts.map((p, i) =>
        `<option value="${i}">${p.prompt_index}: ${esc(String(p.prompt).slice(0, 80))}</option>`).join("")}</select></label>` : ""}
        <span>colour by <button id="mode-prob" class="on">probability</button> <button id="mode-entropy">entropy</button></span>
        <span class="legend" id="legend"></span></div>
      <div id="summary" class="stats"></div>
      <h2>Probability along the generation <span class="muted" id="strip-note"></span></h2>
      <canvas id="strip" height="130"></canvas>
      <h2>Tokens <span class="muted">(hover for the top alternatives, click to pin)</span></h2>
      <div id="tokens" class="pre mode-prob"></div>
      <div id="detail" class="panel" hidden></div>`;
    let mode = "prob", cur = null;
    const tokensBox = $("#tokens");

    function legend() {
      const cells = [];
      for (let i = 0; i < 10; i++) cells.push(`<i class="${mode === "prob" ? "p" : "e"}${i}" style="outline:1px solid #e5e7eb"></i>`);
      $("#legend").className = "legend mode-" + (mode === "prob" ? "prob" : "entropy");
      $("#legend").innerHTML = (mode === "prob" ? "p 0 " : "H 0 ") + cells.join("") + (mode === "prob" ? " 1" : " ≥4.5 nats");
    }

    function show(i) {
      cur = prompts[i];
      const h = cur, toks = cur.tokens;
      const forced = toks.filter((t) => t.source === "forced").length;
      const sups = toks.filter((t) => t.suppressed_end).length;
      $("#summary").innerHTML = `<b>prompt ${h.prompt_index}</b>: ${esc(h.prompt)}<br>` +
        `thinking <b>${h.thinking_tokens}</b> tok · answer <b>${h.answer_tokens}</b> tok · forced <b id="forced-count">${forced}</b> · ` +
        `suppressed endings <b id="sup-count">${sups}</b> · waits <b>${h.waits_injected}</b> · forced stop <b>${h.forced_stop}</b> · ` +
        `finish <b>${esc(h.finish_reason)}</b> · <b id="token-count">${toks.length}</b> token records` +
        (h.cut_short ? ` <span class="warning" id="cut-short">⚠ cut short: ${toks.length} of ${h.generated_tokens} token records</span>` : "");
      // Tokens go in blocks that end at a newline (or after 300 tokens): content-visibility lets the browser skip
      // style and layout of the blocks off screen, so a 50,000-token trace opens and recolours quickly.
      const parts = ['<div class="chunk">'];
      let phase = null, inChunk = 0;
      for (let k = 0; k < toks.length; k++) {
        if (inChunk >= 300 || (k > 0 && toks[k - 1].text.endsWith("\n"))) { parts.push('</div><div class="chunk">'); inChunk = 0; }
        inChunk++;
        const t = toks[k];
        if (t.phase !== phase) { phase = t.phase; parts.push(`<span class="phase">── ${esc(phase)} ──</span>`); }
        if (t.suppressed_end) parts.push(`<span class="sup" data-i="${k}">⟂ end p=${fmt(t.suppressed_end.p_end, 2)}</span>`);
        let cls = `t p${pBin(t.prob)} e${eBin(t.entropy)}`;
        if (t.source === "forced") cls += " f";
        else if (t.kind === "delimiter" || t.kind === "end") cls += " d";
        if (t.suppressed_end) cls += " s";
        parts.push(`<span class="${cls}" data-i="${k}">${esc(shown(t.text))}</span>`);
        if (t.source === "forced") parts.push(`<span class="why">${esc(REASONS[t.reason] || t.reason)}</span>`);
      }
      parts.push("</div>");
      tokensBox.innerHTML = parts.join("");
      $("#detail").hidden = true;
      drawStrip();
    }

    function drawStrip() {
      const cv = $("#strip"), toks = cur.tokens, n = toks.length;
      const dpr = window.devicePixelRatio || 1, W = cv.clientWidth || 800, H = 130;
      cv.width = W * dpr; cv.height = H * dpr;
      const g = cv.getContext("2d");
      g.setTransform(dpr, 0, 0, dpr, 0, 0);
      g.clearRect(0, 0, W, H);
      const top = 8, bot = H - 18, L = 34, R = W - 8;
      const val = mode === "prob" ? (t) => t.prob : (t) => t.entropy;
      const vmax = mode === "prob" ? 1 : Math.max(1, ...toks.map((t) => t.entropy || 0));
      const X = (k) => L + (n <= 1 ? 0 : (k / (n - 1)) * (R - L));
      const Y = (v) => bot - (v / vmax) * (bot - top);
      // phases as background bands
      let start = 0;
      for (let k = 1; k <= n; k++) {
        if (k === n || toks[k].phase !== toks[start].phase) {
          g.fillStyle = toks[start].phase === "thinking" ? "#f3f6fd" : "#f6fbf3";
          g.fillRect(X(start), top, Math.max(1, X(k - 1) - X(start)), bot - top);
          start = k;
        }
      }
      g.strokeStyle = "#d1d5db"; g.lineWidth = 1;
      g.beginPath(); g.moveTo(L, top); g.lineTo(L, bot); g.lineTo(R, bot); g.stroke();
      g.fillStyle = "#6b7280"; g.font = "10px system-ui";
      g.fillText(mode === "prob" ? "p=1" : fmt(vmax, 1), 2, top + 8); g.fillText("0", 20, bot);
      g.fillText("token 0", L, H - 4); g.fillText(String(n - 1), R - 30, H - 4);
      // the series: min/max per pixel column (a 50,000-token trace stays one pass)
      const cols = Math.max(1, Math.floor(R - L));
      const lo = new Float64Array(cols).fill(Infinity), hi = new Float64Array(cols).fill(-Infinity);
      let any = false;
      for (let k = 0; k < n; k++) {
        const v = val(toks[k]);
        if (v == null) continue;
        any = true;
        const c = Math.min(cols - 1, Math.floor(((X(k) - L) / (R - L || 1)) * cols));
        if (v < lo[c]) lo[c] = v;
        if (v > hi[c]) hi[c] = v;
      }
      g.strokeStyle = mode === "prob" ? "#2563eb" : "#6d28d9";
      g.beginPath();
      if (n <= cols) {   // few tokens: a line through every token; many: one min-max bar per pixel column
        let pen = false;
        for (let k = 0; k < n; k++) {
          const v = val(toks[k]);
          if (v == null) { pen = false; continue; }
          if (pen) g.lineTo(X(k), Y(v)); else g.moveTo(X(k), Y(v));
          pen = true;
        }
      } else for (let c = 0; c < cols; c++) {
        if (hi[c] === -Infinity) continue;
        g.moveTo(L + c + 0.5, Y(lo[c])); g.lineTo(L + c + 0.5, Y(hi[c]) - (hi[c] === lo[c] ? 1 : 0));
      }
      g.stroke();
      // markers: injections (forced tokens other than the delimiter / end) and suppressed endings
      for (let k = 0; k < n; k++) {
        const t = toks[k];
        if (t.suppressed_end) { g.fillStyle = "#dc2626"; g.fillRect(X(k) - 1, top, 2, bot - top); }
        else if (t.source === "forced" && k > 0 && toks[k - 1].source !== "forced") {
          g.fillStyle = "#b45309"; g.beginPath(); g.moveTo(X(k), top); g.lineTo(X(k) - 4, top - 6 + 8); g.lineTo(X(k) + 4, top + 2); g.fill();
          g.fillRect(X(k) - 0.5, top, 1, bot - top);
        }
      }
      $("#strip-note").textContent = any ? `(${mode === "prob" ? "probability" : "entropy, nats"}; ▼ injection, red: suppressed ending, bands: phases)`
        : `(this trace records no ${mode === "prob" ? "probabilities (greedy, no --trace-top-k)" : "entropy (written by an older ttscale)"})`;
      cv.onclick = (ev) => {
        const r = cv.getBoundingClientRect();
        const k = Math.round(((ev.clientX - r.left - L) / (R - L)) * (n - 1));
        if (k >= 0 && k < n) pin(k, true);
      };
    }

    function tokenHtml(t, k) {
      let html = `<b>#${k}</b> <code>${esc(JSON.stringify(t.text))}</code> id ${t.id}<br>` +
        `p=${fmt(t.prob, 4)} · H=${fmt(t.entropy, 3)} nats · ${esc(t.phase)} / ${esc(t.kind)} · ${esc(t.source)}` +
        (t.reason ? ` (${esc(REASONS[t.reason] || t.reason)})` : "");
      if (t.suppressed_end) html += `<br><span style="color:#f87171">suppressed ending ${esc(JSON.stringify(t.suppressed_end.text))} p_end=${fmt(t.suppressed_end.p_end, 4)}</span>`;
      if (t.top && t.top.length) {
        html += "<table><tr><th>top</th><th>p</th></tr>" + t.top.map((a) =>
          `<tr><td><code>${esc(JSON.stringify(a[1]))}</code>${a[0] === t.id ? " ◀" : ""}</td><td class="num">${fmt(a[2], 4)}</td></tr>`).join("") + "</table>";
      }
      return html;
    }

    function pin(k, scroll) {
      const old = tokensBox.querySelector(".t.sel");
      if (old) old.classList.remove("sel");
      const span = tokensBox.querySelector(`.t[data-i="${k}"]`);
      if (span) { span.classList.add("sel"); if (scroll) span.scrollIntoView({ block: "center" }); }
      const d = $("#detail");
      d.hidden = false;
      d.innerHTML = tokenHtml(cur.tokens[k], k);
    }

    tokensBox.addEventListener("mouseover", (ev) => {
      const s = ev.target.closest("[data-i]");
      if (!s) return hideTip();
      showTip(tokenHtml(cur.tokens[+s.dataset.i], +s.dataset.i), ev);
    });
    tokensBox.addEventListener("mouseleave", hideTip);
    tokensBox.addEventListener("click", (ev) => { const s = ev.target.closest("[data-i]"); if (s) pin(+s.dataset.i, false); });
    function setMode(m) {
      mode = m;
      tokensBox.className = "pre mode-" + (m === "prob" ? "prob" : "entropy");
      $("#mode-prob").classList.toggle("on", m === "prob");
      $("#mode-entropy").classList.toggle("on", m === "entropy");
      legend(); drawStrip();
    }
    $("#mode-prob").onclick = () => setMode("prob");
    $("#mode-entropy").onclick = () => setMode("entropy");
    if ($("#prompt-select")) $("#prompt-select").onchange = (ev) => show(+ev.target.value);
    window.addEventListener("resize", () => drawStrip());
    legend();
    show(0);
    done("trace");
  }

  // ------------------------------------------------------------------ tree
  const STATUS_ORDER = ["root", "kept", "finished", "pruned", "duplicate", "lookahead", "open"];

  function renderTree(view) {
    const box = page(view);
    const { problems, nodes } = view.data;
    const byId = new Map(nodes.map((n) => [n.id, n]));
    const kids = new Map();
    for (const n of nodes) if (n.parent != null) { if (!kids.has(n.parent)) kids.set(n.parent, []); kids.get(n.parent).push(n); }
    box.innerHTML =
      `<div class="bar">${problems.length > 1 ? `<label>problem <select id="problem-select">${problems.map((p, i) =>
        `<option value="${i}">${i}: ${esc(String(p.question).slice(0, 80))}</option>`).join("")}</select></label>` : ""}
       <span class="stats" id="tree-counts"></span></div>
      <div id="tree-summary"></div>
      <div class="tree-wrap"><div id="tree"></div><div id="branch" class="panel"><span class="muted">Click a node to see its branch, root to leaf.</span></div></div>`;
    const treeBox = $("#tree");
    let prob = null, onPath = new Set(), selected = null;

    function pathTo(id) {
      const out = [];
      for (let n = byId.get(id); n; n = n.parent == null ? null : byId.get(n.parent)) out.push(n);
      return out.reverse();
    }

    function show(pi) {
      prob = problems[pi];
      const mine = nodes.filter((n) => n.problem === pi);
      const counts = {};
      for (const s of STATUS_ORDER) counts[s] = 0;
      for (const n of mine) counts[n.status] = (counts[n.status] || 0) + 1;
      $("#tree-counts").innerHTML = `<b id="node-count">${mine.length}</b> nodes · ` + STATUS_ORDER.filter((s) => counts[s]).map((s) =>
        `<span class="swatch" style="background:${SW[s]}"></span>${s} <b id="count-${s}">${counts[s]}</b>`).join(" · ");
      onPath = new Set(prob.chosen != null ? pathTo(prob.chosen).map((n) => n.id) : []);
      // answers: the groups of equivalent answers, best first, as the search voted
      const vrows = (prob.answers || []).map((g) =>
        `<tr class="${g.nodes.includes(prob.chosen) ? "chosen" : ""}"><td>${g.answer == null ? "<i>no answer</i>" : esc(g.answer)}</td>` +
        `<td class="num">${g.count}</td><td class="num">${fmt(g.weight, 3)}</td><td class="num">${fmt(g.best, 3)}</td>` +
        `<td>${esc(g.picked_by.join(", "))}</td></tr>`).join("");
      $("#tree-summary").innerHTML = `<div class="panel"><b>${esc(prob.question)}</b><br>` +
        (prob.strategy ? `${esc(prob.strategy)} · N=${prob.n} · M=${prob.beam_width} · answer <b id="chosen-answer">${prob.answer == null ? "none" : esc(prob.answer)}</b>` +
          (prob.chosen != null ? ` · chosen path ends at node ${prob.chosen} (highlighted)` : "") : `<span class="muted">no outcome recorded</span>`) +
        (vrows ? `<table id="votes"><tr><th>answer</th><th class="num">votes</th><th class="num">weighted vote</th><th class="num">best score</th>` +
          `<th>picked by</th></tr>${vrows}</table>` : "") + `</div>`;
      draw(byId.get(prob.root));
      $("#branch").innerHTML = `<span class="muted">Click a node to see its branch, root to leaf.</span>`;
    }

    function draw(root) {
      // tidy layout: depth along x, leaves one row each along y, a parent centred on its children; DVTS subtrees
      // (the root's children by group) are drawn as bands.
      const DX = 110, DY = 16, X0 = 30, Y0 = 22;
      const pos = new Map();
      let row = 0, maxDepth = 0;
      const bands = [];
      const order = (list) => list.slice().sort((a, b) => (a.group ?? 0) - (b.group ?? 0) || a.id - b.id);
      const stack = [[root, false]];
      while (stack.length) {   // iterative post-order: deep trees do not overflow the call stack
        const [n, visited] = stack.pop();
        const ch = order(kids.get(n.id) || []);
        if (!visited) {
          stack.push([n, true]);
          for (let i = ch.length - 1; i >= 0; i--) stack.push([ch[i], false]);
          continue;
        }
        maxDepth = Math.max(maxDepth, n.depth);
        if (!ch.length) pos.set(n.id, { x: X0 + n.depth * DX, y: Y0 + (row++) * DY });
        else pos.set(n.id, { x: X0 + n.depth * DX, y: (pos.get(ch[0].id).y + pos.get(ch[ch.length - 1].id).y) / 2 });
      }
      const top = order(kids.get(root.id) || []);
      const groups = [...new Set(top.map((n) => n.group))];
      if (groups.length > 1) {
        for (const g of groups) {
          const ys = [];
          const st = top.filter((n) => n.group === g).slice();
          while (st.length) { const n = st.pop(); ys.push(pos.get(n.id).y); (kids.get(n.id) || []).forEach((c) => st.push(c)); }
          bands.push({ g, y0: Math.min(...ys) - DY / 2, y1: Math.max(...ys) + DY / 2 });
        }
      }
      const W = X0 + maxDepth * DX + 140, H = Y0 + Math.max(1, row) * DY + 10;
      const parts = [`<svg width="${W}" height="${H}" viewBox="0 0 ${W} ${H}">`];
      bands.forEach((b, i) => parts.push(`<rect class="band${i % 2 ? " alt" : ""}" x="0" y="${b.y0}" width="${W}" height="${b.y1 - b.y0}"></rect>` +
        `<text class="bandlabel" x="${W - 8}" y="${b.y0 + 12}" text-anchor="end">subtree ${b.g}</text>`));
      let dn = "", dc = "";
      const circles = [], labels = [];
      const st = [root];
      while (st.length) {
        const n = st.pop();
        const p = pos.get(n.id);
        for (const c of kids.get(n.id) || []) {
          const q = pos.get(c.id), mx = (p.x + q.x) / 2;
          const seg = `M${p.x},${p.y}C${mx},${p.y} ${mx},${q.y} ${q.x},${q.y}`;
          if (onPath.has(c.id)) dc += seg; else dn += seg;
          st.push(c);
        }
        const r = n.status === "root" ? 6 : 4.5;
        circles.push(`<circle class="node ${n.status}${onPath.has(n.id) ? " onpath" : ""}" data-id="${n.id}" cx="${p.x}" cy="${p.y}" r="${r}"></circle>`);
        if (n.score != null) labels.push(`<text class="score" x="${p.x + 7}" y="${p.y - 4}">${fmt(n.score, 2)}</text>`);
      }
      parts.push(`<path class="edge" d="${dn}"></path><path class="edge chosen" d="${dc}"></path>`, labels.join(""), circles.join(""), "</svg>");
      treeBox.innerHTML = parts.join("");
    }

    function nodeHtml(n) {
      return `<b>node ${n.id}</b> · ${esc(n.status)} · depth ${n.depth}` + (n.group != null ? ` · subtree ${n.group}` : "") +
        (n.score != null ? ` · score ${fmt(n.score)}` : "") + (n.end ? ` · ended by ${esc(n.end)}` : "") +
        `<div class="pre" style="margin-top:4px">${esc(String(n.text).slice(0, 300))}${String(n.text).length > 300 ? "…" : ""}</div>`;
    }

    function select(id) {
      if (selected != null) { const o = treeBox.querySelector(`circle[data-id="${selected}"]`); if (o) o.classList.remove("sel"); }
      selected = id;
      const c = treeBox.querySelector(`circle[data-id="${id}"]`);
      if (c) c.classList.add("sel");
      const path = pathTo(id);
      const leaf = path[path.length - 1];
      const scores = leaf.step_scores ? leaf.step_scores.map((s) => fmt(s, 3)).join(" → ") : "not scored";
      $("#branch").innerHTML = `<div id="branch-head"><b>branch to node ${id}</b> (${esc(leaf.status)}${onPath.has(id) ? ", on the chosen path" : ""})` +
        `<br>step scores: ${esc(scores)}${leaf.score != null ? ` · aggregated ${fmt(leaf.score)}` : ""}</div>` +
        path.map((n) => `<div class="step ${n.status}"><div class="muted">${n.status === "root" ? "prompt" : `step ${n.depth}`} · node ${n.id} · ${esc(n.status)}` +
          (n.step_scores && n.step_scores.length ? ` · PRM ${fmt(n.step_scores[n.step_scores.length - 1], 3)}` : "") + `</div>` +
          (n.status === "root" ? `<details><summary>prompt text</summary><div class="pre">${esc(n.text)}</div></details>`
            : `<div class="pre step-text">${esc(n.text)}</div>`) + `</div>`).join("");
    }

    treeBox.addEventListener("click", (ev) => { const c = ev.target.closest("circle[data-id]"); if (c) select(+c.dataset.id); });
    treeBox.addEventListener("mouseover", (ev) => {
      const c = ev.target.closest("circle[data-id]");
      if (!c) return hideTip();
      showTip(nodeHtml(byId.get(+c.dataset.id)), ev);
    });
    treeBox.addEventListener("mouseleave", hideTip);
    if ($("#problem-select")) $("#problem-select").onchange = (ev) => show(+ev.target.value);
    show(0);
    done("tree");
  }
  const SW = { root: "#111827", kept: "#2563eb", finished: "#16a34a", pruned: "#c4c9d4", duplicate: "#f59e0b", lookahead: "#e879f9", open: "#fff" };

  // ------------------------------------------------------------------ eval
  const COLORS = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#be185d", "#4d7c0f", "#7c2d12", "#334155"];

  function chart(kind, pts, colorOf) {
    const W = 560, H = 330, L = 52, R = 16, T = 14, B = 44;
    if (!pts.length) return `<svg viewBox="0 0 ${W} ${H}"><text x="${W / 2}" y="${H / 2}" text-anchor="middle">no ${kind} methods in this run</text></svg>`;
    const log = kind === "parallel";
    const xv = (s) => (log ? Math.log2(Math.max(s.x, 1e-9)) : s.x);
    let x0 = Math.min(...pts.map(xv)), x1 = Math.max(...pts.map(xv));
    if (x0 === x1) { x0 -= 1; x1 += 1; }
    const pad = (x1 - x0) * 0.06; x0 -= pad; x1 += pad;
    const X = (v) => L + ((v - x0) / (x1 - x0)) * (W - L - R), Y = (a) => T + (1 - a) * (H - T - B);
    const o = [`<svg viewBox="0 0 ${W} ${H}" class="${kind}">`];
    for (let a = 0; a <= 1.0001; a += 0.2) o.push(`<line class="grid" x1="${L}" x2="${W - R}" y1="${Y(a)}" y2="${Y(a)}"></line><text x="${L - 6}" y="${Y(a) + 4}" text-anchor="end">${Math.round(a * 100)}</text>`);
    o.push(`<line class="axis" x1="${L}" x2="${W - R}" y1="${Y(0)}" y2="${Y(0)}"></line><line class="axis" x1="${L}" x2="${L}" y1="${T}" y2="${Y(0)}"></line>`);
    const ticks = log ? [...new Set(pts.map((s) => s.x))].sort((a, b) => a - b) : niceTicks(x0, x1);
    for (const t of ticks) o.push(`<text x="${X(log ? Math.log2(t) : t)}" y="${H - B + 16}" text-anchor="middle">${+t.toFixed(2)}</text>`);
    o.push(`<text x="${(L + W - R) / 2}" y="${H - 8}" text-anchor="middle">${log ? "N (samples / beams), log2" : "average thinking tokens"}</text>`);
    o.push(`<text transform="translate(13,${(T + H - B) / 2}) rotate(-90)" text-anchor="middle">accuracy (%)</text>`);
    const series = [...new Set(pts.map((s) => s.series))];
    for (const name of series) {
      const g = pts.filter((s) => s.series === name).sort((a, b) => a.x - b.x);
      o.push(`<polyline fill="none" stroke="${colorOf(name)}" stroke-width="1.8" points="${g.map((s) => `${X(xv(s))},${Y(s.accuracy)}`).join(" ")}"></polyline>`);
      for (const s of g) {
        const x = X(xv(s)), c = colorOf(name);
        o.push(`<path stroke="${c}" fill="none" d="M${x},${Y(s.ci_low)}V${Y(s.ci_high)}M${x - 4},${Y(s.ci_low)}h8M${x - 4},${Y(s.ci_high)}h8"></path>`);
        if (!log) o.push(`<text x="${x + 7}" y="${Y(s.accuracy) - 7}" style="fill:${c};font-size:9.5px">${esc(settingLabel(Object.fromEntries(Object.entries(s.setting).filter(([k]) => k !== "n"))))}</text>`);
      }
    }
    for (const s of pts) o.push(`<circle class="pt" data-k="${s._k}" data-method="${esc(s.method)}" data-setting="${esc(canon(s.setting))}" cx="${X(xv(s))}" cy="${Y(s.accuracy)}" r="5.5" fill="${colorOf(s.series)}"></circle>`);
    o.push("</svg>");
    return o.join("");
  }

  function niceTicks(a, b) {
    const span = b - a, step0 = Math.pow(10, Math.floor(Math.log10(span / 5)));
    const step = [1, 2, 5, 10].map((m) => m * step0).find((s) => span / s <= 6) || step0 * 10;
    const out = [];
    for (let t = Math.ceil(a / step) * step; t <= b; t += step) out.push(t);
    return out;
  }

  function renderEval(view) {
    const box = page(view);
    const { metrics, samples, prompts } = view.data;
    const settings = metrics.settings.map((s, k) => Object.assign({ _k: k }, s));
    const names = [...new Set(settings.map((s) => s.series))];
    const colorOf = (n) => COLORS[names.indexOf(n) % COLORS.length];
    const legend = names.map((n) => `<span><span class="swatch" style="background:${colorOf(n)}"></span>${esc(n)}</span>`).join(" ");
    const m = metrics.methods || {};
    box.innerHTML =
      `<div class="bar">${legend}</div>
      <div class="charts"><div class="chart" id="chart-sequential"><b>Sequential scaling</b>${chart("sequential", settings.filter((s) => s.scaling === "sequential"), colorOf)}</div>
      <div class="chart" id="chart-parallel"><b>Parallel scaling</b>${chart("parallel", settings.filter((s) => s.scaling === "parallel"), colorOf)}</div></div>
      <p class="muted">Accuracy with 95% Wilson intervals. Hover a point for its setting; click it for its samples.</p>
      <h2>Per-method metrics (s1 §3.2)</h2>
      <table id="methods"><tr><th>method</th><th>kind</th><th class="num">runs</th><th class="num">Control</th><th class="num">Scaling ×100</th><th class="num">Performance</th></tr>
      ${Object.keys(m).map((k) => `<tr><td>${esc(k)}</td><td>${esc(m[k].scaling_kind)}</td><td class="num">${m[k].runs}</td><td class="num">${m[k].control == null ? "–" : pct(m[k].control) + "%"}</td>` +
        `<td class="num">${m[k].scaling_x100 == null ? "–" : fmt(m[k].scaling_x100, 2)}</td><td class="num">${pct(m[k].performance)}</td></tr>`).join("")}</table>
      <h2>Settings</h2>
      <table id="settings"><tr><th>method</th><th>setting</th><th class="num">x</th><th class="num">problems</th><th class="num">accuracy</th><th class="num">95% CI</th></tr>
      ${settings.map((s) => `<tr data-k="${s._k}"><td>${esc(s.series)}</td><td><a href="#" data-k="${s._k}">${esc(settingLabel(s.setting))}</a></td><td class="num">${fmt(s.x, 1)}</td>` +
        `<td class="num">${s.problems}</td><td class="num">${pct(s.accuracy)}</td><td class="num">${pct(s.ci_low)}–${pct(s.ci_high)}</td></tr>`).join("")}</table>
      <h2 id="samples-head">Samples</h2><div id="samples"><span class="muted">Click a point (or a setting above) to see its samples.</span></div>`;
    const byKey = new Map();
    for (const r of samples) { const key = r.method + "|" + canon(r.setting); if (!byKey.has(key)) byKey.set(key, []); byKey.get(key).push(r); }
    function pointHtml(s) {
      return `<b>${esc(s.series)}</b> · ${esc(settingLabel(s.setting))}<br>accuracy <b>${pct(s.accuracy)}%</b> (${s.correct}/${s.problems}), ` +
        `95% CI ${pct(s.ci_low)}–${pct(s.ci_high)}<br>x = ${fmt(s.x, 1)} ${s.scaling === "parallel" ? "(N)" : "thinking tokens on average"}`;
    }
    function drill(k) {
      const s = settings[k];
      document.querySelectorAll(".pt.sel").forEach((c) => c.classList.remove("sel"));
      document.querySelectorAll(`.pt[data-k="${k}"]`).forEach((c) => c.classList.add("sel"));
      const rows = byKey.get(s.method + "|" + canon(s.setting)) || [];
      $("#samples-head").textContent = `Samples · ${s.series} · ${settingLabel(s.setting)} · ${rows.length} rows`;
      $("#samples").innerHTML = `<table id="sample-table"><tr><th>problem</th><th>correct</th><th>extracted</th><th>gold</th><th class="num">thinking tok</th><th>prompt · thinking · answer</th></tr>` +
        rows.map((r) => `<tr class="sample"><td>${esc(r.problem_id)}</td><td class="${r.correct ? "ok" : "bad"}">${r.correct ? "✓" : "✗"}</td>` +
          `<td>${esc(r.extracted)}</td><td>${esc(r.gold)}</td><td class="num">${r.thinking_tokens ?? "–"}</td><td>` +
          `<details><summary>prompt</summary><div class="pre">${esc(prompts[r.problem_id])}</div></details>` +
          `<details><summary>thinking (${(r.thinking || "").length} chars)</summary><div class="pre">${esc(r.thinking)}</div></details>` +
          `<details open><summary>answer</summary><div class="pre">${esc(r.answer)}</div></details></td></tr>`).join("") + "</table>";
    }
    box.addEventListener("mouseover", (ev) => { const c = ev.target.closest(".pt"); if (!c) return hideTip(); showTip(pointHtml(settings[+c.dataset.k]), ev); });
    box.addEventListener("mouseout", (ev) => { if (ev.target.closest(".pt")) hideTip(); });
    box.addEventListener("click", (ev) => {
      const c = ev.target.closest(".pt, a[data-k]");
      if (!c) return;
      ev.preventDefault();
      drill(+c.dataset.k);
    });
    done("eval");
  }

  // ------------------------------------------------------------------ curation
  function hbars(items, max, cls) {
    const W = 560, rowH = 22, L = 150;
    const H = items.length * rowH + 8;
    return `<svg viewBox="0 0 ${W} ${H}" style="max-width:${W}px">` + items.map((it, i) => {
      const w = max ? ((W - L - 60) * it.value) / max : 0, y = 4 + i * rowH;
      return `<text x="${L - 6}" y="${y + 14}" text-anchor="end">${esc(it.label)}</text><rect class="hbar ${it.cls || cls || ""}" x="${L}" y="${y + 2}" width="${w}" height="${rowH - 6}"></rect>` +
        `<text x="${L + w + 4}" y="${y + 14}">${it.value}</text>`;
    }).join("") + "</svg>";
  }

  function renderCuration(view) {
    const box = page(view);
    const rep = view.data.report, stages = rep.stages;
    const maxIn = Math.max(1, ...stages.map((s) => s.in));
    const reasons = {};
    for (const s of stages) for (const [r, n] of Object.entries(s.reasons || {})) reasons[`${s.stage}: ${r}`] = n;
    const dom = (rep.domains || {}).selected || {};
    const domItems = Object.keys(dom).sort((a, b) => dom[b] - dom[a]).slice(0, 25).map((k) => ({ label: k, value: dom[k] }));
    const tl = rep.trace_lengths || {};
    box.innerHTML =
      `<p class="stats"><b id="rows">${rep.rows}</b> rows selected through <b>${stages.length}</b> stages</p>
      <h2>Counts per stage</h2><div class="chart" style="max-width:600px">${hbars(stages.map((s) => ({ label: s.stage, value: s.out })), maxIn)}</div>
      <table id="stages"><tr><th>stage</th><th class="num">in</th><th class="num">out</th><th class="num">dropped</th><th>dropped by reason</th></tr>
      ${stages.map((s) => `<tr class="stage"><td>${esc(s.stage)}</td><td class="num">${s.in}</td><td class="num">${s.out}</td><td class="num">${s.dropped}</td>` +
        `<td>${Object.entries(s.reasons || {}).map(([r, n]) => `${esc(r)} <b>${n}</b>`).join(" · ") || "–"}</td></tr>`).join("")}</table>
      <h2>Drops by reason</h2><div class="chart" style="max-width:600px">${Object.keys(reasons).length ? hbars(Object.keys(reasons).map((k) => ({ label: k, value: reasons[k] })), Math.max(...Object.values(reasons)), "drop") : '<span class="muted">nothing was dropped</span>'}</div>
      <h2>Selected questions per domain</h2><div class="chart" style="max-width:600px">${domItems.length ? hbars(domItems, Math.max(...domItems.map((d) => d.value))) : '<span class="muted">no domains recorded</span>'}</div>
      <h2>Trace lengths</h2><table><tr><th></th>${["n", "min", "median", "mean", "max"].map((k) => `<th class="num">${k}</th>`).join("")}</tr>
      ${["selected", "candidates"].filter((k) => tl[k]).map((k) => `<tr><td>${k}</td>${["n", "min", "median", "mean", "max"].map((f) => `<td class="num">${tl[k][f] == null ? "–" : +Number(tl[k][f]).toFixed(1)}</td>`).join("")}</tr>`).join("")}</table>
      ${view.data.manifest ? `<details><summary>manifest (config, seeds, versions)</summary><div class="pre">${esc(JSON.stringify(view.data.manifest, null, 2))}</div></details>` : ""}`;
    done("curation");
  }

  // ------------------------------------------------------------------ files opened in the page (ttscale serve /view)
  const THINK_ENDS = JSON.parse(document.getElementById("ttscale-config").textContent).think_ends;  // engine.formats
  function split(text) {   // engine/view/load.py's split_generation without a run config
    for (const e of THINK_ENDS) { const at = text.indexOf(e); if (at >= 0) return [text.slice(0, at), text.slice(at + e.length)]; }
    return ["", text];
  }
  const parseLines = (text) => {   // a torn last line (a writer killed mid-record) is left out, as in Python
    const lines = text.split("\n").filter((l) => l.trim());
    return lines.map((l, i) => {
      try { return JSON.parse(l); } catch (e) { if (i === lines.length - 1 && !text.endsWith("\n")) return null; throw new Error(`line ${i + 1} is not JSON`); }
    }).filter((r) => r !== null);
  };

  function fromFiles(files) {   // {name: text} -> a view, the same shapes engine/view/load.py builds
    const names = Object.keys(files);
    const get = (n) => names.find((k) => k === n || k.endsWith("/" + n));
    if (get("metrics.json")) {
      const metrics = JSON.parse(files[get("metrics.json")]);
      let rows = [];
      try { rows = get("samples.jsonl") ? parseLines(files[get("samples.jsonl")]) : []; } catch (e) { rows = []; }
      const prompts = {}, samples = rows.map((r) => {
        if (!(r.problem_id in prompts)) prompts[r.problem_id] = r.prompt;
        const [thinking, answer] = split(r.generation || "");
        return { problem_id: r.problem_id, method: r.method, setting: r.setting, correct: r.correct, extracted: r.extracted, gold: r.gold,
                 thinking, answer, thinking_tokens: r.thinking_tokens, answer_tokens: r.answer_tokens };
      });
      return { kind: "eval", title: "eval · " + get("metrics.json"), source: names.join(", "), data: { metrics, samples, prompts },
               warnings: (metrics.warnings || []).concat(rows.length ? [] : ["no samples.jsonl opened with metrics.json: the points have no samples to drill into"]) };
    }
    if (get("report.json")) return { kind: "curation", title: "curation · " + get("report.json"), source: names.join(", "),
                                     data: { report: JSON.parse(files[get("report.json")]), manifest: get("manifest.json") ? JSON.parse(files[get("manifest.json")]) : null }, warnings: [] };
    const name = names[0], text = files[name];
    let whole = null;
    try { whole = JSON.parse(text); } catch (e) { whole = null; }
    if (whole && whole.nodes && whole.problems) return { kind: "tree", title: "search tree · " + name, source: name, data: whole, warnings: [] };
    let recs = [];
    try { recs = parseLines(text); } catch (e) { recs = []; }
    if (recs.length && (recs[0].type === "generation" || recs[0].type === "token")) {
      const prompts = [], byIdx = new Map(), warnings = [];
      for (const r of recs) {
        if (r.type === "generation") { const h = Object.assign({}, r, { tokens: [] }); prompts.push(h); byIdx.set(r.prompt_index, h); }
        else if (r.type === "token" && byIdx.has(r.prompt_index)) byIdx.get(r.prompt_index).tokens.push(r);
      }
      for (const h of prompts) if (typeof h.generated_tokens === "number" && h.tokens.length !== h.generated_tokens) {
        h.cut_short = true;
        warnings.push(`trace cut short: prompt ${h.prompt_index} has ${h.tokens.length} of its ${h.generated_tokens} token records`);
      }
      return { kind: "trace", title: "trace · " + name, source: name, data: { prompts }, warnings };
    }
    throw new Error(`${name} is neither a trace (.jsonl from --trace), a search tree (.json from --tree), an eval run's metrics.json (+ samples.jsonl) nor a curation report.json`);
  }

  function picker() {
    const root = $("#app");
    root.innerHTML = `<header><h1>ttscale view</h1><span class="src">open a trace, a search tree, an eval run or a curation report</span></header>
      <main><div class="drop" id="drop">Drop files here, or <label><u>choose files</u><input type="file" id="files" multiple hidden></label>:
      a trace <code>.jsonl</code> (<code>ttscale generate --trace</code>), a search tree <code>.json</code> (<code>ttscale search --tree</code>),
      an eval run's <code>metrics.json</code> with <code>samples.jsonl</code>, or a curation <code>report.json</code>.
      Nothing leaves your browser.</div><div id="open-error"></div></main>`;
    const open = async (list) => {
      const files = {};
      for (const f of list) files[f.webkitRelativePath || f.name] = await f.text();
      try { render(fromFiles(files)); } catch (e) { $("#open-error").innerHTML = `<div class="error">${esc(e.message)}</div>`; }
    };
    $("#files").onchange = (ev) => open(ev.target.files);
    const d = $("#drop");
    d.ondragover = (ev) => { ev.preventDefault(); d.classList.add("over"); };
    d.ondragleave = () => d.classList.remove("over");
    d.ondrop = (ev) => { ev.preventDefault(); d.classList.remove("over"); open(ev.dataTransfer.files); };
    done("picker");
  }

  function render(view) {
    ({ trace: renderTrace, tree: renderTree, eval: renderEval, curation: renderCuration })[view.kind](view);
  }

  window.ttscaleFromFiles = fromFiles;   // for tests and for scripting the page
  const node = document.getElementById("ttscale-data");
  const data = node ? JSON.parse(node.textContent) : null;
  if (data) render(data); else picker();
})();
