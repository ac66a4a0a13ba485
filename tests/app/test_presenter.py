"""Presenter view (ui/presenter.py): the switch and ?present=1, the keys' effects on z, and b / B along a beta
sweep (or a sentence without one). The key listener itself runs in chromium: tests/e2e/test_presenter.py."""
from __future__ import annotations

from apptest_helpers import errors_of, texts_of, train_sweep
from ui import presenter as pv


def test_arrows_step_z1_and_z2():
    assert pv.move([0.0, 0.0], "right") == [0.25, 0.0]
    assert pv.move([0.0, 0.0], "up") == [0.0, 0.25]
    assert pv.move([1.0, -1.0], "down") == [1.0, -1.25]
    assert pv.move([1.0], "up") == [1.25]


def test_the_address_turns_the_view_on_and_the_keys_mount(app, model_dir):
    app.query_params["present"] = "1"
    app.session_state["model"] = str(model_dir / "vae_2d.safetensors")
    at = app.switch_page("pages/decoder.py").run()
    assert not errors_of(at)
    assert at.sidebar.toggle(key=pv.TOGGLE_KEY).value is True
    assert any(e.proto.component_name == pv.NAME for e in at.get("bidi_component"))
    assert "Presenter view · ← → ↑ ↓ move z" in texts_of(at)
    at.button(key="presenter_leave").click().run()
    assert not errors_of(at) and at.sidebar.toggle(key=pv.TOGGLE_KEY).value is False
    assert not any(e.proto.component_name == pv.NAME for e in at.get("bidi_component"))
    assert "present" not in at.query_params


def test_without_a_sweep_b_says_nothing_happens(model_dir):
    target, message = pv.beta_target(str(model_dir / "vae_2d.safetensors"), "beta_next")
    assert target is None and message == "No β sweep holds this model, so b and B do nothing here."


def test_b_and_shift_b_walk_the_sweep(tmp_path, data_root, monkeypatch):
    paths = train_sweep(data_root, tmp_path)
    monkeypatch.setenv("LATENT_LAB_MODEL_DIRS", str(tmp_path))
    target, message = pv.beta_target(str(paths[1]), "beta_next")
    assert target.path == str(paths[2]) and message.startswith("β = 4:")
    target, _ = pv.beta_target(str(paths[1]), "beta_previous")
    assert target.path == str(paths[0])
    target, message = pv.beta_target(str(paths[2]), "beta_next")
    assert target is None and "largest" in message
