"""The β-VAE on the Train page, by hand in chromium: picking it sets the β field to its default (4), another
variant brings its own β back, and a tiny β-VAE run starts and finishes with no exception on the page."""
from __future__ import annotations

import re

import pytest

from harness import exceptions_on, go_to, open_page, select_option, wait_idle
from vae_core import VARIANTS

pytestmark = pytest.mark.e2e

MAIN = "[data-testid='stMain']"


def beta_shown(page) -> float:
    return float(page.locator(f"{MAIN} .st-key-train_beta input").input_value())


def wait_beta(page, want: float, timeout: float = 30_000) -> None:
    """Wait until the β field shows `want` (the rerun that sets it may land after the click's)."""
    page.wait_for_function(
        "([sel, want]) => { const i = document.querySelector(sel); return i && Math.abs(Number(i.value) - want) < 1e-9; }",
        arg=[f"{MAIN} .st-key-train_beta input", want], timeout=timeout)


def test_pick_the_beta_vae_see_beta_4_and_train_it(page, server):
    bvae, vae = VARIANTS["beta-vae"], VARIANTS["vae"]
    open_page(page, server.url)
    go_to(page, "Train", "Train a model")
    wait_idle(page)
    variant = page.locator(f"{MAIN} .st-key-train_variant input")
    assert beta_shown(page) == vae.default_beta == 1.0

    select_option(page, variant, bvae.title)                       # "β-VAE"
    wait_beta(page, bvae.default_beta)
    assert beta_shown(page) == 4.0
    page.get_by_text(re.compile(r"^Will train a beta-vae \| 2-D latent model")).wait_for(timeout=30_000)

    box = page.locator(f"{MAIN} .st-key-train_beta input")         # a hand-set β ...
    box.fill("2")
    box.press("Enter")
    wait_idle(page)
    assert beta_shown(page) == 2.0
    select_option(page, variant, vae.title)                        # ... gives way to the next variant's own
    wait_beta(page, 1.0)
    select_option(page, variant, bvae.title)
    wait_beta(page, 4.0)
    assert not exceptions_on(page)

    hidden = page.get_by_label("Hidden layers", exact=True)        # a tiny run: 16 units, 1 epoch, 1,000 images
    hidden.fill("16")
    hidden.press("Enter")
    epochs = page.get_by_label("Epochs")
    epochs.fill("1")
    epochs.press("Enter")
    wait_idle(page)
    page.locator(".st-key-train_images").get_by_role("slider").press("Home")
    wait_idle(page)
    assert beta_shown(page) == 4.0                                 # the other settings left β alone
    page.get_by_role("button", name=re.compile("Start training")).click()
    page.get_by_text(re.compile("Training finished")).first.wait_for(timeout=180_000)
    page.get_by_text("Settings for a new run").wait_for()          # the settings of the run fold away ...
    assert not exceptions_on(page)
    page.get_by_text("Settings for a new run").click()
    wait_beta(page, 4.0)                                           # ... and still say β = 4
    page.get_by_text(re.compile(r"^Will train a beta-vae \| 2-D latent model")).wait_for(timeout=30_000)
    assert not exceptions_on(page)
