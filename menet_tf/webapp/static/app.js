"use strict";
// The page of menet-app: upload photos, poll their jobs, compare before/after with zoom and pan, download.
const $ = (sel, el = document) => el.querySelector(sel);
const state = { config: null, done: [] };

async function loadConfig() {
  const r = await fetch("/api/config");
  state.config = await r.json();
  const select = $("#model");
  for (const m of state.config.models) {
    const o = document.createElement("option");
    o.value = m.name;
    o.textContent = m.name + (m.default ? " (default)" : "");
    o.selected = m.default;
    select.append(o);
  }
  const showSummary = () => {
    const m = state.config.models.find((x) => x.name === select.value);
    $("#model-summary").textContent = m ? m.summary : "";
  };
  select.addEventListener("change", showSummary);
  showSummary();
  $("#self-ensemble").value = state.config.self_ensemble ? "1" : "0";  // the server's default
  const l = state.config.limits;
  $("#limits").textContent = `Up to ${l.max_upload_mb} MB and ${l.max_megapixels} megapixels per photo; photos stay on this computer.`;
}

function addCard(name) {
  const card = $("#card").content.firstElementChild.cloneNode(true);
  $(".name", card).textContent = name;
  $(".state", card).textContent = "uploading";
  $("#results").prepend(card);
  return card;
}

function showError(card, message) {
  const e = $(".error", card);
  e.textContent = message;
  e.hidden = false;
  $(".state", card).textContent = "failed";
  $("progress", card).hidden = true;
}

async function upload(file) {
  const card = addCard(file.name);
  const form = new FormData();
  form.append("file", file);
  form.append("model", $("#model").value);
  form.append("rain_scale", $("#rain-scale").value);
  form.append("precision", $("#precision").value);
  form.append("self_ensemble", $("#self-ensemble").value);
  let job;
  try {
    const r = await fetch("/api/jobs", { method: "POST", body: form });
    job = await r.json();
    if (!r.ok) return showError(card, job.error || `error ${r.status}`);
  } catch (err) {
    return showError(card, "the server did not answer: " + err);
  }
  card.dataset.job = job.id;
  const passes = job.self_ensemble ? "4 flips" : "1 pass";
  $(".name", card).textContent = `${file.name} (${job.width}x${job.height}, ${job.model}, ${passes})`;
  poll(card, job.id);
}

async function poll(card, id) {
  for (;;) {
    let job;
    try {
      const r = await fetch(`/api/jobs/${id}`);
      job = await r.json();
      if (!r.ok) return showError(card, job.error || `error ${r.status}`);
    } catch (err) {
      return showError(card, "the server did not answer: " + err);
    }
    const bar = $("progress", card);
    if (job.state === "queued") {
      $(".state", card).textContent = `queued${job.position ? ` (#${job.position})` : ""}`;
      bar.removeAttribute("value");
    } else if (job.state === "running") {
      $(".state", card).textContent = job.total > 1 ? `de-raining: tile ${job.done} of ${job.total}` : "de-raining";
      bar.max = job.total; bar.value = job.done;
    } else if (job.state === "error") {
      return showError(card, job.error);
    } else if (job.state === "done") {
      bar.max = 1; bar.value = 1; bar.hidden = true;
      $(".state", card).textContent = `done in ${job.seconds.toFixed(1)} s`;
      showCompare(card, job);
      state.done.push(id);
      $("#zip").disabled = false;
      card.classList.add("done");
      return;
    }
    await new Promise((res) => setTimeout(res, 300));
  }
}

function showCompare(card, job) {
  const cmp = $(".compare", card);
  const before = $(".before", cmp), after = $(".after", cmp);
  const stage = $(".stage", cmp), viewport = $(".viewport", cmp);
  const clip = $(".after-clip", cmp), divider = $(".divider", cmp), slider = $(".slider", cmp);
  const link = $(".download", cmp);
  link.href = `/api/jobs/${job.id}/result.png?download=1`;
  link.setAttribute("download", `${job.name}.png`);
  cmp.hidden = false;
  const view = { scale: 1, x: 0, y: 0, w: job.width, h: job.height };
  const apply = () => {
    stage.style.transform = `translate(${view.x}px, ${view.y}px) scale(${view.scale})`;
    stage.classList.toggle("pixelated", view.scale >= 2);
  };
  const fit = () => {
    const r = viewport.getBoundingClientRect();
    view.scale = Math.min(r.width / view.w, r.height / view.h, 1);
    view.x = (r.width - view.w * view.scale) / 2; view.y = (r.height - view.h * view.scale) / 2;
    apply();
  };
  const zoomAt = (factor, cx, cy) => {
    const s = Math.min(Math.max(view.scale * factor, 0.05), 16);
    view.x = cx - (cx - view.x) * (s / view.scale); view.y = cy - (cy - view.y) * (s / view.scale);
    view.scale = s; apply();
  };
  const centre = () => { const r = viewport.getBoundingClientRect(); return [r.width / 2, r.height / 2]; };
  const setSplit = (p) => { clip.style.clipPath = `inset(0 0 0 ${p}%)`; divider.style.left = `${p}%`; };
  slider.addEventListener("input", () => setSplit(slider.value));
  setSplit(slider.value);
  $(".zoom-in", cmp).onclick = () => zoomAt(2, ...centre());
  $(".zoom-out", cmp).onclick = () => zoomAt(0.5, ...centre());
  $(".zoom-fit", cmp).onclick = fit;
  $(".zoom-1", cmp).onclick = () => zoomAt(1 / view.scale, ...centre());
  viewport.addEventListener("wheel", (e) => {
    e.preventDefault();
    const r = viewport.getBoundingClientRect();
    zoomAt(e.deltaY < 0 ? 1.25 : 0.8, e.clientX - r.left, e.clientY - r.top);
  }, { passive: false });
  let drag = null;
  viewport.addEventListener("pointerdown", (e) => {
    drag = { x: e.clientX - view.x, y: e.clientY - view.y };
    viewport.setPointerCapture(e.pointerId); viewport.classList.add("dragging");
  });
  viewport.addEventListener("pointermove", (e) => {
    if (!drag) return;
    view.x = e.clientX - drag.x; view.y = e.clientY - drag.y; apply();
  });
  const end = () => { drag = null; viewport.classList.remove("dragging"); };
  viewport.addEventListener("pointerup", end);
  viewport.addEventListener("pointercancel", end);
  let loaded = 0;
  const onload = () => { if (++loaded === 2) { fit(); cmp.dataset.ready = "1"; } };
  before.onload = onload; after.onload = onload;
  before.src = `/api/jobs/${job.id}/input.png`;
  after.src = `/api/jobs/${job.id}/result.png`;
  window.addEventListener("resize", fit);
}

function handleFiles(files) {
  for (const f of files) upload(f);
}

function setup() {
  const drop = $("#drop");
  $("#files").addEventListener("change", (e) => { handleFiles(e.target.files); e.target.value = ""; });
  for (const ev of ["dragenter", "dragover"]) drop.addEventListener(ev, (e) => { e.preventDefault(); drop.classList.add("over"); });
  for (const ev of ["dragleave", "drop"]) drop.addEventListener(ev, (e) => { e.preventDefault(); drop.classList.remove("over"); });
  drop.addEventListener("drop", (e) => handleFiles(e.dataTransfer.files));
  $("#zip").addEventListener("click", () => {
    if (state.done.length) window.location.href = `/api/zip?ids=${state.done.join(",")}`;
  });
  loadConfig();
}

setup();
