"""`data:`: where the rows come from, how they are split, and the data gates (`data.checks`)."""

from __future__ import annotations

from enum import Enum
from typing import Any, Literal

from pydantic import (
    Field,
    field_validator,
    model_validator,
)

from tunesmith.config.base import (
    BadRowPolicy,
    ChatFormat,
    LongRowPolicy,
    StrictModel,
)


class SplitConfig(StrictModel):
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


class PiiCheckConfig(StrictModel):
    policy: CheckPolicy = Field(CheckPolicy.WARN, description="off | warn | fail | redact | drop")
    types: list[Literal["EMAIL", "PHONE", "CREDIT_CARD", "IBAN", "IP_ADDRESS", "NATIONAL_ID", "PERSON"]] = Field(
        default_factory=lambda: list(PII_TYPES), description="PII types to look for; PERSON needs Presidio"
    )
    presidio: PresidioMode = Field(PresidioMode.AUTO, description="Presidio (spaCy NER) for PERSON names: auto | on | off")
    min_score: float = Field(0.5, ge=0, le=1, description="Presidio findings below this score are ignored")
    examples: int = Field(3, ge=0, le=20, description="masked examples per type in the report")


class NearDuplicateConfig(StrictModel):
    enabled: bool = True
    threshold: float = Field(
        0.7, gt=0, le=1, description="Jaccard similarity of word n-gram sets from which two texts are near-duplicates "
        "(MinHash LSH finds candidates, the exact Jaccard confirms them)"
    )
    num_perm: int = Field(128, ge=16, le=1024, description="MinHash permutations (more: better candidate recall, slower)")
    ngram: int = Field(2, ge=1, le=8, description="words per shingle")
    seed: int = Field(1, description="MinHash seed")


class DuplicatesCheckConfig(StrictModel):
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


class LeakageCheckConfig(StrictModel):
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


class LabelIssuesConfig(StrictModel):
    enabled: bool = Field(True, description="rank likely label errors with cleanlab (classification)")
    features: Literal["embeddings", "tfidf"] = Field(
        "embeddings", description="linear probe on frozen model.base embeddings, or on TF-IDF (no model, fastest)"
    )
    folds: int = Field(5, ge=2, le=20, description="cross-validation folds for out-of-fold probabilities")
    min_rows: int = Field(200, ge=10, description="skip the check on smaller datasets (too few rows for out-of-fold estimates)")
    max_rows: int = Field(20000, ge=10, description="a seeded sample of at most this many rows is checked")
    top: int = Field(20, ge=0, description="flagged rows listed in the report")
    review_file: bool = Field(False, description="write every flagged row to <run>/label_issues.jsonl")


class ImbalanceConfig(StrictModel):
    max_ratio: float = Field(5.0, ge=1, description="warn when the largest train class is this many times the smallest")
    min_class_rows: int = Field(20, ge=1, description="warn about train classes with fewer rows")
    oversample: bool = Field(
        False, description="repeat rows of the smaller train classes (seeded) up to the largest class's count"
    )


class DataChecksConfig(StrictModel):
    """The data gates run after the split, before any training step."""

    pii: PiiCheckConfig = Field(default_factory=PiiCheckConfig)
    duplicates: DuplicatesCheckConfig = Field(default_factory=DuplicatesCheckConfig)
    leakage: LeakageCheckConfig = Field(default_factory=LeakageCheckConfig)
    label_issues: LabelIssuesConfig = Field(default_factory=LabelIssuesConfig)
    imbalance: ImbalanceConfig = Field(default_factory=ImbalanceConfig)


class DataConfig(StrictModel):
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
    max_line_bytes: int = Field(16 * 2**20, ge=1024, description="longest JSON Lines row or CSV field read; a longer "
                                "row is a bad row (too_long_line), never read whole")
    checks: DataChecksConfig = Field(default_factory=DataChecksConfig, description="PII, duplicates, leakage, label issues")
    batch_rows: int | None = Field(
        None, ge=0, description="read and check the data in batches of this many rows, holding per row only hashes, "
        "lengths and labels (the splits are written to the run dir as parquet); 0: never; unset: batches of 20,000 "
        "when the data files exceed 64 MiB and the task checks rows one by one")
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


