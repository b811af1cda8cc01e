// pytest-agentloop HTML report. Everything from the run is put on screen with textContent:
// nothing from the data is ever parsed as HTML.
"use strict";
// The data elements hold gzipped JSON in base64 (see html.py).
async function agentloopData(id) {
  const text = document.getElementById(id).textContent;
  let bytes;
  if (Uint8Array.fromBase64) bytes = Uint8Array.fromBase64(text);
  else {
    const binary = atob(text);
    bytes = new Uint8Array(binary.length);
    for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  }
  performance.mark("agentloop:bytes:" + id);
  const inflate = new DecompressionStream("gzip");
  const writer = inflate.writable.getWriter();
  writer.write(bytes);
  writer.close();
  const json = new TextDecoder().decode(await new Response(inflate.readable).arrayBuffer());
  performance.mark("agentloop:text:" + id);
  return JSON.parse(json);
}

(async function () {
  performance.mark("agentloop:start");
  const D = await agentloopData("agentloop-data");
  let tracesRead = null;  // the traces' data is read after the first paint, or when a trace is first shown
  const loadTraces = () => tracesRead || (tracesRead = agentloopData("agentloop-traces"));
  performance.mark("agentloop:parsed");
  const PAGE = 100;
  const SVGNS = "http://www.w3.org/2000/svg";
  const LABELS = {
    regressions: "newly failing (regressions)", newly_passing: "newly passing", still_failing: "still failing",
    new: "new evals", removed: "removed evals", flaky: "flaky", not_in_baseline: "not run in the baseline",
    unchanged: "unchanged",
  };
  const SHORT = { regressions: "regression", newly_passing: "newly passing", still_failing: "still failing", new: "new", flaky: "flaky" };
  const OUTCOMES = ["failed", "error", "passed", "skipped"];
  const HIST = { P: "passed", F: "failed", E: "error", S: "skipped" };

  // -- small DOM helpers -----------------------------------------------------------------
  function el(tag, cls, text) {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }
  function add(parent, ...children) {
    for (const child of children) if (child !== null && child !== undefined) parent.appendChild(child);
    return parent;
  }
  function badge(text, cls) { return el("span", "badge " + (cls || ""), text); }
  function fmtScore(v) { return v === null || v === undefined ? "–" : Number(v).toFixed(2); }
  function fmtSecs(v) { return v === null || v === undefined || isNaN(v) ? "–" : v < 1 ? (v * 1000).toFixed(0) + " ms" : v.toFixed(2) + " s"; }
  function parseTime(text) { return Date.parse(String(text).replace(/(\.\d{3})\d*Z$/, "$1Z")); }
  function fmtBytes(n) {
    if (n < 1024) return n + " B";
    if (n < 1024 * 1024) return (n / 1024).toFixed(1) + " KB";
    return (n / 1024 / 1024).toFixed(1) + " MB";
  }
  function kv(pairs) {
    const dl = el("dl", "kv");
    for (const [k, v] of pairs) {
      if (v === null || v === undefined || v === "") continue;
      add(dl, el("dt", null, k), v instanceof Node ? add(el("dd"), v) : el("dd", null, v));
    }
    return dl;
  }

  // -- rows --------------------------------------------------------------------------------
  const C = Object.fromEntries(D.columns.map((name, i) => [name, i]));
  const rows = D.rows.map((v, index) => ({
    index, search: null, urgency: 0,
    nodeid: v[C.nodeid], eval_id: v[C.eval_id] ?? v[C.nodeid].split("::").pop(), title: v[C.title], outcome: v[C.outcome], score: v[C.score],
    explanation: v[C.explanation], tags: v[C.tags], split: v[C.split], must_pass: v[C.must_pass], scoring: v[C.scoring],
    duration: v[C.duration], verdict_source: v[C.verdict_source], repeats: v[C.repeats], flaky: v[C.flaky],
    input_tokens: v[C.input_tokens], output_tokens: v[C.output_tokens], baseline_status: v[C.baseline_status],
    trace_label: v[C.trace_label], trace_id: v[C.trace_id], line: v[C.line], rubric: v[C.rubric],
    threshold: v[C.threshold], expected: v[C.expected], judge_reason: v[C.judge_reason], assertions: v[C.assertions],
    trace: v[C.trace], hist: v[C.hist],
  }));
  const byNodeid = new Map(rows.map((r) => [r.nodeid, r]));
  performance.mark("agentloop:rows");

  const STATUS_RANK = { regressions: 0, still_failing: 2, new: 3 };
  function urgency(row) {
    const broken = row.outcome === "failed" || row.outcome === "error";
    const status = STATUS_RANK[row.baseline_status];
    return (broken ? (status === undefined ? 4 : status) : 5) * 10 + OUTCOMES.indexOf(row.outcome);
  }
  for (const row of rows) row.urgency = urgency(row);

  // -- header: gate, run facts, counts ----------------------------------------------------
  function renderHeader() {
    const run = D.run;
    const gate = document.getElementById("gate");
    if (run.gate_passed !== null) {
      const line = el("div", "verdict " + (run.gate_passed ? "pass" : "fail"),
        "gate (" + (run.gate_policy || "all") + "): " + (run.gate_passed ? "passed" : "FAILED"));
      add(gate, line);
      if (run.gate_reasons.length) {
        const list = el("ul");
        for (const reason of run.gate_reasons) add(list, el("li", null, reason));
        add(gate, list);
      }
    } else if (run.exit_status !== null) {
      add(gate, el("div", "verdict " + (run.exit_status === 0 ? "pass" : "fail"), "exit status " + run.exit_status));
    }
    for (const note of run.notes) add(gate, el("div", "muted", note));
    const facts = document.getElementById("facts");
    const sources = {};
    for (const r of rows) if (r.verdict_source) sources[r.verdict_source.split(":")[0]] = (sources[r.verdict_source.split(":")[0]] || 0) + 1;
    const total = rows.reduce((s, r) => s + (r.duration || 0), 0);
    const pairs = [
      ["run", run.run_id], ["started", run.started], ["finished", run.finished],
      ["commit", run.git_commit ? run.git_commit.slice(0, 12) + (run.git_branch ? " (" + run.git_branch + ")" : "") : null],
      ["harness", run.harness_version], ["judge", run.judge_model ? run.judge_model + (run.judge_mode ? " (" + run.judge_mode + ")" : "") : null],
      ["verdicts", Object.keys(sources).length ? Object.entries(sources).map(([k, n]) => n + " " + k).join(", ") : null],
      ["run time", run.started && run.finished ? fmtSecs((parseTime(run.finished) - parseTime(run.started)) / 1000) : null],
      ["eval time", fmtSecs(total)],
    ];
    for (const [k, v] of pairs) if (v) add(facts, add(el("span"), document.createTextNode(k + " "), el("b", null, v)));
    if (Object.keys(run.options || {}).length) {
      const details = add(el("details"), el("summary", null, "options"));
      add(details, kv(Object.entries(run.options)));
      add(facts, details);
    }
    add(document.getElementById("counts"), countsTable());
  }

  function countsTable() {
    const splits = [...new Set(rows.map((r) => r.split))].sort();
    const table = el("table", "counts");
    const head = add(el("tr"), el("th", null, "split"), ...OUTCOMES.map((o) => el("th", null, o)), el("th", null, "total"));
    add(table, add(el("thead"), head));
    const body = el("tbody");
    for (const split of [...splits, "all"]) {
      const these = rows.filter((r) => split === "all" || r.split === split);
      const tr = add(el("tr"), el("td", null, split));
      for (const o of OUTCOMES) add(tr, el("td", "o-" + o, these.filter((r) => r.outcome === o).length));
      add(body, add(tr, el("td", null, these.length)));
    }
    return add(table, body);
  }

  // -- baseline diff --------------------------------------------------------------------------
  function evalLink(nodeid) {
    const link = el("button", "linkish mono", nodeid);
    link.type = "button";
    link.addEventListener("click", () => { if (byNodeid.has(nodeid)) select(byNodeid.get(nodeid), true); });
    return link;
  }

  function renderDiff() {
    if (!D.diff) return;
    const box = document.getElementById("diff");
    box.hidden = false;
    add(box, el("h2", null, "Against the baseline"), el("p", "muted", "baseline: " + D.diff.ref));
    const splits = Object.keys(D.diff.splits).sort();
    const kinds = Object.keys(LABELS).filter((k) => k !== "unchanged");
    const regressions = splits.flatMap((s) => D.diff.splits[s].regressions.map((n) => [s, n]));
    if (regressions.length) {
      const alarm = add(el("div", "regress-box"), el("h3", null, regressions.length + " regression" + (regressions.length > 1 ? "s" : "") + ": passed in the baseline, broken now"));
      const list = el("ul");
      for (const [split, nodeid] of regressions.slice(0, 100)) add(list, add(el("li"), evalLink(nodeid), el("span", "muted", " (" + split + ")")));
      if (regressions.length > 100) add(list, el("li", "muted", (regressions.length - 100) + " more: choose “regression” under “vs baseline” in the table"));
      add(box, add(alarm, list));
    } else {
      add(box, el("div", "ok-box", "no regressions against the baseline"));
    }
    const table = el("table", "counts");
    add(table, add(el("thead"), add(el("tr"), el("th", null, "split"), ...kinds.map((k) => el("th", null, LABELS[k])))));
    const body = el("tbody");
    for (const split of splits) add(body, add(el("tr"), el("td", null, split), ...kinds.map((k) => el("td", null, (D.diff.splits[split][k] || []).length))));
    add(box, add(table, body));
    for (const kind of kinds.slice(1)) {
      const names = splits.flatMap((s) => D.diff.splits[s][kind] || []);
      if (!names.length) continue;
      const details = add(el("details"), el("summary", null, LABELS[kind] + " (" + names.length + ")"));
      details.addEventListener("toggle", () => {  // the list is built when first opened
        if (details.querySelector("ul")) return;
        const list = el("ul");
        for (const nodeid of names.slice(0, 500)) add(list, add(el("li"), byNodeid.has(nodeid) ? evalLink(nodeid) : el("span", "mono", nodeid)));
        if (names.length > 500) add(list, el("li", "muted", (names.length - 500) + " more: filter the table by baseline status"));
        add(details, list);
      });
      add(box, details);
    }
  }

  // -- handoff --------------------------------------------------------------------------------
  function renderHandoff() {
    if (!D.handoff) return;
    const box = document.getElementById("handoff");
    box.hidden = false;
    add(box, el("h2", null, "Handoff"), add(el("p"), document.createTextNode("written to "), el("code", null, D.handoff.path)));
    if (D.handoff.text !== null) {
      const details = add(el("details"), el("summary", null, "read the handoff" + (D.handoff.truncated ? " (cut: open the file for all of it)" : "")));
      add(box, add(details, add(el("div", "markdown"), markdown(D.handoff.text))));
    }
  }

  // -- filters, sorting, table -------------------------------------------------------------
  const state = { search: "", outcome: "", baseline: "", tag: "", split: "", source: "", must: false, sort: "urgency", shown: PAGE, selected: null };

  function fillSelect(id, label, values, counts) {
    const select = document.getElementById(id);
    add(select, optionOf("", "all " + label));
    for (const v of values) add(select, optionOf(v, v + (counts ? " (" + (counts[v] || 0) + ")" : "")));
  }
  function optionOf(value, text) { const o = el("option", null, text); o.value = value; return o; }
  function countBy(fn) { const c = {}; for (const r of rows) for (const v of fn(r)) c[v] = (c[v] || 0) + 1; return c; }

  function setupFilters() {
    const outcomes = countBy((r) => [r.outcome]);
    fillSelect("f-outcome", "outcomes", OUTCOMES.filter((o) => outcomes[o]), outcomes);
    const statuses = countBy((r) => (r.baseline_status ? [r.baseline_status] : []));
    fillSelect("f-baseline", "vs baseline", Object.keys(LABELS).filter((k) => statuses[k]), statuses);
    if (!Object.keys(statuses).length) document.getElementById("f-baseline").hidden = true;
    const tags = countBy((r) => r.tags);
    fillSelect("f-tag", "tags", Object.keys(tags).sort(), tags);
    const splits = countBy((r) => [r.split]);
    fillSelect("f-split", "splits", Object.keys(splits).sort(), splits);
    const sources = countBy((r) => [r.verdict_source ? r.verdict_source.split(":")[0] : "literal only"]);
    fillSelect("f-source", "verdict sources", Object.keys(sources).sort(), sources);
    const bind = (id, key, event) => document.getElementById(id).addEventListener(event || "change", (e) => {
      state[key] = e.target.type === "checkbox" ? e.target.checked : e.target.value;
      state.shown = PAGE;
      renderTable();
    });
    bind("search", "search", "input");
    bind("f-outcome", "outcome"); bind("f-baseline", "baseline"); bind("f-tag", "tag"); bind("f-split", "split");
    bind("f-source", "source"); bind("f-must", "must"); bind("sort", "sort");
    for (const th of document.querySelectorAll("th[data-sort]")) {
      th.addEventListener("click", () => {
        const key = th.dataset.sort;
        state.sort = state.sort === key + "-asc" ? key + "-desc" : key + "-asc";
        document.getElementById("sort").value = state.sort;
        renderTable();
      });
    }
    document.getElementById("more").addEventListener("click", () => { state.shown += PAGE; renderTable(); });
    document.addEventListener("keydown", (e) => {
      if (e.key === "/" && document.activeElement.tagName !== "INPUT") { e.preventDefault(); document.getElementById("search").focus(); }
    });
  }

  function matches(row) {
    if (state.outcome && row.outcome !== state.outcome) return false;
    if (state.baseline && row.baseline_status !== state.baseline) return false;
    if (state.tag && !row.tags.includes(state.tag)) return false;
    if (state.split && row.split !== state.split) return false;
    if (state.source && (row.verdict_source ? row.verdict_source.split(":")[0] : "literal only") !== state.source) return false;
    if (state.must && !row.must_pass) return false;
    if (state.search) {
      if (row.search === null) row.search = [row.nodeid, row.title, row.explanation, row.judge_reason].join("\n").toLowerCase();
      for (const word of state.search.toLowerCase().split(/\s+/)) if (word && !row.search.includes(word)) return false;
    }
    return true;
  }

  function sorter() {
    const num = (v, missing) => (v === null || v === undefined ? missing : v);
    switch (state.sort) {
      case "score-asc": return (a, b) => num(a.score, 2) - num(b.score, 2) || a.index - b.index;
      case "score-desc": return (a, b) => num(b.score, -1) - num(a.score, -1) || a.index - b.index;
      case "duration-asc": return (a, b) => a.duration - b.duration || a.index - b.index;
      case "duration-desc": return (a, b) => b.duration - a.duration || a.index - b.index;
      case "id": return (a, b) => (a.nodeid < b.nodeid ? -1 : a.nodeid > b.nodeid ? 1 : 0);
      default: return (a, b) => a.urgency - b.urgency || a.index - b.index;
    }
  }

  // The last runs of one eval: a bar per run, coloured by outcome, as tall as its score.
  // Compact strips (table rows) draw one path per outcome; full strips a titled rect per run.
  function strip(hist, cell, height, titled) {
    const [letters, scores] = hist;
    const svg = document.createElementNS(SVGNS, "svg");
    svg.setAttribute("class", "strip");
    svg.setAttribute("width", String(Math.max(letters.length, 1) * (cell + 1)));
    svg.setAttribute("height", String(height));
    const paths = {};
    for (let i = 0; i < letters.length; i++) {
      const value = Array.isArray(scores) ? scores[i] : scores;  // one number: every run scored it
      const score = value === null ? 1 : Math.max(0.15, value);
      const x = i * (cell + 1), top = height * (1 - score);
      if (!titled) {
        paths[letters[i]] = (paths[letters[i]] || "") + "M" + x + " " + top.toFixed(1) + "h" + cell + "V" + height + "h-" + cell + "Z";
        continue;
      }
      const bar = document.createElementNS(SVGNS, "rect");
      bar.setAttribute("class", letters[i]);
      for (const [k, v] of [["x", x], ["y", top], ["width", cell], ["height", height - top]]) bar.setAttribute(k, String(v));
      const title = document.createElementNS(SVGNS, "title");
      const run = D.history_runs[D.history_runs.length - letters.length + i];
      title.textContent = (run ? run[0] + " " + run[1].slice(0, 16) + ": " : "") + HIST[letters[i]] + ", score " + fmtScore(value);
      bar.appendChild(title);
      svg.appendChild(bar);
    }
    for (const [letter, d] of Object.entries(paths)) {
      const path = document.createElementNS(SVGNS, "path");
      path.setAttribute("class", letter);
      path.setAttribute("d", d);
      svg.appendChild(path);
    }
    return svg;
  }

  function tableRow(row) {
    const tr = el("tr");
    tr.dataset.nodeid = row.nodeid;
    if (state.selected === row) tr.className = "selected";
    const evalCell = add(el("td"), el("div", "eval-id", row.eval_id), el("div", "title", row.title),
      el("div", "file", row.nodeid.split("::")[0] + (row.tags.length ? " · " + row.tags.join(", ") : "")));
    const split = row.split === "holdout" ? badge("holdout", "holdout") : el("span", "muted", row.split);
    const splitCell = add(el("td"), split, row.must_pass ? badge("must-pass", "must") : null);
    const status = row.baseline_status && row.baseline_status !== "unchanged" ? badge(SHORT[row.baseline_status] || row.baseline_status, "b-" + row.baseline_status) : null;
    add(tr,
      add(el("td"), badge(row.outcome, "o-" + row.outcome), row.flaky ? badge("flaky", "b-flaky") : null),
      evalCell, splitCell, el("td", null, fmtScore(row.score)),
      el("td", null, fmtSecs(row.duration)), verdictCell(row),
      add(el("td"), status), add(el("td"), row.hist[0].length ? strip(row.hist, 4, 14, false) : null));
    tr.addEventListener("click", () => select(row, false));
    return tr;
  }

  function verdictCell(row) {
    const cell = el("td", "muted", row.verdict_source ? row.verdict_source.split(":")[0] : "literal");
    if (row.verdict_source) cell.title = row.verdict_source;
    return cell;
  }

  let filtered = rows;
  function renderTable() {
    filtered = rows.filter(matches).sort(sorter());
    const body = document.querySelector("#table tbody");
    const fragment = document.createDocumentFragment();
    for (const row of filtered.slice(0, state.shown)) fragment.appendChild(tableRow(row));
    body.replaceChildren(fragment);
    const shown = Math.min(state.shown, filtered.length);
    document.getElementById("shown").textContent = filtered.length + " of " + rows.length + " evals match" + (shown < filtered.length ? ", showing the first " + shown : "");
    document.getElementById("more").hidden = shown >= filtered.length;
  }

  // -- detail -----------------------------------------------------------------------------------
  function select(row, scroll) {
    state.selected = row;
    for (const tr of document.querySelectorAll("#table tbody tr")) tr.classList.toggle("selected", tr.dataset.nodeid === row.nodeid);
    renderDetail(row);
    if (location.hash !== "#" + encodeURIComponent(row.nodeid)) history.replaceState(null, "", "#" + encodeURIComponent(row.nodeid));
    if (scroll) document.getElementById("detail").scrollIntoView({ block: "start" });
  }

  function renderDetail(row) {
    const box = document.getElementById("detail");
    box.replaceChildren();
    box.scrollTop = 0;
    add(box, add(el("h2"), badge(row.outcome, "o-" + row.outcome), document.createTextNode(" " + row.eval_id)), el("div", "muted", row.title));
    const nodeid = el("input");
    nodeid.readOnly = true; nodeid.value = row.nodeid; nodeid.setAttribute("aria-label", "node id");
    const copy = el("button", null, "copy");
    copy.type = "button";
    copy.addEventListener("click", () => {
      nodeid.select();
      const done = () => { copy.textContent = "copied"; };
      if (navigator.clipboard) navigator.clipboard.writeText(row.nodeid).then(done, () => { document.execCommand("copy"); done(); });
      else { document.execCommand("copy"); done(); }
    });
    add(box, add(el("div", "nodeid"), nodeid, copy));
    const tokens = row.input_tokens || row.output_tokens ? (row.input_tokens || 0) + " in / " + (row.output_tokens || 0) + " out" : null;
    add(box, kv([
      ["score", fmtScore(row.score) + (row.threshold !== null ? " (threshold " + row.threshold + ")" : "")],
      ["scoring", row.scoring], ["verdict source", row.verdict_source], ["repeats", row.repeats > 1 ? row.repeats + (row.flaky ? " (verdicts disagree: flaky)" : "") : null],
      ["judge tokens", tokens], ["duration", fmtSecs(row.duration)], ["split", row.split + (row.must_pass ? ", must-pass" : "")],
      ["tags", row.tags.join(", ")], ["vs baseline", row.baseline_status ? LABELS[row.baseline_status] || row.baseline_status : null],
      ["source trace", row.trace_id ? row.trace_label + " (" + row.trace_id + ")" : row.trace_label],
      ["written at", row.line ? row.nodeid.split("::")[0] + ":" + row.line : null],
    ]));
    if (row.hist[0].length) add(box, el("h3", null, "last " + row.hist[0].length + " runs"), strip(row.hist, 12, 24, true));
    if (row.explanation && row.explanation !== row.judge_reason) add(box, el("h3", null, row.outcome === "passed" ? "explanation" : "why"), el("pre", null, row.explanation));
    if (row.assertions.length) add(box, el("h3", null, "assertions"), assertionsTable(row));
    if (row.expected) add(box, el("h3", null, "expected behaviour"), el("p", null, row.expected));
    if (row.rubric) add(box, el("h3", null, "rubric"), el("pre", null, row.rubric));
    if (row.judge_reason) add(box, el("h3", null, "judge's reason"), el("p", null, row.judge_reason));
    loadTraces().then((traces) => { if (state.selected === row) renderTrace(box, row.trace === null ? null : traces[row.trace]); });
  }

  function assertionsTable(row) {
    const table = el("table");
    add(table, add(el("thead"), add(el("tr"), ...["", "assertion", "expected", "seen", "score"].map((h) => el("th", null, h)))));
    const body = el("tbody");
    for (const [type, line, passed, score, weight, expected, seen, artifact] of row.assertions) {
      const what = add(el("td"), el("div", "mono", type + (artifact ? " on " + artifact : "")), el("div", "muted", "line " + line + (weight === 0 ? ", weight 0 (not counted)" : "")));
      add(body, add(el("tr"), el("td", passed ? "a-pass" : "a-fail", passed ? "PASSED" : "FAILED"), what, el("td", null, expected), el("td", null, seen), el("td", null, fmtScore(score))));
    }
    return add(table, body);
  }

  function renderTrace(box, trace) {
    add(box, el("h2", null, "Trace"));
    if (!trace) { add(box, el("p", "muted", "no recorded trace for this eval")); return; }
    if (trace.problem) add(box, el("p", "a-fail", trace.problem));
    add(box, kv([["trace", trace.label + " (" + trace.trace_id + ")"], ["harness", trace.harness_version], ["model", trace.model]]));
    if (trace.question) add(box, el("h3", null, "question"), el("p", null, trace.question));
    if (trace.omitted) {
      add(box, el("p", "muted", "answer, artifacts and spans not embedded (this report's size budget went to failing evals' traces): see " + trace.answer_path));
    } else if (trace.answer_path) {
      add(box, el("h3", null, "answer (" + fmtBytes(trace.answer_size) + ")"));
      if (trace.answer_truncated) add(box, el("p", "muted", "cut: showing the start; all " + fmtBytes(trace.answer_size) + " are in " + trace.answer_path));
      add(box, add(el("div", "markdown answer"), markdown(trace.answer)));
    }
    if (trace.artifacts.length) add(box, el("h3", null, "artifacts (" + trace.artifacts.length + ")"), artifactList(trace));
    if (trace.spans.length) add(box, el("h3", null, "spans (" + trace.spans.length + ")"), spanTree(trace.spans));
  }

  function artifactList(trace) {
    const list = el("div");
    for (const a of trace.artifacts) {
      const line = add(el("div", "art"), el("span", "mono", a.name), el("span", "size", fmtBytes(a.size)));
      add(list, line);
      if (a.text === null) { add(line, el("span", "muted", trace.omitted ? "not embedded" : "binary: listed, not embedded")); continue; }
      const view = el("button", null, "view");
      view.type = "button";
      let shown = null;
      view.addEventListener("click", () => {
        if (shown) { shown.remove(); shown = null; view.textContent = "view"; return; }
        shown = el("div");
        if (a.truncated) add(shown, el("p", "muted", "cut: all " + fmtBytes(a.size) + " are in " + a.path));
        add(shown, el("pre", "artifact-text", a.text));
        line.after(shown);
        view.textContent = "hide";
      });
      add(line, view);
    }
    return list;
  }

  function spanTree(spans) {
    const when = parseTime;
    const depth = new Map();
    let first = Infinity, last = -Infinity;
    for (const [id, parent, , , start, ms] of spans) {
      depth.set(id, depth.has(parent) ? depth.get(parent) + 1 : 0);
      const t = when(start);
      if (!isNaN(t)) { first = Math.min(first, t); last = Math.max(last, t + (ms || 0)); }
    }
    const total = Math.max(last - first, 1);
    const table = el("table", "spans");
    add(table, add(el("thead"), add(el("tr"), ...["span", "kind", "time", "duration", "tokens in/out"].map((h) => el("th", null, h)))));
    const body = el("tbody");
    for (const [id, , name, kind, start, ms, tin, tout, model, error] of spans) {
      const nameCell = add(el("td", "mono", name), model ? el("div", "muted", model) : null);
      nameCell.style.paddingLeft = 6 + 14 * depth.get(id) + "px";
      const bar = el("div", "bar");
      const fill = el("span");
      const t = when(start);
      if (!isNaN(t)) { fill.style.left = ((t - first) / total) * 100 + "%"; fill.style.width = ((ms || 0) / total) * 100 + "%"; }
      add(bar, fill);
      const tokens = tin === null && tout === null ? "" : (tin || 0) + " / " + (tout || 0);
      const tr = add(el("tr", error ? "err" : null), nameCell, el("td", "muted", kind), add(el("td"), bar),
        el("td", null, ms === null ? "–" : fmtSecs(ms / 1000)), el("td", null, tokens));
      if (error) tr.title = error;
      add(body, tr);
    }
    return add(table, body);
  }

  // -- markdown, as DOM nodes built from text (never HTML) ---------------------------------
  function inline(text, parent) {
    const pattern = /(`[^`]+`)|(\*\*[^*]+\*\*|(?<!\w)__[^_]+__(?!\w))|(\*[^*\s][^*]*\*|(?<!\w)_[^_\s][^_]*_(?!\w))|(\[[^\]]+\]\([^)\s]+\))/g;
    let at = 0;
    for (const m of text.matchAll(pattern)) {
      if (m.index > at) parent.appendChild(document.createTextNode(text.slice(at, m.index)));
      const token = m[0];
      if (m[1]) add(parent, el("code", null, token.slice(1, -1)));
      else if (m[2]) add(parent, inline(token.slice(2, -2), el("strong")));
      else if (m[3]) add(parent, inline(token.slice(1, -1), el("em")));
      else {
        const close = token.indexOf("](");
        add(parent, inline(token.slice(1, close), el("span", "link")), el("span", "url", " (" + token.slice(close + 2, -1) + ")"));
      }
      at = m.index + token.length;
    }
    if (at < text.length) parent.appendChild(document.createTextNode(text.slice(at)));
    return parent;
  }

  function markdown(text) {
    const out = document.createDocumentFragment();
    const lines = String(text).replace(/\r\n?/g, "\n").split("\n");
    let para = [];
    let list = null;
    const flush = () => {
      if (para.length) add(out, inline(para.join(" "), el("p")));
      para = [];
    };
    for (let i = 0; i < lines.length; i++) {
      const line = lines[i];
      let m;
      if (/^\s*```/.test(line)) {
        flush(); list = null;
        const code = [];
        for (i++; i < lines.length && !/^\s*```/.test(lines[i]); i++) code.push(lines[i]);
        add(out, add(el("pre"), el("code", null, code.join("\n"))));
      } else if ((m = /^(#{1,6})\s+(.*)$/.exec(line))) {
        flush(); list = null;
        add(out, inline(m[2], el("h" + Math.min(6, m[1].length + 2))));
      } else if ((m = /^\s*([-*+]|\d+[.)])\s+(.*)$/.exec(line))) {
        flush();
        const ordered = /\d/.test(m[1]);
        if (!list || list.ordered !== ordered) { list = { ordered, node: el(ordered ? "ol" : "ul") }; add(out, list.node); }
        add(list.node, inline(m[2], el("li")));
      } else if (/^\s*\|.*\|\s*$/.test(line) && i + 1 < lines.length && /^\s*\|[\s:|-]+\|\s*$/.test(lines[i + 1])) {
        flush(); list = null;
        const cells = (l) => l.trim().replace(/^\||\|$/g, "").split("|").map((c) => c.trim());
        const table = el("table");
        add(table, add(el("thead"), add(el("tr"), ...cells(line).map((c) => inline(c, el("th"))))));
        const body = el("tbody");
        for (i += 2; i < lines.length && /^\s*\|.*\|\s*$/.test(lines[i]); i++) add(body, add(el("tr"), ...cells(lines[i]).map((c) => inline(c, el("td")))));
        i--;
        add(out, add(table, body));
      } else if ((m = /^>\s?(.*)$/.exec(line))) {
        flush(); list = null;
        add(out, inline(m[1], el("blockquote")));
      } else if (/^\s*([-*_])(\s*\1){2,}\s*$/.test(line)) {
        flush(); list = null;
        add(out, el("hr"));
      } else if (!line.trim()) {
        flush(); list = null;
      } else if (list && /^\s{2,}\S/.test(line)) {
        inline(" " + line.trim(), list.node.lastChild);
      } else {
        list = null;
        para.push(line.trim());
      }
    }
    flush();
    return out;
  }

  // -- start -------------------------------------------------------------------------------------
  performance.mark("agentloop:data");
  renderHeader();
  renderDiff();
  renderHandoff();
  performance.mark("agentloop:header");
  setupFilters();
  renderTable();
  performance.mark("agentloop:table");
  const wanted = decodeURIComponent(location.hash.slice(1));
  if (wanted && byNodeid.has(wanted)) select(byNodeid.get(wanted), false);
  // Usable once the first screen is laid out and painted: the frame after next.
  requestAnimationFrame(() => setTimeout(() => {
    document.documentElement.dataset.ready = "1";
    window.agentloopReady = performance.now();
    setTimeout(loadTraces, 50);
  }, 0));
})().catch((error) => {
  document.getElementById("summary").textContent =
    "This browser could not read the report's data (it needs DecompressionStream: Chromium 80, Firefox 113, " +
    "Safari 16.4 or newer): " + error;
});
