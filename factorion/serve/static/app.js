// factorion serve: the page. Draws the task grid, sends it (or pasted text) to the JSON API and
// polls build jobs. Everything the page shows comes from the API (see /docs).
"use strict";

const $ = (id) => document.getElementById(id);
const state = {
  rows: 11, cols: 11, cells: new Map(), items: new Set(), abbrev: {}, config: null, mode: "grid", n: 0 };
const key = (y, x) => `${y},${x}`;

function message(text, info = false) {
  const m = $("message");
  m.textContent = text || "";
  m.className = info ? "info" : "";
  m.hidden = !text;
}

async function api(path, body) {
  const opts = body === undefined ? {} : {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) };
  let r;
  try {
    r = await fetch(path, opts);
  } catch (e) {
    throw new Error(`the server does not answer (${e.message})`);
  }
  const data = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error(typeof data.detail === "string" ? data.detail : `HTTP ${r.status}`);
  return data;
}

// ------------------------------------------------------------------ the grid

function abbrev(item) {  // the pictures' labels (factorion.core.render.abbrev), sent by /api/items
  return state.abbrev[item] || item.slice(0, 3);
}

function drawCell(div) {
  const c = state.cells.get(key(+div.dataset.y, +div.dataset.x));
  div.className = "c" + (c ? " " + c.kind : "");
  div.textContent = c && c.item ? abbrev(c.item) : "";
  div.title = c ? `${c.kind}${c.item ? " " + c.item : ""}${c.rate ? ` ${c.rate}/s` : ""} (${div.dataset.y}, ${div.dataset.x})`
    : `(${div.dataset.y}, ${div.dataset.x})`;
}

function drawGrid() {
  const g = $("grid");
  const cell = Math.max(14, Math.min(36, Math.floor(640 / Math.max(state.rows, state.cols))));
  g.style.setProperty("--cell", cell + "px");
  g.style.gridTemplateColumns = `repeat(${state.cols}, var(--cell))`;
  const frag = document.createDocumentFragment();
  for (let y = 0; y < state.rows; y++) {
    for (let x = 0; x < state.cols; x++) {
      const d = document.createElement("div");
      d.dataset.y = y;
      d.dataset.x = x;
      drawCell(d);
      frag.appendChild(d);
    }
  }
  g.replaceChildren(frag);
}

function resize() {
  const rows = +$("rows").value, cols = +$("cols").value;
  const { min, max } = state.config ? state.config.size : { min: 5, max: 32 };
  for (const [name, v] of [["rows", rows], ["columns", cols]]) {
    if (!Number.isInteger(v) || v < min || v > max) {
      message(`${name}: a grid is ${min} to ${max} tiles a side (got ${$(name === "rows" ? "rows" : "cols").value || "nothing"})`);
      return;
    }
  }
  message("");
  state.rows = rows;
  state.cols = cols;
  for (const k of [...state.cells.keys()]) {
    const [y, x] = k.split(",").map(Number);
    if (y >= rows || x >= cols) state.cells.delete(k);
  }
  drawGrid();
}

function tool() {
  return document.querySelector("input[name=tool]:checked").value;
}

function place(div) {
  const y = +div.dataset.y, x = +div.dataset.x, k = key(y, x), t = tool(), old = state.cells.get(k);
  if (t === "erase") {
    state.cells.delete(k);
  } else if (t === "obstacle") {
    if (old && old.kind === "obstacle") state.cells.delete(k); else state.cells.set(k, { kind: t, y, x });
  } else {
    const item = $("item").value.trim();
    if (!item) return message(`a ${t} needs an item: pick one in the item list`);
    if (state.items.size && !state.items.has(item)) return message(`unknown item '${item}': pick one from the list`);
    const rateText = $("rate").value.trim();
    const rate = rateText === "" ? null : Number(rateText);
    if ((t === "source" || t === "sink") && rate !== null && !(rate > 0 && rate <= state.config.max_rate)) {
      return message(`bad rate '${rateText}': items/s above 0 and at most ${state.config.max_rate}, or empty for unlimited`);
    }
    if (old && old.kind === t && old.item === item) state.cells.delete(k);
    else state.cells.set(k, { kind: t, y, x, item, ...((t === "source" || t === "sink") && rate !== null ? { rate } : {}) });
  }
  message("");
  drawCell(div);
}

function task() {
  if (state.mode === "paste") {
    const text = $("paste").value;
    if (!text.trim()) throw new Error("paste a blueprint string, blueprint JSON or a text spec first");
    return { text, index: +$("index").value || 0 };
  }
  return { grid: { height: state.rows, width: state.cols, cells: [...state.cells.values()] } };
}

// ------------------------------------------------------------------ results

function card(title) {
  $("no-results").hidden = true;
  const c = document.createElement("div");
  c.className = "card";
  c.innerHTML = `<h3><span class="title"></span><span class="state"></span></h3><div class="body"></div>`;
  c.querySelector(".title").textContent = title;
  $("jobs").prepend(c);
  return c;
}

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

function picture(png) {
  const img = el("img");
  img.src = "data:image/png;base64," + png;
  img.alt = "the factory with its simulated flows";
  return img;
}

function fmt(v) {
  return Number(v).toPrecision(4).replace(/\.?0+$/, "");
}

function showMeasure(c, r) {
  const b = c.querySelector(".body");
  const t = el("p", "throughput", `${fmt(r.total)} items/s`);
  t.dataset.value = r.total;
  const sinks = el("ul", "sinks");
  for (const s of r.per_sink) {
    const items = Object.entries(s.items).map(([i, v]) => `${i} ${fmt(v)}/s`).join(", ") || "nothing";
    sinks.appendChild(el("li", "", `sink (${s.y}, ${s.x}): ${fmt(s.rate)}/s (${items})`));
  }
  const meta = el("p", "meta", `${r.height}x${r.width}; ${r.bottlenecks.length} bottleneck(s) (red), `
    + `${r.idle.length} idle (grey)${r.jammed.length ? `, ${r.jammed.length} jammed` : ""}`
    + (r.converged ? "" : "; rates did not settle: approximate"));
  const counts = Object.entries(r.counts).map(([k, n]) => `${k} ${n}`).join(", ");
  const inventory = el("p", "meta", `entities: ${counts || "none"}`);
  b.replaceChildren(t, picture(r.png), sinks, meta, inventory, el("pre", "report", r.report));
}

function showBuild(c, job) {
  const r = job.result, b = c.querySelector(".body");
  const t = el("p", "throughput", `${fmt(r.throughput)} items/s`);
  t.dataset.value = r.throughput;
  const won = el("p", "meta winner", `winner: ${r.method}, best of ${r.candidates} candidates `
    + `(${r.seconds.toFixed(1)} s search, ${job.elapsed_s.toFixed(1)} s in all); draftsman: `
    + (r.warnings.length ? `${r.warnings.length} warning(s): ${r.warnings[0]}` : "loads it cleanly"));
  const text = el("textarea", "blueprint");
  text.readOnly = true;
  text.value = r.blueprint;
  const copy = el("button", "copy", "Copy blueprint string");
  copy.type = "button";
  copy.onclick = async () => {
    try {
      await navigator.clipboard.writeText(r.blueprint);
    } catch {
      text.select();
      document.execCommand("copy");
    }
    copy.textContent = "Copied";
    setTimeout(() => (copy.textContent = "Copy blueprint string"), 1500);
  };
  const row = el("div", "copy-row");
  row.append(copy, el("span", "meta", `${r.blueprint.length} characters, ${r.height}x${r.width} tiles`));
  b.replaceChildren(t, won, picture(r.png), text, row, el("pre", "report", r.report));
}

function showJob(c, job) {
  c.dataset.state = job.state;
  c.querySelector(".state").textContent = job.state === "done" ? "done"
    : job.state === "failed" ? "failed" : `${job.state} ${Math.round(job.progress * 100)}%`;
  if (job.state === "done") return showBuild(c, job);
  const b = c.querySelector(".body");
  if (job.state === "failed") {
    c.classList.add("failed");
    return b.replaceChildren(el("p", "error", job.error));
  }
  let bar = b.querySelector("progress");
  if (!bar) {
    bar = el("progress");
    bar.max = 1;
    b.replaceChildren(bar, el("p", "meta"));
  }
  bar.value = job.progress;
  b.querySelector(".meta").textContent = `${job.elapsed_s.toFixed(1)} s (budget ${job.budget_s} s`
    + `${job.policy ? ", with the policy" : ""}; starting a build process takes a few seconds)`;
}

async function poll(c, id) {
  try {
    const job = await api(`/api/jobs/${id}`);
    showJob(c, job);
    if (job.state === "starting" || job.state === "running") setTimeout(() => poll(c, id), 500);
  } catch (e) {
    c.querySelector(".state").textContent = "lost";
    c.querySelector(".body").replaceChildren(el("p", "error", e.message));
  }
}

async function build() {
  let body;
  try {
    body = { ...task(), budget_s: +$("budget").value, policy: $("policy").checked };
  } catch (e) {
    return message(e.message);
  }
  try {
    const job = await api("/api/build", body);
    message("");
    const c = card(`Build ${++state.n} (${body.budget_s} s${body.policy ? ", policy" : ""})`);
    c.dataset.job = job.id;
    showJob(c, job);
    poll(c, job.id);
  } catch (e) {
    message(e.message);
  }
}

async function measure() {
  const b = $("measure");
  b.disabled = true;
  try {
    const r = await api("/api/throughput", task());
    message("");
    const c = card(`Measured ${++state.n}`);
    c.querySelector(".state").textContent = "done";
    showMeasure(c, r);
  } catch (e) {
    message(e.message);
  } finally {
    b.disabled = false;
  }
}

// ------------------------------------------------------------------ start

function setMode(mode) {
  state.mode = mode;
  $("tab-grid").classList.toggle("on", mode === "grid");
  $("tab-paste").classList.toggle("on", mode === "paste");
  $("pane-grid").hidden = mode !== "grid";
  $("pane-paste").hidden = mode !== "paste";
}

async function start() {
  $("grid").addEventListener("click", (e) => { if (e.target.dataset.y !== undefined) place(e.target); });
  $("rows").addEventListener("change", resize);
  $("cols").addEventListener("change", resize);
  $("clear").onclick = () => { state.cells.clear(); drawGrid(); };
  $("tab-grid").onclick = () => setMode("grid");
  $("tab-paste").onclick = () => setMode("paste");
  $("budget").oninput = () => ($("budget-out").textContent = `${$("budget").value} s`);
  $("build").onclick = build;
  $("measure").onclick = measure;
  drawGrid();
  try {
    state.config = await api("/api/config");
    const b = state.config.budget;
    Object.assign($("budget"), { min: b.min, max: b.max, value: b.default });
    $("budget-out").textContent = `${b.default} s`;
    if (!state.config.policy) {
      $("policy").disabled = true;
      $("policy-label").title = "no policy checkpoint: start the server with --checkpoint CKPT";
    }
    const { items, abbrev } = await api("/api/items");
    state.items = new Set(items);
    state.abbrev = abbrev;
    const list = $("items");
    for (const i of items) list.appendChild(Object.assign(document.createElement("option"), { value: i }));
    document.body.dataset.ready = "1";
  } catch (e) {
    message(e.message);
  }
}

start();
