"""The evaluation report: one self-contained HTML file (PNG charts embedded as base64).

Self-contained so it can be attached to the model, mailed, or opened from the Airflow logs
without a web server. matplotlib runs on the Agg backend (no display on workers).
"""

from __future__ import annotations

import base64
import html
import io
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from sklearn.metrics import precision_recall_curve, roc_curve

from training.evaluate import Evaluation
from training.model import FraudModel

TOP_FEATURES = 20


def _png(fig: Any) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()


def curves_png(evaluation: Evaluation) -> bytes:
    """PR and ROC curves side by side, with the base rate and the review operating point."""
    y, s = evaluation.labels, evaluation.scores
    fig, (pr_ax, roc_ax) = plt.subplots(1, 2, figsize=(11, 4.2))
    precision, recall, _ = precision_recall_curve(y, s)
    pr_ax.plot(recall, precision, color="tab:blue", label=f"model (AP={evaluation.metrics['auc_pr']:.3f})")
    pr_ax.axhline(y.mean(), color="grey", ls="--", label=f"base rate {y.mean():.4f}")
    pr_ax.set(xlabel="recall", ylabel="precision", title="Precision-recall (test)", xlim=(0, 1), ylim=(0, 1.02))
    pr_ax.legend(loc="lower left")
    fpr, tpr, _ = roc_curve(y, s)
    roc_ax.plot(fpr, tpr, color="tab:red", label=f"model (AUC={evaluation.metrics['auc_roc']:.3f})")
    roc_ax.plot([0, 1], [0, 1], color="grey", ls="--", label="chance")
    roc_ax.axvline(0.01, color="tab:green", ls=":", label="1% FPR")
    roc_ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC (test)", xlim=(0, 1),
               ylim=(0, 1.02))
    roc_ax.legend(loc="lower right")
    return _png(fig)


def score_distribution_png(evaluation: Evaluation, model: FraudModel) -> bytes:
    """Score histograms per class (log counts) with the review/block thresholds."""
    y, s = evaluation.labels, evaluation.scores
    fig, ax = plt.subplots(figsize=(11, 3.8))
    bins = np.linspace(0, 1, 51)
    ax.hist(s[y == 0], bins=bins, alpha=0.6, color="tab:blue", label=f"legit (n={int((y == 0).sum())})")
    ax.hist(s[y == 1], bins=bins, alpha=0.6, color="tab:red", label=f"fraud (n={int((y == 1).sum())})")
    if model.thresholds is not None:
        ax.axvline(model.thresholds.review, color="tab:orange", ls="--", label="review threshold")
        ax.axvline(model.thresholds.block, color="black", ls="--", label="block threshold")
    ax.set_yscale("log")
    ax.set(xlabel="score", ylabel="transactions (log)", title="Score distribution by class (test)")
    ax.legend()
    return _png(fig)


def importance_png(model: FraudModel) -> bytes:
    """Top features by total gain (what the trees actually split on)."""
    gains = model.booster.get_score(importance_type="total_gain")
    top = sorted(gains.items(), key=lambda kv: kv[1])[-TOP_FEATURES:]
    fig, ax = plt.subplots(figsize=(11, 0.3 * max(len(top), 3) + 1))
    if top:
        names, values = zip(*top, strict=True)
        ax.barh(range(len(top)), values, color="tab:purple")
        ax.set_yticks(range(len(top)), names)
    ax.set(xlabel="total gain", title=f"Feature importance (top {TOP_FEATURES})")
    return _png(fig)


def _img(png: bytes, alt: str) -> str:
    return f'<img alt="{alt}" src="data:image/png;base64,{base64.b64encode(png).decode()}"/>'


def _table(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "<p>none</p>"
    head = "".join(f"<th>{html.escape(str(k))}</th>" for k in rows[0])
    body = "".join("<tr>" + "".join(f"<td>{_fmt(v)}</td>" for v in r.values()) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    return html.escape(str(value))


def render_report(model: FraudModel, evaluation: Evaluation, title: str, context: dict[str, Any]) -> str:
    """The whole HTML page."""
    metrics = [{"metric": k, "value": v} for k, v in evaluation.metrics.items()]
    scenarios = [{"fraud_type": k, **v} for k, v in evaluation.scenarios.items()]
    thresholds = [model.thresholds.to_dict()] if model.thresholds else []
    ctx = [{"key": k, "value": v} for k, v in context.items()]
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:1100px}}table{{border-collapse:collapse;margin:1em 0}}
td,th{{border:1px solid #ccc;padding:3px 8px;text-align:right}}th{{background:#eee}}img{{max-width:100%}}</style>
</head><body>
<h1>{html.escape(title)}</h1>
<h2>Run</h2>{_table(ctx)}
<h2>Test metrics</h2>{_table(metrics)}
<h2>Decision thresholds (chosen on validation)</h2>{_table(thresholds)}
<p>Decisions on the test period: {html.escape(str(evaluation.decisions))}</p>
<h2>Curves</h2>{_img(curves_png(evaluation), "PR and ROC curves")}
<h2>Scores by class</h2>{_img(score_distribution_png(evaluation, model), "score distribution")}
<h2>Recall per fraud scenario</h2>{_table(scenarios)}
<h2>Precision@k per day (k = {int(evaluation.metrics.get("k_per_day", 0))} accounts)</h2>
{_table(evaluation.per_day.to_dict(orient="records"))}
<h2>Feature importance</h2>{_img(importance_png(model), "feature importance")}
</body></html>
"""
