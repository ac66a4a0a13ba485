"""The Train page's side of training jobs (jobs/ runs them): the owner token kept in the URL, the
process's job service for the models folder, and small parsers and formatters.

The page never runs a training step: it submits a job, polls its snapshot from a fragment and draws it.
"""
from __future__ import annotations

import re
import secrets

import streamlit as st

from jobs.api import JobService, check_name, job_service  # noqa: F401  (check_name: re-exported for pages)
from ui.model_catalogue import save_dir
from vae_core.validation import SettingError, quote

OWNER_PARAM = "owner"
OWNER_KEY = "_train_owner"
TOKEN_PATTERN = re.compile(r"^[A-Za-z0-9_-]{8,64}$")


def owner_token() -> str:
    """This browser's token: from the URL's query parameters (so a refresh or a copied link reattaches to
    its runs), else this session's, else a new one, which is then written into the URL."""
    token = st.query_params.get(OWNER_PARAM) or st.session_state.get(OWNER_KEY)
    if not token or not TOKEN_PATTERN.match(token):
        token = secrets.token_urlsafe(12)
    st.session_state[OWNER_KEY] = token
    if st.query_params.get(OWNER_PARAM) != token:
        st.query_params[OWNER_PARAM] = token
    return token


def known_owner() -> str | None:
    """This browser's token when it already has one (from the URL or this session), else None: unlike
    owner_token, it never makes one up or writes the URL (a page that only reads the owner's runs)."""
    token = st.query_params.get(OWNER_PARAM) or st.session_state.get(OWNER_KEY)
    return token if token and TOKEN_PATTERN.match(token) else None


def jobs() -> JobService:
    """The job service of the folder the Train page saves into (runs/jobs.sqlite beside the models)."""
    return job_service(save_dir())


def parse_hidden(text: str) -> tuple[int, ...]:
    """'512, 512' -> (512, 512); a sentence in a ValueError otherwise."""
    parts = [p for p in re.split(r"[,\s]+", text.strip()) if p]
    if not parts or not all(p.isascii() and p.isdigit() and len(p) <= 9 for p in parts):
        raise SettingError("hidden layers must be whole numbers separated by commas, like 512, 512; "
                           f"got {quote(text)}.")
    return tuple(int(p) for p in parts)


def format_seconds(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    m, s = divmod(seconds, 60)
    h, m = divmod(m, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"
