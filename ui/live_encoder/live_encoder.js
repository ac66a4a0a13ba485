// Latent Lab: the encoder live under the pen (a Streamlit components v2 module; see ui/live_encoder.py).
// nets.js and preprocess.js are prepended by the Python side.
//
// Draw with the mouse, a pen or a finger (pointer events). On every move (coalesced to animation frames)
// the canvas becomes the server's 28 x 28 digit (preprocess.js), the encoder gives q(z|x) = N(mu, sigma^2),
// and the decoder draws the reconstruction of mu: a 2-D latent shows mu and its 1-sigma ellipse on a small
// map over the test set's means; more dimensions show mu +- sigma as one bar per dimension.
// mode "stroke": this encoder does not run here, so a released stroke sends the digit to the server and
// the server's answer (data.server) is shown.

const ENCODERS = (globalThis.__latentLabEncoders ??= new Map());   // model key -> encoder
const DECODERS = (globalThis.__latentLabDecoders ??= new Map());   // shared with latent_pad.js
const MAPS = (globalThis.__latentLabMaps ??= new Map());           // map key -> { points, labels, extent }
const SIDE = 280, STROKE = 20;                                     // the server's canvas: 280 px, pen 20 px
const COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
                "#bcbd22", "#17becf"];

function el(tag, attrs = {}, parent = null, ns = null) {
  const e = ns ? document.createElementNS(ns, tag) : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") e.setAttribute("class", v); else if (k === "text") e.textContent = v; else e.setAttribute(k, v);
  }
  if (parent) parent.appendChild(e);
  return e;
}
const SVG = "http://www.w3.org/2000/svg";
const fmt = v => (Math.abs(v) < 0.005 ? 0 : v).toFixed(2);

function drawGrey(canvas, values, size, scale01) {
  const small = canvas.__small ??= document.createElement("canvas");
  small.width = small.height = size;
  const ctx = small.getContext("2d"), img = ctx.createImageData(size, size);
  for (let i = 0; i < size * size; i++) {
    const v = scale01 ? Math.floor(Math.min(1, Math.max(0, values[i])) * 255 + 0.5) : values[i];
    img.data[4 * i] = img.data[4 * i + 1] = img.data[4 * i + 2] = v;
    img.data[4 * i + 3] = 255;
  }
  ctx.putImageData(img, 0, 0);
  const big = canvas.getContext("2d");
  big.imageSmoothingEnabled = false;
  big.drawImage(small, 0, 0, canvas.width, canvas.height);
}

class LiveEncoder {
  constructor(root) {
    this.root = root;
    this.strokes = [];          // finished strokes: arrays of [x, y] in canvas pixels
    this.current = null;        // the stroke under the pen
    this.pending = false;
    this.updates = 0;           // encodings shown (tests, bench/live_encoder.py)
    this.sendCount = 0;
  }

  build(data) {
    const shape = data.latent_dim + ":" + data.mode;
    if (this.shape === shape) return;
    this.shape = shape;
    const box = this.root.querySelector(".le-root");
    box.replaceChildren();
    box.dataset.mode = data.mode;
    const drawCol = el("div", { class: "le-col" }, box);
    this.canvas = el("canvas", { width: SIDE, height: SIDE, class: "le-canvas", role: "img",
                                 "aria-label": "Drawing canvas: draw a digit" }, drawCol);
    const row = el("div", { class: "le-row" }, drawCol);
    this.clearBtn = el("button", { class: "le-button", type: "button", text: "Clear" }, row);
    el("span", { class: "le-hint", text: "Draw in white on the black square." }, row);
    const mid = el("div", { class: "le-col" }, box);
    const pics = el("div", { class: "le-pics" }, mid);
    const fig1 = el("figure", { class: "le-figure" }, pics);
    this.input = el("canvas", { width: 112, height: 112, class: "le-digit", role: "img",
                                "aria-label": "As the model sees it" }, fig1);
    el("figcaption", { text: "As the model sees it (28 × 28)" }, fig1);
    const fig2 = el("figure", { class: "le-figure" }, pics);
    this.recon = el("canvas", { width: 112, height: 112, class: "le-digit", role: "img",
                                "aria-label": "Reconstruction" }, fig2);
    el("figcaption", { text: "Its reconstruction" }, fig2);
    this.numbers = el("div", { class: "le-numbers", "aria-live": "off" }, mid);
    const sendRow = el("div", { class: "le-row" }, mid);
    this.sendBtn = el("button", { class: "le-button le-primary", type: "button", text: "↑ Send to the sliders",
                                  disabled: "" }, sendRow);
    this.feedback = el("span", { class: "le-feedback", role: "status" }, sendRow);
    this.status = el("div", { class: "le-status" }, mid);
    const right = el("div", { class: "le-col" }, box);
    if (data.latent_dim === 2) this.buildMap(right); else this.buildBars(right, data.latent_dim);
    this.clearCanvas();
    this.listen();
  }

  buildMap(parent) {
    const wrap = el("div", { class: "le-mapwrap" }, parent);
    this.mapCanvas = el("canvas", { width: 280, height: 280, class: "le-map", role: "img",
                                    "aria-label": "Latent map: the test set's means and your digit's q(z|x)" }, wrap);
    this.svg = el("svg", { class: "le-overlay", viewBox: "0 0 280 280", width: 280, height: 280 }, wrap, SVG);
    this.ellipse = el("ellipse", { class: "le-ellipse", cx: -100, cy: -100, rx: 0, ry: 0 }, this.svg, SVG);
    this.dot = el("circle", { class: "le-mean", cx: -100, cy: -100, r: 4 }, this.svg, SVG);
    this.mapCaption = el("div", { class: "le-caption" }, parent);
  }

  buildBars(parent, dim) {
    this.bars = [];
    const list = el("div", { class: "le-bars", role: "list", "aria-label": "mean ± sd of each latent dimension" }, parent);
    for (let i = 0; i < dim; i++) {
      const r = el("div", { class: "le-barrow", role: "listitem" }, list);
      el("span", { class: "le-barname", text: `z${i + 1}` }, r);
      const track = el("div", { class: "le-track" }, r);
      el("div", { class: "le-zero" }, track);
      const bar = el("div", { class: "le-bar" }, track), tick = el("div", { class: "le-tick" }, track);
      const value = el("span", { class: "le-barvalue" }, r);
      this.bars.push({ bar, tick, value });
    }
    el("div", { class: "le-caption", text: "Each bar spans mean ± one standard deviation of q(z|x); the axis runs from -4 to 4." }, parent);
  }

  listen() {
    const c = this.canvas;
    const at = e => {
      const r = c.getBoundingClientRect();
      return [(e.clientX - r.left) * SIDE / r.width, (e.clientY - r.top) * SIDE / r.height];
    };
    c.addEventListener("pointerdown", e => {
      if (e.button !== 0) return;
      c.setPointerCapture(e.pointerId);
      this.current = [at(e)];
      this.schedule();
      e.preventDefault();
    });
    c.addEventListener("pointermove", e => {
      if (!this.current || !c.hasPointerCapture(e.pointerId)) return;
      const events = e.getCoalescedEvents ? e.getCoalescedEvents() : [e];
      for (const ev of (events.length ? events : [e])) this.current.push(at(ev));
      this.schedule();
    });
    const end = () => {
      if (!this.current) return;
      this.strokes.push(this.current);
      this.current = null;
      this.update();
      this.strokeEnded();
    };
    c.addEventListener("pointerup", end);
    c.addEventListener("pointercancel", end);
    this.clearBtn.addEventListener("click", () => { this.strokes = []; this.current = null; this.clearCanvas(); this.update(); });
    this.sendBtn.addEventListener("click", () => {
      if (!this.mu) return;
      this.sendCount++;
      this.feedback.textContent = "Sending…";
      this.api.setTriggerValue("send", { z: this.mu.map(v => Math.round(v * 1000) / 1000), n: this.sendCount });
    });
  }

  clearCanvas() {
    const ctx = this.canvas.getContext("2d");
    ctx.fillStyle = "#000";
    ctx.fillRect(0, 0, SIDE, SIDE);
  }

  // Every stroke as one path (round caps and joins, quadratic curves through the midpoints, as a pencil
  // brush draws), white on black.
  paint() {
    this.clearCanvas();
    const ctx = this.canvas.getContext("2d");
    ctx.strokeStyle = ctx.fillStyle = "#fff";
    ctx.lineWidth = STROKE;
    ctx.lineCap = ctx.lineJoin = "round";
    for (const s of this.current ? [...this.strokes, this.current] : this.strokes) {
      if (s.length === 1) {
        ctx.beginPath();
        ctx.arc(s[0][0], s[0][1], STROKE / 2, 0, 2 * Math.PI);
        ctx.fill();
        continue;
      }
      ctx.beginPath();
      ctx.moveTo(s[0][0], s[0][1]);
      for (let i = 1; i < s.length - 1; i++) {
        const mx = (s[i][0] + s[i + 1][0]) / 2, my = (s[i][1] + s[i + 1][1]) / 2;
        ctx.quadraticCurveTo(s[i][0], s[i][1], mx, my);
      }
      ctx.lineTo(s[s.length - 1][0], s[s.length - 1][1]);
      ctx.stroke();
    }
  }

  schedule() {
    if (this.pending) return;
    this.pending = true;
    requestAnimationFrame(() => { this.pending = false; this.update(); });
  }

  // The canvas -> digit -> q(z|x) -> reconstruction, and every view of them.
  update() {
    const t0 = performance.now();
    this.paint();
    const rgba = this.canvas.getContext("2d").getImageData(0, 0, SIDE, SIDE).data;
    const digit = drawingToDigit(rgba, SIDE, SIDE, this.tallFirst);
    this.digit = digit;
    const root = this.root.querySelector(".le-root");
    if (!digit) {
      this.mu = this.logvar = null;
      drawGrey(this.input, new Uint8Array(784), 28, false);
      drawGrey(this.recon, new Uint8Array(784), 28, false);
      this.numbers.textContent = "Draw a digit to see how the model reads it.";
      this.sendBtn.setAttribute("disabled", "");
      this.showPosterior(null);
      root.dataset.drawn = "0";
      return;
    }
    drawGrey(this.input, digit, 28, false);
    root.dataset.drawn = "1";
    if (this.mode !== "live") return;   // the server encodes when the stroke ends
    const pixels = new Float64Array(784);
    for (let i = 0; i < 784; i++) pixels[i] = Math.fround(digit[i] / 255);
    const { mu, logvar } = encodeImage(this.enc, pixels, this.label);
    const recon = this.dec ? decodeMLP(this.dec, mu, this.label) : null;
    this.show(mu, logvar, recon);
    this.updates++;
    root.dataset.updates = String(this.updates);
    root.dataset.ms = (performance.now() - t0).toFixed(2);
  }

  show(mu, logvar, recon) {
    this.mu = mu;
    this.logvar = logvar;
    const sd = logvar.map(v => Math.exp(0.5 * v));
    if (recon) drawGrey(this.recon, recon, 28, true);
    const head = v => v.slice(0, 6).map(fmt).join(", ") + (v.length > 6 ? " …" : "");
    this.numbers.textContent = `Latent mean ${head(mu)} · standard deviation ${head(sd)}`;
    this.sendBtn.removeAttribute("disabled");
    const root = this.root.querySelector(".le-root");
    root.dataset.mu = mu.join(",");
    root.dataset.logvar = logvar.join(",");
    this.showPosterior(mu, sd);
  }

  showPosterior(mu, sd) {
    if (this.svg) {
      const m = this.map;
      if (!mu || !m) {
        this.ellipse.setAttribute("cx", -100); this.dot.setAttribute("cx", -100);
        return;
      }
      const [x0, x1, y0, y1] = m.extent, sx = 280 / (x1 - x0), sy = 280 / (y1 - y0);
      const cx = (mu[0] - x0) * sx, cy = (y1 - mu[1]) * sy;
      const clampX = Math.min(276, Math.max(4, cx)), clampY = Math.min(276, Math.max(4, cy));
      this.ellipse.setAttribute("cx", cx.toFixed(2));
      this.ellipse.setAttribute("cy", cy.toFixed(2));
      this.ellipse.setAttribute("rx", (sd[0] * sx).toFixed(2));
      this.ellipse.setAttribute("ry", (sd[1] * sy).toFixed(2));
      this.dot.setAttribute("cx", clampX.toFixed(2));
      this.dot.setAttribute("cy", clampY.toFixed(2));
      this.dot.classList.toggle("le-off", clampX !== cx || clampY !== cy);
      this.mapCaption.textContent = `Your digit: mean (${fmt(mu[0])}, ${fmt(mu[1])}), 1σ ellipse ` +
        `(${fmt(sd[0])} × ${fmt(sd[1])})` + (clampX !== cx || clampY !== cy ? "; it lies beyond the map's edge." : "");
    }
    if (this.bars) {
      this.bars.forEach(({ bar, tick, value }, i) => {
        if (!mu) { bar.style.width = "0"; tick.style.left = "-10%"; value.textContent = ""; return; }
        const pos = v => Math.min(100, Math.max(0, (v + 4) / 8 * 100));
        bar.style.left = pos(mu[i] - sd[i]) + "%";
        bar.style.width = (pos(mu[i] + sd[i]) - pos(mu[i] - sd[i])) + "%";
        tick.style.left = pos(mu[i]) + "%";
        value.textContent = `${fmt(mu[i])} ± ${fmt(sd[i])}`;
      });
    }
  }

  drawMap() {
    const m = this.map, ctx = this.mapCanvas.getContext("2d");
    ctx.fillStyle = "#fff";
    ctx.fillRect(0, 0, 280, 280);
    if (!m) return;
    const [x0, x1, y0, y1] = m.extent, sx = 280 / (x1 - x0), sy = 280 / (y1 - y0);
    ctx.strokeStyle = "#ddd";
    ctx.beginPath();
    ctx.moveTo((0 - x0) * sx, 0); ctx.lineTo((0 - x0) * sx, 280);
    ctx.moveTo(0, (y1 - 0) * sy); ctx.lineTo(280, (y1 - 0) * sy);
    ctx.stroke();
    ctx.globalAlpha = 0.5;
    for (let i = 0; m.points && i < m.labels.length; i++) {
      ctx.fillStyle = COLORS[m.labels[i] % COLORS.length];
      ctx.fillRect((m.points[2 * i] - x0) * sx - 1, (y1 - m.points[2 * i + 1]) * sy - 1, 2.5, 2.5);
    }
    ctx.globalAlpha = 1;
  }

  strokeEnded() {
    if (this.mode === "stroke" && this.digit) {
      this.strokeCount = (this.strokeCount || 0) + 1;
      this.status.textContent = "Encoding on the server…";
      this.api.setTriggerValue("digit", { pixels: Array.from(this.digit), n: this.strokeCount });
    }
  }

  // ----- data from the server
  update_data(data, api) {
    this.api = api;
    this.build(data);
    this.mode = data.mode;
    this.tallFirst = !!data.tall_first;
    const labelChanged = this.label !== (data.label ?? null);
    this.label = data.label ?? null;
    const root = this.root.querySelector(".le-root");
    root.dataset.model = data.model;
    this.status.textContent = data.note || "";
    if (data.mode === "live") {
      this.enc = ENCODERS.get(data.model);
      if (!this.enc) { api.setTriggerValue("missing", { kind: "encoder", key: data.model }); return; }
      const dec = DECODERS.get(data.model);
      this.dec = dec && dec.layers ? dec : null;
      if (!this.dec && data.decoder) this.waitForDecoder(data.model, api);
    }
    if (data.map) {
      const m = MAPS.get(data.map);
      if (!m) { api.setTriggerValue("missing", { kind: "map", key: data.map }); }
      if (m !== this.map) { this.map = m; if (this.mapCanvas) this.drawMap(); }
    } else if (this.mapCanvas && this.map !== null) {
      this.map = null;
      this.drawMap();
    }
    if (data.sent && data.sent.n !== this.sentSeen) {
      this.sentSeen = data.sent.n;
      if (data.sent.n === this.sendCount) {
        this.feedback.textContent = `Sent z = (${data.sent.z.slice(0, 6).map(fmt).join(", ")}) to the sliders above.`;
      }
    }
    if (data.mode === "stroke" && data.server && data.server.n !== this.serverSeen) {
      this.serverSeen = data.server.n;
      this.show(data.server.mu, data.server.logvar, data.server.recon);
      this.updates++;
      root.dataset.updates = String(this.updates);
    }
    if (data.mode === "live" && (labelChanged || this.mu)) this.update();
    root.dataset.ready = "1";
  }

  // The decoder may arrive through latent_pad.js (shared cache) a moment later: wait a second, then ask.
  waitForDecoder(key, api) {
    if (this.waiting === key) return;
    this.waiting = key;
    let tries = 0;
    const look = () => {
      const dec = DECODERS.get(key);
      if (dec && dec.layers) { this.dec = dec; this.waiting = null; if (this.mu) this.update(); return; }
      if (++tries < 60) { requestAnimationFrame(look); return; }
      this.waiting = null;
      api.setTriggerValue("missing", { kind: "weights", key });
    };
    requestAnimationFrame(look);
  }
}

// Test hooks: encode a 784-pixel digit (values 0..255) with a cached or given encoder; the preprocessing.
globalThis.__latentLabLive = {
  encoders: () => [...ENCODERS.keys()],
  load: (key, payload) => { ENCODERS.set(key, buildEncoder(payload)); },
  encode: (key, digit, label) => {
    const pixels = new Float64Array(digit.length);
    for (let i = 0; i < digit.length; i++) pixels[i] = Math.fround(digit[i] / 255);
    return encodeImage(ENCODERS.get(key), pixels, label);
  },
  toDigit: (rgba, w, h, tallFirst) => Array.from(drawingToDigit(Uint8ClampedArray.from(rgba), w, h, tallFirst) || []),
};

export default function (component) {
  const { data, parentElement, setTriggerValue } = component;
  let state = parentElement.__liveEncoder;
  try {
    if (data && data.encoder) ENCODERS.set(data.model, buildEncoder(data.encoder));
    if (data && data.weights) DECODERS.set(data.model, buildDecoder(data.weights));
    if (data && data.map_data) {
      const md = data.map_data;
      MAPS.set(data.map, { points: md.points ? floats(md.points, "float32") : null,
                           labels: md.labels ? base64Bytes(md.labels) : new Uint8Array(0), extent: md.extent });
    }
    if (!state) state = parentElement.__liveEncoder = new LiveEncoder(parentElement);
    parentElement.querySelector(".le-loading")?.remove();
    state.update_data(data, { setTriggerValue });
  } catch (err) {
    setTriggerValue("failed", String(err && err.message || err));
  }
  // No cleanup: the drawing stays on this element across reruns (a Send, a class change).
}
