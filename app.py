"""Latent Lab: streamlit run app.py

The router only: one table of pages, grouped, with titles and icons. Every page lives in pages/. In a class
(docs/CLASSROOM.md) the person is resolved first (ui/identity.py): a teacher also gets the class board, and
someone not yet signed in gets the sign-in form instead of any page (every page's first call, ui/routing.py).
"""

from jobs.openmp import for_the_server  # noqa: E402  (imports nothing but os)

# Streamlit, the browser and the training workers share a small CPU: the server's OpenMP threads sleep while they
# wait, never spinning on a core a worker or the browser needs (jobs/openmp.py). Before torch is first imported
# (the pages import it).
for_the_server()

import streamlit as st  # noqa: E402

# Imported whole before any page runs: plotly only peeks at sys.modules for pandas, and on a fresh server, with
# several sessions' first runs at once, it found the module half-imported by another session's thread
# ("partially initialized module 'pandas' has no attribute 'Series'"; bench/classroom_load.py's Latent-map
# sessions then waited for a map that never came). A thread that has passed this line sees it complete.
import pandas  # noqa: E402,F401

PAGES = {
    "Start": [
        st.Page("pages/home.py", title="Home", icon=":material/home:", default=True),
        st.Page("pages/train.py", title="Train", icon=":material/model_training:"),
    ],
    "Explore": [
        st.Page("pages/latent_map.py", title="Latent map", icon=":material/scatter_plot:"),
        st.Page("pages/decoder.py", title="Decoder", icon=":material/tune:"),
        st.Page("pages/compare.py", title="Compare CVAE vs GSNN", icon=":material/compare:"),
        st.Page("pages/diagnose.py", title="Diagnose", icon=":material/troubleshoot:"),
    ],
}

TEACHER_PAGES = {
    "Teach": [st.Page("pages/board.py", title="Class board", icon=":material/co_present:")],
}

SIDEBAR_WIDTH = 340  # px (Streamlit's default is 300): room for a model's name in the picker
st.set_page_config(page_title="Latent Lab", page_icon="🧭", layout="wide", initial_sidebar_state=SIDEBAR_WIDTH)
from ui import identity  # noqa: E402

person = identity.current_person_or_stop()   # None: this browser must sign in first (a bad [class]: a sentence)
page = st.navigation({**PAGES, **TEACHER_PAGES} if person is not None and person.teacher else PAGES)
from ui.gc_tuning import freeze_after_first_run  # noqa: E402  (after st.navigation: see ui/routing.py)

if person is not None:
    identity.sidebar_badge(person)
try:  # a page's first call, route_through_app(), shows the sign-in form instead of the page until signed in
    page.run()
finally:  # after a page's first run, its long-lived objects leave the collector's path (ui/gc_tuning.py)
    freeze_after_first_run(page.url_path)
