"""What the Latent map's layers cost (issue 23): the classifier's borders and the test images as thumbnails.

1. The classifier layer on the server: a 64 x 64 grid over the map's box (the central 99 % of the stored latent
   means), 4,096 decodes and classifier passes in one call, then the picture and the hover text
   (ui/map_layers.make_classifier_layer, what the page caches per model and label). Issue 23's bar: <= 1.5 s.
2. The thumbnails layer on the server: choosing a spread-out subset, drawing it and encoding one PNG, per
   density (ui/map_layers.make_thumbnail_layer); needs the MNIST test set.
3. With --browser: what chromium takes to draw the map (10,000 Scattergl dots) with the thumbnails as ONE
   composited layout image, against one layout image per thumbnail (Plotly.newPlot until two animation
   frames later), from a static page with the plotly.js of the installed plotly package.

    python bench/classifier_map.py [--repeats 5] [--cells 64] [--browser]

Prints the `uptime` load average and torch's threads first: on a shared machine the figures move with them.
"""
from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as app.py sets it for the server, before torch loads

import argparse  # noqa: E402
import base64
import io
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "e2e"))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from ui.map_layers import (THUMBNAIL_COUNTS, make_classifier_layer, make_thumbnail_layer,  # noqa: E402
                           map_box)
from vae_core import DatasetUnavailable, load_checkpoint, load_dataset  # noqa: E402
from vae_core.classifier import latent_grid_readings, load_classifier  # noqa: E402

CLASSIFIER = ROOT / "checkpoints" / "classifier" / "mnist-digits.safetensors"
MODELS = [("checkpoints/mnist-vae-2d.safetensors", None), ("checkpoints/beta-sweep/mnist-vae-2d-beta-1.safetensors", None),
          ("checkpoints/mnist-label-cvae.safetensors", 7)]


def load() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()
    except OSError:
        return "uptime: not available"


def timed(fn, repeats: int) -> tuple[float, float, object]:
    """(first call's seconds, median of the next `repeats`, the last result)."""
    started = time.perf_counter()
    result = fn()
    first = time.perf_counter() - started
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - started)
    return first, statistics.median(times) if times else first, result


def classifier_part(repeats: int, cells: int) -> None:
    classifier = load_classifier(CLASSIFIER)[0]
    print(f"\n1. classifier layer, {cells} x {cells} = {cells * cells:,} decodes + classifier passes "
          f"(first call, then the median of {repeats})")
    for rel, label in MODELS:
        path = ROOT / rel
        if not path.is_file():
            print(f"  {rel}: missing, skipped")
            continue
        model, record = load_checkpoint(path)
        stored = record.latent_means()
        if stored is None:
            print(f"  {rel}: no stored latent means, skipped")
            continue
        x_range, y_range = map_box(stored[0])
        names = [str(i) for i in range(10)]
        _, grid_s, _ = timed(lambda: latent_grid_readings(model, classifier, x_range, y_range, cells, label), repeats)
        first, whole, layer = timed(lambda: make_classifier_layer(model, classifier, x_range, y_range, label, cells,
                                                                  names), repeats)
        what = f"{path.stem}" + (f" (decoded as {label})" if label is not None else "")
        print(f"  {what:40s} decode+classify {grid_s:5.2f} s; whole layer {whole:5.2f} s (first {first:5.2f} s); "
              f"picture {len(layer.picture) / 1e3:,.0f} kB")


def thumbnails_part(repeats: int) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    try:
        test = load_dataset("mnist", "test", download=False)
    except DatasetUnavailable as e:
        print(f"\n2. thumbnails: skipped, no MNIST test set ({e})")
        return None
    _, record = load_checkpoint(ROOT / MODELS[0][0])
    mu, labels = record.latent_means()
    images = test.images.numpy()
    x_range, y_range = map_box(mu)
    print(f"\n2. thumbnails layer of {Path(MODELS[0][0]).stem} (median of {repeats})")
    for count in THUMBNAIL_COUNTS:
        _, took, layer = timed(lambda: make_thumbnail_layer(mu, labels, images, count, x_range, y_range), repeats)
        print(f"  asked {count:6,}: shows {layer.shown:5,} in {took:5.2f} s; PNG {layer.png_bytes / 1e3:6,.0f} kB")
    return mu, labels, images


def browser_part(mu, labels, images, repeats: int) -> None:
    """Plotly in chromium: one composited layout image against one layout image per thumbnail."""
    from harness import launch_chromium, missing_browser_reason
    reason = missing_browser_reason()
    if reason:
        print(f"\n3. browser: skipped ({reason})")
        return
    import plotly
    from playwright.sync_api import sync_playwright
    from PIL import Image

    from ui.map_layers import spread_subset
    plotly_js = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    x_range, y_range = map_box(mu)
    composite = make_thumbnail_layer(mu, labels, images, 10_000, x_range, y_range)
    dots = [{"type": "scattergl", "mode": "markers", "x": mu[labels == c, 0].tolist(), "y": mu[labels == c, 1].tolist(),
             "marker": {"size": 3, "opacity": 0.12}} for c in range(10)]
    layout = {"width": 700, "height": 640, "xaxis": {"range": list(x_range)}, "yaxis": {"range": list(y_range)}}

    def small_png(i: int) -> str:
        buf = io.BytesIO()
        Image.fromarray(255 - images[i]).save(buf, format="PNG")
        return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()

    px = np.stack([(mu[:, 0] - x_range[0]) / (x_range[1] - x_range[0]) * 1400,
                   (y_range[1] - mu[:, 1]) / (y_range[1] - y_range[0]) * 1400], axis=1)
    cases = {"no thumbnails (the dots alone)": [], "one composited image (10,000 asked)": [dict(source=composite.picture, xref="x", yref="y",
                                                           x=x_range[0], y=y_range[1], sizex=x_range[1] - x_range[0],
                                                           sizey=y_range[1] - y_range[0], sizing="stretch",
                                                           layer="below")]}
    size = (x_range[1] - x_range[0]) / 60
    for count in (200, 1000, 2000):
        chosen = spread_subset(px, count, 1400 / np.sqrt(count * 2))
        cases[f"{len(chosen):,} separate layout images"] = [
            dict(source=small_png(i), xref="x", yref="y", x=float(mu[i, 0] - size / 2), y=float(mu[i, 1] + size / 2),
                 sizex=size, sizey=size, sizing="stretch", layer="below") for i in chosen]
    html = f"<html><body><div id='g'></div><script>{plotly_js.read_text()}</script></body></html>"
    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as p:
        page_file = Path(tmp) / "bench.html"
        page_file.write_text(html)
        browser = launch_chromium(p)
        page = browser.new_page(viewport={"width": 900, "height": 800})
        page.goto(page_file.as_uri())
        print(f"\n3. chromium: Plotly.newPlot of 10,000 dots and the thumbnails, and a zoom (Plotly.relayout to the "
              f"middle half), each until two frames later (median of {repeats})")
        for name, images_layout in cases.items():
            drawn, zoomed = [], []
            for _ in range(repeats):
                t = page.evaluate("""async ([data, layout, xr, yr]) => {
                    const g = document.getElementById('g'); Plotly.purge(g);
                    const frames = () => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)));
                    const t0 = performance.now(); await Plotly.newPlot(g, data, layout); await frames();
                    const t1 = performance.now();
                    const q = (a, b) => [a + (b - a) / 4, b - (b - a) / 4];
                    await Plotly.relayout(g, {'xaxis.range': q(...xr), 'yaxis.range': q(...yr)}); await frames();
                    return [(t1 - t0) / 1000, (performance.now() - t1) / 1000]; }""",
                                  [dots, {**layout, "images": images_layout}, list(x_range), list(y_range)])
                drawn.append(t[0])
                zoomed.append(t[1])
            payload = len(json.dumps(images_layout)) / 1e3
            print(f"  {name:40s} draw {statistics.median(drawn):5.2f} s, zoom {statistics.median(zoomed):5.2f} s "
                  f"(layout images: {payload:,.0f} kB of JSON)")
        browser.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--cells", type=int, default=64, help="classifier grid cells a side (default 64)")
    parser.add_argument("--browser", action="store_true", help="also time Plotly's drawing in chromium")
    args = parser.parse_args()
    print(load())
    print(f"torch threads {torch.get_num_threads()}, CPUs {os.cpu_count()}")
    classifier_part(args.repeats, args.cells)
    data = thumbnails_part(args.repeats)
    if args.browser and data is not None:
        browser_part(*data, repeats=args.repeats)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
