"use strict";
(function () {
  // The trace view: spans in depth-first order from #view-data, drawn a window at a time (only the rows in sight
  // exist in the DOM), a detail panel for the selected span. User text reaches the page through textContent only.
  var data = JSON.parse(document.getElementById("view-data").textContent);
  var spans = data.spans, n = spans.length, ROW = 24, OVERSCAN = 12;
  var total = Math.max(data.duration_ms, 1e-9);
  var collapsed = new Uint8Array(n), visible = [], selected = -1, pending = false;
  var matches = [], matchSet = new Uint8Array(n), current = -1;
  var viewport = document.getElementById("viewport"), spacer = document.getElementById("spacer");
  var rowsBox = document.getElementById("rows"), detail = document.getElementById("detail");

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }
  function fmtMs(ms) {
    if (ms === null || ms === undefined) return "";
    if (ms === 0) return "0";
    if (ms < 1) return ms.toFixed(2) + " ms";
    if (ms < 1000) return Math.round(ms) + " ms";
    if (ms < 60000) return (ms / 1000).toFixed(1) + " s";
    var s = Math.round(ms / 1000);
    return Math.floor(s / 60) + " min " + (s % 60) + " s";
  }
  function fmtCost(c) { return c ? "$" + (c < 0.01 ? c.toPrecision(3) : c.toFixed(4)) : "$0"; }
  function fmtInt(v) { return v === null || v === undefined ? "" : Number(v).toLocaleString("en-US"); }

  // the rows a reader can see: depth-first order, skipping the inside of collapsed spans (a span's subtree is
  // the `size` entries from it, so a collapsed span skips straight past its own)
  function computeVisible() {
    visible = [];
    for (var i = 0; i < n; ) {
      visible.push(i);
      i += collapsed[i] ? spans[i].size : 1;
    }
    spacer.style.height = visible.length * ROW + "px";
    document.body.dataset.visibleRows = String(visible.length);
  }

  function buildRow(i, pos) {
    var s = spans[i], row = el("div", "row" + (s.status === "error" ? " error" : "") + (matchSet[i] ? " match" : ""));
    row.setAttribute("role", "treeitem");
    row.setAttribute("aria-level", String(s.depth + 1));
    row.setAttribute("aria-selected", i === selected ? "true" : "false");
    row.tabIndex = i === selected ? 0 : -1;
    row.dataset.index = String(i);
    row.dataset.spanId = s.span_id;
    row.style.top = pos * ROW + "px";
    row.style.position = "absolute";
    row.style.left = "0";
    row.style.right = "0";
    var label = el("span", "label");
    label.style.paddingLeft = Math.min(s.depth, 40) * 14 + 4 + "px";
    var tg = el("button", "tg" + (s.size > 1 ? "" : " leaf"), s.size > 1 ? (collapsed[i] ? "\u25B8" : "\u25BE") : "");
    tg.type = "button";
    tg.tabIndex = -1;
    if (s.size > 1) {
      row.setAttribute("aria-expanded", collapsed[i] ? "false" : "true");
      tg.setAttribute("aria-label", (collapsed[i] ? "Expand " : "Collapse ") + s.name);
      tg.dataset.toggle = String(i);
    }
    label.appendChild(tg);
    label.appendChild(el("span", "name", s.name));
    if (s.model) label.appendChild(el("span", "model", s.model));
    row.appendChild(label);
    var track = el("span", "track"), bar = el("span", "bar" + (s.critical ? " crit" : "") + (s.status === "error" ? " error" : ""));
    bar.style.left = (100 * s.offset_ms / total) + "%";
    bar.style.width = Math.max(0, 100 * s.duration_ms / total) + "%";
    bar.style.background = data.colours[s.operation_type] || "#adb5bd";
    bar.title = s.name + " \u2014 " + fmtMs(s.duration_ms);
    track.appendChild(bar);
    row.appendChild(track);
    row.appendChild(el("span", "dur", fmtMs(s.duration_ms)));
    return row;
  }

  function render() {
    pending = false;
    // the rows are replaced below: a keyboard user's focus on a row moves to the new row of the selected span
    var hadFocus = rowsBox.contains(document.activeElement);
    var h = viewport.clientHeight || 600;
    var first = Math.max(0, Math.floor(viewport.scrollTop / ROW) - OVERSCAN);
    var last = Math.min(visible.length, Math.ceil((viewport.scrollTop + h) / ROW) + OVERSCAN);
    var rows = [];
    for (var p = first; p < last; p++) rows.push(buildRow(visible[p], p));
    rowsBox.replaceChildren.apply(rowsBox, rows);
    if (hadFocus) {
      var r = rowsBox.querySelector('[data-index="' + selected + '"]');
      (r || viewport).focus({ preventScroll: true });
    }
  }
  function schedule() {
    if (!pending) { pending = true; requestAnimationFrame(render); }
  }

  function field(dl, name, value, cls) {
    if (value === null || value === undefined || value === "") return;
    dl.appendChild(el("dt", null, name));
    var dd = el("dd", cls || null, value);
    dd.dataset.field = name;
    dl.appendChild(dd);
  }
  function block(title, value, key) {
    if (value === null || value === undefined) return;
    detail.appendChild(el("h2", null, title));
    var pre = el("pre", null, typeof value === "string" ? value : JSON.stringify(value, null, 2));
    pre.dataset.field = key;
    pre.tabIndex = 0;
    detail.appendChild(pre);
  }

  function showDetail(i) {
    var s = spans[i];
    detail.replaceChildren();
    detail.appendChild(el("h2", null, s.name));
    var dl = el("dl");
    field(dl, "span id", s.span_id);
    field(dl, "operation", s.operation_type);
    field(dl, "status", s.status, "status-" + s.status);
    field(dl, "message", s.status_message, s.status === "error" ? "status-error" : null);
    field(dl, "level", s.level);
    field(dl, "start", new Date(data.start_unix_ms + s.offset_ms).toISOString() + " (+" + fmtMs(s.offset_ms) + ")");
    field(dl, "duration", fmtMs(s.duration_ms) + (s.open ? " (no end time: until its last child)" : ""));
    field(dl, "self time", fmtMs(s.self_ms));
    if (s.first_token_ms !== null) field(dl, "first token", fmtMs(s.first_token_ms));
    field(dl, "critical path", s.critical ? "yes" : "no");
    field(dl, "provider", s.provider);
    field(dl, "model", s.model);
    field(dl, "input tokens", fmtInt(s.input_tokens));
    field(dl, "output tokens", fmtInt(s.output_tokens));
    field(dl, "total tokens", fmtInt(s.total_tokens));
    field(dl, "cost", fmtCost(s.cost_usd));
    if (s.size > 1) {
      field(dl, "subtree", fmtInt(s.subtree_spans) + " spans, " + fmtInt(s.subtree_errors) + " errors, " +
        fmtInt(s.subtree_tokens) + " tokens, " + fmtCost(s.subtree_cost_usd));
    }
    if (s.orphan) field(dl, "note", "orphan: its parent " + s.parent_span_id + " is not in the trace");
    if (s.cycle) field(dl, "note", "its parent chain loops back to it; shown as a root");
    if (s.tags && s.tags.length) field(dl, "tags", s.tags.join(", "));
    detail.appendChild(dl);
    block("Input", s.input, "input");
    block("Output", s.output, "output");
    if (s.metadata && Object.keys(s.metadata).length) block("Metadata", s.metadata, "metadata");
    detail.dataset.spanId = s.span_id;
  }

  function positionOf(i) { return visible.indexOf(i); }
  function reveal(pos) {
    var top = pos * ROW, h = viewport.clientHeight;
    if (top < viewport.scrollTop) viewport.scrollTop = top;
    else if (top + ROW > viewport.scrollTop + h) viewport.scrollTop = top + ROW - h;
  }
  function select(i, focus) {
    selected = i;
    showDetail(i);
    var pos = positionOf(i);
    if (pos >= 0) reveal(pos);
    render();
    if (focus) {
      var r = rowsBox.querySelector('[data-index="' + i + '"]');
      if (r) r.focus({ preventScroll: true });
    }
  }
  // collapses or expands span i; the caller redraws (select does)
  function setCollapsed(i, value) {
    if (spans[i].size <= 1 || !!collapsed[i] === value) return;
    collapsed[i] = value ? 1 : 0;
    computeVisible();
  }

  rowsBox.addEventListener("click", function (ev) {
    var t = ev.target.closest("[data-toggle]");
    if (t) { var k = +t.dataset.toggle; setCollapsed(k, !collapsed[k]); select(k, true); return; }
    var r = ev.target.closest(".row");
    if (r) select(+r.dataset.index, true);
  });
  viewport.addEventListener("keydown", function (ev) {
    if (selected < 0) { if (visible.length) select(visible[0], true); return; }
    var pos = positionOf(selected), s = spans[selected];
    switch (ev.key) {
      case "ArrowDown": if (pos + 1 < visible.length) select(visible[pos + 1], true); break;
      case "ArrowUp": if (pos > 0) select(visible[pos - 1], true); break;
      case "Home": select(visible[0], true); break;
      case "End": select(visible[visible.length - 1], true); break;
      case "ArrowRight":
        if (s.size > 1 && collapsed[selected]) { setCollapsed(selected, false); select(selected, true); }
        else if (s.size > 1) select(selected + 1, true);
        break;
      case "ArrowLeft":
        if (s.size > 1 && !collapsed[selected]) { setCollapsed(selected, true); select(selected, true); }
        else if (s.parent >= 0) select(s.parent, true);
        break;
      case "Enter": case " ":
        if (s.size > 1) setCollapsed(selected, !collapsed[selected]);
        select(selected, true);
        break;
      default: return;
    }
    ev.preventDefault();
  });
  // find: spans whose name, model, id or status message contain the text (case-insensitive); Enter goes to the
  // next one (Shift+Enter: previous), opening collapsed spans above it
  var find = document.getElementById("find"), findCount = document.getElementById("find-count");
  function haystack(s) {
    return [s.name, s.model || "", s.span_id, s.status_message || ""].join("\u0000").toLowerCase();
  }
  find.addEventListener("input", function () {
    var q = find.value.trim().toLowerCase();
    matches = [];
    matchSet = new Uint8Array(n);
    current = -1;
    if (q) for (var i = 0; i < n; i++) if (haystack(spans[i]).indexOf(q) >= 0) { matches.push(i); matchSet[i] = 1; }
    findCount.textContent = q ? (matches.length ? matches.length + " found" : "none found") : "";
    render();
  });
  find.addEventListener("keydown", function (ev) {
    if (ev.key !== "Enter" || !matches.length) return;
    ev.preventDefault();
    current = (current + (ev.shiftKey ? matches.length - 1 : 1)) % matches.length;
    var i = matches[current], changed = false;
    for (var a = spans[i].parent; a >= 0; a = spans[a].parent) if (collapsed[a]) { collapsed[a] = 0; changed = true; }
    if (changed) computeVisible();
    select(i, false);
    findCount.textContent = (current + 1) + " of " + matches.length;
  });
  viewport.addEventListener("scroll", schedule);
  window.addEventListener("resize", schedule);

  // time axis: five ticks
  var axis = document.getElementById("axis");
  for (var k = 0; k <= 4; k++) {
    var tick = el("span", null, fmtMs(total * k / 4));
    tick.style.left = (25 * k) + "%";
    axis.appendChild(tick);
  }
  var head = document.querySelector("header.top");
  document.documentElement.style.setProperty("--head", (head.offsetHeight + (document.querySelector(".notice") ? 40 : 0)) + "px");

  computeVisible();
  if (n) select(0, false); else render();
  document.body.dataset.rendered = performance.now().toFixed(1);
})();
