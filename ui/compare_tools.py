"""Helpers of the Compare page: finding the conditional models (CVAE / GSNN / hybrid / baseline, or any other
conditional variant in the registry), sampling them with the same noise, quadrant completions, labelled figures,
and the table of conditional log-likelihoods. Which variants go where is read from vae_core's registry
(`compared_variants`): the paper's order, the stochastic ones sampled, the deterministic ones predicting.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st
import torch
from PIL import Image, ImageDraw, ImageFont

from vae_core import VARIANTS, compared_variants, conditional_nll, quadrant_input, unconditional_variants
from vae_core.data import hidden_pixels
from ui.cached_data import test_set
from ui.images import BACKGROUND, grid, to_uint8
from ui.model_catalogue import load_model

NLL_IMAGES = 500    # when a checkpoint stores no likelihoods: this many test images ...
NLL_SAMPLES = 100   # ... and this many z samples per image
HIDDEN_TINT = (38, 52, 92)   # how hidden pixels are shown in an input


def title(variant: str) -> str:
    """How a variant is named in headings and tables (the registry's title)."""
    return VARIANTS[variant].title


def table_order() -> list[str]:
    """Every conditional variant, in the paper's order (baseline, GSNN, CVAE, hybrid, then any new one by where
    it draws z in training): the rows of the likelihood table and the quadrant section."""
    return compared_variants()


def samplers() -> list[str]:
    """The stochastic conditional variants in the paper's order: the ones that draw samples side by side."""
    return compared_variants(with_latent=True)


def predictors() -> list[str]:
    """The deterministic conditional variants (the baseline): one prediction each, beside the input and truth."""
    return compared_variants(with_latent=False)


def unconditional_sentence() -> str | None:
    """Why the unconditional variants (the VAE and its kin) are not on this page, in one sentence."""
    names = [title(v) for v in unconditional_variants()]
    if not names:
        return None
    listed = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
    return (f"Unconditional models ({listed}) are not compared here: they take no label or visible quadrants, so "
            "there is no condition x to give every model alike; the Latent map and Decoder pages show them.")


def _ok(entry) -> bool:
    return entry.error is None and entry.record is not None


def handles(config, quadrants: int) -> bool:
    """Does a quadrant model complete images with `quadrants` visible quadrants?"""
    return config.condition == "quadrants" and config.quadrants in (0, quadrants)


def models_by_variant(entries, condition: str, variants=None, quadrants: int | None = None) -> dict:
    """variant -> the usable entries for a condition (and a visible-quadrant count), in listing order;
    `variants` defaults to table_order()."""
    out = {v: [] for v in (table_order() if variants is None else variants)}
    for e in entries:
        if not _ok(e):
            continue
        cfg = e.config
        if cfg.condition != condition or cfg.variant not in out:
            continue
        if quadrants is not None and not handles(cfg, quadrants):
            continue
        out[cfg.variant].append(e)
    return out


def missing_sentence(missing: list[str], condition: str) -> str | None:
    """One sentence naming the variants that have no model, or None."""
    if not missing:
        return None
    names = ", ".join(title(v) for v in missing)
    what = "label-conditioned" if condition == "label" else "quadrant-completion"
    return (f"No {what} {names} model was found: train one on the Train page (variant "
            f"{' / '.join(missing)}, condition {condition}) or put its checkpoint in a model folder.")


# ----------------------------------------------------------------------------- sampling

@torch.no_grad()
def same_noise_samples(model, x: torch.Tensor, n: int, seed: int) -> np.ndarray:
    """n samples per condition with the RNG seeded the same way for every model, so models with the
    same latent size get the very same noise eps (z = mu(x) + sigma(x) * eps). Returns float [B, n, H, W]."""
    size = model.config.image_size
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        s = model.sample(x, n)
    if s.dim() == 2:
        s = s.unsqueeze(0)
    return s.reshape(s.shape[0], n, size, size).cpu().numpy()


def completions(x_masked: torch.Tensor, predictions: np.ndarray) -> np.ndarray:
    """Visible pixels from the input, hidden ones from each prediction: [n, H, W] float."""
    x = x_masked.reshape(-1).cpu().numpy()
    pred = predictions.reshape(predictions.shape[0], -1)
    out = np.where(hidden_pixels(x)[None, :], pred, x[None, :])
    size = int(round(math.sqrt(out.shape[-1])))
    return out.reshape(-1, size, size)


def masked_rgb(x_masked: torch.Tensor) -> np.ndarray:
    """The conditioning input as RGB uint8 [H, W, 3]: visible pixels grey, hidden ones tinted."""
    x = x_masked.reshape(-1).cpu().numpy()
    size = int(round(math.sqrt(x.shape[-1])))
    grey = to_uint8(np.clip(x, 0, 1)).reshape(size, size)
    rgb = np.repeat(grey[..., None], 3, axis=-1)
    rgb[hidden_pixels(x).reshape(size, size)] = HIDDEN_TINT
    return rgb


def condition(image_uint8: torch.Tensor, quadrants: int) -> torch.Tensor:
    """The masked input x [P] of one test image with `quadrants` quadrants visible."""
    y = image_uint8.reshape(1, -1).float() / 255.0
    return quadrant_input(y, quadrants)[0]


def upscale_any(arr: np.ndarray, scale: int) -> np.ndarray:
    """Nearest-neighbour upscaling of a grey [H, W] or RGB [H, W, 3] uint8 picture."""
    return np.repeat(np.repeat(to_uint8(arr), scale, axis=0), scale, axis=1)


LABEL_MARGIN = 12   # px of white on each side of a row label in an exported figure


def _label_font(size: int = 14):
    """Pillow's own scalable font (no system font needed); its old bitmap font where FreeType is missing."""
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError, ImportError):  # Pillow < 10.1 or no FreeType
        return ImageFont.load_default()


def labelled_figure(rows: list[tuple[str, np.ndarray]], scale: int = 2, label_width: int = 0) -> np.ndarray:
    """A figure for a report: one row per (label, images [n, H, W] or one RGB [H, W, 3] strip), the label
    written at the left in a column as wide as the longest label plus a margin on each side (at least
    `label_width`), so no label runs into its pictures. Returns RGB uint8."""
    strips = []
    for _, imgs in rows:
        arr = to_uint8(imgs)
        strip = arr if arr.ndim == 3 and arr.shape[-1] == 3 else grid(arr, ncols=len(arr), pad=2)
        if strip.ndim == 2:
            strip = np.repeat(strip[..., None], 3, axis=-1)
        strips.append(upscale_any(strip, scale))
    font = _label_font()
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    boxes = [measure.textbbox((0, 0), label, font=font) for label, _ in rows]
    column = max([label_width] + [box[2] + 2 * LABEL_MARGIN for box in boxes])
    width = column + max(s.shape[1] for s in strips)
    height = sum(s.shape[0] for s in strips) + 4 * (len(strips) - 1)
    canvas = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    top = 0
    for (label, _), strip, box in zip(rows, strips, boxes):
        canvas.paste(Image.fromarray(strip), (column, top))
        text_top = top + (strip.shape[0] - (box[3] - box[1])) // 2 - box[1]
        draw.text((LABEL_MARGIN, text_top), label, fill=(20, 20, 20), font=font)
        top += strip.shape[0] + 4
    return np.asarray(canvas)


def strip_rgb(images: list[np.ndarray], pad: int = 2) -> np.ndarray:
    """Grey or RGB pictures of one size side by side with grey gaps: RGB uint8."""
    rgbs = [np.repeat(to_uint8(i)[..., None], 3, axis=-1) if to_uint8(i).ndim == 2 else to_uint8(i) for i in images]
    h, w = rgbs[0].shape[:2]
    out = np.full((h + 2 * pad, len(rgbs) * (w + pad) + pad, 3), BACKGROUND, dtype=np.uint8)
    for i, img in enumerate(rgbs):
        out[pad:pad + h, pad + i * (w + pad):pad + i * (w + pad) + w] = img
    return out


# ----------------------------------------------------------------------------- the likelihood table

@st.cache_data(show_spinner=False, max_entries=256)
def _computed_nll(path: str, mtime_ns: int, dataset: str, quadrants: int, method: str,
                  images: int, samples: int) -> float | None:
    test = test_set(dataset)
    if test is None:
        return None
    model, _ = load_model(path)
    if method == "is" and not model.config.has_latent:
        method = "mc"  # exact for a deterministic baseline
    return conditional_nll(model, test.subset(0, images), samples=samples, method=method, quadrants=quadrants)


def computed_nll(path: str, dataset: str, quadrants: int, method: str,
                 images: int | None = None, samples: int | None = None) -> float | None:
    """The estimate on the first `images` (NLL_IMAGES) test images with `samples` (NLL_SAMPLES) draws,
    cached per file (None without the data set)."""
    images, samples = images or NLL_IMAGES, samples or NLL_SAMPLES
    try:
        mtime = Path(path).stat().st_mtime_ns
    except OSError:
        return None
    return _computed_nll(path, mtime, dataset, quadrants, method, images, samples)


def nll_table(entries, compute: bool = True) -> pd.DataFrame:
    """One row per quadrant model and visible-quadrant count: NLL by Monte Carlo and by importance sampling,
    in nats per image (over the hidden pixels), and where each figure comes from."""
    rows = []
    by_variant = models_by_variant(entries, "quadrants")
    for variant in by_variant:
        for e in by_variant[variant]:
            for k in (1, 2, 3):
                if not handles(e.config, k):
                    continue
                mc, is_ = e.record.nll("mc", k), e.record.nll("is", k)
                s = e.record.samples
                source = f"stored in the checkpoint (S = {s})" if s else "stored in the checkpoint"
                if (mc is None or is_ is None) and compute:
                    dataset = e.record.dataset
                    mc = mc if mc is not None else computed_nll(e.path, dataset, k, "mc")
                    is_ = is_ if is_ is not None else computed_nll(e.path, dataset, k, "is")
                    source = (f"computed here ({NLL_IMAGES} test images, S = {NLL_SAMPLES})"
                              if mc is not None else "not available (needs the data set)")
                rows.append({"model": e.name, "variant": title(variant), "visible quadrants": k,
                             "NLL (MC)": mc, "NLL (IS)": is_, "source": source})
    return pd.DataFrame(rows, columns=["model", "variant", "visible quadrants", "NLL (MC)", "NLL (IS)", "source"])


def wide_table(long: pd.DataFrame) -> pd.DataFrame:
    """The paper's layout: a row per model, a column per (quadrant count, estimator)."""
    if long.empty:
        return long
    wide = long.set_index(["variant", "model", "visible quadrants"])[["NLL (MC)", "NLL (IS)"]].unstack()
    wide.columns = [f"{k} quadrant{'s' if k > 1 else ''}: {m.split('(')[1].rstrip(')')}" for m, k in wide.columns]
    order = [f"{k} quadrant{'s' if k > 1 else ''}: {m}" for k in (1, 2, 3) for m in ("MC", "IS")]
    wide = wide[[c for c in order if c in wide.columns]].reset_index()
    rank = {title(v): i for i, v in enumerate(table_order())}
    return wide.sort_values("variant", key=lambda s: s.map(rank), kind="stable").reset_index(drop=True)


def paper_pair() -> tuple[str, str] | None:
    """The titles of the paper's comparison (Table 2): the first conditional variant trained on z from q(z|x,y)
    (the CVAE) and the first trained on z from p(z|x) (the GSNN), or None when the registry lacks one."""
    order = samplers()
    on_q = [v for v in order if VARIANTS[v].trains_on == "q"]
    on_prior = [v for v in order if VARIANTS[v].trains_on == "prior"]
    return (title(on_q[0]), title(on_prior[0])) if on_q and on_prior else None


def finding(long: pd.DataFrame) -> str | None:
    """One sentence on what this table shows for the models present (CVAE vs GSNN, by the MC estimate)."""
    pair = paper_pair()
    if long.empty or pair is None:
        return None
    q, p = pair
    best = long.groupby(["variant", "visible quadrants"])["NLL (MC)"].min().unstack(0)
    if not {q, p} <= set(best.columns):
        return None
    gaps = (best[p] - best[q]).dropna()
    if gaps.empty:
        return None
    parts = ", ".join(f"{gap:+.1f} nats with {k} visible quadrant{'s' if k > 1 else ''}" for k, gap in gaps.items())
    if (gaps > 0).all():
        return f"Here too, the {q}'s NLL is lower than the {p}'s ({p} minus {q}: {parts})."
    return (f"Here the {q}'s NLL is not lower than the {p}'s everywhere ({p} minus {q}: {parts}); "
            "small or briefly trained models may not show the paper's gap.")
