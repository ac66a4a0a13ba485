"""Small helpers shared by the pages (no page logic of their own); vae_core never imports ui.

Shared by role:  model_catalogue (find, load and pick checkpoints), cached_data (data sets in memory),
                 images, plots, routing (each page's first call), identity (who is signed in),
                 gc_tuning (app.py), training_job, board_tools (the class board).
Page helpers:    <page>_tools.py, one per page that needs more than a few lines (home_tools,
                 latent_map_tools, decoder_tools, compare_tools).
"""
