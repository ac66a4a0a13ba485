"""Command line: python -m vae_core train | eval | info | diagnose | variants | classifier | import.

    python -m vae_core train --variant cvae --condition label --epochs 20 --out checkpoints/cvae.safetensors
    python -m vae_core eval checkpoints/cvae.safetensors --json
    python -m vae_core info checkpoints/cvae.safetensors
    python -m vae_core diagnose checkpoints/cvae.safetensors --limit 1000 --json
    python -m vae_core variants --markdown        # the README's variant table, from the registry
    python -m vae_core import --from fc-vae vae.pt --out runs/pytorch-vae.safetensors
    python -m vae_core import --module my_vae.py:build --weights my.pt --out runs/my-vae.safetensors

(docs/RESULTS.md is written by `python -m reports.results`, a tool outside the core.)

Bad arguments or bad files exit with status 2 and one line on stderr, no traceback.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import shlex
import sys
import time

import torch

from .atomic import check_writable_file
from .checkpoints import SUFFIX, CheckpointError, file_sha256, load_checkpoint, read_record, save_checkpoint
from .config import MAX_SEED, ModelConfig, TrainConfig
from .data import DatasetUnavailable, load_dataset
from .evaluation import checkpoint_metrics, encode_dataset, evaluation_work
from .formatting import format_count, format_duration, format_metric, metric_label, quadrant_block_name
from .models import VARIANTS, LatentModel, build_model, variant_table
from .record import record_from_fit
from .training import Callback, prepare_data, fit

# Every failure a user can cause, or that a machine can hit, is one 'error:' line and exit status 2
USER_ERRORS = (ValueError, CheckpointError, DatasetUnavailable, OSError, RuntimeError, MemoryError,
               RecursionError)
# Training holds the weights, their gradients and two Adam moments: 100 million weights take about 1.6 GB
MAX_TRAIN_PARAMETERS = 100_000_000
MAX_SAMPLES = 10_000

# Help for the flags made from ModelConfig and TrainConfig fields (the default is added to each)
FIELD_HELP = {
    "condition": "what the model is given: none, label (the digit class) or quadrants (part of the image)",
    "latent_dim": "size of the latent code z (1 to 64; 2 gives the maps)",
    "hidden_dims": "hidden layer sizes of each network, e.g. --hidden-dims 512 512",
    "prior": "p(z|x) of a conditional model: learned (Sohn et al.) or standard N(0, I)",
    "alpha": "hybrid weight: alpha * L_cvae + (1 - alpha) * L_gsnn, in [0, 1]",
    "quadrants": "visible quadrants for the quadrants condition: 1, 2, 3, or 0 for a random count per image",
    "image_size": "image side in pixels (28 for MNIST)",
    "num_classes": "number of label classes (10 for MNIST)",
    "dropout": "dropout probability after every hidden layer of every network while training, in [0, 0.9] "
               "(0: none)",
    "encoder": "recognition net: mlp, or conv (three stride-2 convolutions, then an MLP of --hidden-dims); "
               "the decoder stays an MLP",
    "dataset": "data set: mnist or fashion-mnist",
    "epochs": "passes over the training images",
    "batch_size": "images per optimiser step",
    "lr": "Adam learning rate",
    "beta": "weight of the KL term (1 gives the true ELBO; the test figures always use 1)",
    "kl_warmup_epochs": "raise the KL weight linearly from 0 to beta over this many epochs (0: off)",
    "seed": f"random seed, 0 to {MAX_SEED}",
    "val_fraction": "share of the training split held out for validation and early stopping (0: use the test split)",
    "train_limit": "train on the first N images only (0: all)",
    "eval_limit": "evaluate each epoch on at most N images (0: all)",
    "keep_best": "at the end, keep the weights of the epoch with the lowest evaluation loss",
    "patience": "early stopping: end training once the evaluation loss has not improved for this many epochs "
                "(0: off; needs an evaluation set, e.g. --val-fraction 0.1; --epochs is then an upper bound)",
    "lr_decay": "learning-rate factor per epoch, in (0, 1]",
    "device": "auto, cpu or cuda",
    "weight_decay": "decoupled weight decay (AdamW), in [0, 10] (0: plain Adam)",
    "ema_decay": "keep an exponential moving average of the weights with this decay per step, in [0, 1) "
                 "(0: off); validation, --keep-best and the saved file then use the averaged weights",
    "freeze_decoder": "train only the encoder (recognition net); the decoder and prior keep their weights, so "
                      "only the ELBO tightens (use with --init-from)",
}


class CliError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, no usage dump
        raise CliError(f"{message} (see 'python -m vae_core {self.prog.split()[-1]} --help')")


def _bool(text: str) -> bool:
    if text.lower() in ("1", "true", "yes", "on"):
        return True
    if text.lower() in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def _int_in(lo: int, hi: int):
    """An argparse type: a whole number from lo to hi, else a sentence."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if not lo <= value <= hi:
            raise argparse.ArgumentTypeError(f"must be a whole number from {lo:,} to {hi:,}; got {text}")
        return value
    return parse


def _float_in(lo: float, hi: float = math.inf):
    """An argparse type: a finite number from lo to hi, else a sentence."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not (math.isfinite(value) and lo <= value <= hi):
            upper = "" if hi == math.inf else f" and at most {hi:g}"
            raise argparse.ArgumentTypeError(f"must be a number of at least {lo:g}{upper}; got {text}")
        return value
    return parse


def _text_up_to(limit: int):
    """An argparse type: text of at most `limit` characters (checked before training, not when saving)."""
    def parse(text: str) -> str:
        if len(text) > limit:
            raise argparse.ArgumentTypeError(f"must be at most {limit} characters; got {len(text):,}")
        return text
    return parse


# Flags whose range the CLI checks itself (torch fails on these with an unreadable error, or not at all)
FIELD_TYPES = {"seed": _int_in(0, MAX_SEED), "beta": _float_in(0, 1e6)}


def _variant_default(field: str) -> str:
    """What a per-variant default (a field whose default is None) is, read from the registry when asked, e.g.
    "the variant's: 1, or 4 for beta-vae"."""
    values = {name: getattr(v, f"default_{field}") for name, v in VARIANTS.items()}
    common = max(set(values.values()), key=list(values.values()).count)
    others = [f"{value:g} for {name}" for name, value in values.items() if value != common]
    return f"the variant's: {common:g}" + (f", or {', '.join(others)}" if others else "")


def _add_config_flags(parser: argparse.ArgumentParser, cls, skip=()) -> None:
    """One flag per dataclass field (--latent-dim, --hidden-dims 512 512, ...), defaults from the class."""
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        flag = "--" + f.name.replace("_", "-")
        default = f.default
        text = FIELD_HELP.get(f.name, f.name.replace("_", " "))
        if isinstance(default, tuple):
            parser.add_argument(flag, type=int, nargs="+", default=list(default),
                                help=f"{text} (default: {' '.join(map(str, default))})")
        elif isinstance(default, bool):  # a plain flag; 'true' / 'false' after it are still accepted
            parser.add_argument(flag, type=_bool, nargs="?", const=True, default=default,
                                help=f"{text} (off unless given)" if not default else f"{text} (default: on)")
        elif default is None:  # a per-variant default (TrainConfig.beta): the registry says what it is
            parser.add_argument(flag, type=FIELD_TYPES[f.name], default=None,
                                help=f"{text} (default: {_variant_default(f.name)})")
        elif f.name == "variant":  # the registry's list, so a new variant shows up here by itself
            listing = "; ".join(f"{name}: {v.description}" for name, v in VARIANTS.items())
            parser.add_argument(flag, default=default, choices=list(VARIANTS), metavar="VARIANT",
                                help=f"{listing} (default {default!r})")
        else:
            parser.add_argument(flag, type=FIELD_TYPES.get(f.name, type(default)), default=default,
                                help=f"{text} (default: {default})")


def _config_from(args, cls):
    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(cls) if hasattr(args, f.name)}
    return cls.from_dict(values)


class ProgressBar(Callback):
    """tqdm bar over all steps, with loss, images/s and ETA; also enforces --max-seconds."""

    def __init__(self, total: int, max_seconds: float = 0, quiet: bool = False):
        from tqdm import tqdm
        self.bar = tqdm(total=total, unit="step", dynamic_ncols=True, disable=quiet)
        self.max_seconds, self.elapsed = max_seconds, 0.0

    def on_step(self, info):
        self.elapsed = info.elapsed
        self.bar.update(1)
        if info.step % 20 == 0:
            self.bar.set_postfix(epoch=info.epoch + 1, loss=f"{info.loss:.1f}", img_s=f"{info.images_per_sec:,.0f}")

    def on_epoch(self, info):
        if info.eval is not None:
            self.bar.write(f"epoch {info.epoch + 1}/{info.epochs}: train loss {info.train['loss']:.2f}, "
                           f"eval loss {info.eval['loss']:.2f} (recon {info.eval['recon']:.2f}, "
                           f"kl {info.eval['kl']:.2f}), {info.images_per_sec:,.0f} images/s")

    def should_stop(self):
        return bool(self.max_seconds) and self.elapsed >= self.max_seconds

    def close(self):
        self.bar.close()


def count_parameters(config: ModelConfig) -> int:
    """The number of weights of a model, counted without allocating them (on torch's meta device)."""
    with torch.device("meta"):
        return LatentModel(config).num_parameters()


def check_model_size(config: ModelConfig) -> None:
    n = count_parameters(config)
    if n > MAX_TRAIN_PARAMETERS:
        raise ValueError(f"a {config.describe()} model with hidden layers {' x '.join(map(str, config.hidden_dims))} "
                         f"has {n:,} weights, more than the {MAX_TRAIN_PARAMETERS:,} this command trains "
                         "(training needs about 16 bytes per weight); use fewer or smaller hidden layers")


def cmd_train(args) -> int:
    model_cfg = _config_from(args, ModelConfig)
    train_cfg = _config_from(args, TrainConfig).for_variant(model_cfg.variant)  # no --beta: the variant's
    out = check_writable_file(args.out, "--out", suffix=SUFFIX)   # before any work, not after the training
    check_model_size(model_cfg)
    data = prepare_data(train_cfg, args.data_dir)
    model = build_model(model_cfg, seed=train_cfg.seed)
    parent = None
    if args.init_from:
        if read_record(args.init_from).is_onnx:
            raise ValueError(f"--init-from {args.init_from} holds ONNX graphs of a model trained elsewhere; "
                             "training continues only from Latent Lab's own models")
        start, parent = load_checkpoint(args.init_from)
        parent_sha = file_sha256(args.init_from)  # the file as it was read, before --out may replace it
        if start.config != model_cfg:
            raise ValueError(f"--init-from {args.init_from} holds a {start.config.describe()} model with "
                             f"{start.config.to_dict()}, not the {model_cfg.to_dict()} asked for")
        model.load_state_dict(start.state_dict())
    kl_weight = f", β = {train_cfg.beta:g}" if VARIANTS[model_cfg.variant].uses_kl else ""
    print(f"training {model_cfg.describe()} on {train_cfg.dataset} ({len(data.train):,} images, "
          f"{model.num_parameters():,} parameters{kl_weight})", file=sys.stderr)
    bar = ProgressBar(train_cfg.epochs * -(-len(data.train) // train_cfg.batch_size), args.max_seconds, args.quiet)
    started = time.time()
    try:
        result = fit(model, data, train_cfg, [bar], threads=args.threads or "auto")
    finally:
        bar.close()
    wall = time.time() - started
    print(f"{result.status}: {result.message} ({result.images_per_sec:,.0f} images/s)", file=sys.stderr)
    fields = {"wall_seconds": round(wall, 2), "command": "python -m vae_core " + shlex.join(args.argv)}
    if not result.has_good_state:  # never write (or replace --out with) weights that training did not make good
        print("nothing was saved: the run ended without finite trained weights"
              + (f"; {out} was left as it was" if out.exists() else ""), file=sys.stderr)
        return 1
    else:
        test = load_dataset(train_cfg.dataset, "test", args.data_dir)
        if args.float16:  # evaluate exactly the weights that will be stored, and record what rounding cost
            fields["float16_max_abs_diff"] = round_to_float16(model, test)
        if args.eval_samples > 0:
            # the metrics on the first 1,000 test images too, so a test can re-check the stored figures cheaply
            # (the same numbers when --test-limit is 1000, so they are computed once then)
            again = args.test_limit != CHECK_IMAGES
            work = (_metrics_work(model.config, len(test), args.eval_samples, args.test_limit)
                    + again * _metrics_work(model.config, len(test), args.eval_samples, CHECK_IMAGES))
            with EvalBar(work, args.quiet) as bar:
                fields["metrics"] = _metrics(model, test, args.eval_samples, args.test_limit, bar.update)
                fields["metrics_test1000"] = (_metrics(model, test, args.eval_samples, CHECK_IMAGES, bar.update)
                                              if again else fields["metrics"])
            print(json.dumps(fields["metrics"], indent=1), file=sys.stderr)
        extras = {}
        if model_cfg.has_2d_map:
            mu, _, labels = encode_dataset(model, test)
            extras = {"test_latent_means": mu, "test_labels": labels}
        record = record_from_fit(model_cfg, train_cfg, result, name=args.name or out.stem, **fields)
        if parent is not None:  # the chain: the parent's own chain, then the parent (command, file hash, history)
            record = record.continued_from(parent, parent_sha, str(args.init_from))
        path = save_checkpoint(out, model, record, extras=extras,
                               dtype=torch.float16 if args.float16 else torch.float32)
        print(f"saved {path}", file=sys.stderr)
    return 0 if result.ok else 1


@torch.no_grad()
def round_to_float16(model, test) -> float:
    """Round the weights to float16 in place; return the largest change of a reconstructed pixel
    probability over 500 test images (the issue's bar for float16 storage is 1e-3)."""
    from .data import make_batch
    model.eval()
    sub = test.subset(0, 500)
    y, x = make_batch(model.config, sub.images.to(model.device), sub.labels.to(model.device), quadrants=1)
    before = model.reconstruct(y, x)
    for p in model.parameters():
        p.copy_(p.half().float())
    return float((model.reconstruct(y, x) - before).abs().max())


CHECK_IMAGES = 1000  # the test images of `metrics_test1000`, the figures tests/vae_core re-evaluates
QUICK_TEST_IMAGES = 1000  # train's default --test-limit: a quick run stays quick; 0 gives the full test set


class EvalBar:
    """A tqdm bar on stderr over the final likelihood evaluation; its update() is the `progress` callback
    that vae_core.evaluation calls (in decoded samples), so the core itself never prints."""

    def __init__(self, total: int, quiet: bool = False):
        from tqdm import tqdm
        self.bar = tqdm(total=total, desc="evaluating", unit="sample", unit_scale=True, dynamic_ncols=True,
                        file=sys.stderr, disable=quiet, mininterval=1.0)

    def update(self, n: int) -> None:
        self.bar.update(n)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.bar.close()


def _metrics_work(cfg, n_test: int, samples: int, limit: int = 0) -> int:
    """The total of what _metrics reports to its progress callback (see vae_core.evaluation_work)."""
    n = min(limit, n_test) if limit else n_test
    counts = 3 if cfg.condition == "quadrants" and cfg.quadrants == 0 else 1  # checkpoint_metrics: q1, q2, q3
    return counts * evaluation_work(cfg, n, samples)


def _metrics(model, test, samples: int, limit: int = 0, progress=None) -> dict:
    """checkpoint_metrics on the first `limit` test images (0: all), with their count as 'test_images' (as a
    Train-page run records it), so a reader never sets figures from different test sets side by side unawares."""
    images = test.subset(0, limit) if limit else test
    return {**checkpoint_metrics(model, images, samples, progress=progress), "test_images": len(images)}


def cmd_eval(args) -> int:
    model, record = load_checkpoint(args.checkpoint)
    test = load_dataset(record.dataset, "test", args.data_dir)
    with EvalBar(_metrics_work(model.config, len(test), args.samples, args.limit), args.quiet) as bar:
        metrics = _metrics(model, test, args.samples, args.limit, bar.update)
    if args.json:
        print(json.dumps({"checkpoint": str(args.checkpoint), "model": record.model_config.describe(),
                          "dataset": record.dataset, "metrics": metrics}))
    else:
        print(f"{args.checkpoint}: {record.model_config.describe()} on {record.dataset}")
        _print_metrics(metrics)
    return 0


def _print_metrics(metrics: dict, indent: str = "  ") -> None:
    """Each figure under its human name, with its unit (vae_core/formatting.py): '−ELBO (nats per image)
    134.33', 'samples S per image 1,000'."""
    flat = {k: v for k, v in metrics.items() if not isinstance(v, dict)}
    width = max((len(metric_label(k)) for k in flat), default=0)
    for k, v in metrics.items():
        if isinstance(v, dict):
            print(f"{indent}{quadrant_block_name(k)}:")
            _print_metrics(v, indent + "  ")
        else:
            print(f"{indent}{metric_label(k):{width}s}  {format_metric(k, v, unit=False)}")


def cmd_info(args) -> int:
    record = read_record(args.checkpoint)
    cfg = record.model_config
    print(f"{args.checkpoint}: {cfg.describe()}")
    print(f"  name         {record.display_name}")
    print(f"  data set     {record.dataset}")
    if record.source is not None:
        print(f"  source       {record.origin()}" + (f", sha256 {record.source.sha256}" if record.source.sha256 else "")
              + (f", code {record.source.code}" if record.source.code else ""))
    print(f"  model config {json.dumps(cfg.to_dict())}" + (" (the network is the file's ONNX graphs; hidden_dims, "
                                                            "dropout and encoder do not apply)" if record.is_onnx else ""))
    if record.train_config is not None:
        print(f"  train config {json.dumps(record.train_config.to_dict())}")
    for key, value in (("status", record.status), ("epochs", record.epochs_completed),
                       ("train time", record.train_seconds and format_duration(record.train_seconds)),
                       ("command", record.command)):
        if value not in (None, ""):
            print(f"  {key:12s} {value}")
    if record.metrics:
        images, samples = record.test_image_count(), record.samples
        print("  metrics" + (f" (on {format_count(images)} test images" if images is not None else
                             " (number of test images not recorded")
              + (f", S = {format_count(samples)}):" if samples is not None else "):"))
        _print_metrics(record.metrics, "    ")
    if record.lineage:
        _print_lineage(record)
    return 0


def _print_lineage(record) -> None:
    """The chain of runs the model came from, oldest first, and the commands that rebuild it."""
    print(f"  continued from {len(record.lineage)} earlier run{'s' * (len(record.lineage) != 1)} (oldest first):")
    if record.lineage[0].dropped_before:
        n = record.lineage[0].dropped_before
        print(f"    ({n} older run{'s' * (n != 1)} of the chain {'are' if n != 1 else 'is'} no longer recorded)")
    for i, a in enumerate(record.lineage, start=1):
        facts = [f for f in (a.status, a.epochs_completed is not None and f"{a.epochs_completed} epochs",
                             a.train_seconds and format_duration(a.train_seconds)) if f]
        print(f"    {i}. {a.file or a.name}" + (f" ({', '.join(facts)})" if facts else ""))
        print(f"       sha256   {a.sha256 or 'unknown (the file no longer exists)'}")
        if a.metrics:
            shown = {k: v for k, v in a.metrics.items() if k in ("neg_elbo", "nll_is") and not isinstance(v, dict)}
            if shown:
                print("       figures  " + ", ".join(f"{metric_label(k)} {format_metric(k, v, unit=False)}"
                                                   for k, v in shown.items()))
        if a.history.epochs:
            print(f"       history  {len(a.history.epochs)} epochs recorded")
        if a.reconstructed:
            print(f"       note     {a.reconstructed}")
    print("  rebuild with (in order):")
    for command in record.rebuild_commands:
        print(f"    {command}")


def cmd_diagnose(args) -> int:
    from tqdm import tqdm

    from .diagnostics import diagnose
    if args.samples < 1:
        raise ValueError(f"--samples must be at least 1; got {args.samples}")
    if args.limit < 0:
        raise ValueError(f"--limit must be 0 (all) or a positive number of images; got {args.limit}")
    model, record = load_checkpoint(args.checkpoint)
    cfg = record.model_config
    if args.quadrants and cfg.condition != "quadrants":
        raise ValueError(f"--quadrants applies to quadrant models only; this one is {cfg.describe()}")
    if args.quadrants not in (0, 1, 2, 3):
        raise ValueError(f"--quadrants must be 1, 2 or 3; got {args.quadrants}")
    dataset = record.dataset
    test = load_dataset(dataset, "test", args.data_dir)
    if args.limit:
        test = test.subset(0, args.limit)
    if len(test) < 2:
        raise ValueError("diagnostics need at least two test images (--limit 2 or more)")
    bar = tqdm(total=100, unit="%", file=sys.stderr, disable=args.quiet, dynamic_ncols=True,
               bar_format="{desc}: {percentage:3.0f}%|{bar}| {elapsed}<{remaining}")

    def progress(what: str, done: float) -> None:
        bar.set_description_str(what, refresh=False)
        target = min(bar.total, round(100 * done))
        if target >= bar.total:  # the end: close() draws the full bar, once (update() would draw it as well)
            bar.n = bar.total
        else:
            bar.update(max(0, target - bar.n))
    try:
        report = diagnose(model, test, samples=args.samples, quadrants=args.quadrants or None,
                          curve_images=min(args.curve_images, len(test)), progress=progress)
    finally:
        bar.close()
    report = {"checkpoint": str(args.checkpoint), "dataset": dataset, **report}
    if args.json:
        print(json.dumps(report))
    else:
        _print_diagnosis(report)
    return 0


def _print_diagnosis(r: dict) -> None:
    where = f" with {r['quadrants']} visible quadrants" if r.get("quadrants") else ""
    print(f"{r['checkpoint']}: {r['model']} on the first {r['images']:,} {r['dataset']} test images{where}")
    for note in r["notes"]:
        print(f"  note: {note}")
    if r["kl_per_dim"] is not None:
        order = sorted(range(len(r["kl_per_dim"])), key=lambda d: -r["kl_per_dim"][d])
        print(f"  KL per dimension (nats, largest first; total {r['kl']:.3f}):")
        print("    " + "  ".join(f"z{d + 1} {r['kl_per_dim'][d]:.3f}" for d in order))
    if r["active_units"] is not None:
        inactive = [f"z{d + 1}" for d, v in enumerate(r["posterior_mean_variance"]) if v <= r["active_threshold"]]
        print(f"  active units: {r['active_units']} of {r['latent_dim']} (variance over the data of the posterior "
              f"mean > {r['active_threshold']:g})" + (f"; inactive: {', '.join(inactive)}" if inactive else ""))
    stats = ("mean", "min", "q05", "q25", "median", "q75", "q95", "max")
    print(f"  per example (nats; importance sampling with S = {r['samples']}):")
    print("    " + f"{'':9s}" + "".join(f"{s:>9s}" for s in stats))
    for term, q in r["per_example"].items():
        print("    " + f"{term:9s}" + "".join(f"{q[s]:9.2f}" for s in stats))
    curve = r["is_vs_samples"]
    if curve is not None:
        print(f"  importance-sampled NLL against S (mean over the first {curve['images']} images):")
        print(f"    {'S':>6s} {'NLL':>9s} {'ESS':>8s} {'ESS/S':>6s}")
        for s, nll, ess in zip(curve["samples"], curve["nll"], curve["ess"]):
            print(f"    {s:6d} {nll:9.3f} {ess:8.1f} {ess / s:6.2f}")
    return 0


def cmd_variants(args) -> int:
    """The registered variants: one line each, or the README's Markdown table."""
    if args.markdown:
        print(variant_table(), end="")
        return 0
    for name, v in VARIANTS.items():
        beta = f"; default β {v.default_beta:g}" if v.uses_kl else ""
        print(f"{name:10s} {v.title}: {v.description}{beta}")
    return 0


def cmd_classifier(args) -> int:
    from .classifier import accuracy, save_classifier, train_classifier
    out = check_writable_file(args.out, "--out", suffix=SUFFIX)
    torch.set_num_threads(1)  # small convolutions: one thread is as fast here and leaves a core free
    started = time.time()
    train = load_dataset("mnist", "train", args.data_dir)
    model = train_classifier(train, epochs=args.epochs, seed=args.seed)
    acc = accuracy(model, load_dataset("mnist", "test", args.data_dir))
    meta = {"test_accuracy": acc, "epochs": args.epochs, "wall_seconds": round(time.time() - started, 1),
            "command": "python -m vae_core " + shlex.join(args.argv)}
    save_classifier(out, model, meta)
    print(f"test accuracy {100 * acc:.2f}%; saved {out}")
    return 0


def cmd_import(args) -> int:
    from . import importers as imp
    if (args.kind is None) == (args.module is None):
        raise CliError("give either --from KIND SRC or --module FILE.py:FUNCTION (see 'python -m vae_core import --help')")
    if args.kind is not None and args.src is None:
        raise CliError(f"--from {args.kind} needs the file to import: python -m vae_core import --from {args.kind} "
                       "SRC --out OUT.safetensors")
    if args.module is not None and args.src is not None:
        raise CliError("--module takes its weights with --weights, not as a file argument")
    out = check_writable_file(args.out, "--out", suffix=SUFFIX)
    history = imp.read_history(args.history) if args.history else None
    if args.kind is not None:
        model, source, description = imp.map_file(args.kind, args.src)
    else:
        obj, code = imp.load_module_model(args.module, args.weights)
        origin = args.weights or args.module.rpartition(":")[0]
        model = imp.onnx_model(obj, where=out.name)
        source = imp.source_of("onnx", origin, code)
        description = f"{type(obj).__qualname__} from {code}, trained elsewhere, carried as ONNX graphs"
    test = imp.test_set(args.dataset, args.data_dir)
    if test is None and (args.eval_samples > 0 or args.float16):
        load_dataset(args.dataset, "test", args.data_dir, download=False)  # raises DatasetUnavailable, a sentence
    print(f"{model.config.describe()}, {source.describe()} ({model.num_parameters():,} weights)", file=sys.stderr)
    work = 0
    if test is not None and args.eval_samples > 0:
        n = min(args.test_limit, len(test)) if args.test_limit else len(test)
        work = _metrics_work(model.config, n, args.eval_samples)
        work += 0 if args.test_limit == CHECK_IMAGES else _metrics_work(model.config, len(test), args.eval_samples,
                                                                         CHECK_IMAGES)
    with EvalBar(work, args.quiet or not work) as bar:
        path = imp.save_imported(model, source, out, dataset=args.dataset, name=args.name,
                                 description=args.description or f"Imported: {description}.",
                                 command="python -m vae_core " + shlex.join(args.argv), history=history, test=test,
                                 eval_samples=args.eval_samples, test_limit=args.test_limit, float16=args.float16,
                                 progress=bar.update)
    print(f"saved {path}", file=sys.stderr)
    print(f"open it with: {imp.open_command(path.parent.resolve())}", file=sys.stderr)
    return 0


def make_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="vae_core", description="Latent Lab model core: train, evaluate and inspect models.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    t = sub.add_parser("train", help="train a model and write a checkpoint")
    _add_config_flags(t, ModelConfig)
    _add_config_flags(t, TrainConfig)
    t.add_argument("--out", required=True, help="checkpoint file to write (.safetensors is added when missing); "
                   "checked before training starts")
    t.add_argument("--name", default="", type=_text_up_to(200), help="display name stored in the checkpoint (default: the file name)")
    t.add_argument("--data-dir", default=None, help="data folder (default: $VAE_DATA_DIR, then ./data)")
    t.add_argument("--init-from", default="", help="start from the weights of this checkpoint (same model "
                   "config): continue a run with new training settings")
    t.add_argument("--max-seconds", type=_float_in(0), default=0,
                   help="stop training after this many seconds of training (0: no limit)")
    t.add_argument("--eval-samples", type=_int_in(0, MAX_SAMPLES), default=100,
                   help="S, draws per image for the final likelihood estimates (default 100; 0: skip them)")
    t.add_argument("--test-limit", type=_int_in(0, 10**9), default=QUICK_TEST_IMAGES,
                   help=f"final metrics on the first N test images (default {QUICK_TEST_IMAGES}, which keeps a "
                        "quick run quick; 0: all 10,000, as the shipped checkpoints use)")
    t.add_argument("--float16", action="store_true", help="store the weights in float16 (half the file)")
    t.add_argument("--quiet", action="store_true", help="no progress bars (training and final evaluation)")
    t.add_argument("--threads", type=_int_in(0, max(1, os.cpu_count() or 1)), default=0,
                   help="CPU threads for torch, at most this machine's CPU count (0, the default: as many as the cores "
                        "other processes leave free, checked every 2 s)")
    e = sub.add_parser("eval", help="evaluate a checkpoint on its test set")
    e.add_argument("checkpoint", help="the checkpoint file")
    e.add_argument("--json", action="store_true", help="print one JSON object")
    e.add_argument("--samples", type=_int_in(1, MAX_SAMPLES), default=100,
                   help="S for the likelihood estimates (default 100)")
    e.add_argument("--limit", type=_int_in(0, 10**9), default=0,
                   help="evaluate on the first N test images (default 0: all)")
    e.add_argument("--quiet", action="store_true", help="no progress bar on stderr")
    e.add_argument("--data-dir", default=None, help="data folder (default: $VAE_DATA_DIR, then ./data)")
    d = sub.add_parser("diagnose", help="KL per latent dimension, active units, per-example losses, IS NLL against S")
    d.add_argument("checkpoint", help="the checkpoint file")
    d.add_argument("--json", action="store_true", help="print one JSON object")
    d.add_argument("--limit", type=_int_in(0, 10**9), default=0, help="use the first N test images (0: all)")
    d.add_argument("--samples", type=_int_in(1, MAX_SAMPLES), default=100,
                   help="S for the per-example importance-sampled NLL")
    d.add_argument("--quadrants", type=_int_in(0, 3), default=0,
                   help="visible quadrants for a quadrant model (default: the model's own, or 2 if it drew them)")
    d.add_argument("--curve-images", type=_int_in(1, 10_000), default=20,
                   help="images for the NLL-against-S curve (S up to 1,000)")
    d.add_argument("--quiet", action="store_true", help="no progress bar")
    d.add_argument("--data-dir", default=None, help="data folder (default: $VAE_DATA_DIR, then ./data)")
    i = sub.add_parser("info", help="print a checkpoint's config and metrics")
    i.add_argument("checkpoint", help="the checkpoint file")
    v = sub.add_parser("variants", help="list the model variants (the registry in vae_core/models.py)")
    v.add_argument("--markdown", action="store_true", help="print the README's variant table (Markdown)")
    c = sub.add_parser("classifier", help="train the MNIST digit classifier that scores conditional samples")
    c.add_argument("--out", default="checkpoints/classifier/mnist-digits.safetensors", help="file to write")
    c.add_argument("--epochs", type=_int_in(1, 1000), default=3, help="passes over the training images")
    c.add_argument("--seed", type=_int_in(0, MAX_SEED), default=0, help="random seed")
    c.add_argument("--data-dir", default=None, help="data folder (default: $VAE_DATA_DIR, then ./data)")
    m = sub.add_parser("import", help="make a checkpoint of a VAE trained by other code (every page opens it)",
                       description="Import a VAE trained elsewhere. --from fc-vae (PyTorch's examples/vae fc1/fc21/fc22/"
                                   "fc3/fc4 layout), --from timbmg (timbmg/VAE-CVAE-MNIST's VAE or CVAE), --from "
                                   "keras-h5 (a Keras Dense VAE in HDF5): mapped exactly onto Latent Lab's model, the "
                                   "file read without running any code from it. --module FILE.py:FUNCTION [--weights "
                                   "W.pt]: any PyTorch model following vae_core/external.py's protocol, carried as "
                                   "ONNX graphs.")
    m.add_argument("--from", dest="kind", choices=["fc-vae", "timbmg", "keras-h5"], default=None,
                   help="the layout of SRC")
    m.add_argument("src", nargs="?", default=None, help="the file to import (.pt, .pth, .safetensors, or .h5)")
    m.add_argument("--module", default=None, metavar="FILE.py:FUNCTION",
                   help="your own Python file and the function in it that builds the model (never from a browser)")
    m.add_argument("--weights", default=None, help="with --module: a state dict to load into the built model")
    m.add_argument("--history", default=None, help="with --module: the training curves as JSON, in vae_core.fit's "
                   "layout (step, loss, recon, kl, epochs)")
    m.add_argument("--out", required=True, help="checkpoint file to write (.safetensors is added when missing)")
    m.add_argument("--name", default="", type=_text_up_to(200), help="display name (default: the file name)")
    m.add_argument("--description", default="", type=_text_up_to(4000), help="one line about the model")
    m.add_argument("--dataset", default="mnist", choices=["mnist", "fashion-mnist"], help="the data it was trained on")
    m.add_argument("--eval-samples", type=_int_in(0, MAX_SAMPLES), default=100,
                   help="S for the stored likelihood estimates (default 100; 0: store no figures)")
    m.add_argument("--test-limit", type=_int_in(0, 10**9), default=QUICK_TEST_IMAGES,
                   help=f"figures on the first N test images (default {QUICK_TEST_IMAGES}; 0: all)")
    m.add_argument("--float16", action="store_true", help="store the weights in float16 (half the file)")
    m.add_argument("--quiet", action="store_true", help="no progress bar")
    m.add_argument("--data-dir", default=None, help="data folder (default: $VAE_DATA_DIR, then ./data)")
    return parser


def describe_error(e: BaseException) -> str:
    """One line for any error the CLI reports: errno texts and multi-line torch messages made readable."""
    if isinstance(e, MemoryError):
        text = "there is not enough memory for this; try a smaller model, batch size or --test-limit"
    elif isinstance(e, RecursionError):
        text = "an input is nested too deeply to read (it is probably damaged)"
    elif isinstance(e, OSError) and e.strerror and not isinstance(e, CheckpointError):
        where = f" ({e.filename})" if e.filename else ""
        text = f"{e.strerror.lower()}{where}"
    else:
        text = str(e).strip() or type(e).__name__
    first = text.splitlines()[0] if text else type(e).__name__
    return first


EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE: what a shell reports for `cat` cut off by `| head`


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so Python's flush at exit does not report the closed pipe again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # no real file descriptor (a test's captured stdout)
        pass


def main(argv: list[str] | None = None) -> int:
    try:
        args = make_parser().parse_args(argv)
        args.argv = list(sys.argv[1:] if argv is None else argv)  # recorded in the checkpoint
        commands = {"train": cmd_train, "eval": cmd_eval, "info": cmd_info, "diagnose": cmd_diagnose,
                    "variants": cmd_variants, "classifier": cmd_classifier, "import": cmd_import}
        code = commands[args.command](args)
        sys.stdout.flush()  # a reader that went away (`| head`) shows here, inside the try
        return code
    except BrokenPipeError:  # `... | head`: the reader has what it wanted; no error line, as `cat` would
        _silence_stdout()
        return EXIT_BROKEN_PIPE
    except (CliError, *USER_ERRORS) as e:
        print(f"error: {describe_error(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
