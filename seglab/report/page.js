// report.html's behaviour (seglab/report/html.py embeds this file and the runs as JSON):
// the table sorts on a click on a column's head; the ticked runs' per-class IoU bars and
// validation predictions are drawn side by side; the curves draw every run in its colour and
// the ticked ones thicker. Text from the runs is set as text, never parsed as HTML.
"use strict";
const DATA = JSON.parse(document.getElementById("report-data").textContent);
const SVG = "http://www.w3.org/2000/svg";
const selected = new Set(DATA.selected);

function el(tag, attrs, text) {
  const node = tag.startsWith("svg:")
    ? document.createElementNS(SVG, tag.slice(4))
    : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  if (text !== undefined && text !== null) node.textContent = String(text);
  return node;
}

function number(text) {
  const value = parseFloat(String(text).replace(/[^0-9eE+.\-].*$/, ""));
  return Number.isNaN(value) ? null : value;
}

// --- the table ----------------------------------------------------------------------------
function drawTable(sortColumn, descending) {
  const table = document.getElementById("runs");
  table.replaceChildren();
  const head = el("tr");
  head.append(el("th", {}, "show"), el("th", {}, "#"));
  DATA.header.forEach((name, i) => {
    const mark = i === sortColumn ? (descending ? " ▼" : " ▲") : "";
    const th = el("th", { class: "sortable", "data-column": i }, name + mark);
    th.addEventListener("click", () =>
      drawTable(i, i === sortColumn ? !descending : true));
    head.append(th);
  });
  const thead = el("thead");
  thead.append(head);
  table.append(thead);
  const order = DATA.runs.map((_, i) => i);
  if (sortColumn !== null) {
    order.sort((a, b) => {
      const x = DATA.runs[a].row[sortColumn], y = DATA.runs[b].row[sortColumn];
      const nx = number(x), ny = number(y);
      let c;
      if (nx !== null && ny !== null) c = nx - ny;
      else if (nx !== null || ny !== null) return nx === null ? 1 : -1;  // blanks last
      else c = String(x ?? "").localeCompare(String(y ?? ""));
      return descending ? -c : c;
    });
  }
  const body = el("tbody");
  for (const i of order) {
    const run = DATA.runs[i];
    const tr = el("tr", { class: "run", "data-run": i });
    const box = el("input", { type: "checkbox" });
    box.checked = selected.has(i);
    box.addEventListener("change", () => {
      box.checked ? selected.add(i) : selected.delete(i);
      drawSelected();
    });
    const swatch = el("span", { class: "swatch", style: `background:${run.colour}` });
    const tick = el("td");
    tick.append(box, swatch);
    tr.append(tick, el("td", {}, run.number));
    for (const cell of run.row) tr.append(el("td", {}, cell ?? ""));
    body.append(tr);
  }
  table.append(body);
  document.body.dataset.sortedBy = sortColumn === null ? "" : DATA.header[sortColumn];
}

// --- charts -------------------------------------------------------------------------------
const W = 520, H = 300, PAD = { left: 56, right: 12, top: 24, bottom: 40 };

function scale(values, from, to) {
  let low = Math.min(...values), high = Math.max(...values);
  if (low === high) { low -= 0.5; high += 0.5; }
  return v => from + (v - low) / (high - low) * (to - from);
}

function axes(svg, title, xs, ys, xlabel, ylabel) {
  svg.append(el("svg:text", { x: W / 2, y: 16, "text-anchor": "middle", class: "title" }, title));
  svg.append(el("svg:line", { x1: PAD.left, y1: H - PAD.bottom, x2: W - PAD.right,
    y2: H - PAD.bottom, class: "axis" }));
  svg.append(el("svg:line", { x1: PAD.left, y1: PAD.top, x2: PAD.left, y2: H - PAD.bottom,
    class: "axis" }));
  const fmt = v => (Math.abs(v) >= 100 ? v.toFixed(0) : v.toPrecision(3));
  for (const [v, low] of [[Math.min(...ys), true], [Math.max(...ys), false]]) {
    svg.append(el("svg:text", { x: PAD.left - 4, y: low ? H - PAD.bottom : PAD.top + 8,
      "text-anchor": "end", class: "tick" }, fmt(v)));
  }
  for (const [v, anchor] of [[Math.min(...xs), "start"], [Math.max(...xs), "end"]]) {
    svg.append(el("svg:text", { x: anchor === "start" ? PAD.left : W - PAD.right,
      y: H - PAD.bottom + 14, "text-anchor": anchor, class: "tick" }, v));
  }
  svg.append(el("svg:text", { x: W / 2, y: H - 6, "text-anchor": "middle", class: "label" },
    xlabel));
  svg.append(el("svg:text", { x: 12, y: H / 2, "text-anchor": "middle", class: "label",
    transform: `rotate(-90 12 ${H / 2})` }, ylabel));
}

function drawCurves(id, key, title, ylabel) {
  const holder = document.getElementById(id);
  holder.replaceChildren();
  const svg = el("svg:svg", { width: W, height: H, viewBox: `0 0 ${W} ${H}` });
  const points = DATA.runs.flatMap(r => r[key]);
  if (!points.length) {
    svg.append(el("svg:text", { x: W / 2, y: H / 2, "text-anchor": "middle", class: "note" },
      `${title}: no run logged it`));
    holder.append(svg);
    return;
  }
  const xs = points.map(p => p[0]), ys = points.map(p => p[1]);
  axes(svg, title, xs, ys, "iteration", ylabel);
  const x = scale(xs, PAD.left, W - PAD.right), y = scale(ys, H - PAD.bottom, PAD.top);
  DATA.runs.forEach((run, i) => {
    if (!run[key].length) return;
    const d = run[key].map((p, j) => `${j ? "L" : "M"}${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}`);
    const wide = selected.has(i) ? 3 : 1.2;
    const path = el("svg:path", { d: d.join(""), class: "curve", "data-run": i,
      stroke: run.colour, "stroke-width": wide, fill: "none" });
    path.append(el("svg:title", {}, `${run.number}: ${run.label}`));
    svg.append(path);
    if (run[key].length === 1) {  // one validation: a point, not a line
      const [px, py] = run[key][0];
      svg.append(el("svg:circle", { cx: x(px), cy: y(py), r: 3 + wide, fill: run.colour }));
    }
  });
  holder.append(svg);
}

function drawClassBars() {
  const holder = document.getElementById("per-class");
  holder.replaceChildren();
  const runs = [...selected].sort((a, b) => a - b).filter(i =>
    Object.keys(DATA.runs[i].per_class).length);
  if (!runs.length) {
    holder.append(el("p", { class: "note" }, "tick a finished run to see its per-class IoU"));
    return;
  }
  const classes = [...new Set(runs.flatMap(i => Object.keys(DATA.runs[i].per_class)))];
  const width = Math.max(W, classes.length * (runs.length * 10 + 14) + PAD.left + PAD.right);
  const svg = el("svg:svg", { width, height: H + 60, viewBox: `0 0 ${width} ${H + 60}` });
  svg.append(el("svg:text", { x: width / 2, y: 16, "text-anchor": "middle", class: "title" },
    "per-class IoU (%) of the ticked runs"));
  const y = v => H - PAD.bottom - (v / 100) * (H - PAD.bottom - PAD.top);
  svg.append(el("svg:line", { x1: PAD.left, y1: y(0), x2: width - PAD.right, y2: y(0),
    class: "axis" }));
  for (const v of [0, 50, 100]) {
    svg.append(el("svg:text", { x: PAD.left - 4, y: y(v) + 4, "text-anchor": "end",
      class: "tick" }, v));
  }
  const group = (width - PAD.left - PAD.right) / classes.length;
  const bar = Math.max(2, (group - 6) / runs.length);
  classes.forEach((name, c) => {
    runs.forEach((i, k) => {
      const value = DATA.runs[i].per_class[name];
      if (value === null || value === undefined) return;
      const left = PAD.left + c * group + 3 + k * bar;
      const rect = el("svg:rect", { x: left, y: y(value), width: bar - 1,
        height: y(0) - y(value), fill: DATA.runs[i].colour, class: "bar", "data-run": i });
      rect.append(el("svg:title", {}, `${DATA.runs[i].number}: ${name} ${value}`));
      svg.append(rect);
    });
    const cx = PAD.left + (c + 0.5) * group;
    svg.append(el("svg:text", { x: cx, y: y(0) + 12, "text-anchor": "end", class: "tick",
      transform: `rotate(-40 ${cx} ${y(0) + 12})` }, name));
  });
  holder.append(svg);
}

function drawPredictions() {
  const holder = document.getElementById("predictions");
  holder.replaceChildren();
  const runs = [...selected].sort((a, b) => a - b).filter(i => DATA.runs[i].predictions.length);
  if (!runs.length) {
    holder.append(el("p", { class: "note" }, DATA.any_predictions
      ? "tick a run that saved validation predictions"
      : "no run saved validation predictions: train with " +
        "+default_hooks.visualization.draw=true +default_hooks.visualization.interval=N " +
        "(mmseg's SegVisualizationHook draws every Nth validation image)"));
    return;
  }
  const names = [...new Set(runs.flatMap(i => DATA.runs[i].predictions.map(p => p.name)))];
  const table = el("table", { class: "predictions" });
  const head = el("tr");
  head.append(el("th", {}, "image"));
  for (const i of runs) head.append(el("th", { style: `color:${DATA.runs[i].colour}` },
    `${DATA.runs[i].number}: ${DATA.runs[i].label}`));
  table.append(head);
  for (const name of names) {
    const tr = el("tr");
    tr.append(el("td", {}, name));
    for (const i of runs) {
      const td = el("td");
      const found = DATA.runs[i].predictions.find(p => p.name === name);
      if (found) td.append(el("img", { src: found.src, alt: name, class: "prediction" }));
      tr.append(td);
    }
    table.append(tr);
  }
  holder.append(table);
}

function drawSelected() {
  drawCurves("loss", "loss", "training loss", "loss");
  drawCurves("miou", "miou", "validation mIoU", "mIoU (%)");
  drawClassBars();
  drawPredictions();
}

// `report.html#sort=COLUMN` (or `#sort=-COLUMN`, descending) opens it sorted: links, and tests
const wanted = decodeURIComponent(location.hash.replace(/^#sort=/, ""));
const column = DATA.header.indexOf(wanted.replace(/^-/, ""));
drawTable(column >= 0 ? column : null, wanted.startsWith("-"));
drawSelected();
document.body.dataset.ready = "yes";
