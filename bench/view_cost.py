"""Calibrate jobs/views.py's cost model: the CPU-seconds of each Diagnose view, measured in this process
(resource.getrusage: every thread, as the Streamlit server would spend them), beside the estimate that decides
whether a view runs in the server or as a job.

    python bench/view_cost.py                        # the measurements in jobs/views.py's docstring
    python bench/view_cost.py --images 100 --samples 5 --hidden 32 --curve-images 5   # a quick check

Untrained models (the cost does not depend on the weights' values) on the MNIST test set ($VAE_DATA_DIR).
Run it on a quiet machine: CPU time rises with the load (caches shared with other work).
"""
from __future__ import annotations

import argparse
import resource
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from jobs import views  # noqa: E402
from vae_core import ModelConfig, build_model, load_dataset  # noqa: E402


def cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=500, help="test images of the per-example view")
    parser.add_argument("--samples", type=int, default=50, help="importance samples S of the per-example view")
    parser.add_argument("--hidden", type=int, nargs="+", default=[32, 512],
                        help="hidden sizes to try, each as a model of two such layers (32: one layer)")
    parser.add_argument("--curve-images", type=int, default=views.CURVE_IMAGES,
                        help="images of the likelihood curve (its estimate is for CURVE_IMAGES)")
    args = parser.parse_args()
    data = load_dataset("mnist", "test", download=False)
    print(f"{'view':<18}{'weights':>12}{'estimate CPU-s':>16}{'measured CPU-s':>16}")
    for size in args.hidden:
        cfg = ModelConfig(hidden_dims=(size,) if size <= 32 else (size, size), latent_dim=2)
        model = build_model(cfg, seed=0).eval()
        weights = model.num_parameters()
        views.compute("collapse_stats", model, data, {"images": 50, "quadrants": None})   # warm up
        for view, params in (("collapse_stats", {"images": args.images, "quadrants": None}),
                             ("per_example", {"images": args.images, "samples": args.samples, "quadrants": None}),
                             ("likelihood_curve", {"quadrants": None})):
            used = data if view != "likelihood_curve" else data.subset(0, args.curve_images)
            start = cpu()
            views.compute(view, model, used, params)
            spent = cpu() - start
            estimate = views.estimate_cpu_seconds(view, params, weights)
            if view == "likelihood_curve":
                estimate *= args.curve_images / views.CURVE_IMAGES
            print(f"{view:<18}{weights:>12,}{estimate:>16.2f}{spent:>16.2f}")


if __name__ == "__main__":
    main()
