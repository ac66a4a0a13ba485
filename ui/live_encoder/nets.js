// Latent Lab: networks in the browser, shared by components (weights as ui/latent_pad.py and
// ui/live_encoder.py pack them: base64 little-endian float32 or float16, with shapes).
// A decoder built here has the layout latent_pad.js caches under globalThis.__latentLabDecoders, so the
// two components share one copy of a model's decoder (its weights travel once per session).

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
  return { layers, xDim: w.x_dim, latentDim: w.latent_dim, size: w.image_size, dtype: w.dtype,
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

// p(y|x,z): one-hot label then z, as LatentModel.generation_logits concatenates them; a sigmoid at the end.
function decodeMLP(dec, z, label) {
  const x = dec.buffers[0];
  x.fill(0);
  if (dec.xDim) x[label ?? 0] = 1;
  for (let j = 0; j < dec.latentDim; j++) x[dec.xDim + j] = z[j];
  const y = runDense(dec.layers, dec.buffers);
  for (let i = 0; i < y.length; i++) y[i] = 1 / (1 + Math.exp(-y[i]));
  return y;
}

// q(z|x,y): an MLP on (one-hot label, pixels), or convolutions on the image (each followed by a ReLU,
// flattened channel by channel as nn.Flatten does) whose features join the one-hot label before the MLP.
function buildEncoder(p) {
  const convs = (p.convs || []).map(c => ({ W: floats(c.w, p.dtype), b: floats(c.b, p.dtype), out: c.shape[0],
                                            in: c.shape[1], k: c.shape[2], stride: c.stride, pad: c.pad }));
  let side = p.image_size;
  const maps = [new Float64Array(side * side)];
  convs.forEach(c => {
    c.side = side;
    side = Math.floor((side + 2 * c.pad - c.k) / c.stride) + 1;
    c.outSide = side;
    maps.push(new Float64Array(c.out * side * side));
  });
  const layers = denseLayers(p.layers, p.dtype);
  return { kind: p.kind, convs, maps, layers, xDim: p.x_dim, latentDim: p.latent_dim, size: p.image_size,
           buffers: [new Float64Array(layers[0].in), ...layers.map(l => new Float64Array(l.out))] };
}

function conv2d(c, inp, out) {
  const S = c.side, O = c.outSide, k = c.k, W = c.W;
  for (let o = 0; o < c.out; o++) {
    for (let i = 0; i < O; i++) {
      for (let j = 0; j < O; j++) {
        let s = c.b[o];
        for (let ci = 0; ci < c.in; ci++) {
          const wBase = (o * c.in + ci) * k * k, iBase = ci * S * S;
          for (let ki = 0; ki < k; ki++) {
            const r = i * c.stride - c.pad + ki;
            if (r < 0 || r >= S) continue;
            for (let kj = 0; kj < k; kj++) {
              const q = j * c.stride - c.pad + kj;
              if (q < 0 || q >= S) continue;
              s += W[wBase + ki * k + kj] * inp[iBase + r * S + q];
            }
          }
        }
        out[(o * O + i) * O + j] = s < 0 ? 0 : s;
      }
    }
  }
}

// pixels: 784 values in [0, 1] (the uint8 digit / 255, as the server's encode_digit gives the model).
// Returns { mu, logvar } as plain arrays.
function encodeImage(enc, pixels, label) {
  const x = enc.buffers[0];
  x.fill(0);
  if (enc.xDim) x[label ?? 0] = 1;
  if (enc.convs.length) {
    enc.maps[0].set(pixels);
    enc.convs.forEach((c, k) => conv2d(c, enc.maps[k], enc.maps[k + 1]));
    x.set(enc.maps[enc.maps.length - 1], enc.xDim);
  } else {
    x.set(pixels, enc.xDim);
  }
  const out = runDense(enc.layers, enc.buffers), d = enc.latentDim;
  return { mu: Array.from(out.subarray(0, d)), logvar: Array.from(out.subarray(d, 2 * d)) };
}
