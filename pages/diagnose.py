"""Diagnose: visual debugging of one model. Where does the KL go (posterior collapse), does the data fill
the prior, which test images does the model explain worst, can its likelihood estimate be trusted, how did it
train, how does it differ from another checkpoint, and (for a CVAE) how far q(z|x,y) sits from p(z|x).

Every number comes from vae_core.diagnostics; the slow ones are computed once per checkpoint file and cached,
and one too heavy for the server (a big model, many images, many samples) is computed by a worker as a job
(ui/diagnose_tools.py: collapse_view, per_example_view, likelihood_view), with a progress bar meanwhile.
"""
from pathlib import Path

import numpy as np
import streamlit as st
import torch

from ui.cached_data import missing_data_note, test_set
from ui.diagnose_tools import (aggregate_figures, chain_history_figure, history_dict, record_facts, collapse_view,
                               compare_rows, conditional_view_reason, config_rows, curve_diversity, decode_same_z,
                               ellipses_figure, example_gaussians, kl_bars, kl_over_epochs, likelihood_figure,
                               likelihood_view, lineage_rows, marginal_histograms, metrics_rows, mtime_of,
                               per_example_view, reconstructions, same_z_note, same_z_reason, view_applies)
from ui.images import grid, upscale
from ui.model_catalogue import available_models, load_model, model_picker
from ui.notation import state_notation
from ui.plots import loss_curves
from ui.routing import route_through_app
from vae_core import VARIANTS, CheckpointError, plain_variant
from vae_core.diagnostics import (ACTIVE_THRESHOLD, default_quadrants, diagnostics_unavailable_reason,
                                  kl_unavailable_reason)
from vae_core.formatting import format_count, format_nats
from vae_core.verdicts import collapse_verdict, likelihood_verdict, nll_bias

TONES = {"success": (st.success, ":material/check_circle:"), "warning": (st.warning, ":material/warning:"),
         "info": (st.info, ":material/info:")}


def show(verdict) -> None:
    """A verdict of vae_core.verdicts, in the box of its tone."""
    box, icon = TONES[verdict.tone]
    box(verdict.text, icon=icon)

route_through_app()  # a deep link on a fresh server goes through app.py (ui/routing.py)

TABS = ["Posterior collapse", "Aggregate posterior", "Per-example losses", "Likelihood estimate",
        "Training history", "Two checkpoints", "p(z|x) vs q(z|x,y)"]
TABLE_KEY = "diagnose_table"
GALLERY = 12

st.title(":material/troubleshoot: Diagnose")
st.caption("Visual debugging for a model that misbehaves: KL per latent dimension and active units, the "
           "aggregate posterior against the prior, the worst test images, whether the likelihood estimate is "
           "trustworthy, and the checkpoint's own training history, settings and the runs it came from.")
state_notation()

# opens on the plain VAE with a 2-D latent when there is one (the registry's plain unconditional variant)
picked = model_picker(prefer=(lambda c: c.variant == plain_variant(False) and c.latent_dim == 2,
                              lambda c: c.has_latent))
if picked is None:
    st.stop()
model, record = picked
cfg = record.model_config
path = record.path
data = test_set(record.dataset)

images, samples = 0, 50
with st.sidebar:
    st.markdown("**Diagnostics on**")
    if data is not None:
        sizes = [n for n in (500, 1000, 2000, 5000, 10000) if n < len(data)] + [len(data)]
        images = st.selectbox("Test images", sizes, index=sizes.index(1000) if 1000 in sizes else len(sizes) - 1,
                              format_func=lambda n: f"first {n:,}", key="diagnose_images",
                              help="The per-example table and the statistics use the first N test images.")
        samples = st.selectbox("Samples S for the NLL", (10, 50, 100), index=1, key="diagnose_samples",
                               help="Importance samples per image for the per-example negative log-likelihood.")
    quadrants = default_quadrants(cfg)
    if cfg.condition == "quadrants":
        quadrants = st.segmented_control("Visible quadrants", (1, 2, 3), default=quadrants, key="diagnose_quadrants",
                                         help="The quadrant count every figure uses (the model may handle 1-3).") \
            or quadrants

no_data = diagnostics_unavailable_reason(cfg) or (None if data is not None else (
    "This view needs the test set. " + missing_data_note(record.dataset)
    + " The training history and the settings card need no data."))
source = data.source if data is not None else ""
data_root = str(Path(source).parent) if source else ""

tabs = st.tabs(TABS, key="diagnose_tab", on_change="rerun")


def stats():
    """The encoded test images (None while a worker computes them: its progress shows instead)."""
    return collapse_view(path, images, quadrants, source, data_root)


# ---------------------------------------------------------------------------- 1. posterior collapse
with tabs[0]:
    if tabs[0].open is not False:
        reason = kl_unavailable_reason(cfg)
        if view_applies(reason, no_data):
            with st.spinner("Encoding the test images…"):
                s = stats()
            if s is not None:
                kl, variance = s["kl_per_dim"], s["variance"]
                a, b, c = st.columns(3)
                a.metric("KL(q ‖ p), total", f"{kl.sum():.2f} nats", help="Mean over the test images, summed over "
                         "the latent dimensions (the KL of the negative ELBO).")
                b.metric("Active units", f"{s['active']} of {cfg.latent_dim}",
                         help=f"Dimensions whose posterior mean varies over the data (variance > {ACTIVE_THRESHOLD}), "
                              "Burda et al. (2016).")
                c.metric("Largest share of the KL", f"{kl.max() / max(kl.sum(), 1e-12):.0%}",
                         help="The fraction of the KL carried by the busiest dimension.")
                st.plotly_chart(kl_bars(kl, variance), key="diagnose_kl_bars", config={"displaylogo": False})
                show(collapse_verdict(kl, variance, ACTIVE_THRESHOLD,
                                      learned_prior=cfg.condition != "none" and cfg.prior == "learned"))
                trained_beta = record.train_config.beta if record.train_config is not None else None
                if trained_beta is not None and trained_beta != 1:
                    pull = ("pulls the posterior towards the prior and can leave dimensions inactive"
                            if trained_beta > 1 else "lets the posterior stray further from the prior")
                    st.caption(f"This model trained with β = {trained_beta:g}: its objective weighted this KL by "
                               f"{trained_beta:g}, which {pull}. The figures here are those of the true ELBO (β = 1).")
                if VARIANTS[cfg.variant].uses_alpha:
                    st.caption(f"The {VARIANTS[cfg.variant].title}'s objective weights this KL by α = {cfg.alpha:g}: the "
                               "stored metric `kl` is α times the total above.")
                st.caption(f"On the first {images:,} test images; KL against "
                           + ("N(0, I)." if cfg.condition == "none" or cfg.prior == "standard" else "the learned prior p(z|x)."))
        history_fig = kl_over_epochs(record)
        if history_fig is not None:   # a heading only over something: a GSNN has no KL to draw (issue 21)
            st.markdown("**KL per dimension over the training epochs**")
            st.plotly_chart(history_fig, key="diagnose_kl_epochs", config={"displaylogo": False})
        elif reason is None:
            st.caption("This checkpoint's history has no KL per dimension over the epochs: it was trained before "
                       "Latent Lab recorded it. Models trained now (Train page or `python -m vae_core train`) record "
                       "it every epoch.")

# ---------------------------------------------------------------------------- 2. aggregate posterior
with tabs[1]:
    if tabs[1].open:
        if view_applies(None if cfg.has_latent else "A baseline model has no latent code, so there is no "
                        "posterior to compare with a prior.", no_data) and (s := stats()) is not None:
            mu, logvar, labels = s["mu"], s["logvar"], s["labels"]
            keep, label = np.ones(len(mu), bool), None
            prior_name = "N(0, I)"
            if cfg.condition == "label" and cfg.prior == "learned":
                names = ["all classes"] + [str(c) for c in range(cfg.num_classes)]
                chosen = st.selectbox("Images of", names, key="diagnose_agg_class",
                                      help="A label model has a prior p(z|x) per label: compare the images of one "
                                           "label with theirs.")
                if chosen != "all classes":
                    label = int(chosen)
                    keep = labels == label
                    prior_name = f"p(z | x = {chosen})"
                else:
                    prior_name = "the mixture of p(z|x) over the labels"
            elif cfg.condition == "quadrants" and cfg.prior == "learned":
                prior_name = "the mixture of p(z|x) over the images"
            if cfg.latent_dim == 2:
                with st.spinner("Estimating the densities (once per model)…"):
                    maps = aggregate_figures(path, mtime_of(path), images, quadrants, source, label)
                if maps is None:
                    st.info("No test image with this label among those used.", icon=":material/info:")
                else:
                    f1, f2, holes = maps
                    left, right = st.columns(2)
                    left.plotly_chart(f1, key="diagnose_agg_means", config={"displaylogo": False})
                    right.plotly_chart(f2, key="diagnose_agg_samples", config={"displaylogo": False})
                    st.caption(f"Blue: density of the data in latent space; red lines: contours of the prior "
                               f"({prior_name}) at about 1, 2 and 3 σ; red crosses: **holes**, places inside the "
                               "prior's 2-σ region where the aggregate posterior has under a tenth of the prior's "
                               "density (the data's density smoothed at its own sampling scale). Samples from the prior "
                               "that land in a hole decode to images the model never trained on. "
                               + (f"{holes} cells of a 70 × 70 grid are holes here." if holes else
                                  "No holes here: the data covers the prior's 2-σ region."))
            else:
                st.plotly_chart(marginal_histograms(s["sample"][keep], s["prior_sample"][keep], s["kl_per_dim"]),
                                key="diagnose_agg_hist", config={"displaylogo": False})
                st.caption(f"The latent space has {cfg.latent_dim} dimensions, so there is no single 2-D map: per "
                           "dimension (those with the most KL first), one sample of q(z|x,y) per image (blue) against "
                           "one sample of the prior p(z|x) per image (orange) and N(0, 1). A blue histogram that "
                           "matches the orange one everywhere is a dimension the encoder does not use.")

# ---------------------------------------------------------------------------- 3. per-example losses
with tabs[2]:
    if tabs[2].open:
        if view_applies(None, no_data) and \
                (table := per_example_view(path, images, samples, quadrants, source, data_root)) is not None:
            table = table.sort_values("−ELBO", ascending=False, kind="stable").reset_index(drop=True)
            if not cfg.has_latent:
                st.caption("A deterministic baseline: its reconstruction term is its exact negative log-likelihood "
                           "(no KL, no gap).")
            left, right = st.columns([3, 2], gap="large")
            with left:
                # the caption first: the table's toolbar appears above its top edge on hover and, with nothing
                # above the table, it covered the tab strip (a click on a tab's centre hit the toolbar)
                st.caption(f"Nats per image, worst −ELBO first; click a column header to sort, a row to inspect "
                           f"it. NLL by importance sampling with S = {samples}.")
                number = st.column_config.NumberColumn(format="%.2f")
                event = st.dataframe(table, key=TABLE_KEY, on_select="rerun", selection_mode="single-row",
                                     hide_index=True, height=420,
                                     column_config={"image": st.column_config.NumberColumn("test image #", format="%d"),
                                                    "recon": number, "KL": number, "−ELBO": number,
                                                    "NLL (IS)": number,
                                                    "gap": st.column_config.NumberColumn(
                                                        format="%.2f", help="−ELBO − NLL: how loose the bound is "
                                                        "for this image (up to sampling noise)")})
            rows = list(getattr(getattr(event, "selection", None), "rows", None) or
                        (event.get("selection", {}).get("rows", []) if isinstance(event, dict) else []))
            with right:
                if not rows:
                    st.markdown("**No row selected yet**")
                    st.caption("Click a row of the table to see that test image, its reconstruction and, for a 2-D "
                               "model, where it sits in the latent space.")
                else:
                    row = table.iloc[int(rows[0])]
                    i = int(row["image"])
                    st.markdown(f"**Test image #{i}** · class {int(row['label'])} · −ELBO {row['−ELBO']:.1f} nats")
                    rec = reconstructions(model, data.images[i:i + 1], data.labels[i:i + 1], quadrants)[0]
                    c1, c2 = st.columns(2)
                    c1.image(upscale(data.images[i], 6), output_format="PNG", caption="the selected test image")
                    c2.image(upscale(rec, 6), output_format="PNG",
                             caption="its reconstruction" if cfg.condition != "quadrants" else "its completion")
                    if cfg.has_latent and cfg.latent_dim == 2 and (s := stats()) is not None:
                        import plotly.graph_objects as go
                        fig = go.Figure(go.Scattergl(x=s["mu"][:, 0], y=s["mu"][:, 1], mode="markers",
                                                     marker=dict(size=3, color="#BAB0AC"), name="test means",
                                                     hoverinfo="skip"))
                        fig.add_trace(go.Scatter(x=[s["mu"][i, 0]], y=[s["mu"][i, 1]], mode="markers",
                                                 marker=dict(size=14, color="#E45756", symbol="star"),
                                                 name=f"test image #{i}"))
                        fig.update_layout(height=300, margin=dict(l=10, r=10, t=10, b=10), plot_bgcolor="white",
                                          showlegend=False, xaxis_title="z₁", yaxis_title="z₂")
                        st.plotly_chart(fig, key="diagnose_where", config={"displaylogo": False})
                        st.caption("Where its latent mean sits among the test means.")
            st.markdown(f"**The {GALLERY} worst reconstructions** (input, then reconstruction)")
            worst = table.sort_values("recon", ascending=False, kind="stable")["image"].to_numpy()[:GALLERY]
            worst = torch.as_tensor(worst.astype(np.int64))
            recs = reconstructions(model, data.images[worst], data.labels[worst], quadrants)
            pairs = np.stack([np.stack([data.images[int(k)].numpy() / 255.0, r]) for k, r in zip(worst, recs)])
            st.image(upscale(grid(pairs.reshape(-1, *pairs.shape[2:]), ncols=8), 2), output_format="PNG")
            st.caption("Test images # " + ", ".join(str(int(k)) for k in worst) + " (by reconstruction loss).")

# ---------------------------------------------------------------------------- 4. likelihood estimate
with tabs[3]:
    if tabs[3].open:
        if view_applies(None if cfg.has_latent else "A deterministic baseline's likelihood is exact: there is no "
                        "sampling to trust or distrust.", no_data) and \
                (curve := likelihood_view(path, quadrants, source, data_root)) is not None:
            st.plotly_chart(likelihood_figure(curve), key="diagnose_is_curve", config={"displaylogo": False})
            mean_ess = curve["ess"].mean(1)
            top = int(curve["samples"][-1])
            last = float(mean_ess[-1] / top)
            nll = curve["nll"].mean(1)
            a, b, c = st.columns(3)
            a.metric("NLL at S = 1 (≈ −ELBO)", format_nats(nll[0]))
            b.metric(f"NLL at S = {format_count(top)}", format_nats(nll[-1]), f"{nll[-1] - nll[0]:+.2f} nats",
                     delta_color="inverse")
            c.metric(f"ESS / S at S = {format_count(top)}", f"{last:.0%}")
            diversity = curve_diversity(path, mtime_of(path), quadrants, source)
            show(likelihood_verdict(ess_fraction=last, diversity=diversity,
                                    bias=nll_bias(curve["samples"], curve["nll"])))
            st.caption(f"Over the first {curve['nll'].shape[1]} test images (the first {min(5, curve['nll'].shape[1])} "
                       f"drawn one by one). Each estimate at S uses the first S of the same {format_count(top)} draws. "
                       "ESS = 1 / Σ w², with w the normalised importance weights; ESS = S means perfectly even "
                       "weights.")

# ---------------------------------------------------------------------------- 5. training history
with tabs[4]:
    if tabs[4].open:
        history = history_dict(record)
        records = history["epochs"]
        if history.get("step"):
            steps_per_epoch = max(1, round(max(history["step"]) / max(1, len(records)))) if records else 1
            st.plotly_chart(loss_curves(history, records, steps_per_epoch), key="diagnose_history",
                            config={"displaylogo": False})
            st.caption(f"{len(history['step']):,} stored training steps (thinned in the file to at most 2,000) and "
                       f"{len(records)} per-epoch evaluations.")
        else:
            st.info("This checkpoint stores no training history.", icon=":material/info:")
        with st.container(border=True):
            st.markdown(f"**{record.display_name}** · {cfg.describe()} · data set **{record.dataset}**")
            if record.description:
                st.caption(record.description)
            facts = record_facts(record)
            if facts:
                st.caption(" · ".join(f"{k.replace('_', ' ')}: {v}" for k, v in facts.items()))
            if record.lineage:   # the runs it continued, oldest first, and the commands that rebuild it
                n = len(record.lineage)
                st.markdown(f"**The chain of runs**: this model continued {n} earlier run{'s' * (n != 1)}, oldest "
                            "first. Its loss curves above are its own run's; each earlier run's are in its file.")
                chain_fig = chain_history_figure(record)
                if chain_fig is not None:
                    st.plotly_chart(chain_fig, key="diagnose_chain_history", config={"displaylogo": False})
                st.dataframe(lineage_rows(record), hide_index=True, width="stretch", key="diagnose_lineage",
                             column_config={"how it is known": st.column_config.TextColumn(width="large")})
                if record.lineage[0].dropped_before:
                    st.caption(f"{record.lineage[0].dropped_before} older runs of this chain are no longer recorded.")
                st.caption("The commands that rebuild it, in order:")
                st.code("\n".join(record.rebuild_commands), language="bash")
            elif record.command:
                st.code(record.command, language="bash")
            else:
                st.caption("No training command stored.")
            left, right = st.columns(2)
            left.markdown("Settings")
            left.dataframe(config_rows(record), hide_index=True, width="stretch")
            images, s_ = record.test_image_count(), record.samples
            right.markdown("Stored figures (test set"
                           + (f", {format_count(images)} images" if images is not None else "")
                           + (f", S = {format_count(s_)}" if s_ is not None else "") + ")")
            if record.metrics:
                right.dataframe(metrics_rows(record), hide_index=True, width="stretch")
            else:
                right.caption("No metrics stored.")

# ---------------------------------------------------------------------------- 6. two checkpoints
with tabs[5]:
    if tabs[5].open:
        others = [e for e in available_models() if e.error is None and e.path != path]
        if not others:
            st.info("There is no second model to compare with: train one, or add a checkpoint.", icon=":material/info:")
        else:
            by_path = {e.path: e for e in others}
            prefer = [e.path for e in others if e.config.latent_dim == cfg.latent_dim and e.config.condition == cfg.condition]
            options = prefer + [p for p in by_path if p not in prefer]
            other_path = st.selectbox("Compare with (B)", options, key="diagnose_other",
                                      format_func=lambda p: by_path[p].label)
            try:
                other_model, other = load_model(other_path)
            except CheckpointError as e:
                st.error(f"This checkpoint cannot be used: {e}")
                other_model = None
            if other_model is not None:
                st.markdown(f"**A**: {record.display_name} ({cfg.describe()}) · **B**: {other.display_name} "
                            f"({other.model_config.describe()})")
                reason = same_z_reason(cfg, other.model_config)
                if reason:
                    st.info(reason, icon=":material/info:")
                else:
                    a_imgs, b_imgs, given = decode_same_z(model, other_model)
                    st.image(upscale(grid(np.concatenate([a_imgs, b_imgs]), ncols=len(a_imgs)), 3),
                             output_format="PNG", caption=f"The same latent codes ({given}) decoded by A (top row) "
                                                          "and B (bottom row).")
                    st.caption(same_z_note(a_imgs, b_imgs, record, other).text)
                metrics, settings, note, source = compare_rows(record, other)
                if note is not None:
                    st.warning(note.text, icon=":material/rule:")
                left, right = st.columns(2)
                left.markdown(f"Figures ({source}; nats per image unless named)")
                left.dataframe(metrics, hide_index=True, width="stretch", key="diagnose_compare_figures")
                right.markdown("Settings that differ")
                if len(settings):
                    right.dataframe(settings, hide_index=True, width="stretch")
                else:
                    right.caption("None: the two were built and trained the same way.")

# ---------------------------------------------------------------------------- 7. p(z|x) vs q(z|x,y)
with tabs[6]:
    if tabs[6].open:
        if view_applies(conditional_view_reason(cfg), no_data):
            i = int(st.number_input("Test image #", 0, len(data) - 1, 0, key="diagnose_example"))
            g = example_gaussians(model, data.images[i], int(data.labels[i]), quadrants)
            kl = g["kl_per_dim"]
            if cfg.latent_dim == 2:
                dims = (0, 1)
            else:
                top = [int(d) for d in np.argsort(-kl)[:2]]
                names = [f"z{d + 1}" for d in range(cfg.latent_dim)]
                c1, c2 = st.columns(2)
                dims = (c1.selectbox("Horizontal", range(cfg.latent_dim), index=top[0], format_func=names.__getitem__,
                                     key="diagnose_cond_x"),
                        c2.selectbox("Vertical", range(cfg.latent_dim), index=top[1], format_func=names.__getitem__,
                                     key="diagnose_cond_y"))
            others = None
            if cfg.condition == "label" and i < images and (s := stats()) is not None:
                others = s["mu"][s["labels"] == int(data.labels[i])]
            left, right = st.columns([3, 1], gap="large")
            left.plotly_chart(ellipses_figure(g, dims, others), key="diagnose_ellipses", config={"displaylogo": False})
            with right:
                shown = data.images[i]
                if cfg.condition == "quadrants":
                    from vae_core import quadrant_input
                    x_img = quadrant_input(shown.float().div(255).reshape(1, -1), quadrants)[0]
                    shown = torch.where(x_img < 0, torch.full_like(x_img, 0.25), x_img).reshape(shown.shape)
                right.image(upscale(shown, 5), output_format="PNG",
                            caption="x: the label" if cfg.condition == "label" else "x: the visible quadrants")
                right.metric("KL(q(z|x,y) ‖ p(z|x))", f"{kl.sum():.2f} nats")
                right.caption(f"class {int(data.labels[i])}; the two dimensions drawn carry "
                              f"{kl[list(dims)].sum():.2f} nats of it.")
            st.caption("At training time z comes from q(z|x,y), which sees the answer y; at test time it comes from "
                       "p(z|x). Where the red ellipses (prior) miss the blue ones (posterior), samples drawn at test "
                       "time land where the decoder was not trained: the mismatch that motivates the GSNN and the "
                       "hybrid (Sohn et al., 2015, section 4.1).")
