"""Numbers as a person reads them (vae_core/formatting.py): human names with units, whole counts, honest
precision, and a word for what was not recorded (issue 21 item 5: "1000.000", "None / 500.000 / None")."""
from __future__ import annotations

import math

from vae_core.formatting import (a_thing, format_count, format_duration, format_metric, format_nats, format_number,
                                 metric_label, quadrant_block_name, thing_name)


def test_code_names_become_human_names_with_units():
    assert metric_label("neg_elbo") == "−ELBO (nats per image)"
    assert metric_label("nll_is") == "NLL, importance sampling (nats per image)"
    assert metric_label("samples") == "samples S per image"
    assert metric_label("test_images") == "test images"
    assert metric_label("diversity") == "sample diversity (mean pixel distance)"
    assert metric_label("some_new_figure") == "some new figure"


def test_counts_are_whole_and_figures_have_sensible_precision():
    assert format_metric("samples", 1000.0) == "1,000"
    assert format_metric("test_images", 10000) == "10,000"
    assert format_metric("neg_elbo", 134.32659284172058) == "134.33 nats"
    assert format_metric("neg_elbo", 134.3266, unit=False) == "134.33"
    assert format_metric("diversity", 0.009261143393814564) == "0.00926"
    assert format_metric("diversity", 6.740971088409424) == "6.74"
    assert format_count(None) == "not recorded" and format_nats(None) == "not recorded"
    assert format_number(math.nan) == "nan" and format_number(0) == "0"


def test_durations_and_names_in_words():
    assert format_duration(54.4) == "54 seconds" and format_duration(1) == "1 second"
    assert format_duration(525) == "about 9 minutes" and format_duration(3 * 3600) == "about 3.0 hours"
    assert quadrant_block_name("q1") == "1 visible quadrant" and quadrant_block_name("q3") == "3 visible quadrants"
    assert thing_name("mnist") == "digit" and thing_name("fashion-mnist", plural=True) == "items of clothing"
    assert thing_name("something-else") == "image"
    assert a_thing("mnist") == "a digit" and a_thing("fashion-mnist") == "an item of clothing"
