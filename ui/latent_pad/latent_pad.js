// Latent Lab: decode in the browser (a Streamlit components v2 module; see ui/latent_pad.py).
//
// The decoder arrives once per model and session and is kept in a page-wide cache keyed by model, so later
// reruns send only the key. Two engines:
//   mlp     `data.weights`: an MLP's layers (base64 float32 or float16), decoded here in plain JS (fast)
//   onnx    `data.onnx`: an ONNX graph and its spec, run by ONNX Runtime Web (WebAssembly, one thread), which
//           is imported from the app's own server (`data.ort`) the first time such a model is shown
// Three modes:
//   pad     a 2-D latent: drag a point over the manifold picture, plus sliders z1, z2
//   sliders a latent of more dimensions: one slider per dimension
//   hover   beside a Plotly latent map: the digit under the cursor
// The digit redraws on every pointer move (coalesced to animation frames; an ONNX decode is asynchronous, so
// at most one runs at a time and the next one takes the latest z, dropping the ones in between); releasing a
// pointer or a key commits z to the server with setTriggerValue("commit", {z}).

const CACHE = (globalThis.__latentLabDecoders ??= new Map());    // model key -> decoder
const PICTURES = (globalThis.__latentLabPictures ??= new Map()); // picture key -> data URL
const STEP = 0.05, BIG_STEP = 0.5;                                // arrow keys; with Shift or PageUp/Down
const HOVER_HINT = "Hover over the map to decode the point under the cursor.";
const ONNX_SESSIONS = 4;                                          // ONNX sessions kept alive (wasm memory)

// The MLP decoder (buildDecoder, decodeMLP, base64Bytes, floats) is mlp.js, which ui/latent_pad.py puts first.

// ------------------------------------------------------------------------------------------- ONNX decoders

// ONNX Runtime Web, imported once per page from the app's own server: the JS module, then the WebAssembly
// (gzip-compressed on the server; inflated here and handed over as bytes, so no MIME type or CDN matters).
function loadOrt(where) {
  return (globalThis.__latentLabOrt ??= (async () => {
    const origin = window.location.origin;
    const ort = await import(new URL(where.module, origin).href);
    const response = await fetch(new URL(where.wasm, origin).href);
    if (!response.ok) throw new Error(`ONNX Runtime Web's WebAssembly did not load (HTTP ${response.status})`);
    const inflated = response.body.pipeThrough(new DecompressionStream("gzip"));
    ort.env.wasm.wasmBinary = await new Response(inflated).arrayBuffer();
    ort.env.wasm.numThreads = 1;   // one thread: no cross-origin isolation needed
    ort.env.wasm.proxy = false;
    return ort;
  })().catch(err => { delete globalThis.__latentLabOrt; throw err; }));
}

function buildOnnx(key, payload, ort) {
  const spec = payload.spec;
  return { kind: "onnx", key, spec, ort, graph: base64Bytes(payload.graph), session: null, used: 0,
           latentDim: spec.latent_dim, size: spec.image_size };
}

// The decoder's session (a promise), created on first use; the least recently used ones beyond ONNX_SESSIONS
// are released. Set at once, so that calls while the runtime loads share one session.
function onnxSession(dec) {
  dec.used = performance.now();
  if (!dec.session) {
    const options = { executionProviders: ["wasm"], graphOptimizationLevel: "all" };
    const session = dec.session = loadOrt(dec.ort).then(ort => ort.InferenceSession.create(dec.graph, options)
      .catch(err => { throw new Error(`ONNX Runtime Web could not load this decoder: ${err.message || err}`); }));
    session.catch(() => { if (dec.session === session) dec.session = null; });   // the next frame tries again
    const live = [...CACHE.values()].filter(d => d.kind === "onnx" && d.session && d !== dec).sort((a, b) => a.used - b.used);
    for (const old of live.slice(0, Math.max(0, live.length + 1 - ONNX_SESSIONS))) {
      const s = old.session;
      old.session = null;
      s.then(x => x.release()).catch(() => {});
    }
  }
  return dec.session;
}

// One input tensor of the graph for a batch: z, the one-hot label, or both (in the spec's order).
function inputTensor(ort, inp, zs, labels, spec) {
  const B = zs.length, L = spec.latent_dim, C = spec.label_classes;
  const parts = inp.role.split("+"), width = parts.reduce((n, r) => n + (r === "z" ? L : C), 0);
  const data = new Float32Array(B * width);
  for (let b = 0; b < B; b++) {
    let at = b * width;
    for (const part of parts) {
      if (part === "z") { for (let j = 0; j < L; j++) data[at + j] = zs[b][j]; at += L; }
      else { data[at + (labels[b] ?? 0)] = 1; at += C; }
    }
  }
  return new ort.Tensor("float32", data, [B, ...inp.shape.slice(1)]);
}

// p(y|z[,label]) for each z (and label) of a batch: Float32Arrays of pixel probabilities. A graph with a fixed
// batch size runs once per example.
async function onnxDecode(dec, zs, labels) {
  const session = await onnxSession(dec), ort = await loadOrt(dec.ort), spec = dec.spec;
  const fixed = spec.inputs.find(i => typeof i.shape[0] === "number");
  if (fixed && zs.length !== fixed.shape[0]) {
    const out = [];
    for (let b = 0; b < zs.length; b++) out.push(...await onnxDecode(dec, [zs[b]], [labels[b]]));
    return out;
  }
  const feeds = {};
  for (const inp of spec.inputs) feeds[inp.name] = inputTensor(ort, inp, zs, labels, spec);
  const t0 = performance.now();
  const result = await session.run(feeds);
  dec.lastMs = performance.now() - t0;
  const y = result[spec.output], n = dec.size * dec.size;
  if (!y) throw new Error(`this decoder has no output named ${spec.output}`);
  if (y.data.length !== zs.length * n)
    throw new Error(`this decoder gives ${y.data.length / zs.length} values per image, not ${n} (${dec.size} x ${dec.size})`);
  const out = [];
  for (let b = 0; b < zs.length; b++) {
    const p = new Float32Array(n), src = y.data;
    for (let i = 0; i < n; i++) {
      const v = src[b * n + i];
      p[i] = spec.output_is_logits ? 1 / (1 + Math.exp(-v)) : v;
    }
    out.push(p);
  }
  Object.values(result).forEach(t => t.dispose?.());
  return out;
}

// Any decoder, for a batch of (z, label): a promise of pixel-probability arrays.
async function decodeBatch(dec, zs, labels) {
  if (dec.kind === "onnx") return onnxDecode(dec, zs, labels);
  const t0 = performance.now();
  const out = zs.map((z, b) => Float64Array.from(decodeMLP(dec, z, labels[b])));
  dec.lastMs = performance.now() - t0;
  return out;
}

// Test hooks: window.__latentLab.decode(key, z, label) -> plain array of probabilities (MLP only);
// decodeBatch(key, zs, label) -> a promise of arrays (either engine); load(key, weights) installs MLP weights
// given as Python's ui.latent_pad.decoder_payload builds them.
globalThis.__latentLab = {
  models: () => [...CACHE.keys()],
  decode: (key, z, label) => Array.from(decodeMLP(CACHE.get(key), z, label)),
  decodeBatch: async (key, zs, label) => (await decodeBatch(CACHE.get(key), zs, zs.map(() => label))).map(a => Array.from(a)),
  load: (key, weights) => { CACHE.set(key, buildDecoder(weights)); },
};

// ------------------------------------------------------------------------------------------- drawing

function drawDigit(canvas, probs, size) {
  const small = canvas.__small ??= document.createElement("canvas");
  small.width = small.height = size;
  const ctx = small.getContext("2d"), img = ctx.createImageData(size, size);
  for (let i = 0; i < size * size; i++) {
    const v = Math.floor(Math.min(1, Math.max(0, probs[i])) * 255 + 0.5);
    img.data[4 * i] = img.data[4 * i + 1] = img.data[4 * i + 2] = v;
    img.data[4 * i + 3] = 255;
  }
  ctx.putImageData(img, 0, 0);
  const big = canvas.getContext("2d");
  big.imageSmoothingEnabled = false;
  big.drawImage(small, 0, 0, canvas.width, canvas.height);
}

const fmt = v => (Math.abs(v) < 0.005 ? 0 : v).toFixed(2);
const zText = z => "z = (" + z.slice(0, 6).map(fmt).join(", ") + (z.length > 6 ? ", …" : "") + ")";

// A grid axis: cell centres at coords (quantile-spaced), extrapolated linearly past the ends.
function cellToZ(u, c) {
  const n = c.length;
  if (u <= 0) return c[0] + u * (c[1] - c[0]);
  if (u >= n - 1) return c[n - 1] + (u - n + 1) * (c[n - 1] - c[n - 2]);
  const i = Math.floor(u), t = u - i;
  return c[i] + t * (c[i + 1] - c[i]);
}

function zToCell(v, c) {
  const n = c.length;
  if (c[0] > c[n - 1]) return n - 1 - zToCell(v, [...c].reverse());
  if (v < c[0]) return (v - c[0]) / (c[1] - c[0]);
  if (v > c[n - 1]) return n - 1 + (v - c[n - 1]) / (c[n - 1] - c[n - 2]);
  let i = 0;
  while (i < n - 2 && v > c[i + 1]) i++;
  return i + (v - c[i]) / (c[i + 1] - c[i]);
}

const round3 = v => Math.round(v * 1000) / 1000;

// ------------------------------------------------------------------------------------------- the widget

function el(tag, attrs = {}, parent = null) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") e.className = v; else if (k === "text") e.textContent = v; else e.setAttribute(k, v);
  }
  if (parent) parent.appendChild(e);
  return e;
}

class Explorer {
  constructor(root) {
    this.root = root;
    this.z = null; this.rev = null; this.model = null; this.label = null;
    this.active = false;       // a pointer is down or a key is held: server values wait
    this.frames = 0;           // distinct pictures drawn (for tests and bench/app_speed.py)
    this.pending = false;      // an animation frame is asked for
    this.inflight = false;     // an ONNX decode runs (at most one at a time)
    this.queued = null;        // the frame to decode when it ends: only the latest is kept
    this.decodeMs = [];        // the last decode times (bench/browser_decode.py)
  }

  // Pointer moves, keys or the server asked for a frame that is not drawn yet (tests wait on this).
  get busy() { return this.pending || this.inflight || this.queued !== null; }

  // ----- (re)build the DOM when the mode or the latent size changes
  build(data) {
    const shape = data.mode + ":" + data.latent_dim + ":" + (data.classes || []).length;
    if (this.shape === shape) return;
    this.shape = shape;
    const box = this.root.querySelector(".lp-root");
    box.replaceChildren();
    box.dataset.mode = data.mode;
    delete box.dataset.hovered;   // a new hover strip stays hidden until the cursor is over the map
    const left = el("div", { class: "lp-left" }, box);
    const view = el("div", { class: "lp-view" }, left);
    this.canvases = [];
    const count = data.mode === "hover" && data.classes ? data.classes.length : 1;
    const strip = el("div", { class: count > 1 ? "lp-strip" : "lp-single" }, view);
    for (let k = 0; k < count; k++) {
      const fig = el("figure", { class: "lp-figure" }, strip);
      const side = data.mode === "hover" ? (count > 1 ? 56 : 168) : 280;
      const c = el("canvas", { width: side, height: side, role: "img", class: "lp-digit",
                               "aria-label": count > 1 ? `Decoded digit, class ${data.classes[k]}` : "Decoded digit" }, fig);
      if (count > 1) el("figcaption", { text: data.classes[k] }, fig);
      this.canvases.push(c);
    }
    this.caption = el("div", { class: "lp-caption", "aria-live": "off" }, view);
    this.sliders = [];
    this.pad = null;
    if (data.mode === "pad" || data.mode === "sliders") this.buildSliders(left, data.latent_dim);
    this.note = el("div", { class: "lp-note" }, left);
    if (data.mode === "pad") this.buildPad(box);
  }

  buildPad(box) {
    const wrap = el("div", { class: "lp-padwrap" }, box);
    const pad = el("div", { class: "lp-pad", tabindex: "0", role: "application",
                            "aria-label": "Latent pad: drag, or use the arrow keys" }, wrap);
    this.padImg = el("img", { class: "lp-padimg", alt: "", draggable: "false" }, pad);
    this.marker = el("div", { class: "lp-marker" }, pad);
    el("div", { class: "lp-hint", text: "Drag over the manifold; release to keep z" }, wrap);
    this.pad = pad;
    const at = e => {
      const r = pad.getBoundingClientRect(), g = this.grid, n = g.z1.length;
      const fx = Math.min(1, Math.max(0, (e.clientX - r.left) / r.width));
      const fy = Math.min(1, Math.max(0, (e.clientY - r.top) / r.height));
      return [round3(cellToZ(fx * n - 0.5, g.z1)), round3(cellToZ(fy * n - 0.5, g.z2))];
    };
    pad.addEventListener("pointerdown", e => {
      if (e.button !== 0) return;
      pad.setPointerCapture(e.pointerId);
      this.active = true;
      pad.focus({ preventScroll: true });
      this.move(at(e));
      e.preventDefault();
    });
    pad.addEventListener("pointermove", e => { if (this.active && pad.hasPointerCapture(e.pointerId)) this.move(at(e)); });
    const release = e => { if (!this.active) return; this.active = false; this.move(at(e)); this.commit(); };
    pad.addEventListener("pointerup", release);
    pad.addEventListener("pointercancel", () => { this.active = false; this.commit(); });
    this.keys(pad, (z, d) => {
      const dx = { ArrowLeft: -1, ArrowRight: 1 }[d.key] || 0, dy = { ArrowDown: -1, ArrowUp: 1 }[d.key] || 0;
      if (!dx && !dy) return null;
      const step = d.shiftKey ? BIG_STEP : STEP;
      return [round3(z[0] + dx * step), round3(z[1] + dy * step)];
    });
  }

  buildSliders(box, dim) {
    const list = el("div", { class: "lp-sliders" }, box);
    for (let i = 0; i < dim; i++) {
      const row = el("div", { class: "lp-row" }, list);
      el("span", { class: "lp-name", text: `z${i + 1}` }, row);
      const s = el("div", { class: "lp-slider", role: "slider", tabindex: "0", "aria-label": `z${i + 1}`,
                            "aria-orientation": "horizontal" }, row);
      el("div", { class: "lp-track" }, s);
      const thumb = el("div", { class: "lp-thumb" }, s);
      const value = el("span", { class: "lp-value" }, row);
      this.sliders.push({ s, thumb, value });
      const at = e => {
        const r = s.getBoundingClientRect(), f = Math.min(1, Math.max(0, (e.clientX - r.left) / r.width));
        const z = [...this.z];
        z[i] = round3(this.lo + f * (this.hi - this.lo));
        return z;
      };
      s.addEventListener("pointerdown", e => {
        if (e.button !== 0) return;
        s.setPointerCapture(e.pointerId);
        this.active = true;
        s.focus({ preventScroll: true });
        this.move(at(e));
        e.preventDefault();
      });
      s.addEventListener("pointermove", e => { if (this.active && s.hasPointerCapture(e.pointerId)) this.move(at(e)); });
      s.addEventListener("pointerup", e => { if (!this.active) return; this.active = false; this.move(at(e)); this.commit(); });
      s.addEventListener("pointercancel", () => { this.active = false; this.commit(); });
      this.keys(s, (z, d) => {
        const step = d.shiftKey || d.key.startsWith("Page") ? BIG_STEP : STEP;
        const delta = { ArrowRight: step, ArrowUp: step, PageUp: step, ArrowLeft: -step, ArrowDown: -step, PageDown: -step }[d.key];
        const out = [...z];
        if (delta !== undefined) out[i] = round3(Math.min(this.hi, Math.max(this.lo, z[i] + delta)));
        else if (d.key === "Home") out[i] = this.lo;
        else if (d.key === "End") out[i] = this.hi;
        else return null;
        return out;
      });
    }
  }

  // Arrow keys move z at once (each key down redraws); the key's release commits.
  keys(target, step) {
    target.addEventListener("keydown", e => {
      const next = this.z && step(this.z, e);
      if (!next) return;
      e.preventDefault();
      this.active = true;
      this.move(next);
    });
    target.addEventListener("keyup", e => {
      if (!this.active || !step(this.z, e)) return;
      this.active = false;
      this.commit();
    });
  }

  // ----- data from the server
  update(data, api) {
    this.api = api;
    this.build(data);
    const dec = CACHE.get(data.model);
    this.dec = dec;
    this.classes = data.classes || null;
    if (data.grid) {
      this.grid = data.grid;
      const src = PICTURES.get(data.grid.key);
      if (src && this.padImg.getAttribute("src") !== src) this.padImg.setAttribute("src", src);
      if (!src) api.setTriggerValue("missing", { kind: "picture", key: data.grid.key });
    }
    if (!dec) { api.setTriggerValue("missing", { kind: "weights", key: data.model }); return; }
    this.root.querySelector(".lp-root").dataset.engine = dec.kind;
    this.lo = data.range ? data.range[0] : -3;
    this.hi = data.range ? data.range[1] : 3;
    const modelChanged = this.model !== data.model, labelChanged = this.label !== (data.label ?? null);
    this.model = data.model;
    this.label = data.label ?? null;
    if (data.z && data.rev !== this.rev) {
      // A z set on the server (a number box, Sample, a drawn digit, another model) replaces ours; the echo
      // of our own commit does not, since z may have moved on since (keys held down, a new drag).
      if (!this.active && (data.echo == null || modelChanged || this.z === null)) this.z = [...data.z];
      this.rev = data.rev;
    }
    if (dec.kind === "onnx" && !dec.session) this.warmUp(dec);
    if (data.mode === "hover") this.hover(data);
    else if (this.z) this.show(modelChanged || labelChanged);
    this.root.querySelector(".lp-root").dataset.model = data.model;
  }

  move(z) {
    this.z = z;
    if (this.pending) return;
    this.pending = true;
    requestAnimationFrame(() => { this.pending = false; this.show(false); });
  }

  commit() {
    if (this.z) this.api.setTriggerValue("commit", { z: this.z });
  }

  show(force) {
    const key = this.z.join(",") + "|" + this.label + "|" + this.model;
    if (!force && key === this.shown) return;
    this.shown = key;
    this.render({ z: [...this.z], labels: [this.label], hover: false });
  }

  // Decode a frame and paint it: at once for the MLP; for ONNX, when the decode running now (if any) ends,
  // and only the latest frame asked for meanwhile (the ones in between are dropped, never queued).
  render(frame) {
    const dec = this.dec;
    if (dec.kind !== "onnx") {
      const t0 = performance.now();   // decodeMLP() reuses its buffer: draw each picture before the next decode
      frame.labels.forEach((label, k) => drawDigit(this.canvases[k], decodeMLP(dec, frame.z, label), dec.size));
      this.timed(performance.now() - t0);
      this.painted(frame);
      return;
    }
    this.queued = frame;
    if (!this.inflight) this.pump();
  }

  async pump() {
    this.inflight = true;
    while (this.queued) {
      const frame = this.queued, dec = this.dec;
      this.queued = null;
      try {
        const probs = await onnxDecode(dec, frame.labels.map(() => frame.z), frame.labels);
        this.timed(dec.lastMs);
        if (dec !== this.dec) continue;          // another model came meanwhile: its own frame is queued
        probs.forEach((p, k) => drawDigit(this.canvases[k], p, dec.size));
        this.painted(frame);
      } catch (err) {
        this.queued = null;
        this.reportOnnx(dec, err);
      }
    }
    this.inflight = false;
  }

  // The first ONNX model of a page loads the runtime and its session before the first frame needs them.
  warmUp(dec) {
    const loading = "Loading ONNX Runtime Web to run this model's decoder…";
    if (this.frames === 0) this.caption.textContent = loading;
    onnxSession(dec).then(() => {
      if (this.caption.textContent === loading) this.caption.textContent = this.chart ? HOVER_HINT : "";
    }).catch(err => this.reportOnnx(dec, err));
  }

  // An ONNX decoder failed: say so under the digit, and tell the server, which falls back for that model.
  reportOnnx(dec, err) {
    const message = String(err && err.message || err);
    if (dec === this.dec) this.caption.textContent = message;
    this.api.setTriggerValue("failed", { model: dec.key, message });
  }

  timed(ms) {
    this.decodeMs.push(ms);
    if (this.decodeMs.length > 1000) this.decodeMs.splice(0, 500);
  }

  // The picture of `frame` is on the canvas: the controls, the caption and the data attributes follow it.
  painted(frame) {
    this.frames++;
    const root = this.root.querySelector(".lp-root");
    root.dataset.frames = String(this.frames);
    if (frame.hover) {
      root.dataset.hovered = "1";
      this.z = frame.z.map(round3);
      root.dataset.z = this.z.join(",");
      this.caption.textContent = "Under the cursor: " + zText(this.z);
      return;
    }
    const z = frame.z;
    root.dataset.z = z.join(",");
    this.caption.textContent = zText(z);
    this.sliders.forEach(({ s, thumb, value }, i) => {
      const v = z[i], f = (Math.min(this.hi, Math.max(this.lo, v)) - this.lo) / (this.hi - this.lo);
      thumb.style.left = (100 * f) + "%";
      s.setAttribute("aria-valuemin", String(this.lo));
      s.setAttribute("aria-valuemax", String(this.hi));
      s.setAttribute("aria-valuenow", String(v));
      s.setAttribute("aria-valuetext", fmt(v));
      value.textContent = fmt(v);
    });
    let off = [];
    if (this.pad && this.grid) {
      const n = this.grid.z1.length;
      const cx = (zToCell(z[0], this.grid.z1) + 0.5) / n, cy = (zToCell(z[1], this.grid.z2) + 0.5) / n;
      this.marker.style.left = (100 * Math.min(1, Math.max(0, cx))) + "%";
      this.marker.style.top = (100 * Math.min(1, Math.max(0, cy))) + "%";
      this.marker.classList.toggle("lp-off", cx < 0 || cx > 1 || cy < 0 || cy > 1);
      if (cx < 0 || cx > 1) off.push(`z1 = ${fmt(z[0])}`);
      if (cy < 0 || cy > 1) off.push(`z2 = ${fmt(z[1])}`);
    }
    this.note.textContent = off.length ? `${off.join(" and ")} lies beyond the pad's edge; the ring waits at the edge.` : "";
  }

  // ----- hover mode: follow the cursor over a Plotly chart elsewhere in the page
  hover(data) {
    this.chart = data.chart;
    this.caption.textContent = this.caption.textContent || HOVER_HINT;
    if (this.listening) return;
    this.listening = true;
    let queued = null;
    const onMove = e => {
      const gd = document.querySelector(this.chart + " .js-plotly-plot");
      if (!gd || !gd._fullLayout || !this.dec) return;
      const L = gd._fullLayout, r = gd.getBoundingClientRect(), xa = L.xaxis, ya = L.yaxis;
      const px = e.clientX - r.left - xa._offset, py = e.clientY - r.top - ya._offset;
      if (px < 0 || py < 0 || px > xa._length || py > ya._length) return;
      const z = [xa.p2l(px), ya.p2l(py)];
      if (queued === null) requestAnimationFrame(() => { this.drawHover(queued); queued = null; });
      queued = z;
    };
    document.addEventListener("pointermove", onMove, { passive: true });
    this.cleanup = () => document.removeEventListener("pointermove", onMove);
  }

  drawHover(z) {
    if (!z || !this.dec) return;
    this.render({ z, labels: this.classes ? this.classes.map((_, k) => k) : [null], hover: true });
  }
}

export default function (component) {
  const { data, parentElement, setTriggerValue } = component;
  let state = parentElement.__latentPad;
  try {
    if (data && data.weights) CACHE.set(data.model, buildDecoder(data.weights));
    if (data && data.onnx && !CACHE.has(data.model)) CACHE.set(data.model, buildOnnx(data.model, data.onnx, data.ort));
    if (data && data.grid && data.grid.png) PICTURES.set(data.grid.key, data.grid.png);
    if (!state) state = parentElement.__latentPad = new Explorer(parentElement);
    parentElement.querySelector(".lp-loading")?.remove();
    state.update(data, { setTriggerValue });
  } catch (err) {
    setTriggerValue("failed", String(err && err.message || err));
  }
  return () => { state?.cleanup?.(); if (parentElement.__latentPad === state) delete parentElement.__latentPad; };
}
