// Latent Lab: the encoder in the browser, for the live encoder (weights as ui/live_encoder.py packs them:
// base64 little-endian float32 or float16, with shapes). Its dense layers, the decoder and the base64 reading
// are ui/latent_pad/mlp.js (floats, denseLayers, runDense, buildDecoder, decodeMLP), which ui/live_encoder.py
// puts before this file: one copy of the decoder's code and, in the page-wide cache, of a model's decoder.

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
