"""Small helpers shared by the pages: cached model and data loaders, image helpers, plot builders.

Pages import from the submodules (`from ui.models import model_picker`); vae_core never imports ui.
"""
