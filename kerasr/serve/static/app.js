// kerasr web app: plain JavaScript, no framework, no network beyond this server.
"use strict";

const DRAW_COUNT = 5;   // as in the original app: five seeds, five pictures per click

const state = {
  models: null,          // GET /api/models
  generator: null,       // name of the selected generator
  file: null,            // the File chosen for upscaling
  beforeUrl: null,       // object URLs we made, revoked when replaced
  afterUrl: null,
};

const $ = (id) => document.getElementById(id);

// --- small helpers ---

function showError(message) {
  $("alert-text").textContent = message;
  $("alert").hidden = false;
}

function clearError() {
  $("alert").hidden = true;
}

function formatBytes(n) {
  if (n >= 1024 * 1024) return (n / (1024 * 1024)).toFixed(1).replace(/\.0$/, "") + " MB";
  if (n >= 1024) return Math.round(n / 1024) + " KB";
  return n + " bytes";
}

// The server answers errors as {"detail": "one line"}; anything else (a proxy page, a dropped
// connection) still gets a readable message.
async function errorMessage(response) {
  try {
    const body = await response.json();
    if (body && typeof body.detail === "string") return body.detail;
  } catch (_) { /* not JSON */ }
  return `the server answered ${response.status} ${response.statusText}`;
}

// Shows a progress line with a running clock; returns a function that hides it again.
function startProgress(boxId, textId, label) {
  const started = performance.now();
  const box = $(boxId);
  const text = $(textId);
  const tick = () => {
    const seconds = (performance.now() - started) / 1000;
    text.textContent = `${label} ${seconds.toFixed(1)} s`;
  };
  tick();
  box.hidden = false;
  const timer = setInterval(tick, 100);
  return {
    setLabel(newLabel) { label = newLabel; tick(); },
    stop() { clearInterval(timer); box.hidden = true; },
  };
}

// --- sections (Generate / Upscale) ---

function showSection(name) {
  for (const tab of document.querySelectorAll(".sections [role=tab]")) {
    const selected = tab.dataset.section === name;
    tab.setAttribute("aria-selected", String(selected));
    $("section-" + tab.dataset.section).hidden = !selected;
  }
  if (location.hash !== "#" + name) history.replaceState(null, "", "#" + name);
}

// --- generate ---

function legend(description) {
  const wrap = document.createElement("span");
  wrap.className = "legend";
  wrap.tabIndex = 0;
  wrap.textContent = "Legend";
  const tip = document.createElement("span");
  tip.className = "tooltip";
  tip.setAttribute("role", "tooltip");
  tip.textContent = description;
  wrap.appendChild(tip);
  return wrap;
}

function selectGenerator(name) {
  state.generator = name;
  for (const tab of document.querySelectorAll(".model-tab")) {
    tab.setAttribute("aria-selected", String(tab.dataset.model === name));
  }
}

function buildGeneratorTabs(generators) {
  const box = $("generator-tabs");
  box.replaceChildren();
  for (const g of generators) {
    const tab = document.createElement("button");
    tab.type = "button";
    tab.className = "model-tab";
    tab.setAttribute("role", "tab");
    tab.dataset.model = g.name;
    const label = document.createElement("span");
    label.textContent = g.name;
    tab.append(label, legend(`${g.description} (${g.image_size}×${g.image_size} pixels)`));
    tab.addEventListener("click", () => selectGenerator(g.name));
    box.appendChild(tab);
  }
  $("generator-empty").hidden = generators.length > 0;
  $("draw").disabled = generators.length === 0;
  if (generators.length) selectGenerator(generators[0].name);
}

function fillUpscalerSelect(select, upscalers, selected) {
  select.replaceChildren();
  for (const u of upscalers) {
    const option = document.createElement("option");
    option.value = u.name;
    option.textContent = `${u.name} (×${u.scale})`;
    option.selected = u.name === selected;
    select.appendChild(option);
  }
}

function renderCards(images, upscaled) {
  const gallery = $("gallery");
  gallery.replaceChildren();
  for (const image of images) {
    const url = "data:image/png;base64," + image.png;
    const card = document.createElement("figure");
    card.className = "card" + (upscaled ? " smooth" : "");
    card.style.margin = "0";
    const img = document.createElement("img");
    img.src = url;
    img.alt = `Generated image, seed ${image.seed}`;
    img.width = image.width;
    img.height = image.height;
    const foot = document.createElement("figcaption");
    foot.className = "card-foot";
    const seed = document.createElement("button");
    seed.type = "button";
    seed.className = "seed";
    seed.textContent = "seed " + image.seed;
    seed.title = "Use this seed as the start seed";
    seed.addEventListener("click", () => { $("seed").value = image.seed; $("seed").focus(); });
    const save = document.createElement("a");
    save.href = url;
    save.download = `${state.generator}-seed${image.seed}.png`;
    save.textContent = "Save";
    foot.append(seed, save);
    card.append(img, foot);
    gallery.appendChild(card);
  }
}

async function draw() {
  clearError();
  const body = { model: state.generator, n: DRAW_COUNT };
  const seedText = $("seed").value.trim();
  if (seedText !== "") {
    const seed = Number(seedText);
    const maxSeed = state.models.limits.max_seed - (DRAW_COUNT - 1);
    if (!Number.isInteger(seed) || seed < 0 || seed > maxSeed) {
      showError(`The start seed must be a whole number from 0 to ${maxSeed}.`);
      return;
    }
    body.seed = seed;
  }
  const upscale = $("gen-upscale").checked;
  if (upscale) body.upscale = $("gen-upscaler").value;

  $("draw").disabled = true;
  const progress = startProgress("gen-progress", "gen-progress-text",
    upscale ? `Drawing ${DRAW_COUNT} and upscaling…` : `Drawing ${DRAW_COUNT}…`);
  try {
    const response = await fetch("/api/generate", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
    });
    if (!response.ok) throw new Error(await errorMessage(response));
    const result = await response.json();
    renderCards(result.images, Boolean(result.upscaler));
  } catch (error) {
    showError("Drawing failed: " + error.message);
  } finally {
    progress.stop();
    $("draw").disabled = false;
  }
}

// --- upscale ---

function updateUpscalerLegend() {
  const name = $("upscaler").value;
  const entry = (state.models.upscalers || []).find((u) => u.name === name);
  $("upscaler-legend-text").textContent = entry ? entry.description : "";
}

function replaceUrl(key, url) {
  if (state[key]) URL.revokeObjectURL(state[key]);
  state[key] = url;
}

function setSlider(percent) {
  $("compare").querySelector(".compare-stage").style.setProperty("--pos", percent + "%");
}

// Reads the picture's size in the browser so that an image over the server's limits is
// reported at once, not after the upload.
function chooseFile(file) {
  clearError();
  state.file = null;
  $("upscale").disabled = true;
  $("compare").hidden = true;
  $("file-info").textContent = "";
  if (!file) return;
  const limits = state.models.limits;
  if (file.size > limits.max_upload_bytes) {
    showError(`${file.name} is ${formatBytes(file.size)}; the limit is ` +
      `${formatBytes(limits.max_upload_bytes)}.`);
    return;
  }
  const url = URL.createObjectURL(file);
  const probe = new Image();
  probe.onload = () => {
    const w = probe.naturalWidth, h = probe.naturalHeight;
    const info = `${file.name}: ${w}×${h}, ${formatBytes(file.size)}`;
    if (w * h > limits.max_pixels) {
      URL.revokeObjectURL(url);
      const side = Math.floor(Math.sqrt(limits.max_pixels));
      showError(`${file.name} is ${w}×${h} = ${(w * h).toLocaleString("en")} pixels; ` +
        `this server upscales at ` +
        `most ${limits.max_pixels.toLocaleString("en")} (e.g. ${side}×${side}). Crop or shrink it first.`);
      return;
    }
    replaceUrl("beforeUrl", url);
    state.file = file;
    $("file-info").textContent = info;
    $("upscale").disabled = !$("upscaler").value;
  };
  probe.onerror = () => {
    URL.revokeObjectURL(url);
    // Some formats the server reads (e.g. TIFF) the browser cannot preview: let the server decide.
    state.file = file;
    replaceUrl("beforeUrl", null);
    $("file-info").textContent = `${file.name}: ${formatBytes(file.size)} (no preview)`;
    $("upscale").disabled = !$("upscaler").value;
  };
  probe.src = url;
}

function upscale() {
  if (!state.file) return;
  clearError();
  const model = $("upscaler").value;
  const form = new FormData();
  form.append("file", state.file, state.file.name);
  form.append("model", model);

  $("upscale").disabled = true;
  $("compare").hidden = true;
  // XMLHttpRequest rather than fetch: it reports upload progress.
  const xhr = new XMLHttpRequest();
  const fill = $("up-progress-fill");
  fill.classList.remove("indeterminate");
  fill.style.width = "0";
  const progress = startProgress("up-progress", "up-progress-text", "Uploading…");
  xhr.upload.onprogress = (event) => {
    if (event.lengthComputable) fill.style.width = (100 * event.loaded / event.total) + "%";
  };
  xhr.upload.onload = () => {
    fill.style.width = "";
    fill.classList.add("indeterminate");
    progress.setLabel(`Upscaling with ${model}…`);
  };
  xhr.responseType = "blob";
  xhr.onload = async () => {
    progress.stop();
    $("upscale").disabled = false;
    if (xhr.status !== 200) {
      showError("Upscaling failed: " + await blobError(xhr));
      return;
    }
    showResult(xhr.response, xhr.getResponseHeader("Content-Disposition"),
      xhr.getResponseHeader("X-Kerasr-Scale"));
  };
  xhr.onerror = () => {
    progress.stop();
    $("upscale").disabled = false;
    showError("Upscaling failed: the server could not be reached.");
  };
  xhr.open("POST", "/api/upscale");
  xhr.send(form);
}

async function blobError(xhr) {
  try {
    const body = JSON.parse(await xhr.response.text());
    if (typeof body.detail === "string") return body.detail;
  } catch (_) { /* not JSON */ }
  return `the server answered ${xhr.status} ${xhr.statusText}`;
}

function showResult(blob, disposition, scale) {
  const afterUrl = URL.createObjectURL(blob);
  replaceUrl("afterUrl", afterUrl);
  const match = /filename="([^"]+)"/.exec(disposition || "");
  const filename = match ? match[1] : "upscaled.png";
  const after = $("after");
  const before = $("before");
  after.onload = () => {
    // Fit the comparison in the window: as wide as the panel allows, at most 55% as tall.
    const aspect = after.naturalWidth / after.naturalHeight;
    const width = Math.min(720, Math.round(0.55 * window.innerHeight * aspect));
    $("compare").style.setProperty("--stage-width", width + "px");
    // Without a browser preview of the original, the result stands in for both halves.
    before.src = state.beforeUrl || afterUrl;
    $("result-info").textContent =
      `${after.naturalWidth}×${after.naturalHeight}, ${formatBytes(blob.size)}`;
    $("after-tag").textContent = scale ? `After ×${scale}` : "After";
    const link = $("download");
    link.href = afterUrl;
    link.download = filename;
    link.hidden = false;
    $("compare").hidden = false;
    $("compare").dataset.ready = "true";
  };
  after.src = afterUrl;
}

// --- start-up ---

async function loadModels() {
  const status = $("server-status");
  try {
    const response = await fetch("/api/models");
    if (!response.ok) throw new Error(await errorMessage(response));
    state.models = await response.json();
  } catch (error) {
    status.textContent = "server unreachable";
    status.className = "status down";
    showError("Could not load the model list: " + error.message);
    return;
  }
  const m = state.models;
  const count = (n, word) => `${n} ${word}${n === 1 ? "" : "s"}`;
  status.textContent = `${count(m.generators.length, "generator")} · ` +
    count(m.upscalers.length, "upscaler");
  status.className = "status ok";

  buildGeneratorTabs(m.generators);
  fillUpscalerSelect($("gen-upscaler"), m.upscalers, m.default_upscaler);
  fillUpscalerSelect($("upscaler"), m.upscalers, m.default_upscaler);
  $("gen-upscale").disabled = m.upscalers.length === 0;
  updateUpscalerLegend();
  const side = Math.floor(Math.sqrt(m.limits.max_pixels));
  $("upscale-limits").textContent = `Up to ${formatBytes(m.limits.max_upload_bytes)} and ` +
    `${m.limits.max_pixels.toLocaleString("en")} pixels (e.g. ${side}×${side}).`;
  document.body.dataset.ready = "true";
}

document.addEventListener("DOMContentLoaded", () => {
  for (const tab of document.querySelectorAll(".sections [role=tab]")) {
    tab.addEventListener("click", () => showSection(tab.dataset.section));
  }
  showSection(location.hash === "#upscale" ? "upscale" : "generate");
  $("alert").querySelector(".alert-close").addEventListener("click", clearError);
  $("draw").addEventListener("click", draw);
  $("gen-upscale").addEventListener("change", () => {
    $("gen-upscaler").disabled = !$("gen-upscale").checked;
  });
  $("file").addEventListener("change", () => chooseFile($("file").files[0]));
  $("upscaler").addEventListener("change", () => {
    updateUpscalerLegend();
    $("upscale").disabled = !state.file;
  });
  $("upscale").addEventListener("click", upscale);
  $("slider").addEventListener("input", () => setSlider($("slider").value));
  loadModels();
});
