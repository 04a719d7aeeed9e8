"""Chapter 6's experiment: does a shrunk tokenizer make a duller generator (claim C7)?

A tokenizer is judged in the end by the generator trained on its tokens. Per seed, the chapter trains two
tokenizers of the same size on the same data and budget, one shrunk (k-means on the untrained encoder, joint
training) and one healthy (deferred quantization), fits the same small causal prior to each one's token
grids, samples it and decodes the samples. A small classifier, trained once on the real training images,
stands in for Inception: its features give the Fréchet distance (g-FD) and its predictions the class
coverage. The primary test is the per-seed ratio of the samples' mean pairwise pixel distance, shrunk over
healthy; fidelity, coverage and the tokenizers' own numbers are reported beside it and do not vote.

Notebook: ``notebooks/06_generation_diversity.ipynb``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns
import torch

from .. import generation as gen
from .. import notebook as nbk
from .. import plots, style
from ..config import RunConfig, schedule_change
from ..data import Dataset, load_dataset, train_test_split
from ..notebook import check_int, param
from ..results import Verdict
from ..tables import by_seed, fmt_value, interval, show_table, summary_table
from .common import IMAGE_DATASETS, ImageTokenizerParameters, tokenizer_config

CHAPTER = "06_generation_diversity"
DATASETS = IMAGE_DATASETS
SHRUNK = "shrunk (joint, k-means on untrained encoder)"
HEALTHY = "healthy (deferred)"
TOKENIZERS = (SHRUNK, HEALTHY)
TOKENIZER_COLUMNS = ["recon MSE", "r-FD", "perplexity", "utilization", "cosine spread"]
GENERATOR_COLUMNS = ["diversity", "g-FD", "class entropy", "classes covered", "prior NLL (held-out)",
                     "codes in samples"]
# The figure's panels: the metric, its title, and the real images' reference value (a key of Judge.real)
PANELS = (("diversity", "Diversity (pixel L2)", "diversity"), ("g-FD", "g-FD (lower: faithful)", "FD"),
          ("class entropy", "Class entropy (nats)", "class_entropy"))
# (setting, g-FID healthy, g-FID shrunk, pixel distance healthy, pixel distance shrunk)
PAPER = (
    ("paper: MaskGIT, ImageNet-100 (Table 2)", 14.60, 14.75, 80.77, 75.89),
    ("paper: VAR, ImageNet-100 (Table 2)", 10.70, 12.88, 75.92, 70.69),
    ("paper: VAR, ODIR (Table 3)", 34.33, 37.65, 49.83, 49.01),
)
N_SHOWN = 12   # images per row of the sample grid


@dataclass(frozen=True)
class Parameters(ImageTokenizerParameters):
    """Chapter 6's parameters: the tokenizers, the priors fitted to their tokens, the judging classifier."""
    steps: int = param(400, check_int, low=10)
    codebook_size: int = param(512, check_int, low=2)
    prior_steps: int = param(300, check_int)
    prior_batch: int = param(64, check_int)
    prior_width: int = param(32, check_int)
    prior_layers: int = param(2, check_int)
    prior_heads: int = param(4, check_int)
    classifier_steps: int = param(300, check_int)
    n_samples: int = param(400, check_int, low=10)

    def full_profile(self) -> dict[str, Any]:
        """Twenty seeds disjoint from the quick profile's, four times the training, five times the samples."""
        return {"seeds": list(range(10, 30)), "steps": 4 * self.steps, "prior_steps": 4 * self.prior_steps,
                "classifier_steps": 4 * self.classifier_steps, "n_samples": 5 * self.n_samples}

    def check_relations(self) -> None:
        super().check_relations()
        if self.prior_width % self.prior_heads:
            raise self.invalid("prior_heads", f"must divide prior_width={self.prior_width}")


def base_config(params: Parameters) -> RunConfig:
    """The tokenizer run both schedules share (chapter 5's conv VQ-VAE at one codebook size)."""
    return tokenizer_config(params, params.steps, codebook_size=params.codebook_size)


# --- the judge: a classifier trained once on the real training images --------------------------------

@dataclass(frozen=True)
class Judge:
    """The classifier whose features and predictions score every sample set, and the real data's own scores
    (``real``: diversity, FD of a training subset to the held-out images, class entropy, classes covered)."""
    description: str
    train_data: Dataset
    test_data: Dataset
    n_classes: int
    classifier: gen.FeatureClassifier
    accuracy: float
    real_features: torch.Tensor
    n_reference: int
    real: dict[str, Any]


def train_judge(params: Parameters) -> Judge:
    """Split the data as the tokenizers do, train the classifier (seed 0) and score the real images: the
    real-to-real FD, on a training subset as large as a generator's sample set, is the floor any generator
    can reach at these sample sizes."""
    base = base_config(params)
    full_data = load_dataset(base.data)
    train_data, test_data = train_test_split(full_data, params.test_fraction, seed=base.data.seed)
    n_classes = full_data.n_classes
    clf = gen.train_classifier(train_data.x, train_data.labels, steps=params.classifier_steps, seed=0,
                               device=params.device)
    clf_accuracy = gen.accuracy(clf, test_data.x, test_data.labels)
    real_feats = gen.classifier_features(clf, test_data.x)
    ref_pick = torch.randperm(len(train_data), generator=torch.Generator().manual_seed(0))[:params.n_samples]
    real = {
        "diversity": gen.mean_pairwise_distance(test_data.x),
        "FD": gen.frechet_distance(gen.classifier_features(clf, train_data.x[ref_pick]), real_feats),
        **{k: v for k, v in gen.class_coverage(gen.predict(clf, test_data.x), n_classes).items() if k != "histogram"},
    }
    return Judge(full_data.description, train_data, test_data, n_classes, clf, clf_accuracy, real_feats,
                 len(ref_pick), real)


def judge_summary(judge: Judge) -> str:
    """The data, the split, how far the classifier can be trusted, and the real data's reference scores."""
    real = judge.real
    return "\n".join([
        judge.description,
        f"train {len(judge.train_data)} / held-out {len(judge.test_data)} images; classifier held-out accuracy "
        f"{judge.accuracy:.3f} (chance {1 / judge.n_classes:.2f}); features: {judge.real_features.shape[1]} "
        "numbers per image",
        f"real reference: diversity {real['diversity']:.3g}, FD(train subset of {judge.n_reference}, held-out) "
        f"{real['FD']:.3g}, class entropy {real['class_entropy']:.3g} (ideal {math.log(judge.n_classes):.3g})",
    ])


# --- two tokenizers per seed, a prior on each, samples -------------------------------------------------

@dataclass(frozen=True)
class Generated:
    """One job's tokenizer and seed, and what :func:`vqstudy.generation.tokenizer_prior_samples` returned."""
    tokenizer: str
    seed: int
    out: dict[str, Any]


def tokenizer_configs(params: Parameters) -> list[tuple[str, int, RunConfig]]:
    """(tokenizer, seed, config) of every job: each tokenizer at every seed, the same budget for both
    (deferred spends the first half as a plain autoencoder)."""
    base = base_config(params)
    changes = {SHRUNK: schedule_change("joint", params.steps),
               HEALTHY: schedule_change("deferred", params.steps, params.steps // 2)}
    return [(name, seed, base.replace(train={**changes[name], "seed": seed}))
            for name in TOKENIZERS for seed in params.seeds]


def run_generators(params: Parameters) -> list[Generated]:
    """Train every tokenizer, fit a prior to its training token grids, sample and decode (``workers``
    processes, or ``$VQSTUDY_SCHEDULER``); each job is deterministic given its seed, wherever it runs."""
    jobs = tokenizer_configs(params)
    outs = gen.run_pipelines([config.to_dict() for _, _, config in jobs], workers=params.workers,
                             n_samples=params.n_samples, prior_steps=params.prior_steps,
                             prior_batch=params.prior_batch, d_model=params.prior_width,
                             n_layers=params.prior_layers, n_heads=params.prior_heads)
    return [Generated(name, seed, out) for (name, seed, _), out in zip(jobs, outs)]


def generator_row(run: Generated, judge: Judge) -> dict[str, Any]:
    """One job's tokenizer diagnostics and the judge's scores of its reconstructions and samples."""
    out, clf = run.out, judge.classifier
    cov = gen.class_coverage(gen.predict(clf, out["samples"]), judge.n_classes)
    return {
        "tokenizer": run.tokenizer, "seed": run.seed,
        "recon MSE": out["final"]["recon_error"], "perplexity": out["final"]["perplexity"],
        "utilization": out["final"]["utilization"], "cosine spread": out["final"]["codebook_cosine_spread"],
        "r-FD": gen.frechet_distance(gen.classifier_features(clf, out["reconstructions"]), judge.real_features),
        "prior NLL (held-out)": out["prior_nll_test"], "codes in samples": out["sample_codes_used"],
        "diversity": gen.mean_pairwise_distance(out["samples"]),
        "g-FD": gen.frechet_distance(gen.classifier_features(clf, out["samples"]), judge.real_features),
        "class entropy": cov["class_entropy"], "classes covered": cov["classes_covered"],
        "histogram": cov["histogram"],
    }


def generator_frame(runs: Sequence[Generated], judge: Judge) -> pd.DataFrame:
    """One row per job (:func:`generator_row`), in job order."""
    return pd.DataFrame([generator_row(run, judge) for run in runs])


def tokenizer_means(df: pd.DataFrame) -> pd.DataFrame:
    """The mean over seeds of every numeric column, one row per tokenizer."""
    return df.drop(columns="histogram").groupby("tokenizer").mean(numeric_only=True)


def arm(df: pd.DataFrame, tokenizer: str, metric: str) -> pd.Series:
    """One tokenizer's ``metric`` by seed."""
    return df[df["tokenizer"] == tokenizer].set_index("seed")[metric]


# --- tables -------------------------------------------------------------------------------------------

def _caption(df: pd.DataFrame) -> str:
    """The tables' caption: their intervals are over the seeds of ``df``."""
    return f"Mean ± 95% interval over {df['seed'].nunique()} seeds."


def tokenizer_table(df: pd.DataFrame) -> pd.DataFrame:
    """The tokenizers' held-out numbers (the paper's Tables 1 and 4): mean ± 95% interval over seeds."""
    return summary_table(df, "tokenizer", TOKENIZER_COLUMNS).drop(columns="runs")


def generator_table(df: pd.DataFrame, real: dict[str, Any]) -> pd.DataFrame:
    """The generators' numbers (the paper's Tables 2 and 3), with real held-out data as the last row."""
    table = summary_table(df, "tokenizer", GENERATOR_COLUMNS).drop(columns="runs")
    table.loc["real held-out images"] = {"diversity": fmt_value(real["diversity"]), "g-FD": fmt_value(real["FD"]),
                                         "class entropy": fmt_value(real["class_entropy"]),
                                         "classes covered": f"{real['classes_covered']}",
                                         "prior NLL (held-out)": "", "codes in samples": ""}
    return table


def signed_percent(change: float) -> str:
    """A relative change as "+1.5%" or "-1.6%"."""
    return f"{change:+.1%}"


def _mean_half(values: pd.Series, fmt: str) -> str:
    """The mean and the 95% interval's half-width of ``values``, through ``fmt`` (the paper table's cells)."""
    return fmt.format(*interval(values))


def paper_table(df: pd.DataFrame, dataset: str) -> pd.DataFrame:
    """The paper's g-FID and pixel distances, healthy against shrunk, beside ours (mean ± 95% interval)."""
    side = [{"setting": s, "FID healthy": f"{a:.4g}", "FID shrunk": f"{b:.4g}", "FID change": signed_percent(b / a - 1),
             "pixel dist. healthy": f"{c:.4g}", "pixel dist. shrunk": f"{d:.4g}",
             "pixel dist. change": signed_percent(d / c - 1)}
            for s, a, b, c, d in PAPER]
    fd_h, fd_s = arm(df, HEALTHY, "g-FD"), arm(df, SHRUNK, "g-FD")
    dv_h, dv_s = arm(df, HEALTHY, "diversity"), arm(df, SHRUNK, "diversity")
    side.append({"setting": f"ours: {dataset}, g-FD, {df['seed'].nunique()} seeds",
                 "FID healthy": _mean_half(fd_h, "{:.3g} ± {:.2g}"),
                 "FID shrunk": _mean_half(fd_s, "{:.3g} ± {:.2g}"),
                 "FID change": _mean_half(fd_s / fd_h - 1, "{:+.1%} ± {:.1%}"),
                 "pixel dist. healthy": _mean_half(dv_h, "{:.3g} ± {:.2g}"),
                 "pixel dist. shrunk": _mean_half(dv_s, "{:.3g} ± {:.2g}"),
                 "pixel dist. change": _mean_half(dv_s / dv_h - 1, "{:+.1%} ± {:.1%}")})
    return pd.DataFrame(side).set_index("setting")


def show_tokenizer_table(df: pd.DataFrame) -> None:
    """Display :func:`tokenizer_table` for readers."""
    show_table(tokenizer_table(df), index_label="Tokenizer", caption=_caption(df))


def show_generator_table(df: pd.DataFrame, real: dict[str, Any]) -> None:
    """Display :func:`generator_table` for readers."""
    show_table(generator_table(df, real), index_label="Samples from", caption=_caption(df))


def show_paper_table(df: pd.DataFrame, dataset: str) -> None:
    """Display :func:`paper_table` for readers, three value columns per part (the columns are wide)."""
    show_table(paper_table(df, dataset), index_label="Setting", max_columns=3, caption="The paper's generators "
               "beside ours (FID: the paper's g-FID; ours: g-FD in classifier features).")


# --- figures ------------------------------------------------------------------------------------------

def metrics_figure(df: pd.DataFrame, real: dict[str, Any]) -> plt.Figure:
    """Diversity, g-FD and class entropy per tokenizer, each against the real held-out images' value."""
    fig, axes = style.figure(1, 3, panel_height=2.3)
    for ax, (metric, title, reference) in zip(axes, PANELS):
        plots.metric_by_condition(ax, df, metric, x="tokenizer", order=list(TOKENIZERS), ylabel="", title=title)
        ax.axhline(real[reference], ls="--", c=style.REFERENCE, lw=1)
    handles, names = style.condition_handles(list(TOKENIZERS), numbered=True)
    ref, ref_name = style.reference_handle("real held-out images")
    style.shared_legend(fig, handles + [ref], names + [ref_name])
    return fig


def class_shares(df: pd.DataFrame) -> pd.DataFrame:
    """One row per (job, predicted class): the share of that job's samples the classifier puts in the class."""
    return pd.DataFrame([{"tokenizer": r["tokenizer"], "class": c, "share": n / sum(r["histogram"])}
                         for _, r in df.iterrows() for c, n in enumerate(r["histogram"])])


def class_share_figure(df: pd.DataFrame, n_classes: int) -> plt.Figure:
    """The predicted-class histogram of each tokenizer's samples (mean and 95% interval over seeds)."""
    fig, ax = style.figure(1, 1, panel_height=2.6)
    sns.barplot(data=class_shares(df), x="class", y="share", hue="tokenizer", hue_order=list(TOKENIZERS),
                errorbar=("ci", 95), seed=0, ax=ax, palette=style.palette(TOKENIZERS))
    ax.axhline(1 / n_classes, ls="--", c=style.REFERENCE, lw=1, label="uniform")
    ax.set(xlabel="class predicted by the judging classifier", ylabel="share of samples")
    style.legend_from(ax, fig)
    return fig


def samples_figure(runs: Sequence[Generated], test_data: Dataset, seed: int, n_show: int = N_SHOWN) -> plt.Figure:
    """Real held-out images (a fixed random pick), then the first samples of each tokenizer's prior at ``seed``."""
    first = {run.tokenizer: run.out for run in runs if run.seed == seed}
    pick = torch.randperm(len(test_data), generator=torch.Generator().manual_seed(1))[:n_show]
    grid_rows = [("real held-out", test_data.x[pick])]
    grid_rows += [(name.split(" (")[0] + " samples", out["samples"][:n_show]) for name, out in first.items()]
    fig, axes = plt.subplots(len(grid_rows), n_show, figsize=(style.WIDTH_IN, 0.72 * len(grid_rows)),
                             layout="constrained")
    for r, (title, imgs) in enumerate(grid_rows):
        for c in range(n_show):
            img = imgs[c].clamp(0, 1).permute(1, 2, 0).numpy()
            axes[r, c].imshow(img[..., 0] if img.shape[-1] == 1 else img,
                              cmap="gray_r" if img.shape[-1] == 1 else None, vmin=0, vmax=1)
            axes[r, c].set(xticks=[], yticks=[])
        axes[r, 0].set_ylabel(style.wrap(title, 16), rotation=0, ha="right", va="center")
    fig.get_layout_engine().set(w_pad=0.01, h_pad=0.01, wspace=0.02, hspace=0.02)
    return fig


# --- claim C7, the results file, the prose -----------------------------------------------------------

def claim_values(df: pd.DataFrame) -> dict[str, tuple[dict[int, float], dict[int, float]]]:
    """C7's primary test: the samples' diversity by seed, shrunk (treatment) and healthy (control)."""
    return {"C7-diversity": (by_seed(df, "diversity", tokenizer=SHRUNK), by_seed(df, "diversity", tokenizer=HEALTHY))}


def _fd_higher(df: pd.DataFrame) -> int:
    """At how many seeds the shrunk tokenizer's g-FD is the higher one."""
    return int((arm(df, SHRUNK, "g-FD") > arm(df, HEALTHY, "g-FD")).sum())


def claim_evidence(df: pd.DataFrame, judge: Judge) -> str:
    """C7's secondary measurements in words (shown beside the verdict, never voting)."""
    fd_s, fd_h = arm(df, SHRUNK, "g-FD"), arm(df, HEALTHY, "g-FD")
    dv_s, dv_h = arm(df, SHRUNK, "diversity"), arm(df, HEALTHY, "diversity")
    return (f"Secondary, not voting: g-FD {fd_s.mean():.3g} (shrunk) vs {fd_h.mean():.3g} (healthy), higher for "
            f"the shrunk tokenizer at {_fd_higher(df)} of {df['seed'].nunique()} seeds (real-to-real floor "
            f"{judge.real['FD']:.3g}); pixel distance {dv_s.mean():.3g} vs {dv_h.mean():.3g} "
            f"(real {judge.real['diversity']:.3g}); judging classifier accuracy {judge.accuracy:.3f}")


def claim_numbers(df: pd.DataFrame, judge: Judge) -> dict[str, Any]:
    """C7's secondary numbers as the results file records them beside the verdict."""
    return {"diversity": {"shrunk": arm(df, SHRUNK, "diversity").mean(),
                          "healthy": arm(df, HEALTHY, "diversity").mean(), "real": judge.real["diversity"]},
            "g_fd": {"shrunk": arm(df, SHRUNK, "g-FD").mean(), "healthy": arm(df, HEALTHY, "g-FD").mean(),
                     "real_floor": judge.real["FD"]},
            "classifier_accuracy": judge.accuracy}


def work_ratio(params: Parameters) -> float:
    """How many times this run's training work the full profile does (20 seeds, four times the steps)."""
    return nbk.full_profile_work_ratio(params.profile, 20 / len(params.seeds), 4)


def results_numbers(df: pd.DataFrame, judge: Judge, params: Parameters) -> dict[str, Any]:
    """What the results file records beside the verdict: per-tokenizer means, the real reference, the config."""
    return {"full_profile_work_ratio": work_ratio(params),
            "summary": tokenizer_means(df).to_dict(orient="index"),
            "real": judge.real, "classifier_accuracy": judge.accuracy, "config": base_config(params).to_dict()}


def _paper_changes(healthy: int, shrunk: int) -> str:
    """The paper's relative changes, shrunk against healthy, of the PAPER columns ``healthy`` and ``shrunk``."""
    return ", ".join(f"{signed_percent(row[shrunk] / row[healthy] - 1)} ({row[0].split(': ')[1].split(' (')[0]})"
                     for row in PAPER)


def _both(means: pd.DataFrame, key: str, column: str, fmt: str) -> dict[str, str]:
    """``c7_<key>_shrunk`` and ``c7_<key>_healthy``: the two tokenizers' mean ``column`` formatted by ``fmt``."""
    return {f"c7_{key}_shrunk": format(means.loc[SHRUNK, column], fmt),
            f"c7_{key}_healthy": format(means.loc[HEALTHY, column], fmt)}


def chapter_text(verdict: Verdict, df: pd.DataFrame, judge: Judge, params: Parameters) -> dict[str, str]:
    """Every number and verdict word chapter 6's prose states, as text from this execution (glued)."""
    m, test, real = tokenizer_means(df), verdict.primary[0], judge.real
    return {
        "c7_verdict": verdict.verdict, "c7_seeds": str(len(params.seeds)), "c7_k": str(params.codebook_size),
        "c7_samples": str(params.n_samples), "c7_steps": str(params.steps), "c7_prior_steps": str(params.prior_steps),
        "c7_prior_batch": str(params.prior_batch), "c7_prior_width": str(params.prior_width),
        "c7_ratio": f"{test['effect']:.3f}", "c7_low": f"{test['low']:.3f}", "c7_high": f"{test['high']:.3f}",
        "c7_pct": signed_percent(test["effect"] - 1), "c7_threshold": f"{test['threshold']:.3f}",
        "c7_stability": f"{verdict.stability:.2f}",
        "c7_paper_div": _paper_changes(3, 4), "c7_paper_fd": _paper_changes(1, 2),
        **_both(m, "div", "diversity", ".3g"),
        "c7_div_real": f"{real['diversity']:.3g}", "c7_fd_shrunk": f"{arm(df, SHRUNK, 'g-FD').mean():.3g}",
        "c7_fd_healthy": f"{arm(df, HEALTHY, 'g-FD').mean():.3g}",
        "c7_fd_floor": f"{real['FD']:.3g}", "c7_fd_higher": f"{_fd_higher(df)} of {len(params.seeds)}",
        "c7_n_train": f"{len(judge.train_data):,}",
        **_both(m, "codes", "codes in samples", ".0f"), **_both(m, "nll", "prior NLL (held-out)", ".3g"),
        **_both(m, "ppl", "perplexity", ".3g"), **_both(m, "util", "utilization", ".0%"),
        **_both(m, "mse", "recon MSE", ".3g"), **_both(m, "rfd", "r-FD", ".3g"),
        **_both(m, "ent", "class entropy", ".3g"),
        "c7_ent_real": f"{real['class_entropy']:.3g}", "c7_ent_ideal": f"{math.log(judge.n_classes):.3g}",
        **_both(m, "cov", "classes covered", ".3g"),
        "c7_n_classes": str(judge.n_classes), "c7_clf_acc": f"{judge.accuracy:.1%}",
    }
