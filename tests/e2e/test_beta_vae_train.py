"""The β-VAE on the Train page, by hand in chromium: picking it shows the β field at its default (4), each
variant keeps a β of its own (one typed for the VAE leaves the β-VAE's alone and is there again when the VAE
is picked), and a tiny β-VAE run starts and finishes with no exception on the page."""
from __future__ import annotations

import re

import pytest

from harness import exceptions_on, go_to, open_page, select_option, wait_idle
from vae_core import VARIANTS

pytestmark = pytest.mark.e2e

MAIN = "[data-testid='stMain']"
NOTE = re.compile(r"^Will train a beta-vae \| 2-D latent model")


def beta_box(page, variant: str):
    return page.locator(f"{MAIN} .st-key-train_beta_{variant} input")


def wait_beta(page, variant: str, want: float, timeout: float = 30_000) -> None:
    """Wait until the variant's β field is drawn and shows `want` (a click's rerun may land a moment later)."""
    page.wait_for_function(
        "([sel, want]) => { const i = document.querySelector(sel); return i && Math.abs(Number(i.value) - want) < 1e-9; }",
        arg=[f"{MAIN} .st-key-train_beta_{variant} input", want], timeout=timeout)


def test_pick_the_beta_vae_see_beta_4_and_train_it(page, server):
    bvae, vae = VARIANTS["beta-vae"], VARIANTS["vae"]
    open_page(page, server.url)
    go_to(page, "Train", "Train a model")
    wait_idle(page)
    variant = page.locator(f"{MAIN} .st-key-train_variant input")
    assert float(beta_box(page, "vae").input_value()) == vae.default_beta == 1.0   # drawn at 1 from the start

    select_option(page, variant, bvae.title)                       # "β-VAE"
    wait_beta(page, "beta-vae", bvae.default_beta)
    assert float(beta_box(page, "beta-vae").input_value()) == 4.0
    page.get_by_text(NOTE).wait_for(timeout=30_000)

    select_option(page, variant, vae.title)                        # a β typed for the VAE ...
    wait_beta(page, "vae", 1.0)
    beta_box(page, "vae").fill("0.5")
    beta_box(page, "vae").press("Enter")
    wait_idle(page)
    select_option(page, variant, bvae.title)                       # ... leaves the β-VAE's at 4 ...
    wait_beta(page, "beta-vae", 4.0)
    select_option(page, variant, vae.title)                        # ... and is there again for the VAE
    wait_beta(page, "vae", 0.5)
    select_option(page, variant, bvae.title)
    wait_beta(page, "beta-vae", 4.0)
    assert not exceptions_on(page)

    hidden = page.get_by_label("Hidden layers", exact=True)        # a tiny run: 16 units, 1 epoch, 1,000 images
    hidden.fill("16")
    hidden.press("Enter")
    epochs = page.get_by_label("Epochs")
    epochs.fill("1")
    epochs.press("Enter")
    wait_idle(page)
    page.locator(".st-key-train_images").get_by_role("slider").press("Home")
    wait_beta(page, "beta-vae", 4.0)                               # the other settings left β alone
    page.get_by_text(NOTE).wait_for(timeout=30_000)
    page.get_by_role("button", name=re.compile("Start training")).click()
    page.get_by_text(re.compile("Training finished")).first.wait_for(timeout=180_000)
    assert not exceptions_on(page)
    page.get_by_text("Settings for a new run").click()             # the run's settings folded away; they
    wait_beta(page, "beta-vae", 4.0)                               # still say β = 4
    page.get_by_text(NOTE).wait_for(timeout=30_000)
    assert not exceptions_on(page)
