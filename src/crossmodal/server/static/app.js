// crossmodal search page: plain JS, no build step. Talks to the JSON API of the same origin.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { image: null, token: sessionStorage.getItem("crossmodal-token") || "", objectUrls: [] };

function headers(extra) {
  const h = Object.assign({}, extra || {});
  if (state.token) h["Authorization"] = "Bearer " + state.token;
  return h;
}

async function api(path, options) {
  const opts = Object.assign({}, options || {});
  opts.headers = headers(opts.headers);
  const response = await fetch(path, opts);
  if (response.status === 401) {
    $("auth").hidden = false;
    throw new Error("this server needs an access token");
  }
  if (!response.ok) {
    let message = response.status + " " + response.statusText;
    try { message = (await response.json()).error.message; } catch (e) { /* not JSON */ }
    throw new Error(message);
  }
  return response;
}

function setStatus(text, isError) {
  $("status").textContent = text;
  $("status").className = isError ? "error" : "";
}

async function loadCollections() {
  try {
    const body = await (await api("/v1/collections")).json();
    const select = $("collection");
    const previous = select.value;
    select.replaceChildren();
    for (const c of body.data) {
      const option = document.createElement("option");
      option.value = c.name;
      option.textContent = c.name + " (" + c.count + ")";
      select.appendChild(option);
    }
    if (previous) select.value = previous;
    if (!body.data.length) setStatus("No collections yet: index some files first (crossmodal index PATH).", false);
  } catch (err) {
    setStatus(err.message, true);
  }
}

function readImage(file) {
  if (!file || !file.type.startsWith("image/")) {
    setStatus("That is not an image.", true);
    return;
  }
  const reader = new FileReader();
  reader.onload = () => {
    const url = reader.result;
    state.image = url.slice(url.indexOf(",") + 1);
    $("drop-preview").src = url;
    $("drop-preview").hidden = false;
    $("drop-clear").hidden = false;
    $("drop-hint").hidden = true;
    search();
  };
  reader.readAsDataURL(file);
}

function clearImage() {
  state.image = null;
  $("drop-preview").hidden = true;
  $("drop-preview").removeAttribute("src");
  $("drop-clear").hidden = true;
  $("drop-hint").hidden = false;
}

function searchBody(extra) {
  const body = Object.assign({ top_k: parseInt($("top-k").value, 10) || 24 }, extra);
  const modality = $("modality").value;
  if (modality !== "all") body.modality = modality;
  const using = $("using").value;
  if (using !== "dense" && body.text && !body.like) body.using = using;  // keywords need words
  if ($("hide-duplicates").checked) body.hide_duplicates = true;
  return body;
}

async function runSearch(body, label) {
  const collection = $("collection").value;
  if (!collection) { setStatus("Pick a collection.", true); return; }
  setStatus("Searching…", false);
  try {
    const started = performance.now();
    const response = await api("/v1/collections/" + encodeURIComponent(collection) + "/search", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
    });
    const result = await response.json();
    render(result.hits);
    const ms = Math.round(performance.now() - started);
    setStatus(result.hits.length + " results for " + label + " (" + ms + " ms)", false);
  } catch (err) {
    setStatus(err.message, true);
  }
}

function search() {
  const text = $("query").value.trim();
  $("like-banner").hidden = true;
  $("group-banner").hidden = true;
  if (!text && !state.image) { setStatus("Type a query, or drop or paste an image.", false); return; }
  const extra = {};
  if (text) extra.text = text;
  if (state.image) extra.image = { data: state.image };
  const label = text && state.image ? "image + “" + text + "”" : state.image ? "the image" : "“" + text + "”";
  runSearch(searchBody(extra), label);
}

function shortened(text, width) {
  const flat = text.replace(/\s+/g, " ").trim();
  return flat.length <= width ? flat : flat.slice(0, width - 1) + "…";
}

// How a person recognises an item: a text by its words, an image by its file name, a pair by both.
function itemName(hit) {
  const file = hit.reference || hit.id;
  if (hit.modality === "text") return "“" + shortened(hit.text || file, 60) + "”";
  if (hit.modality === "pair" && hit.text) return file + " + “" + shortened(hit.text, 40) + "”";
  return file;
}

function moreLike(hit) {
  const name = itemName(hit);
  $("like-label").textContent = name;
  $("like-banner").hidden = false;
  $("group-banner").hidden = true;
  runSearch(searchBody({ like: hit.id }), "more like " + name);
}

// The item's group of duplicates (the same content, or nearly the same vector), shown in place of the results.
async function showGroup(hit) {
  const collection = $("collection").value;
  const name = itemName(hit);
  setStatus("Looking for duplicates…", false);
  try {
    const path = "/v1/collections/" + encodeURIComponent(collection) + "/duplicates/" + encodeURIComponent(hit.id);
    const body = await (await api(path)).json();
    if (!body.group) { setStatus("No duplicates of " + name + ".", false); return; }
    const kind = body.group.kind === "exact" ? "the same content" : "nearly the same";
    $("like-banner").hidden = true;
    $("group-label").textContent = body.group.items.length + " items, " + kind + ": " + name;
    $("group-banner").hidden = false;
    render(body.group.items.map((item) => Object.assign({}, item, { score: item.similarity })));
    setStatus("Duplicates of " + name + " (similarity to it)", false);
  } catch (err) {
    setStatus(err.message, true);
  }
}

async function loadThumbnail(img, url) {
  try {
    const blob = await (await api(url)).blob();
    const objectUrl = URL.createObjectURL(blob);
    state.objectUrls.push(objectUrl);
    img.src = objectUrl;
  } catch (err) {
    img.alt = "no thumbnail";
  }
}

// The matched words of a keyword or hybrid search, as <mark> elements (text nodes only: no HTML from the data).
function markWords(element, text, spans) {
  let at = 0;
  for (const [start, end] of spans) {
    if (start > at) element.appendChild(document.createTextNode(text.slice(at, start)));
    const mark = document.createElement("mark");
    mark.textContent = text.slice(start, end);
    element.appendChild(mark);
    at = end;
  }
  if (at < text.length) element.appendChild(document.createTextNode(text.slice(at)));
}

function render(hits) {
  for (const url of state.objectUrls) URL.revokeObjectURL(url);
  state.objectUrls = [];
  const grid = $("results");
  grid.replaceChildren();
  for (const hit of hits) {
    const card = document.createElement("article");
    card.className = "card";
    card.dataset.id = hit.id;
    card.dataset.modality = hit.modality;
    card.title = "More like this";
    if (hit.thumbnail) {
      const img = document.createElement("img");
      img.className = "thumb";
      img.alt = hit.reference || hit.id;
      card.appendChild(img);
      loadThumbnail(img, hit.thumbnail);
    }
    if (hit.modality !== "image") {
      const text = document.createElement("div");
      text.className = "text";
      if (hit.text && hit.highlights && hit.highlights.length) {
        markWords(text, hit.text, hit.highlights);
      } else {
        text.textContent = hit.text || hit.reference;
      }
      card.appendChild(text);
    }
    const meta = document.createElement("div");
    meta.className = "meta";
    const ref = document.createElement("span");
    ref.className = "ref";
    ref.textContent = hit.modality === "text" ? "text" : (hit.reference || hit.id);
    const score = document.createElement("span");
    score.className = "score";
    score.textContent = hit.score.toFixed(3);
    const dups = document.createElement("button");
    dups.type = "button";
    dups.className = "dups";
    dups.textContent = "duplicates";
    dups.title = "Show the items that duplicate this one";
    dups.addEventListener("click", (e) => { e.stopPropagation(); showGroup(hit); });
    meta.append(ref, dups, score);
    card.appendChild(meta);
    card.addEventListener("click", () => moreLike(hit));
    grid.appendChild(card);
  }
}

function wire() {
  $("search-form").addEventListener("submit", (e) => { e.preventDefault(); search(); });
  $("modality").addEventListener("change", () => { if ($("query").value.trim() || state.image) search(); });
  $("using").addEventListener("change", () => { if ($("query").value.trim() || state.image) search(); });
  $("collection").addEventListener("change", () => { if ($("query").value.trim() || state.image) search(); });
  $("file").addEventListener("change", (e) => readImage(e.target.files[0]));
  $("drop-clear").addEventListener("click", () => { clearImage(); if ($("query").value.trim()) search(); });
  $("like-clear").addEventListener("click", () => search());
  $("group-clear").addEventListener("click", () => search());
  $("hide-duplicates").addEventListener("change", () => { if ($("query").value.trim() || state.image) search(); });
  const drop = $("drop");
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    if (e.dataTransfer && e.dataTransfer.files.length) readImage(e.dataTransfer.files[0]);
  });
  document.addEventListener("paste", (e) => {
    const items = (e.clipboardData && e.clipboardData.items) || [];
    for (const item of items) {
      if (item.kind === "file" && item.type.startsWith("image/")) {
        e.preventDefault();
        readImage(item.getAsFile());
        return;
      }
    }
  });
  $("token").value = state.token;
  $("token-save").addEventListener("click", () => {
    state.token = $("token").value.trim();
    sessionStorage.setItem("crossmodal-token", state.token);
    $("auth").hidden = true;
    setStatus("", false);
    loadCollections();
  });
  loadCollections();
}

document.addEventListener("DOMContentLoaded", wire);
