"""Small helpers shared by the pages: cached model and data loaders, image helpers, plot builders.

Pages import from the submodules (`from ui.models import model_picker`); vae_core never imports ui.
"""


def _route_through_app() -> None:
    """Make a deep link opened first after `streamlit run` go through app.py's st.navigation.

    Streamlit (1.67) treats an app with a `pages/` folder as a version-1 multipage app until
    st.navigation has run once in the process; so when the very first request after the server starts
    is, say, /latent_map, that page runs on its own, without app.py: no page config, no grouped menu,
    but an automatic one listing "app". Every page imports ui, so here (once per process) we switch
    to st.navigation mode and rerun; the rerun goes through app.py and lands on the same page.
    """
    try:
        import streamlit as st
        from streamlit.runtime.pages_manager import PagesManager
        from streamlit.runtime.scriptrunner_utils.script_run_context import get_script_run_ctx
    except ImportError:  # an internal moved: the worst case is the automatic menu on that first request
        return
    if PagesManager.uses_pages_directory and get_script_run_ctx() is not None:
        PagesManager.uses_pages_directory = False
        st.rerun()


_route_through_app()
