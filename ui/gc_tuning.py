"""Keep Python's garbage collector off the interactive path.

Streamlit runs a full gc.collect() after every script run, fragment reruns included (its option
`runner.postScriptGC`). A full collection walks every object alive in the server: after torch, plotly,
pandas and streamlit are imported that is about 300,000 objects, and one collection took 75-290 ms on the
2-core machine, holding the GIL while the new image waited to be sent. It put a Decoder slider move at
about 250 ms (a stall measured with a gc callback in `streamlit run`).

The objects alive after a page's first run (modules, classes, cached models and data) live as long as the
server, so we move them to the permanent generation with gc.freeze(): later collections walk only what was
made since, and take about 2 ms. Streamlit's collection stays on, so the memory it is there to return is
still returned. Reference counting frees everything as usual; only a reference cycle created before the
freeze and dropped afterwards would outlive its use, so we collect first and freeze once per page.
"""
from __future__ import annotations

import gc
import threading

_done: set[str] = set()
_lock = threading.Lock()


def freeze_after_first_run(page: str) -> bool:
    """Collect, then freeze everything alive, the first time `page` finished a run in this process.
    Returns True when it froze now."""
    with _lock:
        if page in _done:
            return False
        _done.add(page)
        gc.collect()
        gc.freeze()
        return True
