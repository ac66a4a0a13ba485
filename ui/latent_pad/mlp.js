// Latent Lab: an MLP decoder in plain JS, one copy for both components that run it (ui/latent_pad.py puts this
// file before latent_pad.js, ui/live_encoder.py before nets.js; each component is one inline module). Weights
// as ui/latent_pad.py packs them: base64 little-endian float32 or float16, with shapes. A decoder built here is
// what both keep in the page-wide cache globalThis.__latentLabDecoders (its weights travel once per session).

function base64Bytes(b64) {
  const s = atob(b64), out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
}

function halfToFloat(h) {
  const sign = h & 0x8000 ? -1 : 1, exp = (h >> 10) & 0x1f, frac = h & 0x3ff;
  if (exp === 0) return sign * Math.pow(2, -14) * (frac / 1024);
  if (exp === 31) return frac ? NaN : sign * Infinity;
  return sign * Math.pow(2, exp - 15) * (1 + frac / 1024);
}

function floats(b64, dtype) {
  const bytes = base64Bytes(b64);
  if (dtype === "float32") return new Float32Array(bytes.buffer);
  const half = new Uint16Array(bytes.buffer), out = new Float32Array(half.length);
  for (let i = 0; i < half.length; i++) out[i] = halfToFloat(half[i]);
  return out;
}

function denseLayers(list, dtype) {
  return list.map(l => ({ W: floats(l.w, dtype), b: floats(l.b, dtype), out: l.shape[0], in: l.shape[1],
                          relu: l.act === "relu" }));
}

function buildDecoder(w) {
  const layers = denseLayers(w.layers, w.dtype);
  return { kind: "mlp", layers, xDim: w.x_dim, latentDim: w.latent_dim, size: w.image_size, dtype: w.dtype,
           buffers: [new Float64Array(layers[0].in), ...layers.map(l => new Float64Array(l.out))] };
}

// Linear layers (ReLU where marked) over buffers[0] -> buffers[last]; accumulates in float64.
function runDense(layers, buffers) {
  layers.forEach((l, k) => {
    const inp = buffers[k], out = buffers[k + 1], W = l.W, n = l.in;
    for (let o = 0; o < l.out; o++) {
      let s = l.b[o];
      const row = o * n;
      for (let i = 0; i < n; i++) s += W[row + i] * inp[i];
      out[o] = l.relu && s < 0 ? 0 : s;
    }
  });
  return buffers[buffers.length - 1];
}

// p(y|x,z): the generation net on (one-hot label, z), as LatentModel.generation_logits concatenates them,
// then a sigmoid. Returns pixel probabilities (Float64Array, reused between calls: copy to keep).
function decodeMLP(dec, z, label) {
  const x = dec.buffers[0];
  x.fill(0);
  if (dec.xDim) x[label ?? 0] = 1;
  for (let j = 0; j < dec.latentDim; j++) x[dec.xDim + j] = z[j];
  const y = runDense(dec.layers, dec.buffers);
  for (let i = 0; i < y.length; i++) y[i] = 1 / (1 + Math.exp(-y[i]));
  return y;
}
