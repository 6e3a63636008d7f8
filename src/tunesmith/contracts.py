"""What every task family provides (the `Task` protocol) and the pieces every family shares.

    from tunesmith.families import get
    task = get(cfg.task)                         # the family of a config, e.g. "classification"
    bundle_rows = task.check_rows(table, cfg)    # stages call the protocol; none branches on a family's name

A family is a package under `tunesmith/families/` that builds one object satisfying `Task` and registers it with
`tunesmith.families.register(...)`. The contract suite (`tests/families/test_contract.py`) runs over every
registered family, the way scikit-learn's `check_estimator` runs over every estimator. See
docs/adding-a-family.md for a walk through with a toy family.

This module is the bottom layer: it imports nothing from the stages, so every stage and every family can use it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol, runtime_checkable

from tunesmith.io import json_safe

# --- the champion comparison, as every report states it ---------------------------------------------------

NONE, COMPARED, NOT_COMPARABLE = "none", "compared", "not comparable"


def not_compared_reason(status: str) -> str:
    """Why an existing champion was not compared, from a report's `champion_status` ("" when it was, or none exists)."""
    prefix = f"{NOT_COMPARABLE}: "
    return status.removeprefix(prefix) if status.startswith(prefix) else ""


def flat_family_metrics(tuned: dict, baseline: dict, champion: dict | None, uplift: dict,
                        vs_champion: dict | None) -> dict[str, float]:
    """The gate namespace of a report: m, baseline.m, champion.m, uplift.m, uplift_ci_low.m, vs_champion.m, ..."""
    flat = {k: float(v) for k, v in tuned.items()}
    flat.update({f"baseline.{k}": float(v) for k, v in baseline.items()})
    flat.update({f"champion.{k}": float(v) for k, v in (champion or {}).items()})
    for name, deltas in (("uplift", uplift), ("vs_champion", vs_champion or {})):
        for metric, stats in deltas.items():
            flat[f"{name}.{metric}"] = float(stats["delta"])
            for stat in ("ci_low", "ci_high", "p_value"):
                if stat in stats:
                    flat[f"{name}_{stat}.{metric}"] = float(stats[stat])
    return flat


@dataclass(kw_only=True)
class ReportBase:
    """The fields every family's evaluation report has: tuned vs baseline (and champion) with paired-bootstrap CIs.

    A family's report adds its own fields (per-class tables, worst errors, generated samples) and its report.html
    sections; `to_dict()` is its metrics.json body and `flat_metrics()` the namespace the gates read.
    """

    primary_metric: str  # what `require_significant_uplift` checks and the pipeline reports
    tuned: dict  # metric -> value on the test split
    baseline: dict  # the same metrics of what the family compares against (probe, base model)
    uplift: dict[str, dict]  # metric -> {delta, ci_low, ci_high, p_value}: tuned - baseline
    champion: dict | None = None  # the current champion on the rows it never trained on
    vs_champion: dict[str, dict] | None = None
    champion_status: str = NONE  # "none" | "compared" | "not comparable: <reason>"
    bootstrap: dict = field(default_factory=dict)  # samples, confidence, seed
    notes: list[str] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    # evaluation.safety's results (tunesmith.evaluation.safety): `metrics` is its part of the gate namespace
    # (safety.refusal_rate, baseline.safety.refusal_rate, safety.refusal_drop, ...); None: not run
    safety: dict | None = None

    curve_metric: ClassVar[str] = "loss"  # the training curve the report plots

    @property
    def has_champion(self) -> bool:
        """A champion exists (compared or not); `gate(has_champion=...)` fails its rules if it was not compared."""
        return self.champion_status != NONE

    @property
    def champion_note(self) -> str:
        """Why an existing champion was not compared ("" when it was, or when there is none)."""
        return not_compared_reason(self.champion_status)

    def to_dict(self) -> dict:
        return json_safe({k: getattr(self, k) for k in self.__dataclass_fields__})

    def flat_metrics(self) -> dict[str, float]:
        flat = flat_family_metrics(self.tuned, self.baseline, self.champion, self.uplift, self.vs_champion)
        flat.update((self.safety or {}).get("metrics", {}))
        return flat

    def metrics_document(self) -> dict:
        """metrics.json without the gates, flat metrics and lineage (the report stage adds those)."""
        return self.to_dict()

    def html_sections(self) -> list[tuple[str, str]]:
        """(title, html) sections of report.html after Data and Training."""
        raise NotImplementedError(f"{type(self).__name__} renders no report sections")


@runtime_checkable
class EvalReport(Protocol):
    """What the pipeline, the gates and the report read from any family's evaluation."""

    primary_metric: str
    notes: list[str]
    curve_metric: str

    @property
    def has_champion(self) -> bool: ...

    @property
    def champion_note(self) -> str: ...

    def flat_metrics(self) -> dict[str, float]: ...

    def to_dict(self) -> dict: ...

    def metrics_document(self) -> dict: ...

    def html_sections(self) -> list[tuple[str, str]]: ...


# --- training ---------------------------------------------------------------------------------------------


@dataclass
class TrainerParts:
    """What a family hands the transformers Trainer besides the model and tokenizer."""

    train_ds: Any  # datasets.Dataset with a `length` column (length-grouped, seeded batches)
    eval_ds: Any | None
    data_collator: Any = None  # None: dynamic padding (DataCollatorWithPadding)
    compute_metrics: Callable | None = None  # None: eval loss only
    compute_loss_func: Callable | None = None  # None: the model's own loss (class weights may replace it)
    packed: bool = False  # rows are packed sequences: every input token counts as seen, padding included
    trainer_cls: type | None = None  # a Trainer subclass (distillation's KD loss)
    trainer_kwargs: dict = field(default_factory=dict)  # what that subclass takes (teacher, distill config)
    distilled: Any = None  # the distillation record (teacher-labelled rows), written beside the run


# --- serving ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Route:
    """One HTTP route a family serves: the request body, how it becomes batch items, how answers become a body.

    `items(body, texts)` returns (items for the family's `predict`, what the prediction log keeps per item or
    None for the items themselves); `texts(value, field)` checks request texts (a 422 names the field), and a
    ValueError from `items` is a 422 too. `respond(answers, body, served)` is the response body without the ids
    every answer carries. A route that needs its own endpoint (streaming) gives `mount(app, state)` instead.
    """

    path: str
    request: type | None = None  # a pydantic model (invalid bodies: 422 naming the field)
    response: type | None = None
    items: Callable | None = None
    respond: Callable | None = None
    summary: str = ""
    tags: tuple[str, ...] = ("tasks",)
    mount: Callable | None = None


def _each_result(_served, result):
    return result


@dataclass(frozen=True)
class MlflowModel:
    """How a family's registered version is also an MLflow Model (`tunesmith.registry.mlflow_model` writes its MLmodel).

    The python_function flavor runs the family's own `predict` (what its HTTP route batches), so
    `mlflow.pyfunc.load_model("models:/NAME@champion").predict(frame)` answers each row as the route answers each
    item. `inputs`, `outputs` and `params` are MLflow schema JSON (`Schema.to_json()` / `ParamSchema.to_json()` of
    one column each); `example` is the input example (column -> values). `items(served, rows, params)` turns the
    frame's rows (dicts) into `predict` items, raising ValueError naming the row and column; `result(served, r)`
    is what one row returns. `flavor` is the native MLflow flavor written beside python_function ("transformers",
    "sentence_transformers", or None for pyfunc only), `pipeline_task` the transformers pipeline it loads as.
    """

    inputs: tuple[dict, ...]
    outputs: tuple[dict, ...]
    example: dict
    items: Callable
    result: Callable = _each_result
    params: tuple[dict, ...] = ()
    flavor: str | None = None
    pipeline_task: str = ""


# --- the loop ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LoopHooks:
    """A description of a family's loop (what feedback carries, its live metrics, drift features and the reviewer's
    field). Feedback, live quality, drift, review and retraining run from `feedback`, `drift`, `review` and
    `dataset`.
    """

    feedback: str  # what a feedback row carries: "label" (one of the model's labels)
    live_metrics: tuple[str, ...]  # live quality against the SLO: ("accuracy", "macro_f1")
    drift_features: tuple[str, ...]  # beyond text length, tokens and embeddings: ("predicted_label", "confidence")
    review_field: str  # what a reviewer sets, and the training row's target column: "label"


@dataclass(frozen=True)
class FeedbackHooks:
    """What a family's feedback on a served prediction is (`POST /v1/feedback`'s `value`, the `value` or `label`
    column of `tunesmith feedback import`), checked before it is stored.

    `check(value, labels, logged)` returns the value to store (JSON-able, normalized) or raises ValueError saying
    what is wrong in the user's terms; `labels` are the served model's labels (None when unknown) and `logged` the
    logged input the feedback is about (a text, a {query, document} pair, chat messages). `summary(stored)` is the
    short text kept beside it (the true label for classification; what live accuracy and retraining read today).
    """

    shape: str  # what a value looks like, for error messages and docs: "one of the model's labels"
    check: Callable
    summary: Callable = str
    # Live quality of served predictions that got feedback: `live(pairs) -> {metric: value | None}` over
    # (logged output, stored feedback value, request id) triples; `live_metrics` names each metric with its
    # direction ("higher" / "lower" is better), the first is the one a CI and the time series are given for.
    # LABEL_LIVE: the label path (accuracy, macro-F1, error-budget burn rate against monitoring.slo); None: no
    # live quality yet (the monitor report says so).
    live: Callable | str | None = None
    live_metrics: tuple[tuple[str, str], ...] = ()
    live_needs_model: bool = False  # True: `live(pairs, model_dir)` also gets the served version's model dir
    # The training row a piece of feedback becomes (what retraining and review add to the next dataset version):
    # `to_row(logged_input, logged_output, stored_value) -> dict` in the family's own data-file shape, with the
    # default column names (text/label, text/spans, query/positive, query/document/relevance, messages); a ValueError
    # says why this feedback trains nothing (a thumbs-down without a correction). None: not built for the family.
    to_row: Callable | None = None
    # Live metrics that need no feedback, named in `live_metrics` too: `served(rows, cfg) -> {metric: value | None}`
    # over one version's served answers in the window (prediction-log rows with input and output; a chat model's
    # JSON-validity rate), and `scheduled(cfg, model_dir) -> {metric: value | None, "failed": [names]}`, checks
    # re-run against a served version's model at most every `monitoring.checks_every` (a chat model's regression
    # suite); None: none. Their metrics join the version's live quality and its SLO targets.
    served: Callable | None = None
    scheduled: Callable | None = None


LABEL_LIVE = "labels"  # FeedbackHooks.live of a single-label classifier: live accuracy, macro-F1 and burn rate


REVIEW_WIDGETS = ("label", "labels", "value", "spans", "grade", "document", "answer")


@dataclass(frozen=True)
class ReviewHooks:
    """What a reviewer sees and does with a family's served answers (`tunesmith review`).

    `widget` is the form the review page shows: "label" (a button per class), "labels" (a checkbox per label),
    "value" (a number), "spans" (the text with its entities as [words](TYPE) to edit), "grade" (relevance 0-3),
    "document" (the relevant document for a query, among the nearest logged texts, or typed) or "answer" (accept,
    reject or rewrite a chat answer).
    `items(rows, labels) -> [{index, text, guess, uncertainty, context}]` over served prediction-log rows (input,
    output, confidence, and `feedback`: the latest stored feedback value or None); `index` is the row's position,
    `text` what the queue shows and deduplicates on, `guess` the model's answer as a feedback value (None: nothing
    to accept), `uncertainty` in [0, 1] the family's (margin, low span confidence, a score near the boundary, close
    neighbours, a thumbs-down) and `context` what the widget needs (candidates, the conversation). A reviewer's
    value goes through `FeedbackHooks.check` and becomes a training row through `FeedbackHooks.to_row`, as feedback
    does. `agree(a, b) -> float` in [0, 1]: how far two reviewers' values agree (span F1, Jaccard, same grade).
    A classifier (widget "label") keeps its label path: shadow disagreements, label issues, Cohen's kappa.
    """

    widget: str
    items: Callable | None = None
    agree: Callable | None = None
    agreement: str = ""  # what `agree` measures, for the agreement page: "span F1"


@dataclass(frozen=True)
class DriftHooks:
    """What `tunesmith monitor` tests a window of served traffic with, against the reference the run stored.

    `reference(cfg, bundle, model_dir) -> dict` is computed when the run trains (`<run>/drift_reference.json`): the
    training inputs' lengths and tokens, and the tuned model's served outputs on held-out inputs. `accepts(row)`
    says whether a logged row is this family's answer; `window(rows, reference, settings, context) -> {test: result}`
    runs the drift tests (`tunesmith.monitoring.drift`) on the accepted rows; `context` has cfg, name, store,
    version and the rows with feedback.
    """

    reference: Callable
    accepts: Callable
    window: Callable


@dataclass(frozen=True)
class DatasetHooks:
    """How `tunesmith retrain` keeps a family's dataset versions (rows in the family's data-file shape, default
    column names; new rows come from `FeedbackHooks.to_row`).

    `raw_rows(frame)` turns a bundle split back into such rows (the first version's train/eval/test), `key(row)`
    is a row's identity (a later row with the same key replaces it; a key in the frozen eval/test split is
    leakage), `labels(row)` the class labels a row carries (checked against the model's; () without classes),
    `data` the `data.*` settings that read the version's files, `recent_gates` the default rules on the
    recent slice (challenger vs champion, the family's own metric and direction), and `group(row)` which rows join
    the eval split together.
    """

    raw_rows: Callable
    key: Callable
    labels: Callable
    data: dict
    recent_gates: tuple[str, ...]
    # a row's group: rows of one group go to the eval split together (a reranked query's documents, an embedding
    # query's pairs); None: each row is its own group
    group: Callable | None = None
    # (new rows, the parent version's train rows) -> the new rows in the parent's shape (a scored-pair model's new
    # pairs get a score); None: as they are
    conform: Callable | None = None
    # (cfg, derived cfg, dataset version, challenger dir, champion dir, name) -> the recent-slice verdict; None: the
    # family's own `evaluate` on the recent rows as the test split (vs the champion), gated by the recent gates
    recent_eval: Callable | None = None


@dataclass(frozen=True)
class FilterHooks:
    """How `serving.filters` reads and changes one of the family's served answers (tunesmith.serving.filters).

    `confidence(result)`: how sure the answer is (None: no confidence; the floor does not apply);
    `abstain(result, floor)`: (what the caller gets, what the log keeps) when it is below
    `serving.filters.confidence_floor` (an extractor withholds only its entities below the floor);
    `text(result)`: the generated text the text filters (PII redaction, deny patterns) judge, or None;
    `with_text(result, text, finish_reason)`: the answer with that text instead (finish_reason None: unchanged);
    `invalid(result, schema)`: why the answer is not JSON valid against `serving.filters.json_schema`, or None;
    `retry(item)`: the batch item to generate once more after an invalid answer (e.g. sampled, not greedy).
    """

    confidence: Callable | None = None
    abstain: Callable | None = None
    text: Callable | None = None
    with_text: Callable | None = None
    invalid: Callable | None = None
    retry: Callable | None = None


@dataclass(frozen=True)
class DistillHooks:
    """What the distillation comparison needs from a family that supports `method.kind: distill`."""

    scores: Callable  # (cfg, bundle, model_dir) -> {"quality": {metric: value}, ...what `delta` resamples}
    delta: Callable  # (cfg, a, b, metric) -> {delta, ci_low, ci_high, p_value}: a - b, paired bootstrap
    load: Callable  # (model_dir, cfg) -> (model, tokenizer) in eval mode, for the latency measurement


@dataclass(frozen=True)
class PrivacyHooks:
    """What `evaluation.privacy` can measure of a family's trained model (tunesmith.evaluation.privacy); a part whose
    hook is None is refused in the config with its key path.

    Canaries ("The Secret Sharer"): `canary_row(text, cfg) -> dict` is a train row (the bundle's columns) whose
    trained text holds `text`; `canary_nll(cfg, model_dir, texts) -> np.ndarray` the negative log-likelihood (nats)
    the model gives each text in that same row, summed over its trained tokens.
    Extraction: `extraction(cfg, frame, model_dirs, settings) -> list[dict]`: prompts from the trained rows of
    `frame` that hold PII (tunesmith.data.pii), one record per PII value: {source, type, masked, extracted: {model
    name: bool}} for each model dir of `model_dirs` (name -> dir).
    Membership: `row_losses(cfg, model_dir, frame, labels) -> np.ndarray`: the model's loss on each row of `frame`.
    """

    canary_row: Callable | None = None
    canary_nll: Callable | None = None
    extraction: Callable | None = None
    row_losses: Callable | None = None


@dataclass(frozen=True)
class SafetyHooks:
    """How `evaluation.safety` (tunesmith.evaluation.safety) asks a family's models its suites' prompts.

    `answers(model_dir, cfg, key, conversations, max_new_tokens) -> [text]`: the greedy answer of the model in
    `model_dir` to each conversation (a list of {role, content} messages), rendered as the family renders prompts
    in training and serving; `key` names the config key the model came from, for load errors ("model.base").
    """

    answers: Callable


@dataclass(frozen=True)
class EngineHooks:
    """How a family's answers come from an upstream engine (`serving.engine: openai-compatible`: vLLM, SGLang, TGI,
    any OpenAI-API server) while tunesmith keeps routing, rollout, the log and the metrics (tunesmith.serving).

    `load(model_dir, served, upstream)`: fill a `Served` without weights (a tokenizer at most) whose `upstream`
    (a `tunesmith.serving.upstream.Upstream`) generates; `upstream` is the `serving.upstream` config.
    `predict(served, item)`: an awaitable of one batch item's answer from the engine (the shape `predict` returns).
    `forward(state, request, response, body, chat=...)`: a family route's answer when an engine generates (its
    streams relayed); the family's route calls it for a `Served` with an `upstream`.
    `launch(specs, engine=, host=, port=)`: the engine's command lines (argv lists) serving each spec ({model_dir,
    served_name, adapter}: the merged model dir, or a LoRA adapter dir on its base) (`tunesmith serve --engine`).
    """

    load: Callable
    predict: Callable
    forward: Callable | None = None
    launch: Callable | None = None


# --- the protocol ---------------------------------------------------------------------------------------------


class Task(Protocol):
    """Everything a task family provides. Stages call these; none of them branches on a family's name."""

    kind: str  # the config's `task:` value ("classification", "multi-label", ...)
    summary: str  # one line: what the family trains
    section: str | None  # its own top-level config section ("chat", "embedding", ...), or None
    section_model: type | None  # the pydantic model of that section (defaults when the config omits it)
    labeled: bool  # rows carry class labels: case-checked label values, a label list, label data checks
    label_column: str | None  # the bundle column holding them ("label"; "labels" for label lists)
    baseline_name: str  # what the tuned model is compared with, for the console
    train_metrics: tuple[str, ...]  # training.metric values it accepts (early stopping, best checkpoint)
    metric_claims: dict[str, str]  # metrics only it uses -> the refusal other families give (names it)
    methods: tuple  # the MethodKinds it trains with
    bundle_columns: tuple[str, ...]  # its columns after text, label, _source and the slice columns
    checks_on_full_text: bool  # data gates judge the whole row text although the split keys on another
    streams_rows: bool  # read by the generic reader and its check_rows judges each row alone: batches are allowed
    ships: tuple[str, ...]  # files its evaluation writes to the run dir that ship with the model (calibration.json)
    routes: tuple[Route, ...]  # what `tunesmith serve` answers for this family's models
    loop: LoopHooks | None  # a description of its loop
    review: ReviewHooks | None  # None: its served answers are counted not_reviewable
    feedback: FeedbackHooks | None  # None: POST /v1/feedback and `feedback import` refuse its models' feedback
    drift: DriftHooks | None  # None: `monitor` has no drift tests for it (and no reference is stored)
    dataset: DatasetHooks | None  # None: `retrain` refuses its models
    distill: DistillHooks | None  # None: `method.kind: distill` is refused for the family
    filters: FilterHooks | None  # None: serving.filters leave its answers as they are
    mlflow: MlflowModel | None  # None: its registered versions are plain model dirs (no MLmodel)
    safety: SafetyHooks | None  # None: `evaluation.safety` is refused for the family
    recognize_order: int  # when `recognizes` is asked: specific rules (a cross-encoder marker) before general ones
    private_training: bool  # trains with DP-SGD (training.privacy) through tunesmith.training.privacy
    privacy: PrivacyHooks | None  # None: evaluation.privacy is refused for the family
    slice_metrics: tuple[str, ...]  # metrics its evaluation reports per slice (`slices.*` gates); () none
    # (DataStats, cfg) -> tunesmith.config.derived.Derived: epochs, learning rate, warmup and batch size that fit the
    # training rows (keys the config leaves unset); None: the generic fallback (the config's values stand)
    training_defaults: Callable | None
    # (cfg, bundle) -> the baseline's training.metric on the eval split (None: not comparable), what `run` compares
    # the fine-tuned model with before evaluating; None: no such comparison (no fallback candidate)
    probe_eval: Callable | None
    engine: EngineHooks | None  # None: `serving.engine: openai-compatible` is refused for its models

    # config
    def configure(self, cfg) -> None:
        """The family's defaults and checks on a parsed config (ValueError naming the key path)."""

    # data
    def read_table(self, key: str, path: Path, cfg) -> Any:
        """One configured file as a `tunesmith.data.load.Table` (raw columns, `_source`, unreadable lines)."""

    def check_rows(self, table, cfg) -> Any:
        """Usable / bad (file:line and a reason) / excluded rows: a `tunesmith.data.schema.CheckedTable`."""

    def finish_rows(self, checked, cfg) -> None:
        """After `data.bad_rows` has judged the rows (causal-lm: the length policy)."""

    def label_set(self, splits: dict, cfg, files: list) -> tuple[list[str], list[str]]:
        """The label list (class id = index; [] without classes) and warnings, from the split rows."""

    def check_splits(self, frames: dict, cfg) -> list[str]:
        """Checks across the final bundle frames: warnings (a DataError stops the run)."""

    def label_distribution(self, frame, labels: list[str]) -> dict:
        """The data card's per-split distribution of labels, entity types or targets."""

    def redact(self, frame, hits: dict, redact: Callable[[str], str]) -> None:
        """Rewrite in place the trainable texts of the rows in `hits` (position -> PII findings in its text);
        `redact(text)` finds and replaces PII in any other string the family trains on (data.checks.pii: redact)."""

    def label_checks(self, cfg, outcome, run_dir: Path | None) -> None:
        """The data gates that need labels (label issues, imbalance); families without them record n/a."""

    # training
    def train(self, cfg, bundle, run_dir: Path, resolved, *, start_from: Path | None, callbacks: Sequence) -> Any:
        """Fine-tune and save run_dir/model; returns a `tunesmith.training.TrainResult`."""

    # evaluation
    def evaluate(self, cfg, bundle, model_dir: Path, *, champion_dir: Path | None, champion_name: str,
                 out_dir: Path | None) -> EvalReport:
        """Tuned vs the family's baseline (and champion) on the test split, with paired-bootstrap CIs."""

    # the model dir
    def describe_model(self, model_dir: Path) -> dict:
        """What `model/tunesmith.json` records beyond the family and versions: labels or targets, thresholds."""

    # serving
    def load_served(self, model_dir: Path, served) -> None:
        """Fill a `Served` (model, tokenizer, labels, thresholds, ...) from the model dir, in eval mode."""

    def predict(self, served, items: list) -> list:
        """Batch predict: one output per item, in order (the serving batcher's function)."""

    def recognizes(self, model_dir: Path, config: dict) -> bool:
        """Whether a model dir without tunesmith.json is this family's (asked in `recognize_order`)."""


def _no_op(*_args, **_kwargs) -> None:
    return None


def _no_warnings(*_args, **_kwargs) -> list[str]:
    return []


def _nothing_more(*_args, **_kwargs) -> dict:
    return {}


def _never(*_args, **_kwargs) -> bool:
    return False


@dataclass(frozen=True)
class Family:
    """The usual way to build a `Task`: a value whose hooks are functions (heavy ones wrapped in `lazy`).

    No inheritance: a family lists what it uses, the defaults below cover the hooks most families leave alone.
    """

    kind: str
    summary: str
    configure: Callable
    read_table: Callable
    check_rows: Callable
    label_set: Callable
    label_distribution: Callable
    redact: Callable
    label_checks: Callable
    train: Callable
    evaluate: Callable
    load_served: Callable
    predict: Callable
    baseline_name: str
    train_metrics: tuple[str, ...]
    methods: tuple
    routes: tuple[Route, ...] = ()
    section: str | None = None
    section_model: type | None = None
    labeled: bool = False
    label_column: str | None = None
    metric_claims: dict[str, str] = field(default_factory=dict)
    bundle_columns: tuple[str, ...] = ()
    checks_on_full_text: bool = False
    ships: tuple[str, ...] = ()
    loop: LoopHooks | None = None
    review: ReviewHooks | None = None
    feedback: FeedbackHooks | None = None
    drift: DriftHooks | None = None
    dataset: DatasetHooks | None = None
    distill: DistillHooks | None = None
    filters: FilterHooks | None = None
    mlflow: MlflowModel | None = None
    safety: SafetyHooks | None = None
    recognizes: Callable = _never
    recognize_order: int = 100
    private_training: bool = False
    finish_rows: Callable = _no_op
    check_splits: Callable = _no_warnings
    describe_model: Callable = _nothing_more
    privacy: PrivacyHooks | None = None
    slice_metrics: tuple[str, ...] = ()
    training_defaults: Callable | None = None
    probe_eval: Callable | None = None
    engine: EngineHooks | None = None
    streams_rows: bool = False


def lazy(target: str) -> Callable:
    """`"package.module:function"`, imported on the first call: a family's torch-heavy modules load only when a
    stage needs them, so registering every family (and parsing a config) stays fast."""
    module_name, _, name = target.partition(":")
    found: list[Callable] = []

    def call(*args, **kwargs):
        if not found:
            import importlib

            found.append(getattr(importlib.import_module(module_name), name))
        return found[0](*args, **kwargs)

    call.__name__ = call.__qualname__ = name
    call.__doc__ = f"{target} (imported on first use)"
    return call
