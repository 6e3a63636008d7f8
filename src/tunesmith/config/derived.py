"""Training settings that fit the data: epochs, learning rate, warmup and batch size from rows, classes and lengths.

    stats = data_stats(bundle.train, label_column="label")
    derived = family(cfg.task).training_defaults or generic_defaults   # the family's hook, else the generic rule
    cfg, chosen = apply_defaults(cfg, derived(stats, cfg))             # explicit config values always win

The config's built-in values (3 epochs, batch 32, 5e-5, 6% warmup) were tuned on the 8,000-row demo; on a few
hundred rows they give ~70 optimizer steps, too few to move a pretrained encoder past a linear probe on its frozen
embeddings. The rule aims at a number of optimizer steps instead of a number of epochs (more epochs for few rows,
never fewer than the built-in 3), takes smaller batches when rows are few or long, and a longer warmup when the
run is short (Mosbach et al., 2021, "On the stability of fine-tuning BERT": train longer, warm up). Early stopping
on the eval split (training.early_stopping_patience) ends a run that stops improving. Each value comes with why.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

from tunesmith.config.base import MethodKind
from tunesmith.config.root import Config  # noqa: TC001

KEYS = ("epochs", "batch_size", "learning_rate", "warmup_ratio")  # what the rule may set (training.<key>)
SCHEDULE = ("epochs", "batch_size", "warmup_ratio")  # derived together, or not at all (max_steps counts as epochs)
TARGET_STEPS = 600  # optimizer steps aimed at: the demo's 8,000 rows at batch 32 reach it in 3 epochs (750)
MAX_EPOCHS = 12  # early stopping usually ends a small-data run well before
TOKENS_PER_WORD = 1.3  # word counts as a token estimate (no tokenizer needed, so `tunesmith init` can use it too)


@dataclass(frozen=True)
class DataStats:
    """What the rule reads from the training rows."""

    rows: int  # training rows
    classes: int = 0  # distinct labels (0: a family without classes)
    smallest_class: int = 0  # rows of the rarest label
    median_words: float = 0.0
    p95_words: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)


def data_stats(frame, *, label_column: str | None = None, text_column: str = "text") -> DataStats:
    """Rows, classes (labels or label lists) and text lengths (words) of a training frame."""
    import pandas as pd

    words = frame[text_column].astype(str).str.split().str.len() if len(frame) else pd.Series([], dtype=float)
    classes = smallest = 0
    if label_column and label_column in frame and len(frame):
        values = frame[label_column]
        flat = values.explode() if values.map(lambda v: isinstance(v, list | tuple)).any() else values
        counts = flat.dropna().astype(str).value_counts()
        classes, smallest = int(len(counts)), int(counts.min()) if len(counts) else 0
    return DataStats(rows=len(frame), classes=classes, smallest_class=smallest,
                     median_words=float(words.median()) if len(words) else 0.0,
                     p95_words=float(words.quantile(0.95)) if len(words) else 0.0)


@dataclass
class Derived:
    """Values the rule chose (training key -> value) and why (key -> reason)."""

    values: dict = field(default_factory=dict)
    why: dict = field(default_factory=dict)

    def set(self, key: str, value, reason: str) -> None:
        self.values[key], self.why[key] = value, reason


def _tokens(stats: DataStats, cfg: Config) -> int:
    return min(int(stats.p95_words * TOKENS_PER_WORD) + 2, cfg.model.max_length)


def schedule(stats: DataStats, cfg: Config, derived: Derived, *, target_steps: int = TARGET_STEPS,
             max_epochs: int = MAX_EPOCHS) -> Derived:
    """Batch size (rows, lengths), epochs to reach `target_steps` optimizer steps, warmup by run length."""
    n, tokens = max(stats.rows, 1), _tokens(stats, cfg)
    batch = 32 if n >= 4000 else 16
    reason = f"{stats.rows} training rows" + (" (>= 4000)" if batch == 32 else " (< 4000: more updates per epoch)")
    if tokens > 256 and batch > 8:  # long rows: keep a batch's padded tokens (activation memory) near 16 x 256
        batch //= 2
        reason += f"; halved for long rows (95th percentile ~{tokens} tokens)"
    derived.set("batch_size", batch, reason)
    per_epoch = max(math.ceil(n / (batch * cfg.training.grad_accum)), 1)
    epochs = min(max(math.ceil(target_steps / per_epoch), 3), max_epochs)
    derived.set("epochs", epochs, f"{per_epoch} steps per epoch; about {target_steps} optimizer steps in all, "
                f"between 3 and {max_epochs} epochs (early stopping on eval ends it sooner)")
    steps = per_epoch * epochs
    warmup = 0.1 if steps < 500 else 0.06
    derived.set("warmup_ratio", warmup, f"{steps} planned steps: " + ("a short run warms up longer (10%)"
                                                                        if warmup == 0.1 else "6% of a long run"))
    return derived


# Learning rates by method: the whole encoder moves slowly; adapters and a new head alone take larger steps.
METHOD_LR = {MethodKind.FULL: 5e-5, MethodKind.FREEZE: 5e-5, MethodKind.DISTILL: 5e-5, MethodKind.LORA: 5e-4,
             MethodKind.QLORA: 2e-4, MethodKind.HEAD: 2e-3}


def learning_rate(stats: DataStats, cfg: Config, derived: Derived, *, scale: float = 1.0, why: str = "") -> Derived:
    """The method's learning rate; a small full fine-tune takes a larger one (few steps to move a pretrained encoder)."""
    kind = MethodKind(cfg.method.student().kind if MethodKind(cfg.method.kind) is MethodKind.DISTILL
                      else cfg.method.kind)
    lr = METHOD_LR.get(kind, 5e-5) * scale
    reason = f"method {kind.value}" + (f", {why}" if why else "")
    if kind in (MethodKind.FULL, MethodKind.FREEZE) and stats.rows < 2000:
        lr *= 2
        reason += f"; doubled for {stats.rows} rows (< 2000): few steps to move the encoder"
    derived.set("learning_rate", float(f"{lr:.3g}"), reason)
    return derived


def generic_defaults(stats: DataStats, cfg: Config) -> Derived:
    """The fallback for a family without its own rule: nothing derived, the config's values stand.

    The head rule does not carry over: an embedding model wants large in-batch-negative batches, a chat model's
    batch is a packed row and a dozen epochs over a small chat set overfit. Such a family opts in with its own hook
    (it may build on `schedule` and `learning_rate`)."""
    return Derived()


def head_defaults(stats: DataStats, cfg: Config, *, steps_per_class: int = 0, lr_scale: float = 1.0,
                  lr_why: str = "") -> Derived:
    """Encoder families that train a head (classification, multi-label, regression): schedule and learning rate.

    `steps_per_class` adds optimizer steps per class beyond two (many classes with few rows each learn slower).
    """
    target = TARGET_STEPS + steps_per_class * max(stats.classes - 2, 0)
    derived = schedule(stats, cfg, Derived(), target_steps=target)
    if steps_per_class and stats.classes > 2:
        derived.why["epochs"] += f"; {stats.classes} classes add {steps_per_class} steps each"
    return learning_rate(stats, cfg, derived, scale=lr_scale, why=lr_why)


def explicit_keys(cfg: Config) -> set[str]:
    """The training keys the config sets itself (in the file, --set, or a resolved config written by a run)."""
    return set(cfg.training.model_fields_set) & set(KEYS) | ({"epochs"} if cfg.training.max_steps else set())


def apply_defaults(cfg: Config, derived: Derived) -> tuple[Config, dict]:
    """`cfg` with the derived values for the keys it does not set, and the record of what was chosen and why.

    Record: {key: {value, source: "config" | "data", why}} for every key of KEYS. Epochs, batch size and warmup are
    one schedule: when the config sets any of them (or max_steps), the others keep the config's values too.
    """
    explicit = explicit_keys(cfg)
    pinned = sorted(explicit & set(SCHEDULE))  # the schedule goes as a whole: a config that sets part of it keeps it
    out = cfg.model_copy(deep=True)
    record = {}
    for key in KEYS:
        if key in explicit or key not in derived.values or (pinned and key in SCHEDULE):
            why = "set in the config" if key in explicit else \
                f"the config's default: the config sets the schedule ({', '.join(pinned)})" if pinned and \
                key in SCHEDULE and key in derived.values else "the config's default (no rule for it)"
            record[key] = {"value": getattr(cfg.training, key), "source": "config", "why": why}
            continue
        setattr(out.training, key, derived.values[key])
        record[key] = {"value": derived.values[key], "source": "data", "why": derived.why[key]}
    return out, record


def describe(record: dict) -> list[str]:
    """One line per key: `epochs 10 (from the data: ...)` / `learning_rate 3e-05 (set in the config)`."""
    lines = []
    for key, entry in record.items():
        source = "from the data" if entry["source"] == "data" else entry["source"]
        if entry["source"] == "search":
            source = "from the search"
        lines.append(f"{key} {entry['value']:g} ({source}: {entry['why']})" if isinstance(entry["value"], int | float)
                     else f"{key} {entry['value']} ({source}: {entry['why']})")
    return lines
