"""Who is using this browser: every page's first run resolves the person (ui/routing.py, app.py).

Three ways, the first configured wins (docs/CLASSROOM.md):
    [auth] in .streamlit/secrets.toml    Streamlit's own st.login (OpenID Connect); st.user names the person;
                                         teachers are the e-mail addresses in [class] teachers
    [class] code in latent_lab.toml      a class code and a name; the server issues the name a secret that this
                                         browser keeps in a cookie (set by a tiny component, read back through
                                         st.context.cookies by every new session: a refresh on any page, a new
                                         tab, a server restart); the teacher code signs a teacher in
    neither                              one person on a laptop: nobody signs in; the browser keeps a random
                                         token in a cookie, so its runs survive a refresh on any page, a new
                                         tab and a restart (and two browsers on one server stay apart)

The logic (names, secrets, who owns what) is jobs/classroom.py; this module draws the form and keeps the person
in session state, checking a class-code person against the people table every RECHECK_SECONDS (a name the
teacher released signs its browser out) and nothing more per interaction.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

import streamlit as st

from jobs.classroom import (BROWSER_COOKIE, COOKIE, SEEN_EVERY, SOLO, TOKEN_PATTERN, Person, Roster, SignInError,
                            browser_person, cookie_value, new_browser_token, oidc_key)
from jobs.limits import ClassSettings, LimitsError, config_path, read_class
from jobs.table import JobTable
from ui.model_catalogue import save_dir

PERSON_KEY = "_person"              # session state: {"person": Person, "checked": t, "seen": t}
COOKIE_KEY = "_person_cookie"       # session state: the class-code cookie this session writes (or "" to clear)
BROWSER_KEY = "_browser_token"      # session state: this browser's token, when nobody signs in
RECHECK_SECONDS = 15.0
COOKIE_DAYS = 180


# ---------------------------------------------------------------------------- configuration (cheap per run)
_class_cache: dict[tuple, ClassSettings] = {}


def class_settings() -> ClassSettings:
    """The [class] table of the limits file, read again only when the file changes. LimitsError: a sentence."""
    path, _ = config_path()
    try:
        stamp = path.stat().st_mtime_ns
    except OSError:
        stamp = None
    key = (str(path), stamp, os.environ.get("LATENT_LAB_CONFIG", ""))
    if key not in _class_cache:
        _class_cache.clear()
        _class_cache[key] = read_class()
    return _class_cache[key]


def auth_configured() -> bool:
    """Whether .streamlit/secrets.toml has an [auth] table (st.login can be used)."""
    try:
        return bool(st.secrets.load_if_toml_exists() and "auth" in st.secrets)
    except Exception:  # noqa: BLE001 - an unreadable secrets file: as if none (Streamlit logs why)
        return False


def mode() -> str:
    """'oidc', 'class' or 'solo' (see the module's docstring)."""
    if auth_configured():
        return "oidc"
    return "class" if class_settings().code else "solo"


_tables: dict[str, JobTable] = {}


def roster() -> Roster:
    """The people table of the models folder (runs/jobs.sqlite), one JobTable per folder and process."""
    path = str(Path(save_dir()) / "jobs.sqlite")
    if path not in _tables:
        _tables[path] = JobTable(path)
    return Roster(_tables[path])


def browser_cookie() -> str | None:
    """This browser's identity cookie, as its session's first request sent it (tests replace this function)."""
    return _cookie(COOKIE)


def browser_token_cookie() -> str | None:
    """This browser's own token (nobody signs in), as its session's first request sent it (tests replace it)."""
    return _cookie(BROWSER_COOKIE)


def _cookie(name: str) -> str | None:
    try:
        value = st.context.cookies.get(name)
    except Exception:  # noqa: BLE001 - no client (a bare script run): no cookie
        return None
    return value if isinstance(value, str) else None   # (AppTest's stand-in client holds no cookies)


# ---------------------------------------------------------------------------- the person of this session
def current_person() -> Person | None:
    """The person using this session, or None when they must sign in first. Cheap: session state, with a
    table read every RECHECK_SECONDS for a class-code person. LimitsError for a bad [class] table."""
    how = mode()
    if how == "solo":
        return _browser_person()
    if how == "oidc":
        return _oidc_person()
    now = time.time()
    held = st.session_state.get(PERSON_KEY)
    if held is not None and now - held["checked"] < RECHECK_SECONDS:
        return held["person"]
    people = roster()
    written = st.session_state.get(COOKIE_KEY)   # this session signed in (or out) itself
    person = people.check(written[1] if written and written[0] == "person" else browser_cookie())
    if person is None:
        st.session_state.pop(PERSON_KEY, None)
        return None
    seen = held["seen"] if held and held["person"] == person else 0.0
    if now - seen >= SEEN_EVERY:
        people.seen(person)
        seen = now
    st.session_state[PERSON_KEY] = {"person": person, "checked": now, "seen": seen}
    return person


def _browser_person() -> Person:
    token = st.session_state.get(BROWSER_KEY)
    if token is None:
        token = browser_token_cookie()
        if not token or not TOKEN_PATTERN.match(token):
            token = new_browser_token()   # a new browser: its cookie is written by this session (_write_cookie)
            st.session_state[COOKIE_KEY] = ("browser", token)
        st.session_state[BROWSER_KEY] = token
    return browser_person(token)


def _oidc_person() -> Person | None:
    user = st.user
    if not user.is_logged_in:
        return None
    subject = str(user.get("sub") or user.get("email") or "")
    if not subject:
        return None
    email = user.get("email")
    name = str(user.get("name") or email or subject)
    person = Person(oidc_key(subject), name, "oidc", class_settings().is_teacher_email(email, subject))
    held = st.session_state.get(PERSON_KEY)
    if held is None or held["person"] != person or time.time() - held["seen"] >= SEEN_EVERY:
        roster().seen(person)   # the board names people by what the table holds
        st.session_state[PERSON_KEY] = {"person": person, "checked": time.time(), "seen": time.time()}
    return person


def person() -> Person:
    """The person of this session, for a page that runs after app.py's sign-in gate."""
    return current_person() or SOLO


def current_person_or_stop() -> Person | None:
    """current_person(), or the teacher's sentence for a bad [class] table and the end of this run."""
    try:
        return current_person()
    except LimitsError as e:
        st.error(f"The class settings cannot be used: {e}", icon=":material/error:")
        st.stop()


# ---------------------------------------------------------------------------- sign-in, sign-out, the cookie
def sign_in_form() -> None:
    """The sign-in a page shows instead of itself: st.login's button, or a class code and a name."""
    st.title(":material/login: Sign in to Latent Lab")
    if mode() == "oidc":
        st.caption("Sign in with your school account: your runs and models are kept under your name.")
        if st.button("Sign in", type="primary", icon=":material/login:", key="sign_in_oidc"):
            st.login(_provider())
        return
    st.caption("Type the class code your teacher gave you and your name. Your runs and models are kept under "
               "your name; this browser remembers you, also after a refresh or in a new tab.")
    with st.form("sign_in", border=True, enter_to_submit=True):
        name = st.text_input("Your name", max_chars=40, key="sign_in_name", placeholder="Ada L.")
        code = st.text_input("Class code", type="password", max_chars=64, key="sign_in_code")
        submitted = st.form_submit_button("Sign in", type="primary", icon=":material/login:")
    if submitted:
        try:
            who, secret = roster().sign_in(name, code, class_settings())
        except SignInError as e:
            st.error(str(e), icon=":material/block:")
            return
        st.session_state[COOKIE_KEY] = ("person", cookie_value(who.key, secret))
        st.session_state[PERSON_KEY] = {"person": who, "checked": time.time(), "seen": time.time()}
        st.rerun()


def _provider() -> str | None:
    """st.login's provider: None for a plain [auth] table, else the name of its first [auth.NAME] table."""
    auth = st.secrets["auth"]
    if "client_id" in auth:
        return None
    named = [k for k, v in auth.items() if hasattr(v, "keys")]
    return named[0] if named else None


def sign_out() -> None:
    """Forget the person here; a class-code name is released (this browser's cookie is cleared), so its owner
    can sign in again anywhere."""
    held = st.session_state.pop(PERSON_KEY, None)
    if mode() == "oidc":
        st.logout()
        return
    if held is not None:
        roster().release(held["person"].key)
    st.session_state[COOKIE_KEY] = ("person", "")


def sidebar_badge(who: Person) -> None:
    """Who is signed in, at the bottom of the sidebar, with Sign out; and the cookie this session must write."""
    _write_cookie()
    if who.solo:
        return
    with st.sidebar:
        st.divider()
        left, right = st.columns([3, 2], vertical_alignment="center")
        left.caption(f":material/person: **{who.name}**" + (" · teacher" if who.teacher else ""))
        if right.button("Sign out", key="sign_out", width="stretch"):
            sign_out()
            st.rerun()


_COOKIE_JS = """export default function(component) {
    const { data } = component;
    if (data && typeof data.cookie === "string" && document.cookie.indexOf(data.cookie) < 0) {
        document.cookie = data.cookie;
    }
}"""


def _register_cookie_writer():
    try:
        return st.components.v2.component("latent_lab.identity_cookie", js=_COOKIE_JS)
    except Exception:  # noqa: BLE001 - an older Streamlit: the person stays signed in for this session only
        return None


_COOKIE_WRITER = _register_cookie_writer()


def _write_cookie() -> None:
    """Write (or clear) this browser's identity cookie while this session is the one that signed in or out (or
    the first session of a browser where nobody signs in)."""
    held = st.session_state.get(COOKIE_KEY)
    if held is None or _COOKIE_WRITER is None:
        return
    which, value = held
    age = COOKIE_DAYS * 86400 if value else 0
    cookie = f"{BROWSER_COOKIE if which == 'browser' else COOKIE}={value}; Path=/; Max-Age={age}; SameSite=Lax"
    with st.sidebar:
        _COOKIE_WRITER(data={"cookie": cookie}, key="identity_cookie")
