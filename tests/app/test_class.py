"""A class on one server (issue 18), through the pages: sign-in, runs that follow a person, fair shares, the
teacher's board. A browser's identity cookie cannot be seeded in AppTest, so `browser_cookie` reads it from a
test-only query parameter here (tests/e2e/test_class_browser.py uses real cookies in chromium)."""
from __future__ import annotations

import os
import secrets
import time

import pytest
import streamlit as st

from apptest_helpers import APP, errors_of, service, texts_of, tiny_settings, viewed, wait_until
from jobs.classroom import Roster, cookie_value
from jobs.limits import ClassSettings
from jobs.table import JobTable

VIEW = "train_view"
CODE, TEACHER_CODE = "maple-42", "teach-99"
COOKIE_PARAM = "_test_cookie"


@pytest.fixture
def classroom(tmp_path, model_dir, monkeypatch):
    """A class: [class] code and teacher code in a limits file, a fresh runs folder, and `session(name)` -> an
    AppTest of the app for that person's browser (already signed in: the cookie their sign-in would leave)."""
    from streamlit.testing.v1 import AppTest

    from ui import identity
    runs = tmp_path / "runs"
    config = tmp_path / "latent_lab.toml"
    config.write_text(f'[limits]\nmax_runs = 1\n[class]\ncode = "{CODE}"\nteacher_code = "{TEACHER_CODE}"\n')
    monkeypatch.setenv("LATENT_LAB_CONFIG", str(config))
    monkeypatch.setenv("LATENT_LAB_MODEL_DIRS", f"{runs}{os.pathsep}{model_dir}")
    monkeypatch.setenv("LATENT_LAB_WARM_WORKER", "0")
    monkeypatch.setenv("LATENT_LAB_WORKER_NICE", "0")
    monkeypatch.setattr(identity, "browser_cookie", lambda: st.query_params.get(COOKIE_PARAM))
    roster = Roster(JobTable(runs / "jobs.sqlite"))
    cookies: dict[str, str] = {}

    class Classroom:
        folder = runs

        @staticmethod
        def cookie(name: str, teacher: bool = False) -> str:
            if name not in cookies:
                person, secret = roster.sign_in(name, TEACHER_CODE if teacher else CODE,
                                                ClassSettings(code=CODE, teacher_code=TEACHER_CODE))
                cookies[name] = cookie_value(person.key, secret)
            return cookies[name]

        @staticmethod
        def session(name: str | None, page: str = "pages/train.py", teacher: bool = False, **params):
            at = AppTest.from_file(APP, default_timeout=60)
            if name:
                at.query_params[COOKIE_PARAM] = Classroom.cookie(name, teacher)
            for key, value in params.items():
                at.query_params[key] = value
            at.switch_page(page).run()
            assert not errors_of(at)
            return at

    yield Classroom
    from jobs.api import shutdown_all
    shutdown_all()


# ---------------------------------------------------------------------------- sign-in
def test_every_page_asks_for_the_class_code_and_a_name_first(classroom):
    at = classroom.session(None, page="pages/decoder.py")
    assert "Sign in to Latent Lab" in " ".join(t.value for t in at.title) and len(at.title) == 1
    at.text_input(key="sign_in_name").set_value("Ada")
    at.text_input(key="sign_in_code").set_value("maple-41")
    at.button[0].click().run()       # the form's submit button
    assert [e.value for e in at.error] == ["That is not this class's code; ask your teacher for it."]
    at.text_input(key="sign_in_code").set_value(CODE)
    at.button[0].click().run()
    assert not errors_of(at) and not at.error
    assert any("Decoder" in t.value for t in at.title)            # the page asked for, now signed in
    # someone else typing the same name is refused: the name is held by Ada's browser
    other = classroom.session(None)
    other.text_input(key="sign_in_name").set_value("ada")
    other.text_input(key="sign_in_code").set_value(CODE)
    other.button[0].click().run()
    assert "already signed in on another browser" in " ".join(e.value for e in other.error)


def test_only_a_teacher_gets_the_class_board(classroom):
    student = classroom.session("Ada", page="pages/home.py")
    student.switch_page("pages/board.py").run()      # not among a student's pages: it does not run
    assert not any("Class board" in t.value for t in student.title)
    assert "Class board" not in texts_of(student) or "for the class's teachers" in texts_of(student)
    teacher = classroom.session("Ms Rivera", page="pages/board.py", teacher=True)
    assert any("Class board" in t.value for t in teacher.title)
    assert f"class code **{CODE}**" in texts_of(teacher) and "each person 1 training and 1 waiting" in texts_of(teacher)


# ---------------------------------------------------------------------------- runs follow the person
def test_a_students_refresh_on_the_decoder_keeps_their_run_and_a_classmate_sees_none(classroom):
    ada = classroom.session("Ada")
    tiny_settings(ada, epochs=100, batch=16)
    ada.button(key="train_start").click().run()
    job_id = ada.session_state[VIEW]
    assert service().table.get(job_id).owner_name == "Ada"
    refreshed = classroom.session("Ada", page="pages/decoder.py")     # F5 on the Decoder: a fresh session
    refreshed.switch_page("pages/train.py").run()
    assert refreshed.session_state[VIEW] == job_id and not refreshed.button(key="train_stop").disabled
    ben = classroom.session("Ben", owner=ada.query_params.get("owner", "x" * 16))   # an old-style token: ignored
    assert ben.session_state[VIEW] is None and any("Nothing trained yet by Ben" in i.value for i in ben.info)
    refreshed.button(key="train_stop").click().run()
    wait_until(refreshed, lambda at: viewed(at).finished)


def test_one_students_tabs_cannot_fill_the_queue(classroom, monkeypatch):
    """Issue 18, fault 2: 22 tabs with fresh ?owner= tokens each started a run, and a real student then got "The
    queue is full". The tabs are one person now: at most their share waits, and the next student gets in."""
    monkeypatch.setenv("LATENT_LAB_MAX_QUEUED", "20")
    tabs = []
    for k in range(22):
        tab = classroom.session("Mallory", owner=secrets.token_urlsafe(12))
        if not tab.button(key="train_start").disabled:      # the first tab; the others show Mallory's run
            tiny_settings(tab, epochs=100, batch=16)
            tab.button(key="train_start").click().run()
        tabs.append(tab)
    assert all(t.button(key="train_start").disabled for t in tabs[1:])
    active = [j for j in service().jobs_of("class:mallory", touch=False) if j.active]
    assert 1 <= len(active) <= 2
    ada = classroom.session("Ada")
    tiny_settings(ada)
    ada.button(key="train_start").click().run()
    assert not any("queue is full" in e.value for e in ada.error)
    assert viewed(ada).owner == "class:ada" and viewed(ada).active
    for job in active + [viewed(ada)]:
        service().stop(job.id)


def test_a_classmate_waits_in_line_then_starts(classroom):
    ada = classroom.session("Ada")
    tiny_settings(ada, epochs=100, batch=16)
    ada.button(key="train_start").click().run()
    wait_until(ada, lambda at: viewed(at).status == "running")
    ben = classroom.session("Ben")
    tiny_settings(ben)
    ben.button(key="train_start").click().run()
    assert viewed(ben).status == "queued"
    assert any("Waiting in line: place 1 of 1" in i.value for i in ben.info)
    ada.button(key="train_stop").click().run()
    wait_until(ben, lambda at: viewed(at).finished)
    assert viewed(ben).status == "completed" and viewed(ada).status == "stopped"


# ---------------------------------------------------------------------------- models and the board
def test_the_teacher_stops_a_run_and_publishes_a_model_into_a_students_picker(classroom):
    ben = classroom.session("Ben")
    tiny_settings(ben)
    ben.button(key="train_start").click().run()
    wait_until(ben, lambda at: viewed(at).finished)
    ben.text_input(key="train_save_name").set_value("vae_2d")
    ben.button[-1].click().run()                       # Save (the form's submit)
    saved = [p for p in classroom.folder.rglob("vae_2d.safetensors")]
    assert len(saved) == 1 and saved[0].parent.name.startswith("ben-")

    ada = classroom.session("Ada")
    tiny_settings(ada, epochs=100, batch=16)
    ada.button(key="train_start").click().run()
    wait_until(ada, lambda at: viewed(at).status == "running")
    ada_job = ada.session_state[VIEW]

    from ui.model_catalogue import available_models
    from ui import identity
    people = {p.name: p for p in identity.roster().everyone()}
    from jobs.classroom import Person
    as_ada = Person(people["Ada"].key, "Ada", "class")
    assert not [e for e in available_models(as_ada) if e.path == str(saved[0])]   # Ben's, not published

    teacher = classroom.session("Ms Rivera", page="pages/board.py", teacher=True)
    board = texts_of(teacher)
    assert "**Ada**" in board and "**Ben**" in board and "training" in board and "finished" in board
    # a click on a run's curve (the chart's selection, as the browser reports it) opens that run
    end = time.monotonic() + 90
    while not service().curves([ada_job])[ada_job] and time.monotonic() < end:   # its first points, written
        time.sleep(0.2)                                                           # by the scheduler each second
    curves = service().curves([ada_job])[ada_job]
    assert curves and all(loss is not None for _, loss, _ in curves)
    teacher.run()
    teacher.session_state["board_curves"] = {"selection": {"points": [{"customdata": ada_job, "point_index": 0}],
                                                           "point_indices": [0], "box": [], "lasso": []}}
    teacher.run()
    assert teacher.session_state["board_view"] == ada_job and "Opened: Ada" in texts_of(teacher)
    teacher.button(key=f"board_stop_{ada_job}").click().run()
    assert not errors_of(teacher)
    snap = service().wait(ada_job, 60)
    assert snap.status == "stopped" and "Stopped by the teacher (Ms Rivera)" in snap.message
    publish = [b for b in teacher.button if b.key and b.key.startswith("board_publish_")]
    assert len(publish) == 1
    publish[0].click().run()
    assert not errors_of(teacher) and "published" in texts_of(teacher)
    from ui.model_catalogue import clear_model_cache
    clear_model_cache()
    shown = [e for e in available_models(as_ada) if e.path == str(saved[0])]
    assert len(shown) == 1 and shown[0].owner_name == "Ben" and shown[0].label == "vae_2d · Ben"


def test_a_bad_class_table_is_a_sentence_on_every_page(classroom, tmp_path, monkeypatch):
    config = tmp_path / "bad.toml"
    config.write_text('[class]\ncode = "ab"\n')
    monkeypatch.setenv("LATENT_LAB_CONFIG", str(config))
    for page in ("pages/home.py", "pages/decoder.py"):
        at = classroom.session(None, page=page)
        assert [e.value for e in at.error] == [f"The class settings cannot be used: In the limits file {config}, "
                                               "[class] code must be text of 4 to 64 characters without spaces "
                                               "at either end; got 'ab'."]


def test_a_busy_job_table_is_a_sentence_on_the_board(classroom):
    """The board's buttons write to the job table; another program holding its lock used to be a traceback
    (`database is locked`) on the teacher's page. Now it is the table's one sentence, and the board works again
    once the lock is gone."""
    import sqlite3
    teacher = classroom.session("Ms Rivera", page="pages/board.py", teacher=True)
    holder = sqlite3.connect(classroom.folder / "jobs.sqlite", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")      # a backup tool or a hung process holding the write lock
    try:
        teacher.button(key="board_clear").click().run()
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert not errors_of(teacher)
    sentences = [e.value for e in teacher.error]
    assert any(s.startswith(f"The job table {classroom.folder / 'jobs.sqlite'} is busy") for s in sentences), sentences
    teacher.button(key="board_clear").click().run()
    assert not errors_of(teacher) and not teacher.error
