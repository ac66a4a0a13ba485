// Latent Lab: a drawing -> the 28 x 28 digit, exactly as the server's ui/decoder_tools.drawing_to_digit makes
// it (tests/e2e/test_live_encoder.py compares the two on the same canvas pixels):
//   grey = mean(R, G, B) * A / 255 (float32), ink = grey > 20, crop to the ink's bounding box, resize its
//   longer side to 20 px with Pillow's Lanczos filter (8-bit fixed point, two passes), place it so that its
//   centre of mass sits at the centre, scale its peak to 255.

const PRECISION_BITS = 22;                 // Pillow's Resample.c: 32 - 8 - 2

function sinc(x) {
  if (x === 0) return 1;
  x *= Math.PI;
  return Math.sin(x) / x;
}

function lanczos(x) {
  return -3 <= x && x < 3 ? sinc(x) * sinc(x / 3) : 0;
}

// Pillow's precompute_coeffs for a box (0, inSize) and normalize_coeffs_8bpc: per output pixel, the first
// input pixel, how many, and integer weights.
function coefficients(inSize, outSize) {
  const scale = inSize / outSize, filterscale = Math.max(scale, 1), support = 3 * filterscale;
  const out = [];
  for (let xx = 0; xx < outSize; xx++) {
    const center = (xx + 0.5) * scale, ss = 1 / filterscale;
    const xmin = Math.max(Math.trunc(center - support + 0.5), 0);
    const xmax = Math.min(Math.trunc(center + support + 0.5), inSize) - xmin;
    const k = [];
    let ww = 0;
    for (let x = 0; x < xmax; x++) {
      const w = lanczos((x + xmin - center + 0.5) * ss);
      k.push(w);
      ww += w;
    }
    const ints = k.map(w => {
      const v = ww !== 0 ? w / ww : w;
      return v < 0 ? Math.trunc(-0.5 + v * (1 << PRECISION_BITS)) : Math.trunc(0.5 + v * (1 << PRECISION_BITS));
    });
    out.push({ min: xmin, n: xmax, k: ints });
  }
  return out;
}

function clip8(s) {
  const v = Math.floor(s / (1 << PRECISION_BITS));  // Pillow: in >> PRECISION_BITS, then a 0..255 clip
  return v < 0 ? 0 : v > 255 ? 255 : v;
}

// One pass along rows (horizontal) or columns (vertical) of a uint8 image [h, w].
function horizontal(src, w, h, outW, rowFirst, rows) {
  const cs = coefficients(w, outW), out = new Uint8Array(rows * outW);
  for (let y = 0; y < rows; y++) {
    const base = (y + rowFirst) * w;
    for (let xx = 0; xx < outW; xx++) {
      const c = cs[xx];
      let s = 1 << (PRECISION_BITS - 1);
      for (let x = 0; x < c.n; x++) s += src[base + x + c.min] * c.k[x];
      out[y * outW + xx] = clip8(s);
    }
  }
  return out;
}

function vertical(src, w, cs, outH, shift) {
  const out = new Uint8Array(outH * w);
  for (let yy = 0; yy < outH; yy++) {
    const c = cs[yy];
    for (let xx = 0; xx < w; xx++) {
      let s = 1 << (PRECISION_BITS - 1);
      for (let y = 0; y < c.n; y++) s += src[(y + c.min - shift) * w + xx] * c.k[y];
      out[yy * w + xx] = clip8(s);
    }
  }
  return out;
}

// Image.resize((outW, outH), Image.LANCZOS) of a uint8 'L' image [h, w]. Pillow 13 runs the vertical pass
// first when the height shrinks by more than twice as many pixels as the width (`tallFirst`); before, always
// the horizontal pass first (only the rows the vertical pass reads).
function resizeLanczos(src, w, h, outW, outH, tallFirst) {
  if (w === outW && h === outH) return Uint8Array.from(src);
  const needH = outW !== w, needV = outH !== h;
  const vs = coefficients(h, outH);
  if (tallFirst && outH < h && (h - outH) > 2 * (w - outW)) {
    const tmp = needV ? vertical(src, w, vs, outH, 0) : src;
    return needH ? horizontal(tmp, w, outH, outW, 0, outH) : tmp;
  }
  if (!needH) return vertical(src, w, vs, outH, 0);
  const first = vs[0].min, last = vs[outH - 1].min + vs[outH - 1].n;
  const tmp = horizontal(src, w, h, outW, first, last - first);
  return needV ? vertical(tmp, outW, vs, outH, first) : tmp;
}

// Python's round(): half to even.
function roundHalfEven(x) {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

// rgba: Uint8ClampedArray of a w x h canvas. Returns Uint8Array(size * size) or null when nothing is drawn.
function drawingToDigit(rgba, w, h, tallFirst, size = 28, box = 20, threshold = 20) {
  const f = Math.fround, grey = new Float32Array(w * h);
  let top = h, bottom = -1, left = w, right = -1;
  for (let i = 0, p = 0; i < w * h; i++, p += 4) {
    const g = f(f(f(rgba[p] + rgba[p + 1] + rgba[p + 2]) / 3) * f(rgba[p + 3] / 255));
    grey[i] = g;
    if (g > threshold) {
      const r = Math.floor(i / w), c = i - r * w;
      if (r < top) top = r;
      if (r > bottom) bottom = r;
      if (c < left) left = c;
      if (c > right) right = c;
    }
  }
  if (bottom < 0) return null;
  const ch = bottom - top + 1, cw = right - left + 1, crop = new Uint8Array(ch * cw);
  for (let r = 0; r < ch; r++) {
    for (let c = 0; c < cw; c++) {
      const v = grey[(r + top) * w + c + left];
      crop[r * cw + c] = v <= 0 ? 0 : v >= 255 ? 255 : Math.trunc(v);
    }
  }
  const scale = box / Math.max(ch, cw);
  const newH = Math.max(1, roundHalfEven(ch * scale)), newW = Math.max(1, roundHalfEven(cw * scale));
  const small = resizeLanczos(crop, cw, ch, newW, newH, tallFirst);
  let mass = 0, my = 0, mx = 0;
  for (let r = 0; r < newH; r++) {
    for (let c = 0; c < newW; c++) {
      const v = small[r * newW + c];
      mass += v; my += r * v; mx += c * v;
    }
  }
  const out = new Float32Array(size * size);
  if (mass > 0) {
    const cy = my / mass, cx = mx / mass;
    const y0 = Math.min(Math.max(roundHalfEven(size / 2 - cy - 0.5), 0), size - newH);
    const x0 = Math.min(Math.max(roundHalfEven(size / 2 - cx - 0.5), 0), size - newW);
    for (let r = 0; r < newH; r++) for (let c = 0; c < newW; c++) out[(y0 + r) * size + x0 + c] = small[r * newW + c];
  } else {
    // numpy's 0/0 is NaN and np.clip(round(NaN)) raises in Python: the server meets no such drawing, since
    // ink above the threshold always survives the resize. Placed at the top left here, never reached.
    for (let r = 0; r < newH; r++) for (let c = 0; c < newW; c++) out[r * size + c] = small[r * newW + c];
  }
  let peak = 0;
  for (let i = 0; i < out.length; i++) if (out[i] > peak) peak = out[i];
  const digit = new Uint8Array(size * size);
  const k = peak > 0 ? f(255 / peak) : 1;
  for (let i = 0; i < out.length; i++) {
    const v = peak > 0 ? f(out[i] * k) : out[i];
    digit[i] = v <= 0 ? 0 : v >= 255 ? 255 : Math.trunc(v);
  }
  return digit;
}
