"""A class on one server: N sessions explore while training jobs run and wait in line.

    python bench/classroom_load.py --client ws --sessions 40   # a class of 40 named students for 60 s (issue 18)
    python bench/classroom_load.py --client ws            # 20 websocket sessions for 60 s, 2 jobs training, the rest waiting
    python bench/classroom_load.py                        # the same with 20 chromium contexts (--client browser)
    python bench/classroom_load.py --sessions 2 --seconds 10 --job-epochs 1 --job-images 1000   # a quick check

--client browser drives chromium contexts on this machine; they need far more CPU than the server (measured
at 20 sessions on 2 cores: browser 105 s, server 10 s of 153 s), so the latencies then measure the browsers.
A class's browsers run on the students' machines: --client ws makes each session a Streamlit websocket client
in this process (bench/st_ws_client.py: the server runs the same pages and sends the same deltas as for a
tab), so that the figures are the server's. A ws Decoder session switches "Decode in the browser" off and
sends one slider step per action (a fragment rerun, as the frontend sends on an arrow key), timed to the
delta with the new decoded image (its caption "z = ..." changed) and to the end of the run; a ws Latent-map
session sends a click on a random dot (the chart's selection, as the frontend reports it) and times the
"Test image #" panel and the end of the run. An error is a step without its answer within 10 s, or an
exception element in a page.

Starts `streamlit run app.py` on 127.0.0.1 with LATENT_LAB_MAX_RUNS=2 and the shipped models, opens the Train
page once (so the server's job service exists), then queues small training jobs straight into the job
table (the server's scheduler starts 2 and keeps the rest waiting). With --client ws the server runs a class
(docs/CLASSROOM.md): a [class] table with a class code, and each session is a named student (Student 1, ...)
signed in with the code, whose browser cookie the websocket sends; each student owns one of the queued jobs
(--jobs, default: one per session), so 2 train and the rest wait, each within its owner's share. Meanwhile N sessions (browser contexts of one chromium,
driven by playwright's async API, or websocket clients) act for --seconds: most switch "Decode in the browser" off and move a
Decoder slider with the keyboard (the server decodes each step) and time the new decoded image; every fourth clicks a random point of the Latent map and times the "Test image #"
panel. Prints p50/p95 latency of each action kind (also of the pages' first draw, and also when some sessions
time out: every session is bounded, and what the others measured is kept), errors (timeouts and exceptions
shown in pages), memory and CPU (sampled from /proc every 0.5 s), and how every job ended (the script waits,
within --job-timeout, for all of them to finish), with its wait in line and its run time.

Memory: the peak, over the samples, of the server's and of its descendants' (the fork server, the workers,
multiprocessing's resource tracker) summed at the same instant, as RSS and as PSS (/proc/PID/smaps_rollup:
a page shared by k processes counts 1/k in each, so PSS sums to what they really hold; RSS counts torch's
shared pages once per process). CPU: seconds of CPU used during the run by the server, by its descendants,
and by the clients (this script, and with --client browser chromium and playwright's driver), which share the
same 2 cores; and the server's CPU seconds per action (its CPU while the sessions ran, divided by the actions
they made: slider steps and map clicks, the pages' first draws not counted as actions).
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
    script and its other descendants: the clients), kept per process so that workers which have ended still count."""

    def __init__(self, server_pid: int):
        super().__init__(daemon=True)
        self.pid, self.done = server_pid, threading.Event()
        self.peak = {"server_rss": 0.0, "server_pss": 0.0, "workers_rss": 0.0, "workers_pss": 0.0,
                     "total_rss": 0.0, "total_pss": 0.0, "workers_count": 0}
        self.cpu: dict[str, dict[int, float]] = {"server": {}, "workers": {}, "clients": {}}
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
        # the clients: this script (the websocket sessions, or playwright's asyncio side) and chromium
        browser = [os.getpid()] + [p for p in descendants(os.getpid()) if p not in server_tree]
        for group, pids in (("server", [self.pid]), ("workers", workers), ("clients", browser)):
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
        toggle = page.locator(".st-key-browser_decode input")
        for _ in range(30):   # a click before the page's script has hydrated the switch is lost: until it is off
            if not await toggle.is_checked():
                break
            await page.get_by_test_id("stSidebar").get_by_text("Decode in the browser").click()
            await asyncio.sleep(1.0)
        # the server's decoded image, its caption the z it shows (the in-browser pad draws on a canvas instead)
        await page.locator(DECODED, has_text="z = (").first.wait_for(timeout=90_000)
        await page.locator(".st-key-decoder_slider_0").wait_for(timeout=90_000)
        record("decoder page opened, server sliders on", (time.perf_counter() - t0) * 1000)
        await page.locator(".st-key-decoder_slider_0").get_by_role("slider").focus()   # z1
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


async def drive_browser(url: str, sessions: int, seconds: float):
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


# ----------------------------------------------------------------------------- --client ws: websocket sessions
# Each session is one Streamlit websocket (bench/st_ws_client.py) in this process: the server does all it does
# for a browser tab (runs the page, sends every delta), and no browser shares the cores with it.

STEP_TIMEOUT = 10.0   # s, as the browser sessions' ARM_JS


async def decoder_ws_session(url, deadline, record, errors, cookies=None):
    from st_ws_client import StreamlitWsClient

    client = StreamlitWsClient(url, cookies=cookies)
    try:
        t0 = time.perf_counter()
        await client.connect()
        run = await client.open("decoder")
        toggle = client.widget("checkbox", "Decode in the browser")
        if run.finished is None or toggle is None:
            raise RuntimeError(f"the decoder page did not finish opening ({client.closed_reason or 'timeout'})")
        # the server's sliders: every step is a (fragment) script run that decodes on the server
        client.set_widget(toggle, "bool_value", False)
        run = await client.rerun()
        ok = await client.wait(run, 90)
        slider = client.widget("slider", "z1")
        if not ok or slider is None or not run.images:
            raise RuntimeError("no server sliders and decoded image after switching the browser decoding off")
        record("decoder page opened, server sliders on", (time.perf_counter() - t0) * 1000)
        caption = [cap for _, _, cap in run.images if cap.startswith("z = ")][-1]
        value = (list(slider.proto.value) or list(slider.proto.default))[0]
        i = 0
        while time.monotonic() < deadline:
            step = 0.01 if (i // 10) % 2 == 0 else -0.01   # one arrow key, as the browser sessions press
            value = min(slider.proto.max, max(slider.proto.min, round(value + step, 2)))
            client.set_widget(slider, "double_array_value", [value])
            run = await client.rerun(fragment_id=slider.fragment_id)
            ok = await client.wait(run, STEP_TIMEOUT)
            new = [(t, cap) for t, _, cap in run.images if cap.startswith("z = ") and cap != caption]
            if run.exceptions:
                errors.append(f"decoder: exception in the page: {run.exceptions[0][:120]}")
            if ok and new:
                record("decoder slider step, new image received", new[0][0] * 1000)
                record("decoder slider step, run finished", run.finished * 1000)
                caption = new[-1][1]
            elif ok:
                errors.append("decoder: the run finished without a new image")
            else:
                errors.append(f"decoder: no new image within {STEP_TIMEOUT:g} s"
                              + (f" ({client.closed_reason})" if client.closed_reason else ""))
                await client.wait(run, 60)   # as a user would: the next step after this one's answer
            i += 1
            await asyncio.sleep(random.uniform(0.2, 0.6))
    except Exception as e:  # noqa: BLE001 - a bench counts failures, it does not stop on them
        errors.append(f"decoder session: {type(e).__name__}: {str(e).splitlines()[0][:120] if str(e) else ''}")
    finally:
        await client.close()


async def map_ws_session(url, deadline, record, errors, cookies=None):
    import numpy as np

    from st_ws_client import StreamlitWsClient, selection_json

    client = StreamlitWsClient(url, cookies=cookies)
    rng = np.random.default_rng()
    try:
        t0 = time.perf_counter()
        await client.connect()
        run = await client.open("latent_map")
        chart = client.widget("plotly_chart", key="latent_map_chart")
        if run.finished is None or chart is None:
            raise RuntimeError(f"the latent map did not finish opening ({client.closed_reason or 'timeout'})")
        record("latent map page opened (figure received)", (time.perf_counter() - t0) * 1000)
        while time.monotonic() < deadline:
            chart = client.widget("plotly_chart", key="latent_map_chart")
            click = selection_json(chart.proto.spec, rng)
            if click is None:
                errors.append("latent map: the figure has no points")
                break
            value, row = click
            client.set_widget(chart, "string_value", value)   # a click on one dot, as the chart reports it
            run = await client.rerun()
            ok = await client.wait(run, STEP_TIMEOUT)
            panel = [t for t, body in run.markdown if f"Test image #{row}**" in body]
            if run.exceptions:
                errors.append(f"latent map: exception in the page: {run.exceptions[0][:120]}")
            if ok and panel:
                record("latent map click, panel received", panel[0] * 1000)
                record("latent map click, run finished", run.finished * 1000)
            elif ok:
                now = client.widget("plotly_chart", key="latent_map_chart")
                picker = client.widget("selectbox", "Model")
                model = "?" if picker is None else (picker.proto.raw_value if picker.proto.set_value
                                                    else picker.proto.options[picker.proto.default])
                errors.append(f"latent map: the run finished without the panel of test image #{row}"
                              + (" (the chart came back as a new widget: its figure changed)" if now.id != chart.id else "")
                              + f"; model shown: {model}; page said: "
                              + " | ".join(b[:50] for _, b in run.markdown if "elected" in b or "Test image" in b))
            else:
                errors.append(f"latent map: no image panel within {STEP_TIMEOUT:g} s"
                              + (f" ({client.closed_reason})" if client.closed_reason else ""))
                await client.wait(run, 60)
            await asyncio.sleep(random.uniform(0.5, 1.5))
    except Exception as e:  # noqa: BLE001
        errors.append(f"latent map session: {type(e).__name__}: {str(e).splitlines()[0][:120] if str(e) else ''}")
    finally:
        await client.close()


async def drive_ws(url: str, sessions: int, seconds: float, cookies: list[dict] | None = None):
    from st_ws_client import StreamlitWsClient

    times: dict[str, list[float]] = {}
    errors: list[str] = []

    def record(kind, ms):
        times.setdefault(kind, []).append(ms)

    cookies = cookies or [None] * (sessions + 1)
    async with StreamlitWsClient(url, cookies=cookies[-1]) as train:   # creates the job service; stays open
        await train.open("train")
        if train.widget("button", key="train_start") is None:   # a sign-in form instead: the cookie failed
            errors.append("the Train page did not open for the signed-in session")
        deadline = time.monotonic() + seconds
        tasks = [asyncio.create_task((map_ws_session if k % 4 == 3 else decoder_ws_session)(
            url, deadline, record, errors, cookies[k])) for k in range(sessions)]
        _, pending = await asyncio.wait(tasks, timeout=seconds + 180)
        for task in pending:
            task.cancel()
            errors.append(f"a session was still busy {seconds + 180:g} s after the start: cancelled")
        if pending:
            await asyncio.wait(pending, timeout=30)
    return times, errors


def percentile(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sessions", type=int, default=20)
    ap.add_argument("--seconds", type=float, default=60.0, help="how long the sessions act")
    ap.add_argument("--jobs", type=int, default=None,
                    help="jobs queued (2 train at once; default: one per session with --client ws, else 5)")
    ap.add_argument("--job-epochs", type=int, default=2)
    ap.add_argument("--job-images", type=int, default=10_000)
    ap.add_argument("--job-timeout", type=float, default=600.0, help="how long to wait for the jobs to finish")
    ap.add_argument("--client", choices=("browser", "ws"), default="browser",
                    help="browser: a chromium context per session (on this machine's cores); ws: a Streamlit "
                         "websocket client per session, in this process (bench/st_ws_client.py)")
    args = ap.parse_args(argv)
    reason = missing_browser_reason() if args.client == "browser" else None
    if reason:
        print(f"cannot run: {reason}")
        return 2

    from jobs.table import FINISHED, JobTable
    from jobs.worker import settings_to_dict
    from vae_core import ModelConfig, TrainConfig, locate_dataset

    from jobs.classroom import COOKIE, Roster, cookie_value
    from jobs.limits import ClassSettings

    if args.jobs is None:
        args.jobs = args.sessions if args.client == "ws" else 5
    runs = Path(tempfile.mkdtemp(prefix="latent_lab_class_")) / "runs"
    env = {"LATENT_LAB_MODEL_DIRS": os.pathsep.join([str(runs), str(ROOT / "checkpoints")]),
           "LATENT_LAB_MAX_RUNS": "2", "LATENT_LAB_MAX_QUEUED": str(max(20, args.jobs))}
    table = JobTable(runs / "jobs.sqlite")
    cookies, owners = None, [f"bench-{k}" for k in range(args.jobs)]
    if args.client == "ws":   # a class: a class code, and a named, signed-in student per session
        klass = ClassSettings(code="bench-class", teacher_code="bench-teacher")
        config = runs.parent / "latent_lab.toml"
        config.write_text(f'[class]\ncode = "{klass.code}"\nteacher_code = "{klass.teacher_code}"\n')
        env["LATENT_LAB_CONFIG"] = str(config)
        roster = Roster(table)
        people = [roster.sign_in(f"Student {k + 1}", klass.code, klass) for k in range(args.sessions)]
        people.append(roster.sign_in("Teacher", klass.teacher_code, klass))
        cookies = [{COOKIE: cookie_value(p.key, secret)} for p, secret in people]
        owners = [people[k % args.sessions][0].key for k in range(args.jobs)]
    server = StreamlitServer(env, log=runs.parent / "streamlit.log").start()
    sampler = None
    try:
        server.wait_listening()
        sampler = Sampler(server.proc.pid)
        sampler.start()
        data = locate_dataset("mnist")
        settings = settings_to_dict(ModelConfig(hidden_dims=(256, 256)),
                                    TrainConfig(epochs=args.job_epochs, train_limit=args.job_images, eval_limit=2000))
        settings["data_root"] = str(data.parent) if data else None
        job_ids = [table.add(owner, settings, owner_name=owner) for owner in owners]
        print(f"{args.sessions} {'websocket' if args.client == 'ws' else 'browser'} sessions for {args.seconds:g} s; {args.jobs} jobs queued ({args.job_epochs} epochs "
              f"on {args.job_images:,} images each, 2 at once); load average {os.getloadavg()[0]:.2f}", flush=True)
        t_sessions = time.monotonic()
        drive = drive_ws if args.client == "ws" else drive_browser
        times, errors = asyncio.run(drive_ws(server.url, args.sessions, args.seconds, cookies) if args.client == "ws"
                                    else drive(server.url, args.sessions, args.seconds))
        sessions_seconds = time.monotonic() - t_sessions
        load_after_sessions = os.getloadavg()
        cpu_sessions = {g: sampler.cpu_used(g) for g in ("server", "workers", "clients")}
        mid_states = [table.get(j).status for j in job_ids]
        # the runs that had started by then are waited for (within --job-timeout); the rest leave the line
        started = [j for j in job_ids if table.get(j).started]
        for j in job_ids:
            if j not in started and table.get(j).status == "queued":
                table.update(j, status="stopped", finished=time.time(), message="the bench ended")
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
    counts = {s: mid_states.count(s) for s in dict.fromkeys(mid_states)}
    print("job states when the sessions ended: " + ", ".join(f"{n} {s}" for s, n in counts.items()))
    t0 = min(r.created for r in final)
    for k, r in enumerate(final):
        if not r.started:
            continue
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
        who = "this script's websocket sessions" if args.client == "ws" else "chromium, playwright and this script"
        print("CPU seconds while the sessions ran: " + ", ".join(f"{g} {v:.0f}" for g, v in cpu_sessions.items())
              + f" (clients: {who})"
              + f" (of {2 * sessions_seconds:.0f} available on 2 cores)")
        actions = sum(len(v) for k, v in times.items() if "step" in k and "run finished" not in k
                      or "click" in k and "run finished" not in k)
        if actions:
            print(f"server CPU per action: {1000 * cpu_sessions['server'] / actions:.0f} ms "
                  f"({cpu_sessions['server']:.1f} s over {actions} actions: slider steps and map clicks; page opens, "
                  "the Train page's polling and the scheduler thread are in the server's CPU too)")
    print(f"load average now: {', '.join(f'{v:.1f}' for v in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
