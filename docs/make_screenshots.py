"""Copy chosen screenshots of the browser tests into git-tracked PNGs under docs/, for the README.

Every e2e run (`python -m pytest tests/e2e`) writes one full-page screenshot per test into
tests/e2e/screenshots/ (git-ignored). This script takes the ones listed in SHOTS, keeps the top of each
page (the part a reader sees first), scales it to at most WIDTH pixels wide and writes docs/<name>.png, so the
README's pictures come from the app as it is today rather than from a hand-made capture.

    python -m pytest -q tests/e2e          # or --run below, which runs just the tests it needs
    python docs/make_screenshots.py        # copies, crops and scales; prints what it wrote
    python docs/make_screenshots.py --run  # runs the e2e tests that make the chosen screenshots first

--run sets LATENT_LAB_E2E_SHIPPED=1, so those tests drive the app on the shipped checkpoints (and the data set
under $VAE_DATA_DIR) instead of the tiny fixture models of an ordinary e2e run, whose pictures are noise.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "tests" / "e2e" / "screenshots"
OUT = ROOT / "docs"
# e2e test name -> file under docs/ (the README shows these)
SHOTS = {
    "test_decoder_slider_changes_the_image": "screenshot_decoder.png",
    "test_latent_map_click_shows_the_image": "screenshot_latent_map.png",
}
WIDTH = 1000        # pixels: sharp on GitHub's README column, small in git
MAX_HEIGHT = 900    # the first screenful of the page


def make(source: Path = SOURCE, out: Path = OUT, shots: dict[str, str] = SHOTS, width: int = WIDTH,
         max_height: int = MAX_HEIGHT) -> list[Path]:
    """Write one PNG per entry of `shots`; raise FileNotFoundError naming what is missing and how to make it."""
    from PIL import Image

    missing = [name for name in shots if not (source / f"{name}.png").exists()]
    if missing:
        raise FileNotFoundError(f"no e2e screenshot for {', '.join(missing)} in {source}; run "
                                f"'python -m pytest -q tests/e2e' (or this script with --run) first")
    written = []
    out.mkdir(parents=True, exist_ok=True)
    for name, target in shots.items():
        with Image.open(source / f"{name}.png") as img:
            img = img.convert("RGB")
            scale = min(1.0, width / img.width)  # never enlarge
            img = img.crop((0, 0, img.width, min(img.height, round(max_height / scale))))
            if scale < 1.0:
                img = img.resize((width, round(img.height * scale)), Image.LANCZOS)
            path = out / target
            img.save(path, optimize=True)
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", action="store_true", help="run the e2e tests that make the screenshots first")
    parser.add_argument("--source", type=Path, default=SOURCE)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    if args.run:
        tests = " or ".join(name.removeprefix("test_") for name in SHOTS)
        env = {**os.environ, "LATENT_LAB_E2E_SHIPPED": "1"}  # the shipped checkpoints, not tiny fixture models
        code = subprocess.call([sys.executable, "-m", "pytest", "-q", "tests/e2e", "-k", tests], cwd=ROOT, env=env)
        if code != 0:
            print(f"error: the e2e tests failed (exit {code}); no screenshots copied", file=sys.stderr)
            return code
    try:
        written = make(args.source, args.out)
    except FileNotFoundError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for path in written:
        print(f"wrote {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path} ({path.stat().st_size // 1024} KB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
