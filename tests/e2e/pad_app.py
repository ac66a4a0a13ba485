"""A test-only Streamlit app: the latent pad (ui/latent_pad.py) alone, with a decoder named in the URL, for the
browser tests of ONNX decoders (tests/e2e/test_onnx_pad.py) and bench/browser_decode.py, until the pages get
models whose decoder is an ONNX graph. Not part of the app.

    ?model=NAME&mode=pad|sliders|hover&label=K

NAME is a file of the folder $LATENT_LAB_PAD_MODELS: NAME.onnx with NAME.json (the graph and its spec, run by
ONNX Runtime Web) or NAME.safetensors (a Latent Lab checkpoint: its MLP decoder in hand-written JS).
`tests/e2e/onnx_models.py` (pad_app_server) starts it with the repository's ./static beside it, as Streamlit's
static serving needs.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

sys.path.insert(0, os.environ["LATENT_LAB_ROOT"])

import numpy as np  # noqa: E402
import plotly.graph_objects as go  # noqa: E402
import streamlit as st  # noqa: E402

from ui import latent_pad as lp  # noqa: E402
from ui.decoder_tools import normal_quantiles  # noqa: E402
from ui.images import png_bytes  # noqa: E402

FOLDER = Path(os.environ["LATENT_LAB_PAD_MODELS"])
CELLS = 15

st.set_page_config(page_title="Latent pad test", layout="wide")
name = st.query_params.get("model", "conv")
mode = st.query_params.get("mode", "pad")
label = int(st.query_params["label"]) if "label" in st.query_params else None
st.title(f"Latent pad: {name}")

if (FOLDER / f"{name}.onnx").is_file():
    path = FOLDER / f"{name}.onnx"
    spec = json.loads((FOLDER / f"{name}.json").read_text())
    model, onnx = None, (path.read_bytes(), spec)
    latent_dim, classes = spec["latent_dim"], spec.get("label_classes", 0)
else:
    from ui.model_catalogue import load_model
    path = FOLDER / f"{name}.safetensors"
    model, onnx = load_model(str(path))[0], None
    latent_dim, classes = model.config.latent_dim, model.x_dim

why_not = lp.unavailable(model, onnx)
if why_not:
    st.error(f"The browser cannot decode here, because {why_not}.")
    st.stop()
st.caption(f"engine: {lp.engine(model, onnx)}")


def on_commit(z: list[float]) -> None:
    st.session_state["pad_z"] = z
    st.session_state["pad_echo"] = True


if mode == "hover":
    rng = np.random.default_rng(0)
    points = rng.normal(0, 1, (200, 2))
    fig = go.Figure(go.Scatter(x=points[:, 0], y=points[:, 1], mode="markers"))
    fig.update_layout(height=500, width=600, xaxis_range=[-3, 3], yaxis_range=[-3, 3])
    st.plotly_chart(fig, key="pad_chart", width="content")
    lp.hover_decoder(str(path), model, chart_key="pad_chart", onnx_decoder=onnx,
                     class_names=[str(c) for c in range(classes)] if classes else None)
else:
    q = normal_quantiles(CELLS)
    grid = None
    if mode == "pad":
        ramp = np.linspace(40, 200, CELLS * 8, dtype=np.float32)
        grid = {"png": png_bytes((ramp[None, :] + ramp[::-1, None]) / 2 / 255), "z1": q, "z2": q[::-1]}
    z = st.session_state.get("pad_z", [0.0] * latent_dim)
    lp.decoder_pad(str(path), model, z=z, rev=0, echo=st.session_state.pop("pad_echo", False), label=label,
                   value_range=(-3.0, 3.0), on_commit=on_commit, grid=grid, onnx_decoder=onnx)
    st.caption("Committed z = (" + ", ".join(f"{v:.3f}" for v in z) + ")")
