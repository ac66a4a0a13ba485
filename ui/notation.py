"""The one notation the pages use for their symbols, stated once on every page that uses them (issue 21).

The code follows Sohn, Lee and Yan (2015): x is what a model is given and y the image it explains, so a plain
VAE's encoder is q(z|y), not the q(z|x) a class may have been taught. A page that writes q(z|x,y) or p(z|x)
calls `state_notation()` once, near its top; a page that can say it in words (the Latent map) uses words.
"""
from __future__ import annotations

import streamlit as st

NOTATION = ("**Notation** (Sohn, Lee and Yan, 2015): **x** is what the model is given (the label, the visible "
            "quadrants, or nothing for a plain VAE), **y** is the image it explains (for a quadrant model, the "
            "hidden pixels), **z** is the latent code. So q(z|x,y) is the encoder, p(z|x) the prior and p(y|x,z) "
            "the decoder; for a plain VAE, x is empty and the prior is N(0, I).")
SYMBOLS = ("q(z", "p(z", "p(y")


def state_notation() -> None:
    """The notation, once, as a caption (a page calls it before its first symbol)."""
    st.caption(NOTATION)


def uses_symbols(text: str) -> bool:
    """Whether a text writes the densities as symbols (then its page must state the notation)."""
    return any(s in text for s in SYMBOLS)
