"""`Config`: the whole file, with the cross-section defaults and checks each task family needs."""

from __future__ import annotations

import difflib
import hashlib
import json
from pathlib import Path

import yaml
from pydantic import (
    BaseModel,
    Field,
    PrivateAttr,
    field_validator,
    model_validator,
)

from tunesmith.config.base import (
    MethodKind,
    TaskKind,
    _Strict,
)
from tunesmith.config.data import (
    DataConfig,
)
from tunesmith.config.jobs import JobsConfig
from tunesmith.config.loop import (
    MonitoringConfig,
    RetrainConfig,
    SearchConfig,
)
from tunesmith.config.serving import (
    RegistryConfig,
    ReviewConfig,
    ServingConfig,
)
from tunesmith.config.training import (
    NAME_RE,
    ChatConfig,
    EmbeddingConfig,
    EvaluationConfig,
    GatesConfig,
    MethodConfig,
    ModelConfig,
    RegressionConfig,
    TokenClassificationConfig,
    TrainingConfig,
)


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
    jobs: JobsConfig = Field(default_factory=JobsConfig)

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
    def _provider_backend(self) -> Config:
        if self.training.backend == "local":
            return self
        if self.task is not TaskKind.CAUSAL_LM:
            raise ValueError(f"training.backend: a provider fine-tunes chat models (task: causal-lm), not "
                             f"{self.task.value}")
        if self.training.provider is None:
            raise ValueError("training.provider: backend openai-compatible needs provider.base_url (and "
                             "provider.api_key_env naming the key's environment variable)")
        return self

    @model_validator(mode="after")
    def _distill_scope(self) -> Config:
        # Distillation is wired for single-label classification (precomputed teacher logits) and causal-lm
        # (token-level KL, teacher run alongside); the other families have no teacher distribution to match yet.
        if self.method.kind is not MethodKind.DISTILL:
            return self
        if self.task not in (TaskKind.CLASSIFICATION, TaskKind.CAUSAL_LM) or self.data.multi_label:
            what = "multi-label classification" if self.data.multi_label else self.task.value
            raise ValueError(f"method.kind: distill supports single-label classification and causal-lm, not {what}; "
                             "train the student with full or lora")
        if self.task is TaskKind.CAUSAL_LM:
            if "student_method" not in self.method.distill.model_fields_set:
                self.method.distill.student_method = MethodKind.LORA
            if self.method.distill.unlabeled:
                raise ValueError("method.distill.unlabeled: teacher-labelled rows are for classification; for "
                                 "causal-lm generate answers with the teacher and add them as data rows")
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
        if self.method.kind not in (MethodKind.FULL, MethodKind.FREEZE, MethodKind.LORA):
            raise ValueError(f"method.kind: {self.method.kind.value} is not supported for reranking yet; use full, "
                             "freeze or lora (the cross-encoder's classifier head always trains)")
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

    @model_validator(mode="after")
    def _tenant_key_paths(self) -> Config:
        # jobs.tenant_keys are key paths like search's: a typo would silently allow nothing (or refuse everything).
        problems = []
        for key in self.jobs.tenant_keys:
            parts = key.split(".")
            valid = _fields_at(tuple(parts))
            if parts[-1] not in valid:
                close = difflib.get_close_matches(parts[-1], valid, n=1)
                hint = f"did you mean '{'.'.join([*parts[:-1], close[0]])}'?" if close else "use a key path such as training.epochs"
                problems.append(f"jobs.tenant_keys: {key} is not a config key ({hint})")
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
            from tunesmith.config.loading import package_file  # loading imports this module

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


def _fields_at(loc: tuple) -> list[str]:
    """The valid field names of the model at a key path, for 'did you mean' hints."""
    model: type[BaseModel] | None = Config
    for part in loc[:-1]:
        if model is None or not isinstance(part, str) or part not in model.model_fields:
            return []
        ann = model.model_fields[part].annotation
        model = ann if isinstance(ann, type) and issubclass(ann, BaseModel) else None
    return list(model.model_fields) if model else []
