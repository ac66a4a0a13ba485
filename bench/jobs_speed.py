"""Training as jobs, timed: Start to the first training step, the in-app default run next to the CLI's, and
the Decoder's server sliders while another tab trains.

    python bench/jobs_speed.py                 # the Train page's defaults (2-D VAE, all MNIST, 4 epochs)
    python bench/jobs_speed.py --tiny          # 1 epoch on 1,000 images, few repeats: checks the script runs
    python bench/jobs_speed.py --no-browser    # (1) and (2) only

(1) service: jobs.api.JobService as the page uses it, the fork server warm (torch imported, MNIST in memory):
    from submit() to a polled snapshot that shows step >= 1, and where that time goes, from the wall-clock
    stamps the job carries: submit -> the worker has the task (the scheduler's pick-up, the fork, the
    unpickling) -> data ready -> model built -> first step done; the rest is the scheduler's 0.2 s collection
    tick and this script's 0.1 s polling.
(2) runs the same ModelConfig/TrainConfig as a job (submit to "finished", the worker's result file written)
    and as `python -m vae_core train ... --eval-samples 0 --threads T` (start to exit).
(3) browser (`python -m streamlit run app.py` on 127.0.0.1, Debian chromium): on the Train page with its
    default settings (but 30 epochs), the time in the page (performance.now) from the click on "Start training" to the
    progress bar's text showing "step N/..." with N >= 1. That includes the click's round trip, the page's
    two script runs (the click's and the rerun after submit), the job table, the scheduler, the worker's
    start and first step, and the page's polling (0.2 s until the first step). The first click warms the
    page up and is not counted. Then the Decoder's server sliders ("Decode in the browser" off), in a second
    browser context (another tab's session): keyboard steps -> new decoded image, timed as bench/app_speed.py
    (a), first with nothing training, then while the Train tab's run (the default settings but 30 epochs) trains.
Prints the figures and the load average; take figures on a quiet machine.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def settings(tiny: bool):
    from vae_core import ModelConfig, TrainConfig
    model = ModelConfig(variant="vae", condition="none", latent_dim=2, hidden_dims=(256, 256))
    train = TrainConfig(epochs=1 if tiny else 4, batch_size=128, lr=1e-3, train_limit=1000 if tiny else 0,
                        eval_limit=2000)
    return model, train


STAGES = (("received", "to the worker"), ("data", "data"), ("model", "model"), ("first_step", "first step"))


def time_first_step(service, model, train, repeats: int) -> list[tuple[float, dict]]:
    """(seconds from submit to a snapshot with step >= 1, the job's start-up stamps) per repeat."""
    out = []
    for _ in range(repeats):
        service.backend.spare_ready(timeout=120)
        t0 = time.perf_counter()
        job = service.submit(model, train.replace(epochs=50), "bench")
        snap = service.wait(job, 120, until=lambda s: s.global_step > 0)
        out.append((time.perf_counter() - t0, snap.timings))
        service.stop(job)
        service.wait(job, 60)
    return out


def breakdown(timings: dict) -> str:
    """'to the worker 0.05 s, data 0.01 s, ...': the gaps between the job's start-up stamps."""
    parts, last = [], timings.get("submitted")
    for key, name in STAGES:
        if timings.get(key) and last:
            parts.append(f"{name} +{timings[key] - last:.2f}")
            last = timings[key]
    return ", ".join(parts)


def time_app_run(service, model, train) -> tuple[float, dict]:
    service.backend.spare_ready(timeout=120)
    t0 = time.perf_counter()
    job = service.submit(model, train, "bench")
    snap = service.wait(job, 3600)
    wall = time.perf_counter() - t0
    last = snap.epoch_records[-1]["eval"]["loss"] if snap.epoch_records else float("nan")
    return wall, {"status": snap.status, "train_seconds": snap.elapsed, "test_loss": last}


def time_cli_run(model, train, threads: int, out: Path) -> float:
    cmd = [sys.executable, "-m", "vae_core", "train", "--variant", model.variant, "--latent-dim", str(model.latent_dim),
           "--hidden-dims", *map(str, model.hidden_dims), "--epochs", str(train.epochs),
           "--batch-size", str(train.batch_size), "--lr", str(train.lr), "--train-limit", str(train.train_limit),
           "--eval-limit", str(train.eval_limit), "--eval-samples", "0", "--threads", str(threads), "--quiet",
           "--out", str(out)]
    t0 = time.perf_counter()
    subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True)
    return time.perf_counter() - t0


# Arms a timer: from the next click (capture phase) to the progress bar's text showing "step N/" with N >= 1 and
# an ETA (a finished run's bar, still on the page while it reruns, says "took" instead).
# Resolves with the ms, or NaN after 60 s.
FIRST_STEP_JS = """() => {
  window.__t0 = null;
  document.addEventListener('click', () => { window.__t0 ??= performance.now(); }, {once: true, capture: true});
  window.__first = new Promise(resolve => {
    const t = setTimeout(() => { obs.disconnect(); resolve(NaN); }, 60000);
    const check = () => {
      const bar = document.querySelector("[data-testid='stMain'] [data-testid='stProgress']");
      const text = bar ? bar.innerText : '', m = text.match(/step ([0-9,]+)\\//);
      if (window.__t0 !== null && m && +m[1].replace(/,/g, '') > 0 && text.includes('ETA')) {  // a running job's
        obs.disconnect(); clearTimeout(t); resolve(performance.now() - window.__t0); }
    };
    const obs = new MutationObserver(check);
    obs.observe(document.body, {subtree: true, childList: true, characterData: true});
  });
}"""


class CpuMeter:
    """CPU seconds used since it was made by the server process, by its descendants (fork server, workers)
    and by this script's other descendants (chromium and playwright's driver)."""

    def __init__(self, server_pid: int):
        sys.path.insert(0, str(ROOT / "bench"))
        from classroom_load import cpu_seconds, descendants
        self._cpu, self._descendants, self.server_pid = cpu_seconds, descendants, server_pid
        self.start = self._now()

    def _now(self) -> dict[str, float]:
        tree = self._descendants(self.server_pid)
        browser = [p for p in self._descendants(os.getpid()) if p != self.server_pid and p not in tree]
        return {"server": self._cpu(self.server_pid), "workers": sum(map(self._cpu, tree)),
                "browser": sum(map(self._cpu, browser))}

    def used(self) -> dict[str, float]:
        now = self._now()
        return {k: now[k] - self.start[k] for k in now}


def browser_figures(repeats: int, moves: int, pause: float) -> dict:
    """(3): clicks on Start -> first step shown, and Decoder keyboard steps idle and while a run trains."""
    sys.path.insert(0, str(ROOT / "tests" / "e2e"))
    sys.path.insert(0, str(ROOT / "bench"))
    from app_speed import DECODED, set_browser_decoding, slider_latencies
    from harness import VIEWPORT, StreamlitServer, go_to, launch_chromium, wait_idle
    from playwright.sync_api import sync_playwright

    runs = Path(tempfile.mkdtemp(prefix="latent_lab_jobs_speed_")) / "runs"
    env = {"LATENT_LAB_MODEL_DIRS": os.pathsep.join([str(ROOT / "checkpoints"), str(runs)])}
    out: dict = {"first_step_ms": []}
    server = StreamlitServer(env, log=runs.parent / "streamlit.log").start()
    try:
        server.wait_listening()
        with sync_playwright() as p:
            browser = launch_chromium(p)
            train = browser.new_context(viewport=VIEWPORT).new_page()
            train.goto(f"{server.url}/train")
            start = train.get_by_role("button", name="Start training")
            stop = train.get_by_role("button", name="Stop", exact=True)
            start.wait_for(timeout=60_000)
            wait_idle(train)
            epochs = train.get_by_label("Epochs")   # runs long enough to outlast the Decoder's measurement
            epochs.fill("30")
            epochs.press("Enter")
            wait_idle(train)
            for k in range(repeats + 1):  # the first one warms the page and the job service up
                train.wait_for_function("() => { const b = [...document.querySelectorAll('button')].find("
                                        "b => b.innerText.includes('Start training')); return b && !b.disabled; }",
                                        timeout=60_000)
                wait_idle(train)
                train.evaluate(FIRST_STEP_JS)
                start.click()
                ms = train.evaluate("() => window.__first")
                if k:
                    out["first_step_ms"].append(ms)
                stop.click()
                wait_idle(train)

            decoder = browser.new_context(viewport=VIEWPORT).new_page()   # another tab: its own session
            decoder.goto(f"{server.url}/decoder")
            decoder.locator("h1").first.wait_for(timeout=60_000)
            wait_idle(decoder)
            set_browser_decoding(decoder, False)
            decoder.locator(DECODED).first.wait_for()
            wait_idle(decoder)
            cpu = CpuMeter(server.proc.pid)
            out["idle"] = slider_latencies(decoder, moves, pause)
            out["idle_cpu"] = cpu.used()

            train.evaluate(FIRST_STEP_JS)
            start.click()
            train.evaluate("() => window.__first")
            t0 = time.perf_counter()
            cpu = CpuMeter(server.proc.pid)
            out["training"] = slider_latencies(decoder, moves, pause)
            out["training_cpu"] = cpu.used()
            out["training_seconds"] = time.perf_counter() - t0
            text = train.locator("[data-testid='stMain'] [data-testid='stProgress']").first.inner_text()
            out["still_training"] = "ETA" in text
            out["progress_text"] = text.strip().splitlines()[0]
            # the same run, its tab on the Home page: this browser no longer redraws the run's charts every second
            go_to(train, "Home", heading="Latent Lab")   # in the same session (a new URL would be a new owner)
            wait_idle(train)
            cpu = CpuMeter(server.proc.pid)
            out["training_away"] = slider_latencies(decoder, moves, pause)
            out["training_away_cpu"] = cpu.used()
            go_to(train, "Train", heading="Train a model")
            stop.wait_for(timeout=60_000)
            wait_idle(train)
            out["still_training_away"] = "ETA" in train.locator(
                "[data-testid='stMain'] [data-testid='stProgress']").first.inner_text()
            stop.click()
            wait_idle(train)
            browser.close()
    finally:
        server.stop()
    return out


def ms_summary(values: list[float], missed: int) -> tuple[str, float]:
    sys.path.insert(0, str(ROOT / "bench"))
    from app_speed import percentile
    if not values:
        return f"no update seen ({missed} timed out)", float("nan")
    p95 = percentile(values, 0.95)
    return (f"{len(values)} steps, median {statistics.median(values):.0f} ms, p95 {p95:.0f} ms"
            + (f", {missed} timed out" if missed else "")), p95


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tiny", action="store_true", help="1 epoch on 1,000 images (a check that it runs)")
    p.add_argument("--repeats", type=int, default=3, help="Start-to-first-step measurements (service and browser)")
    p.add_argument("--moves", type=int, default=30, help="Decoder keyboard steps, idle and while training")
    p.add_argument("--pause", type=float, default=0.3, help="seconds between two Decoder steps")
    p.add_argument("--no-cli", action="store_true", help="skip (2), the in-app run against the CLI")
    p.add_argument("--no-browser", action="store_true", help="skip (3), the browser figures")
    args = p.parse_args(argv)

    from jobs.api import JobService
    from jobs.limits import read_limits

    limits = read_limits()
    model, train = settings(args.tiny)
    print(f"settings: {model.describe()}, hidden {model.hidden_dims}; {train.epochs} epochs, "
          f"{train.train_limit or 'all'} images, batch {train.batch_size}; worker threads {limits.worker_threads}, "
          f"nice {limits.worker_nice}; load average {os.getloadavg()[0]:.2f}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        service = JobService(Path(tmp) / "runs", limits)
        try:
            t0 = time.perf_counter()
            while service.backend is None and time.perf_counter() - t0 < 30:
                time.sleep(0.05)
            t_warm = time.perf_counter()
            service.backend.spare_ready(timeout=120)
            print(f"fork server warm (torch, MNIST) {time.perf_counter() - t_warm:.1f} s after the service", flush=True)
            firsts = time_first_step(service, model, train, 1 if args.tiny else args.repeats)
            print("(1) service, submit -> snapshot with step >= 1: "
                  + ", ".join(f"{s:.2f} s" for s, _ in firsts), flush=True)
            for s, stamps in firsts:
                print(f"    {s:.2f} s: {breakdown(stamps)}")
            if not args.no_cli:
                app_wall, info = time_app_run(service, model, train)
        finally:
            service.shutdown()
        if not args.no_cli:
            cli_wall = time_cli_run(model, train, limits.worker_threads, Path(tmp) / "cli.safetensors")
            print(f"(2) in-app run: {app_wall:.1f} s wall ({info['train_seconds']:.1f} s of training steps), "
                  f"{info['status']}, test loss {info['test_loss']:.1f} nats")
            print(f"    CLI run:    {cli_wall:.1f} s wall")
            print(f"    ratio app/CLI: {app_wall / cli_wall:.2f}; load average {os.getloadavg()[0]:.2f}", flush=True)
    if not args.no_browser:
        got = browser_figures(1 if args.tiny else args.repeats, 5 if args.tiny else args.moves, args.pause)
        print("(3) browser, click on Start -> progress shows step >= 1: "
              + ", ".join(f"{v / 1000:.2f} s" for v in got["first_step_ms"]))
        idle, idle_p95 = ms_summary(*got["idle"])
        busy, busy_p95 = ms_summary(*got["training"])
        away, away_p95 = ms_summary(*got["training_away"])

        def cpu(key):
            return "CPU s: " + ", ".join(f"{k} {v:.1f}" for k, v in got[key].items())
        print(f"    Decoder keyboard step, idle: {idle} ({cpu('idle_cpu')})")
        print(f"    Decoder keyboard step, another tab training and showing its live charts: {busy} "
              f"({got['training_seconds']:.0f} s, {cpu('training_cpu')}; the run "
              f"{'was still training' if got['still_training'] else 'had ENDED'} at the end: {got['progress_text']})")
        print(f"    p95 ratio training/idle: {busy_p95 / idle_p95:.2f} (target <= 1.5)")
        print(f"    the same, the training tab on the Home page: {away} ({cpu('training_away_cpu')}; "
              f"{'still training' if got['still_training_away'] else 'the run had ENDED'}); p95 ratio "
              f"{away_p95 / idle_p95:.2f}")
    print(f"load average now: {', '.join(f'{v:.2f}' for v in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
