"""What distillation bought: teacher vs student vs the same student without KD, on quality, latency and size.

    doc = compare_distilled(cfg, bundle, run_dir, student_dir)   # metrics.json["distillation"]
    flat = distill_flat(doc)                                    # gates: distill.gap.macro_f1 >= -0.03, ...

Quality is the primary metric on the test split (paired bootstrap CIs of student - teacher and student - no-KD);
latency is the forward pass in ms per example at batch 1 and batch 32 on this machine, median of 3 timed repeats
after a warm-up, all three models measured in this process one after the other; size is parameters and the bytes of
the safetensors weights.
"""

from __future__ import annotations

import html
import statistics
import time
from pathlib import Path

import torch

from tunesmith.config import Config
from tunesmith.families import get as family
from tunesmith.training.distill import read_distill_record, resolve_teacher

ROLES = ("teacher", "student", "without_kd")


def train_without_kd(cfg: Config, bundle, run_dir: Path) -> Path:
    """The same student (base, layers, method, data, seed) on the human labels alone: what KD is compared with."""
    from tunesmith.training import train

    d = cfg.method.distill.model_copy(update={"kd_weight": 0.0, "hard_weight": 1.0, "unlabeled": None})
    no_kd = cfg.model_copy(update={"method": cfg.method.model_copy(update={"distill": d})})
    from transformers import TrainerCallback

    class Quiet(TrainerCallback):  # the run's own output stays readable: no second progress bar or log dicts
        shows_progress = True

    return train(no_kd, bundle, Path(run_dir) / "without_kd", callbacks=[Quiet()]).model_dir


def compare_distilled(cfg: Config, bundle, run_dir: Path, student_dir: Path, *, say=lambda _: None) -> dict:
    """The comparison document: per-role quality/latency/size, the gaps with CIs, and the flat gate names."""
    d = cfg.method.distill
    record = read_distill_record(run_dir) or {}
    teacher_dir = Path(record.get("teacher_dir") or resolve_teacher(d.teacher, cfg))
    dirs = {"teacher": teacher_dir, "student": Path(student_dir)}
    if d.compare_without_kd:
        say("distill: training the same student without KD for the comparison")
        dirs["without_kd"] = train_without_kd(cfg, bundle, run_dir)
    hooks = family(cfg.task).distill  # how the family scores a model and compares two on the test split
    scores = {role: hooks.scores(cfg, bundle, path) for role, path in dirs.items()}
    metric = cfg.training.metric if cfg.training.metric in scores["student"]["quality"] else \
        next(iter(scores["student"]["quality"]))  # causal-lm: loss; classification: the checkpoint metric
    doc: dict = {"metric": metric, "record": record, "models": {}, "gap": None, "kd_gain": None}
    for role, path in dirs.items():
        doc["models"][role] = {"dir": str(path), "quality": scores[role]["quality"],
                               **_latency(hooks.load(path, cfg), cfg, bundle), **_size(path)}
    boot = cfg.evaluation.bootstrap
    doc["gap"] = {**hooks.delta(cfg, scores["student"], scores["teacher"], metric), "confidence": boot.confidence}
    if "without_kd" in scores:  # student - the same student without KD
        doc["kd_gain"] = {**hooks.delta(cfg, scores["student"], scores["without_kd"], metric),
                          "confidence": boot.confidence}
    t, s = doc["models"]["teacher"], doc["models"]["student"]
    doc["speedup_b1"] = t["ms_per_example_b1"] / max(s["ms_per_example_b1"], 1e-9)
    doc["speedup_b32"] = t["ms_per_example_b32"] / max(s["ms_per_example_b32"], 1e-9)
    doc["size_ratio"] = s["weights_mb"] / max(t["weights_mb"], 1e-9)
    doc["cost_per_1k"] = _cost_per_1k(cfg, doc["models"])
    doc["flat"] = distill_flat(doc)
    return doc


def distill_flat(doc: dict) -> dict[str, float]:
    """`distill.<role>.<metric>`, `distill.gap[_ci_low|_ci_high].<metric>`, `distill.kd_gain...`, speedups, size."""
    m = doc["metric"]
    flat = {f"distill.{role}.{m}": v["quality"][m] for role, v in doc["models"].items()}
    for name in ("gap", "kd_gain"):
        if doc.get(name):
            flat.update({f"distill.{name}.{m}": doc[name]["delta"], f"distill.{name}_ci_low.{m}": doc[name]["ci_low"],
                         f"distill.{name}_ci_high.{m}": doc[name]["ci_high"]})
    flat.update({"distill.speedup_b1": doc["speedup_b1"], "distill.speedup_b32": doc["speedup_b32"],
                 "distill.size_ratio": doc["size_ratio"]})
    if doc.get("cost_per_1k"):
        flat["distill.cost_saving"] = doc["cost_per_1k"]["saving"]
    return {k: float(v) for k, v in flat.items()}


def html_section(doc: dict) -> str:
    """The report's "Distillation" section: one row per model, then the gaps."""
    m = doc["metric"]
    rows = "".join(
        f"<tr><td>{html.escape(role.replace('_', ' '))}</td><td>{v['quality'][m]:.4f}</td>"
        f"<td>{v['ms_per_example_b1']:.2f}</td><td>{v['ms_per_example_b32']:.2f}</td>"
        f"<td>{v['params'] / 1e6:.2f}M</td><td>{v['weights_mb']:.1f}</td></tr>"
        for role, v in doc["models"].items())
    table = (f"<table><tr><th>model</th><th>{html.escape(m)} (test)</th><th>ms/example, batch 1</th>"
             f"<th>ms/example, batch 32</th><th>parameters</th><th>weights MB</th></tr>{rows}</table>")
    lines = []
    for name, what in (("gap", "student - teacher"), ("kd_gain", "student - student without KD")):
        g = doc.get(name)
        if g:
            lines.append(f"<li>{what}: {g['delta']:+.4f} {html.escape(m)}, {g['confidence']:.0%} CI "
                         f"[{g['ci_low']:+.4f}, {g['ci_high']:+.4f}], p = {g['p_value']:.3f}</li>")
    lines.append(f"<li>student speed-up over the teacher: {doc['speedup_b1']:.2f}x at batch 1, "
                 f"{doc['speedup_b32']:.2f}x at batch 32; weights {doc['size_ratio']:.0%} of the teacher's</li>")
    cost = doc.get("cost_per_1k")
    if cost:
        cur = html.escape(cost["currency"])
        lines.append(f"<li>1,000 answers at batch 32 cost {cost['student']:.6f} {cur} with the student and "
                     f"{cost['teacher']:.6f} {cur} with the teacher: {cost['saving']:.0%} saved "
                     f"(cost.cpu_hour {cost['cpu_hour']:g} {cur}, {cost['threads']} cores held)</li>")
    rec = doc.get("record") or {}
    if rec.get("synthetic_rows"):
        lines.append(f"<li>{rec['synthetic_rows']} teacher-labelled ({rec['synthetic_mode']}) rows joined the train "
                     f"split; skipped: {html.escape(str(rec.get('synthetic_skipped')))}</li>")
    lower = " (lower is better)" if m == "loss" else ""
    return f"<p>Test split, {html.escape(m)}{lower}; latency measured on this machine in one process.</p>" \
           f"{table}<ul>{''.join(lines)}</ul>"


# --- latency and size ------------------------------------------------------------------------------------------


def _latency(loaded: tuple, cfg: Config, bundle) -> dict:
    model, tokenizer = loaded
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    texts = (bundle.test["text"].astype(str).tolist() * 64)[:64]
    return {"ms_per_example_b1": _ms_per_example(model, tokenizer, texts[:16], 1, cfg.model.max_length),
            "ms_per_example_b32": _ms_per_example(model, tokenizer, texts, 32, cfg.model.max_length),
            "params": int(sum(p.numel() for p in model.parameters()))}


@torch.inference_mode()
def _ms_per_example(model, tokenizer, texts: list[str], batch_size: int, max_length: int) -> float:
    batches = [tokenizer(texts[i:i + batch_size], padding=True, truncation=True, max_length=max_length,
                         return_tensors="pt") for i in range(0, len(texts), batch_size)]
    model(**batches[0])  # warm-up: first-call allocations and kernel selection
    runs = []
    for _ in range(3):
        start = time.perf_counter()
        for enc in batches:
            model(**enc)
        runs.append((time.perf_counter() - start) * 1000 / len(texts))
    return float(statistics.median(runs))


def _cost_per_1k(cfg: Config, models: dict) -> dict | None:
    """What 1,000 answers at batch 32 cost with each model, at the config's cost.cpu_hour (cores held = torch
    threads, as the server meters them); None without a CPU price."""
    price = cfg.cost.cpu_hour
    if price is None:
        return None
    threads = torch.get_num_threads()
    # ms per example x 1,000 examples = that many seconds, x the cores held
    money = {role: cfg.cost.money(v["ms_per_example_b32"] * threads) for role, v in models.items()}
    return {**money, "saving": 1 - money["student"] / max(money["teacher"], 1e-12), "currency": cfg.cost.currency,
            "cpu_hour": price, "threads": threads}


def _size(path: Path) -> dict:
    weights = sum(f.stat().st_size for f in Path(path).glob("*.safetensors"))
    return {"weights_mb": weights / 2**20}
