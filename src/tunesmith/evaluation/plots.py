"""Plots for the HTML report, each returned as a `data:image/png;base64,...` URI (no files, no pyplot state).

Figures are built with matplotlib's object API on the Agg canvas, so plotting never touches a display or
the global pyplot backend of the process that calls it.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure


def _plain(text: str) -> str:
    return str(text).replace("$", r"\$")  # a "$" in a label would start matplotlib mathtext


def to_data_uri(fig: Figure) -> str:
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def learning_curves(log_history: Sequence[dict], metric: str) -> str | None:
    """Train loss per step and the eval metric per epoch from a Trainer's log_history; None if both empty."""
    train = [(h["step"], h["loss"]) for h in log_history if "loss" in h and "step" in h]
    key = metric if metric.startswith("eval_") else f"eval_{metric}"
    evals = [(h.get("epoch", h.get("step")), h[key]) for h in log_history if key in h]
    if not train and not evals:
        return None
    fig = Figure(figsize=(9, 3.2))
    ax1, ax2 = fig.subplots(1, 2)
    if train:
        ax1.plot(*zip(*train, strict=True), marker=".", color="#1f77b4")
    ax1.set(title="train loss", xlabel="step", ylabel="loss")
    if evals:
        ax2.plot(*zip(*evals, strict=True), marker="o", color="#2ca02c")
    ax2.set(title=_plain(f"eval {metric.removeprefix('eval_')}"), xlabel="epoch")
    for ax in (ax1, ax2):
        ax.grid(alpha=0.3)
    return to_data_uri(fig)


def confusion_matrix(conf: Sequence[Sequence[int]], labels: Sequence[str]) -> str:
    """Heat map of confusion counts, rows = true class, columns = predicted."""
    n = len(labels)
    side = min(2.5 + 0.45 * n, 14)
    fig = Figure(figsize=(side, side * 0.85))
    ax = fig.subplots()
    im = ax.imshow(conf, cmap="Blues")
    fig.colorbar(im, ax=ax, fraction=0.046)
    names = [_plain(label)[:24] for label in labels]
    ax.set_xticks(range(n), names, rotation=45, ha="right")
    ax.set_yticks(range(n), names)
    ax.set(xlabel="predicted", ylabel="true", title="confusion matrix (test)")
    if n <= 20:
        peak = max((max(r) for r in conf), default=0) or 1
        for i, row in enumerate(conf):
            for j, v in enumerate(row):
                ax.text(j, i, str(v), ha="center", va="center", fontsize=8, color="white" if v > peak / 2 else "black")
    return to_data_uri(fig)


def reliability_diagram(before: dict, after: dict | None, temperature: float | None = None) -> str:
    """Accuracy vs confidence per bin, before and after temperature scaling, with the diagonal."""
    fig = Figure(figsize=(4.5, 4.2))
    ax = fig.subplots()
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfect calibration")
    curves = [("raw", before, "#d62728")]
    if after is not None:
        curves.append((f"T = {temperature:.2f}" if temperature else "calibrated", after, "#1f77b4"))
    for name, rel, color in curves:
        pts = [(c, a) for c, a in zip(rel["confidence"], rel["accuracy"], strict=True) if c is not None]
        if pts:
            ax.plot(*zip(*pts, strict=True), marker="o", color=color, label=name)
    ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="confidence", ylabel="accuracy", title="reliability (test)")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize=8)
    return to_data_uri(fig)
