"""A class on one server (issue 18), without a browser: who is who (class-code names held by a secret, released
by the teacher), fair shares over two servers on one runs folder, models in their owner's folder, published
models, and the losses a teacher's board reads from the table."""
from __future__ import annotations

import threading
import time
from collections import Counter

import pytest

from jobs.api import JobRefused
from jobs.classroom import (SOLO, Person, Roster, Shelf, SignInError, board_cleared_before, browser_person,
                            clear_board, new_browser_token,
                            cookie_value, folder_name, may_change, may_see, on_board, owner_folder, owner_of,
                            parse_cookie, remove_model, save_run, shelf_path, stop_run)
from jobs.limits import ClassSettings, LimitsError, read_class, read_limits
from jobs.table import JobTable
from vae_core import ModelConfig, TrainConfig, load_checkpoint

TINY = ModelConfig(hidden_dims=(16,))
CLASS = ClassSettings(code="maple-42", teacher_code="teach-99")


def tiny(epochs=1, batch=128, limit=1000):
    return TrainConfig(epochs=epochs, batch_size=batch, train_limit=limit, eval_limit=200)


# ---------------------------------------------------------------------------- who is who
def test_a_class_code_name_is_held_by_the_browser_that_signed_in(tmp_path):
    roster = Roster(JobTable(tmp_path / "jobs.sqlite"))
    with pytest.raises(SignInError, match=r"^That is not this class's code; ask your teacher for it\.$"):
        roster.sign_in("Ada", "maple-41", CLASS)
    ada, secret = roster.sign_in("  Ada   Lovelace ", "maple-42", CLASS)
    assert ada == Person("class:ada lovelace", "Ada Lovelace", "class", False)
    assert roster.check(cookie_value(ada.key, secret)) == ada            # a refresh, a new tab, a restart
    # typing a classmate's name (in any case) does not make you them
    with pytest.raises(SignInError, match="'ada lovelace' is already signed in on another browser"):
        roster.sign_in("ada lovelace", "maple-42", CLASS)
    assert roster.check(cookie_value(ada.key, "guessed-secret")) is None
    assert roster.check("not a cookie") is None and roster.check(None) is None
    # only a hash of the secret is stored
    assert secret not in (tmp_path / "jobs.sqlite").read_bytes().decode("latin-1")
    # the teacher releases the name: the old browser is signed out, the next to sign in gets the name
    roster.release(ada.key)
    assert roster.check(cookie_value(ada.key, secret)) is None
    again, new_secret = roster.sign_in("Ada Lovelace", "maple-42", CLASS)
    assert again.key == ada.key and new_secret != secret
    assert roster.check(cookie_value(ada.key, new_secret)) == again


def test_the_teacher_code_signs_a_teacher_in_and_bad_names_are_sentences(tmp_path):
    roster = Roster(JobTable(tmp_path / "jobs.sqlite"))
    teacher, secret = roster.sign_in("Ms Rivera", "teach-99", CLASS)
    assert teacher.teacher and roster.check(cookie_value(teacher.key, secret)).teacher
    with pytest.raises(SignInError, match="Type your name"):
        roster.sign_in("   ", "maple-42", CLASS)
    with pytest.raises(SignInError, match="letters, digits, spaces"):
        roster.sign_in("<script>", "maple-42", CLASS)
    with pytest.raises(SignInError, match="not this class's code"):
        roster.sign_in("Bo", "", ClassSettings())                       # no class code configured at all


def test_two_browsers_typing_one_name_at_once_do_not_both_get_it(tmp_path):
    roster = Roster(JobTable(tmp_path / "jobs.sqlite"))
    outcomes, start = [], threading.Barrier(16)

    def sign_in():
        start.wait()
        try:
            outcomes.append(roster.sign_in("Ben", "maple-42", CLASS))
        except SignInError:
            outcomes.append(None)
    threads = [threading.Thread(target=sign_in) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    held = [o for o in outcomes if o is not None]
    assert len(held) == 1 and roster.check(cookie_value(*(held[0][0].key, held[0][1]))) is not None


def test_cookie_and_folder_names_are_safe():
    value = cookie_value("class:zoë o'brien", "abc_DEF-123")
    assert all(c.isalnum() or c in "-_." for c in value) and parse_cookie(value) == ("class:zoë o'brien", "abc_DEF-123")
    assert parse_cookie(cookie_value("oidc:someone", "x")) is None      # only class-code people use the cookie
    a, b = folder_name("class:zoë o'brien"), folder_name("class:zoe o brien")
    assert a != b and a.startswith("zoe-o-brien-") and all(c.isalnum() or c == "-" for c in a)
    assert folder_name("oidc:ada@school.org").startswith("ada-school-org-") and folder_name("solo") == ""
    laptop = browser_person(new_browser_token())        # nobody signs in: a browser's own token, models in runs/
    assert laptop.solo and laptop.folder_name == "" and laptop.key.startswith("browser:")
    assert browser_person(new_browser_token()) != laptop


# ---------------------------------------------------------------------------- the limits file's [class] table
def test_the_class_table_is_read_with_bounds(tmp_path):
    path = tmp_path / "latent_lab.toml"
    path.write_text('[limits]\nruns_per_person = 2\nqueued_per_person = 0\n[class]\ncode = "maple-42"\n'
                    'teacher_code = "teach-99"\nteachers = ["Rivera@School.org"]\n')
    settings = read_class({"LATENT_LAB_CONFIG": str(path)})
    assert settings.code == "maple-42" and settings.is_teacher_email("rivera@school.org")
    assert not settings.is_teacher_email("ada@school.org", None)
    limits = read_limits({"LATENT_LAB_CONFIG": str(path)})
    assert (limits.runs_per_person, limits.queued_per_person) == (2, 0)
    assert "each person 2 training and 0 waiting" in limits.describe()
    assert read_limits({}).runs_per_person == 1 and read_limits({}).queued_per_person == 1
    assert read_class({}, config=tmp_path / "absent.toml") == ClassSettings()


@pytest.mark.parametrize("text, words", [
    ('[class]\ncode = "ab"\n', "[class] code must be text of 4 to 64 characters"),
    ('[class]\ncode = 1234\n', "[class] code must be text of 4 to 64 characters"),
    ('[class]\ncode = "maple-42"\nteacher_code = "maple-42"\n', "teacher_code must differ from code"),
    ('[class]\nteacher_code = "teach-99"\n', "has a teacher_code but no code"),
    ('[class]\ncode = "maple-42"\nteachers = "me@school.org"\n', "teachers must be a list of at most 100"),
    ('[class]\ncode = "maple-42"\nclass_code = "x"\n', "[class] has an unknown key 'class_code'"),
    ('[limits]\nruns_per_person = 0\n', "[limits] runs_per_person (one person's runs training at once) must be "
                                          "a whole number from 1 to 100; got 0."),
])
def test_a_bad_class_table_is_one_sentence(tmp_path, text, words):
    path = tmp_path / "latent_lab.toml"
    path.write_text(text)
    with pytest.raises(LimitsError) as caught:
        read_class({"LATENT_LAB_CONFIG": str(path)})
        read_limits({"LATENT_LAB_CONFIG": str(path)})
    assert words in str(caught.value) and str(path) in str(caught.value)


# ---------------------------------------------------------------------------- fair shares
def test_one_person_cannot_fill_the_queue_of_the_class(make_service):
    """Issue 18, fault 2: 22 tabs of one person each pressing Start once filled a queue of 20 and the next
    student was told "The queue is full". Now the person's share is counted by the table: 1 training, 1 waiting."""
    service = make_service(max_runs=1, max_queued=20)
    accepted, refused = [], []
    for _ in range(22):
        try:
            accepted.append(service.submit(TINY, tiny(epochs=200, batch=16), "class:mallory", owner_name="Mallory"))
        except JobRefused as e:
            refused.append(str(e))
    assert len(accepted) == 2 and len(refused) == 20
    assert refused[0] == ("You already have 2 runs waiting; each person may have 1 training and 1 waiting. "
                          "Stop one, or wait for one to finish.") or "You already have 1 run training and 1 run waiting" in refused[-1]
    student = service.submit(TINY, tiny(), "class:ada", owner_name="Ada")   # a real student still gets in
    assert service.progress(student).status == "queued"
    for job in accepted + [student]:
        service.stop(job)


def test_a_persons_second_run_waits_for_their_first_even_with_a_free_slot(make_service):
    service = make_service(max_runs=2, max_queued=5)
    first = service.submit(TINY, tiny(epochs=200, batch=16), "class:ada")
    second = service.submit(TINY, tiny(), "class:ada")
    other = service.submit(TINY, tiny(epochs=200, batch=16), "class:ben")
    service.wait(first, 90, until=lambda s: s.status == "running")
    service.wait(other, 90, until=lambda s: s.status == "running")
    time.sleep(1.0)   # a few scheduler ticks: a slot is free, but it is not Ada's turn
    assert service.progress(second).status == "queued"
    service.stop(first)
    assert service.wait(second, 90, until=lambda s: s.status != "queued").status in ("starting", "running", "completed")
    for job in (second, other):
        service.stop(job)


@pytest.mark.parametrize("people", [200, 10])
def test_a_burst_over_two_servers_accepts_exactly_what_the_caps_allow(make_service, tmp_path, people):
    """200 submit() calls from 200 threads, half through each of two JobServices (two servers) sharing one runs
    folder: 200 people -> exactly max_runs + max_queued; 10 people x 20 tabs -> 2 each (their share)."""
    folder = tmp_path / "shared_runs"
    caps = dict(max_runs=2, max_queued=20, runs_per_person=1, queued_per_person=1)
    servers = [make_service(folder, **caps), make_service(folder, **caps)]
    accepted: list[tuple[str, str]] = []
    refusals: list[str] = []
    start = threading.Barrier(200)
    lock = threading.Lock()

    def submit(k: int) -> None:
        owner = f"class:p{k % people}"
        start.wait()
        try:
            job = servers[k % 2].submit(TINY, tiny(epochs=200, batch=16), owner)
        except JobRefused as e:
            with lock:
                refusals.append(str(e))
        else:
            with lock:
                accepted.append((owner, job))
    threads = [threading.Thread(target=submit, args=(k,)) for k in range(200)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    per_person = Counter(owner for owner, _ in accepted)
    if people == 200:
        assert len(accepted) == 22 and set(per_person.values()) == {1}
        assert all(r.startswith("The queue is full") for r in refusals)
    else:
        assert len(accepted) == 20 and set(per_person.values()) == {2}
        assert all(r.startswith("You already have") for r in refusals)
    table = servers[0].table
    time.sleep(1.5)   # both schedulers tick: together they start at most max_runs, each person at most one
    running = [table.get(j) for _, j in accepted if table.get(j).status in ("starting", "running", "stopping")]
    assert len(running) <= 2 and len({r.owner for r in running}) == len(running)
    for server in servers:
        for _, job in accepted:
            server.stop(job)


# ---------------------------------------------------------------------------- models belong to someone
def test_a_classmate_cannot_overwrite_your_model(make_service, tmp_path):
    """Issue 18, fault 4: everyone saved into one folder, default names alike (vae_2d), and Overwrite checked no
    owner. Now each saves into their own folder; Overwrite only ever replaces one's own model."""
    service = make_service(max_runs=2)
    base = tmp_path / "models"
    ada, ben = Person("class:ada", "Ada", "class"), Person("class:ben", "Ben", "class")
    a = service.submit(TINY, tiny(), ada.key, owner_name="Ada")
    b = service.submit(TINY, tiny(epochs=2), ben.key, owner_name="Ben")
    assert service.wait(a, 120).status == "completed" and service.wait(b, 120).status == "completed"
    path_a = save_run(service, ada, a, base, "vae_2d")
    before = path_a.read_bytes()
    with pytest.raises(ValueError, match="this run is not yours"):
        save_run(service, ben, a, base, "vae_2d", overwrite=True)      # Ben cannot save Ada's run
    path_b = save_run(service, ben, b, base, "vae_2d", overwrite=True)  # Ben's own name, in Ben's folder
    assert path_a.read_bytes() == before and path_a != path_b
    assert path_a.parent == owner_folder(base, ada) and path_b.parent == owner_folder(base, ben)
    assert load_checkpoint(path_b)[1].epochs_completed == 2 and load_checkpoint(path_a)[1].epochs_completed == 1
    assert service.table.get(a).saved_path == str(path_a)
    assert owner_of(path_a, base) == ada.folder_name and owner_of(base / "shared.safetensors", base) is None
    assert not may_change(ben, path_a, base) and may_change(ada, path_a, base)
    with pytest.raises(ValueError, match="not yours"):
        remove_model(ben, path_a, base, Shelf(service.table, base))
    assert path_a.exists()
    with pytest.raises(ValueError, match="not yours"):
        stop_run(service, ben, a)


def test_publishing_puts_a_model_in_everyones_picker_and_a_teacher_can_remove_it(tmp_path):
    base = tmp_path / "runs"
    table = JobTable(base / "jobs.sqlite")
    shelf = Shelf(table, base)
    ada, ben = Person("class:ada", "Ada", "class"), Person("class:ben", "Ben", "class")
    teacher = Person("class:ms rivera", "Ms Rivera", "class", teacher=True)
    model = owner_folder(base, ben) / "vae_2d.safetensors"
    model.parent.mkdir(parents=True)
    model.write_bytes(b"weights")
    owner = owner_of(model, base)
    assert not may_see(ada, owner, model, shelf.paths()) and may_see(ben, owner, model, shelf.paths())
    assert may_see(teacher, owner, model, shelf.paths()) and may_see(SOLO, owner, model, set())
    shelf.publish(model, teacher)
    assert shelf.paths() == {shelf_path(owner, model)} and may_see(ada, owner, model, shelf.paths())
    shelf.unpublish(model)
    assert not may_see(ada, owner, model, shelf.paths())
    with pytest.raises(ValueError, match="only a model in a person's folder"):
        shelf.publish(base / "shipped.safetensors", teacher)
    shelf.publish(model, teacher)
    remove_model(teacher, model, base, shelf)
    assert not model.exists() and shelf.paths() == set()


# ---------------------------------------------------------------------------- the teacher's board
def test_the_board_reads_every_run_with_its_losses_curve_and_place(make_service):
    service = make_service(max_runs=1, max_queued=5)
    done = service.submit(TINY, tiny(epochs=2), "class:ada", owner_name="Ada")
    waiting = service.submit(TINY, tiny(), "class:ben", owner_name="Ben")
    assert service.wait(done, 120).status == "completed"
    row = service.table.get(done)
    assert row.owner_name == "Ada" and row.loss is not None and row.eval_loss is not None and row.loss > 0
    curve = service.curves([done])[done]
    assert 2 <= len(curve) <= 2 * 200 and [s for s, _, _ in curve] == sorted(s for s, _, _ in curve)
    assert sum(e is not None for _, _, e in curve) == 2          # a test loss at each epoch's end
    assert curve[-1][0] == row.total_steps                       # the final point is written at the end
    service.wait(waiting, 120)
    late = service.submit(TINY, tiny(epochs=200, batch=16), "class:cy", owner_name="Cy")
    queued = service.submit(TINY, tiny(), "class:dee", owner_name="Dee")
    service.wait(late, 60, until=lambda s: s.status == "running")
    places = {r.id: place for r, place in service.class_runs()}
    assert places[queued] == 1 and places[late] == 0 and places[done] == 0
    cleared = time.time()
    clear_board(service.table, cleared)
    assert board_cleared_before(service.table) == pytest.approx(cleared)
    shown = [r.id for r, _ in service.class_runs() if on_board(r, cleared)]
    assert late in shown and queued in shown and done not in shown
    assert [s.id for s in service.jobs_of("class:ada")] == [done]  # its owner still has it
    teacher = Person("class:t", "T", "class", teacher=True)
    stop_run(service, teacher, late)
    snap = service.wait(late, 60)
    assert snap.status == "stopped" and "Stopped by the teacher (T)" in snap.message
    service.stop(queued)


def test_a_run_s_board_curve_starts_at_its_first_step():
    """The board's curve of a run begins at the first step the server collects: a 200-epoch run writes a point
    about every epoch after that, so a run stopped inside its first epoch still has a line, from its start to its
    end (CI stop 25: the teacher stopped Ada in her first epoch and the board had one dot to click)."""
    from types import SimpleNamespace

    from jobs.api import JobService, LiveJob

    written = []
    server = SimpleNamespace(server_id="s", table=SimpleNamespace(
        update_held=lambda *a, **k: True, add_points=lambda job_id, points: written.extend(points)))
    live = LiveJob()
    live.apply("started", {"steps_per_epoch": 469, "total_steps": 200 * 469})

    def collect(first: int, last: int, final: bool = False) -> list[int]:
        n = last - first + 1
        live.apply("steps", {"steps": {"step": list(range(first, last + 1)), "loss": [300.0] * n,
                                       "recon": [290.0] * n, "kl": [10.0] * n},
                             "progress": {"global_step": last}})
        JobService._write_losses_now(server, "job", live, final)
        return [step for step, _, _ in written]

    assert collect(1, 19) == [19]                 # the first collect starts the curve
    assert collect(20, 40) == [19]                # the next point is due 469 steps later
    assert collect(41, 60, final=True) == [19, 60]
    assert all(loss == pytest.approx(300.0) for _, loss, _ in written)
