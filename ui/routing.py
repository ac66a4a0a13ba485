"""Every page's first line: `person = route_through_app()` (the person using this session, ui/identity.py).

Streamlit (1.67) treats an app with a `pages/` folder as a version-1 multipage app until st.navigation has
run once in the process. So when the very first request after `streamlit run app.py` is a deep link such as
/latent_map, that page runs on its own, without app.py: no page config, no grouped menu, and an automatic
menu listing "app". `route_through_app()` switches the process to st.navigation mode (once) and reruns; the
rerun goes through app.py and lands on the same page. tests/e2e/test_pages.py opens a deep link first to
prove it. After routing it returns the session's person; a page can never run for someone not signed in (app.py
shows the sign-in form instead, and so does this function should a page run without app.py).
"""
from __future__ import annotations

_done = False  # once per process, as the problem is: after the first st.navigation the flag stays off


def route_through_app():
    """Send a page that runs without app.py (a deep link on a fresh server) through app.py's st.navigation;
    then return the session's person (jobs.classroom.Person), or show the sign-in form and stop."""
    global _done
    if not _done:
        _done = True
        _reroute()
    import streamlit as st

    from ui import identity
    person = identity.current_person_or_stop()
    if person is None:
        identity.sign_in_form()
        st.stop()
    return person


def _reroute() -> None:
    try:
        import streamlit as st
        from streamlit.runtime.pages_manager import PagesManager
        from streamlit.runtime.scriptrunner_utils.script_run_context import get_script_run_ctx
    except ImportError:  # an internal moved: the worst case is the automatic menu on that first request
        return
    if PagesManager.uses_pages_directory and get_script_run_ctx() is not None:
        PagesManager.uses_pages_directory = False
        st.rerun()
