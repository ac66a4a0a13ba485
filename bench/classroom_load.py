"""A class on one server: N browser sessions explore while training jobs run and wait in line.

    python bench/classroom_load.py                        # 20 sessions for 60 s, 2 jobs training, 3 waiting
    python bench/classroom_load.py --sessions 2 --seconds 10 --job-epochs 1 --job-images 1000   # a quick check

Starts `streamlit run app.py` on 127.0.0.1 with LATENT_LAB_MAX_RUNS=2 and the shipped models, opens the Train
page once (so the server's job service exists), then queues 5 small training jobs straight into the job
table (the server's scheduler starts 2 and keeps 3 waiting). Meanwhile N browser contexts (one chromium,
driven by playwright's async API) act for --seconds: most switch "Decode in the browser" off and move a
Decoder slider with the keyboard (the server decodes each step) and time the new decoded image; every fourth clicks a random point of the Latent map and times the "Test image #"
panel. Prints p50/p95 latency of each action kind (also of the pages' first draw, and also when some sessions
time out: every session is bounded, and what the others measured is kept), errors (timeouts and exceptions
shown in pages), memory and CPU (sampled from /proc every 0.5 s), and how every job ended (the script waits,
within --job-timeout, for all of them to finish), with its wait in line and its run time.

Memory: the peak, over the samples, of the server's and of its descendants' (the fork server, the workers,
multiprocessing's resource tracker) summed at the same instant, as RSS and as PSS (/proc/PID/smaps_rollup:
a page shared by k processes counts 1/k in each, so PSS sums to what they really hold; RSS counts torch's
shared pages once per process). CPU: seconds of CPU used during the run by the server, by its descendants,
and by the browser (chromium and playwright's driver), which shares the same 2 cores.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "e2e"))
sys.path.insert(0, str(ROOT / "bench"))

from harness import CHROMIUM_FLAGS, VIEWPORT, StreamlitServer, chromium_path, missing_browser_reason  # noqa: E402
from app_speed import ARM_JS, DECODED  # noqa: E402

POINT_JS = """() => { const gd = document.querySelector("[data-testid='stMain'] .js-plotly-plot");
    if (!gd || !gd._fullData || !gd._fullData.length) return null;
    const t = gd._fullData[Math.floor(Math.random() * gd._fullData.length)];
    if (!t._length) return null;
    const i = Math.floor(Math.random() * t._length), L = gd._fullLayout, r = gd.getBoundingClientRect();
    const x = r.left + L._size.l + L.xaxis.l2p(t.x[i]), y = r.top + L._size.t + L.yaxis.l2p(t.y[i]);
    if (y < r.top + L._size.t || y > r.bottom - L._size.b) return null;
    return [x, y]; }"""


def memory_mb(pid: int) -> tuple[float, float]:
    """(RSS, PSS) of a process in MB, from /proc/PID/smaps_rollup; (0, 0) when it is gone."""
    rss = pss = 0.0
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Rss:"):
                rss = int(line.split()[1]) / 1024
            elif line.startswith("Pss:"):
                pss = int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        pass
    return rss, pss


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used so far (0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
        except (OSError, IndexError, ValueError):
            continue
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


class Sampler(threading.Thread):
    """Every 0.5 s: RSS and PSS of the server and of its descendants (each group summed at that instant; the
    peaks are kept), and the CPU seconds of every process of the server's tree and of the browser's (this
    script's other descendants), kept per process so that workers which have ended still count."""

    def __init__(self, server_pid: int):
        super().__init__(daemon=True)
        self.pid, self.done = server_pid, threading.Event()
        self.peak = {"server_rss": 0.0, "server_pss": 0.0, "workers_rss": 0.0, "workers_pss": 0.0,
                     "total_rss": 0.0, "total_pss": 0.0, "workers_count": 0}
        self.cpu: dict[str, dict[int, float]] = {"server": {}, "workers": {}, "browser": {}}
        self.cpu0: dict[int, float] = {}

    def sample(self) -> None:
        workers = descendants(self.pid)
        srss, spss = memory_mb(self.pid)
        mems = [memory_mb(p) for p in workers]
        wrss, wpss = sum(m[0] for m in mems), sum(m[1] for m in mems)
        for key, value in (("server_rss", srss), ("server_pss", spss), ("workers_rss", wrss),
                           ("workers_pss", wpss), ("total_rss", srss + wrss), ("total_pss", spss + wpss),
                           ("workers_count", len(workers))):
            self.peak[key] = max(self.peak[key], value)
        server_tree = {self.pid, *workers}
        browser = [p for p in descendants(os.getpid()) if p not in server_tree]
        for group, pids in (("server", [self.pid]), ("workers", workers), ("browser", browser)):
            for p in pids:
                self.cpu0.setdefault(p, cpu_seconds(p))
                self.cpu[group][p] = max(self.cpu[group].get(p, 0.0), cpu_seconds(p))

    def cpu_used(self, group: str) -> float:
        return sum(v - self.cpu0.get(p, 0.0) for p, v in self.cpu[group].items())

    def run(self):
        while not self.done.is_set():
            self.sample()
            self.done.wait(0.5)


async def open_app(context, url: str, path: str, ready: str, record=None, kind: str = ""):
    """Open a page and wait for `ready`; records the ms from the navigation to it as `kind`."""
    page = await context.new_page()
    page.set_default_timeout(60_000)
    t0 = time.perf_counter()
    await page.goto(f"{url}/{path}", wait_until="domcontentloaded")
    await page.locator(ready).first.wait_for(timeout=90_000)
    if record is not None:
        record(kind, (time.perf_counter() - t0) * 1000)
    return page


async def decoder_session(browser, url, deadline, record, errors):
    context = await browser.new_context(viewport=VIEWPORT)
    try:
        # the server's sliders ("Decode in the browser" off): every step is a script run that decodes on the server
        t0 = time.perf_counter()
        page = await open_app(context, url, "decoder", ".st-key-browser_decode input")
        if await page.locator(".st-key-browser_decode input").is_checked():
            await page.get_by_test_id("stSidebar").get_by_text("Decode in the browser").click()
        await page.get_by_test_id("stSlider").first.wait_for(timeout=90_000)
        await page.locator(DECODED).first.wait_for(timeout=90_000)
        record("decoder page opened, server sliders on", (time.perf_counter() - t0) * 1000)
        await page.get_by_role("slider").first.focus()
        i = 0
        while time.monotonic() < deadline:
            await page.evaluate(ARM_JS, DECODED)
            await page.keyboard.press("ArrowRight" if (i // 10) % 2 == 0 else "ArrowLeft")
            ms = await page.evaluate("() => window.__done")
            if ms == ms:
                record("decoder slider step", ms)
            else:
                errors.append("decoder: no new image within 10 s")
            i += 1
            await asyncio.sleep(random.uniform(0.2, 0.6))
        if await page.locator("[data-testid='stException']").count():
            errors.append("decoder: an exception is shown")
    except Exception as e:  # noqa: BLE001 - a bench counts failures, it does not stop on them
        errors.append(f"decoder session: {type(e).__name__}: {str(e).splitlines()[0][:120]}")
    finally:
        await context.close()


async def map_session(browser, url, deadline, record, errors):
    context = await browser.new_context(viewport=VIEWPORT)
    try:
        t0 = time.perf_counter()
        page = await open_app(context, url, "latent_map", "[data-testid='stMain'] .js-plotly-plot")
        await page.wait_for_function("() => { const gd = document.querySelector('.js-plotly-plot');"
                                     " return gd && gd._fullData && gd._fullData.length > 0; }")
        record("latent map page opened (points drawn)", (time.perf_counter() - t0) * 1000)
        while time.monotonic() < deadline:
            point = await page.evaluate(POINT_JS)
            if point is None:
                await asyncio.sleep(0.5)
                continue
            before = await page.get_by_text("Test image #").count()
            t0 = time.perf_counter()
            await page.mouse.click(*point)
            try:
                await page.get_by_text("Test image #").first.wait_for(timeout=10_000)
                await page.wait_for_function("() => !document.querySelector(\"[data-testid='stStatusWidgetRunningIcon']\")",
                                             timeout=10_000)
                record("latent map click", (time.perf_counter() - t0) * 1000)
            except Exception:  # noqa: BLE001
                if before == 0:
                    errors.append("latent map: no image panel within 10 s")
            await asyncio.sleep(random.uniform(0.5, 1.5))
        if await page.locator("[data-testid='stException']").count():
            errors.append("latent map: an exception is shown")
    except Exception as e:  # noqa: BLE001
        errors.append(f"latent map session: {type(e).__name__}: {str(e).splitlines()[0][:120]}")
    finally:
        await context.close()


async def drive(url: str, sessions: int, seconds: float):
    from playwright.async_api import async_playwright

    times: dict[str, list[float]] = {}
    errors: list[str] = []

    def record(kind, ms):
        times.setdefault(kind, []).append(ms)

    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_FLAGS)
        try:
            train = await browser.new_context(viewport=VIEWPORT)  # creates the server's job service
            await open_app(train, url, "train", "h1")
            deadline = time.monotonic() + seconds
            tasks = [asyncio.create_task((map_session if k % 4 == 3 else decoder_session)(
                browser, url, deadline, record, errors)) for k in range(sessions)]
            # every session is bounded; one that is still busy after that is cancelled and counted, and what
            # all of them measured so far is kept
            _, pending = await asyncio.wait(tasks, timeout=seconds + 180)
            for task in pending:
                task.cancel()
                errors.append(f"a session was still busy {seconds + 180:g} s after the start: cancelled")
            if pending:
                await asyncio.wait(pending, timeout=30)
            await train.close()
        finally:
            await browser.close()
    return times, errors


def percentile(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sessions", type=int, default=20)
    ap.add_argument("--seconds", type=float, default=60.0, help="how long the sessions act")
    ap.add_argument("--jobs", type=int, default=5, help="jobs queued (2 train at once)")
    ap.add_argument("--job-epochs", type=int, default=2)
    ap.add_argument("--job-images", type=int, default=10_000)
    ap.add_argument("--job-timeout", type=float, default=600.0, help="how long to wait for the jobs to finish")
    args = ap.parse_args(argv)
    reason = missing_browser_reason()
    if reason:
        print(f"cannot run: {reason}")
        return 2

    from jobs.table import FINISHED, JobTable
    from jobs.worker import settings_to_dict
    from vae_core import ModelConfig, TrainConfig, locate_dataset

    runs = Path(tempfile.mkdtemp(prefix="latent_lab_class_")) / "runs"
    env = {"LATENT_LAB_MODEL_DIRS": os.pathsep.join([str(ROOT / "checkpoints"), str(runs)]),
           "LATENT_LAB_MAX_RUNS": "2"}
    server = StreamlitServer(env, log=runs.parent / "streamlit.log").start()
    sampler = None
    try:
        server.wait_listening()
        sampler = Sampler(server.proc.pid)
        sampler.start()
        table = JobTable(runs / "jobs.sqlite")
        data = locate_dataset("mnist")
        settings = settings_to_dict(ModelConfig(hidden_dims=(256, 256)),
                                    TrainConfig(epochs=args.job_epochs, train_limit=args.job_images, eval_limit=2000))
        settings["data_root"] = str(data.parent) if data else None
        job_ids = [table.add(f"bench-{k}", settings) for k in range(args.jobs)]
        print(f"{args.sessions} sessions for {args.seconds:g} s; {args.jobs} jobs queued ({args.job_epochs} epochs "
              f"on {args.job_images:,} images each, 2 at once); load average {os.getloadavg()[0]:.2f}", flush=True)
        t_sessions = time.monotonic()
        times, errors = asyncio.run(drive(server.url, args.sessions, args.seconds))
        sessions_seconds = time.monotonic() - t_sessions
        load_after_sessions = os.getloadavg()
        cpu_sessions = {g: sampler.cpu_used(g) for g in ("server", "workers", "browser")}
        mid_states = [table.get(j).status for j in job_ids]
        end = time.monotonic() + args.job_timeout
        while time.monotonic() < end and not all(table.get(j).status in FINISHED for j in job_ids):
            table.touch(job_ids)  # the bench watches them, as their pages would
            time.sleep(1.0)
        final = [table.get(j) for j in job_ids]
    finally:
        if sampler:
            sampler.done.set()
        server.stop()

    print(f"sessions ran {sessions_seconds:.0f} s; load average then: "
          f"{', '.join(f'{v:.1f}' for v in load_after_sessions)}")
    for kind, values in sorted(times.items()):
        print(f"{kind}: {len(values)} actions, p50 {statistics.median(values):.0f} ms, "
              f"p95 {percentile(values, 0.95):.0f} ms, max {max(values):.0f} ms")
    print(f"errors: {len(errors)}" + "".join(f"\n  {e}" for e in errors[:12]))
    print(f"job states when the sessions ended: {', '.join(mid_states)}")
    t0 = min(r.created for r in final)
    for k, r in enumerate(final):
        when = "started at once" if k < 2 else "queued"
        waited = f"waited {r.started - r.created:.0f} s" if r.started else "never started"
        ran = (f"ran {r.finished - r.started:.0f} s, done {r.finished - t0:.0f} s after queueing"
               if r.started and r.finished else "not finished")
        print(f"  job {k + 1} ({when}): {r.status}; {waited}; {ran}")
    print(f"all finished: {all(r.status in FINISHED for r in final)}; completed: "
          f"{sum(r.status == 'completed' for r in final)} of {len(final)}")
    if sampler:
        m = sampler.peak
        print(f"peak memory (RSS / PSS, MB): server {m['server_rss']:,.0f} / {m['server_pss']:,.0f}; its "
              f"descendants together (fork server, workers, resource tracker; at most {m['workers_count']} at once) "
              f"{m['workers_rss']:,.0f} / {m['workers_pss']:,.0f}; server + descendants at the same instant "
              f"{m['total_rss']:,.0f} / {m['total_pss']:,.0f}")
        print("CPU seconds while the sessions ran: " + ", ".join(f"{g} {v:.0f}" for g, v in cpu_sessions.items())
              + f" (of {2 * sessions_seconds:.0f} available on 2 cores)")
    print(f"load average now: {', '.join(f'{v:.1f}' for v in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
