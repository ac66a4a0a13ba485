"""Presenter view for a projector: a sidebar switch (or `?present=1` in the address) that hides the sidebar,
enlarges the type and the decoded digit, and gives keys on the Decoder page:

    ← → ↑ ↓   move z (z1 left/right, z2 up/down) by STEP
    space     a sample from the prior
    b / B     the next / previous model of the β sweep this model belongs to (ui/beta_sweep.py), z kept;
              without a sweep the page says that nothing happens

The keys come from a small components-v2 piece (ui/presenter/presenter.js) with one keydown listener on the
page's document (components v2 mount inline, in the page's own document: no iframe); keys typed into an
input, or on the in-browser decoder's own pad and sliders, are left alone.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import streamlit as st

from ui import decoder_tools as dt
from ui.animations import beta_of, sweep_of
from ui.model_catalogue import choose_model

ASSETS = Path(__file__).with_name("presenter")
NAME = "latent_lab.presenter_keys"
TOGGLE_KEY = "presenter_view"
MESSAGE_KEY = "presenter_message"
COUNT_KEY = "presenter_keys_count"
STEP = 0.25
QUERY = "present"

CSS = """<style>
[data-testid="stSidebar"], [data-testid="stSidebarCollapsedControl"], [data-testid="stExpandSidebarButton"],
[data-testid="stSidebarCollapseButton"] { display: none !important; }
[data-testid="stMain"] p, [data-testid="stMain"] li, [data-testid="stMain"] label,
[data-testid="stMain"] .stCaption, [data-testid="stMain"] .lp-caption { font-size: 1.35rem !important; }
[data-testid="stMain"] h1 { font-size: 3.4rem !important; }
[data-testid="stMain"] h2 { font-size: 2.4rem !important; }
.lp-root:not([data-mode="hover"]) .lp-left { width: 460px !important; }
.lp-root:not([data-mode="hover"]) .lp-digit { width: 460px !important; height: 460px !important; }
.lp-padwrap { flex-basis: 460px !important; max-width: 560px !important; }
.pv-root { font-size: 1.35rem !important; }
</style>"""


def _register():
    try:
        return st.components.v2.component(NAME, html=(ASSETS / "presenter.html").read_text(),
                                          css=(ASSETS / "presenter.css").read_text(),
                                          js=(ASSETS / "presenter.js").read_text(), isolate_styles=False), None
    except Exception as exc:  # noqa: BLE001 - the view still enlarges; the keys say why they are missing
        return None, f"{type(exc).__name__}: {exc}"


_COMPONENT, _REGISTER_ERROR = _register()


def _sync_address() -> None:
    if st.session_state.get(TOGGLE_KEY):
        st.query_params[QUERY] = "1"
    elif QUERY in st.query_params:
        del st.query_params[QUERY]


def leave() -> None:
    """The way out (a callback): the whole page reruns, so the view's style, drawn outside the fragment that
    holds this button, goes too."""
    st.session_state[TOGGLE_KEY] = False
    _sync_address()
    st.rerun()


def presenter_toggle() -> bool:
    """The sidebar switch, on when the address says ?present=1; True in presenter view (its style applied)."""
    if TOGGLE_KEY not in st.session_state and st.query_params.get(QUERY) == "1":
        st.session_state[TOGGLE_KEY] = True
    on = st.sidebar.toggle("Presenter view", key=TOGGLE_KEY, on_change=_sync_address,
                           help="For a projector: hides this sidebar, enlarges type and the digit; keys: arrows move "
                                "z, space samples, b / B the next / previous β of a sweep. Also ?present=1 in the address.")
    if on:
        st.markdown(CSS, unsafe_allow_html=True)
    return on


def bar() -> None:
    """The line above the explorer in presenter view: the keys, and a way out (the sidebar is hidden)."""
    left, right = st.columns([4, 1], vertical_alignment="center")
    left.caption("Presenter view · ← → ↑ ↓ move z · space samples · b / B next / previous β")
    right.button("Leave presenter view", key="presenter_leave", on_click=leave, icon=":material/close_fullscreen:")


# ----------------------------------------------------------------------------- the keys

def move(z, action: str, step: float = STEP) -> list[float]:
    """z after an arrow key: left/right change z1, up/down z2 (z1 for a 1-D latent)."""
    z = [float(v) for v in z]
    i = 0 if action in ("left", "right") or len(z) < 2 else 1
    z[i] = round(z[i] + (step if action in ("right", "up") else -step), 3)
    return z


def beta_target(path: str, action: str):
    """(the sweep's record b / B leads to, or None, and the sentence to show)."""
    sweep = sweep_of(path)
    if not sweep:
        return None, "No β sweep holds this model, so b and B do nothing here."
    at = next((i for i, r in enumerate(sweep) if r.path == str(path)), 0)
    to = at + (1 if action == "beta_next" else -1)
    if not 0 <= to < len(sweep):
        end = "largest" if action == "beta_next" else "smallest"
        return None, f"β = {beta_of(sweep[at]):g} is the sweep's {end}; nothing happens."
    return sweep[to], (f"β = {beta_of(sweep[to]):g}: {sweep[to].display_name} ({to + 1} of {len(sweep)} "
                       "in the sweep).")


def handle(action: str, *, model, path: str, label: int | None, on_move=None) -> None:
    """One key's effect (a callback: set z before the widgets are drawn; a new model reruns the whole page)."""
    st.session_state[COUNT_KEY] = st.session_state.get(COUNT_KEY, 0) + 1
    if action in ("left", "right", "up", "down"):
        z = move(dt.current_z(), action)
        dt.set_z(z)
        st.session_state[MESSAGE_KEY] = "z = (" + ", ".join(f"{v:.2f}" for v in z[:6]) + ")"
    elif action == "sample":
        z = dt.prior_sample(model, label)
        dt.set_z(z)
        st.session_state[MESSAGE_KEY] = "A sample: z = (" + ", ".join(f"{v:.2f}" for v in np.asarray(z)[:6]) + ")"
    elif action in ("beta_next", "beta_previous"):
        target, message = beta_target(path, action)
        st.session_state[MESSAGE_KEY] = message
        if target is not None:
            if on_move is not None:    # as the β slider does (ui/beta_sweep.py): z stays where it is
                on_move(path, target.path)
            choose_model(target.path)
            st.rerun()


def keys(*, model, path: str, label: int | None, on_move=None, key: str = "presenter_keys") -> None:
    """Mount the key listener (presenter view only) with the last key's message."""
    if _COMPONENT is None:
        st.caption(f"The presenter's keys could not load ({_REGISTER_ERROR}); use the controls below.")
        return

    def on_key() -> None:
        value = (st.session_state.get(key) or {}).get("key")
        action = value.get("action") if isinstance(value, dict) else None
        if action in ("left", "right", "up", "down", "sample", "beta_next", "beta_previous"):
            handle(action, model=model, path=path, label=label, on_move=on_move)

    _COMPONENT(key=key, data={"message": st.session_state.get(MESSAGE_KEY, ""),
                              "count": st.session_state.get(COUNT_KEY, 0)},
               height="content", on_key_change=on_key)
