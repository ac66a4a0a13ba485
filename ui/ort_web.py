"""ONNX Runtime Web for the in-browser decoder (ui/latent_pad.py), served by the app itself: no CDN at run time.

Two files of the npm package onnxruntime-web (pinned: VERSION), the plain WebAssembly CPU backend only, live in
static/ort/ beside app.py and reach the browser through Streamlit's static serving
(`server.enableStaticServing = true` in .streamlit/config.toml; served at /app/static/ort/):

    ort.wasm.bundle.min.mjs              the JS API with the Emscripten glue built in (77 KB)
    ort-wasm-simd-threaded.wasm.gz       the WebAssembly runtime, gzip-compressed (15 MB -> 3.8 MB: committed
                                         files stay under 8 MiB); the browser inflates it with
                                         DecompressionStream and hands the bytes to `ort.env.wasm.wasmBinary`,
                                         so the server's MIME type for .wasm never matters

with LICENSE (MIT, Microsoft: the package's licence, which its tarball does not carry as a file) and
ThirdPartyNotices.txt (the libraries compiled into the WebAssembly). The browser sets
`ort.env.wasm.numThreads = 1`: one thread needs no cross-origin isolation headers.

`python -m ui.ort_web` fetches the pinned version again with `npm pack` and checks it against the pins below;
`python -m ui.ort_web --version X.Y.Z` takes another version and prints the pins to write here.
"""
from __future__ import annotations

import argparse
import gzip
import hashlib
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FOLDER = ROOT / "static" / "ort"
URL_PATH = "app/static/ort/"                  # Streamlit's static route (streamlit.url_util.STATIC_SERVING_ENDPOINT)
VERSION = "1.31.1"
MODULE = "ort.wasm.bundle.min.mjs"
WASM = "ort-wasm-simd-threaded.wasm"          # committed as WASM + ".gz"
# sha256 of each file as the npm tarball holds it (the .wasm before compression)
PINS = {
    MODULE: "51bd7168175767324ab0acfcfc4ca94a096a3826e3ebac9ccc4f195eb865f8dd",
    WASM: "4b884c203b0fa48d057be3332c65513ff85aa3c5bddd6946acc0fab7ecda001d",
}
NOTICES = ("LICENSE", "ThirdPartyNotices.txt")


def served_files() -> list[Path]:
    """The files the browser fetches, as they lie in static/ort/."""
    return [FOLDER / MODULE, FOLDER / (WASM + ".gz")]


def problem() -> str | None:
    """Why the browser cannot load ONNX Runtime Web from this server (one sentence fragment), or None."""
    import streamlit as st

    if not st.get_option("server.enableStaticServing"):
        return ("the app does not serve ONNX Runtime Web: static serving is off "
                "(server.enableStaticServing in .streamlit/config.toml)")
    missing = [p.name for p in served_files() if not p.is_file()]
    if missing:
        return (f"ONNX Runtime Web is missing from static/ort/ ({', '.join(missing)}; "
                f"`python -m ui.ort_web` fetches it)")
    return None


def browser_config() -> dict:
    """What the browser needs to load the runtime: URLs below the app's own root, the version (a cache key)."""
    import streamlit as st

    base = "/" + "/".join(p for p in (st.get_option("server.baseUrlPath") or "").split("/") if p)
    prefix = (base.rstrip("/") + "/" + URL_PATH)
    return {"module": prefix + MODULE, "wasm": prefix + WASM + ".gz", "version": VERSION}


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def check_folder(folder: Path = FOLDER) -> list[str]:
    """Each way the files in `folder` differ from the pins (empty when they match)."""
    problems = []
    for name, want in PINS.items():
        path = folder / (name + ".gz" if name == WASM else name)
        if not path.is_file():
            problems.append(f"{path.name} is missing")
            continue
        data = path.read_bytes()
        got = sha256(gzip.decompress(data) if name == WASM else data)
        if got != want:
            problems.append(f"{path.name}: sha256 {got}, pinned {want}")
    problems += [f"{n} is missing" for n in NOTICES if not (folder / n).is_file()]
    return problems


def fetch(version: str = VERSION, folder: Path = FOLDER) -> dict[str, str]:
    """`npm pack onnxruntime-web@version`, then the two files into `folder` (the wasm gzip-compressed).
    Returns their sha256 (before compression). The notices are not in the tarball: they stay as committed."""
    with tempfile.TemporaryDirectory() as tmp:
        out = subprocess.run(["npm", "pack", f"onnxruntime-web@{version}", "--silent"], cwd=tmp, check=True,
                             capture_output=True, text=True).stdout.strip().splitlines()[-1]
        with tarfile.open(Path(tmp) / out) as tar:
            files = {name: tar.extractfile(f"package/dist/{name}").read() for name in (MODULE, WASM)}
    folder.mkdir(parents=True, exist_ok=True)
    (folder / MODULE).write_bytes(files[MODULE])
    # mtime=0: the same input gives the same bytes, so a refetch leaves git with nothing to commit
    (folder / (WASM + ".gz")).write_bytes(gzip.compress(files[WASM], compresslevel=9, mtime=0))
    return {name: sha256(data) for name, data in files.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ui.ort_web", description=__doc__.split("\n\n")[0])
    parser.add_argument("--version", default=VERSION, help=f"onnxruntime-web version (pinned: {VERSION})")
    args = parser.parse_args(argv)
    pins = fetch(args.version)
    for name, digest in pins.items():
        print(f"{name}: {digest}")
    if args.version != VERSION:
        print(f"now set VERSION = {args.version!r} and PINS in ui/ort_web.py to the digests above")
        return 0
    problems = check_folder()
    for p in problems:
        print(f"error: {p}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
