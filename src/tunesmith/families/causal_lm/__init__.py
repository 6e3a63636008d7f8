"""Chat / instruction SFT of a causal LM: the model's own chat template, loss on assistant tokens, packing, LoRA.

    task: causal-lm
    chat: {train_on: assistant, max_new_tokens: 64}
"""

from tunesmith.config import MethodKind
from tunesmith.config.family_rules import default_metric, no_slices
from tunesmith.contracts import (
    DatasetHooks,
    DriftHooks,
    EngineHooks,
    FeedbackHooks,
    FilterHooks,
    MlflowModel,
    PrivacyHooks,
    ReviewHooks,
    Route,
    SafetyHooks,
    lazy,
)
from tunesmith.families import register
from tunesmith.families.causal_lm import rows
from tunesmith.families.causal_lm.config import ChatConfig
from tunesmith.families.common import distill_hooks, family


def configure(cfg) -> None:
    """Defaults a user of TRL expects: LoRA, early stopping on eval loss, no label stratification."""
    if "kind" not in cfg.method.model_fields_set:
        cfg.method.kind = MethodKind.LORA
    if cfg.method.kind is MethodKind.HEAD:
        raise ValueError("method.kind: head trains a new task head; a causal LM keeps its own (use lora, full, freeze "
                         "or qlora)")
    default_metric(cfg, "loss", ("loss",), "training.metric: causal-lm checkpoints are chosen on eval loss; set "
                   "training.metric: loss (gate rouge_l / exact_match in gates)")
    if "stratify" not in cfg.data.split.model_fields_set:
        cfg.data.split.stratify = False
    no_slices(cfg)
    if cfg.evaluation.safety is not None and cfg.training.backend != "local":
        raise ValueError("evaluation.safety: the suites ask local model dirs; a provider-trained model (training."
                         "backend: openai-compatible) is not asked them yet; remove evaluation.safety")
    if cfg.method.kind is MethodKind.DISTILL:  # token-level KL with the teacher run alongside the student
        if "student_method" not in cfg.method.distill.model_fields_set:
            cfg.method.distill.student_method = MethodKind.LORA
        if cfg.method.distill.unlabeled:
            raise ValueError("method.distill.unlabeled: teacher-labelled rows are for classification; for causal-lm "
                             "generate answers with the teacher and add them as data rows")


_CLAIM = "training.metric: rouge_l / exact_match are causal-lm metrics; use macro_f1, accuracy, weighted_f1 or loss"

MAX_CORRECTION = 100_000  # characters, as serving.max_input_chars' default


def check_thumbs(value, _labels, _logged=None) -> dict:
    """Thumbs up or down on the answer, optionally with the answer it should have been (a reviewer's rewrite)."""
    if isinstance(value, str):
        value = {"thumbs": value}
    if not isinstance(value, dict) or value.get("thumbs") not in ("up", "down"):
        raise ValueError('give {"thumbs": "up" or "down", "correction": the answer it should have been (optional)}')
    extra = set(value) - {"thumbs", "correction"}
    if extra:
        raise ValueError(f"unknown field(s) {', '.join(sorted(extra))}; give thumbs and correction")
    correction = value.get("correction")
    if correction is not None and (not isinstance(correction, str) or not correction.strip()
                                   or len(correction) > MAX_CORRECTION):
        raise ValueError(f"correction must be a non-empty text of at most {MAX_CORRECTION} characters")
    return {"thumbs": value["thumbs"], **({"correction": correction} if correction else {})}



def conversation_row(logged, output, value) -> dict:
    """The logged conversation ending with the answer to learn: the reviewer's correction, else the served answer
    when it was rated up; a thumbs-down without a correction has no answer to train on."""
    if not isinstance(logged, list):
        raise ValueError("a /v1/completions prompt is not a conversation")
    answer = value.get("correction") or (output.get("text") if value["thumbs"] == "up" and isinstance(output, dict)
                                         else None)
    if not answer:
        raise ValueError("a thumbs-down without a correction has no answer to train on")
    if not str(answer).strip():
        raise ValueError("the served answer is blank: a thumbs-up on it has nothing to train on; send a correction")
    return {"messages": [*logged, {"role": "assistant", "content": answer}]}


def _chat_row(messages, tools) -> dict:
    row = {"messages": [dict(m) for m in messages]}
    if tools is not None and len(tools):
        row["tools"] = list(tools)
    return row


def _dataset() -> DatasetHooks:
    from tunesmith.data.fingerprint import text_key

    return DatasetHooks(
        raw_rows=lambda frame: [_chat_row(m, t) for m, t in zip(frame[rows.MESSAGES], frame[rows.TOOLS], strict=True)],
        key=lambda row: text_key(rows.canonical_text(row["messages"][:-1])),  # the prompt: a new answer replaces
        labels=lambda _row: (), data={}, recent_gates=("vs_champion.rouge_l >= 0",))


SERVE = "tunesmith.families.causal_lm.serve"
PRIVACY = "tunesmith.families.causal_lm.privacy"
ENGINE = "tunesmith.families.causal_lm.engine"

TASK = register(family(
    __name__, kind="causal-lm", summary="chat / instruction SFT of a causal LM (assistant-token loss, packing, LoRA)",
    configure=configure, section="chat", section_model=ChatConfig,
    check_rows=rows.check_rows, finish_rows=rows.apply_length_policy, bundle_columns=(rows.MESSAGES, rows.TOOLS),
    redact=rows.redact_rows, train_metrics=("loss",), metric_claims={"rouge_l": _CLAIM, "exact_match": _CLAIM},
    methods=(MethodKind.FULL, MethodKind.LORA, MethodKind.FREEZE, MethodKind.QLORA, MethodKind.DISTILL),
    baseline_name="base model (generations side by side)", recognize_order=50,
    routes=(Route("/v1/chat/completions", tags=("openai",), mount=lazy(f"{SERVE}:mount_chat")),
            Route("/v1/completions", tags=("openai",), mount=lazy(f"{SERVE}:mount_completions"))),
    distill=distill_hooks("tunesmith.families.causal_lm.distill"),
    filters=FilterHooks(text=lambda gen: gen.text, with_text=lazy(f"{SERVE}:with_text"),
                        invalid=lazy(f"{SERVE}:json_invalid"), retry=lazy(f"{SERVE}:sampled")),
    drift=DriftHooks(reference=lazy("tunesmith.families.causal_lm.drift:reference"), accepts=lazy("tunesmith.families.causal_lm.drift:accepts"),
                     window=lazy("tunesmith.families.causal_lm.drift:window")),
    review=ReviewHooks(widget="answer", items=lazy("tunesmith.families.causal_lm.review:items"),
                       agree=lazy("tunesmith.families.causal_lm.review:agree"), agreement="accept/reject agreement"),
    feedback=FeedbackHooks(shape='{"thumbs": "up" or "down", "correction": the better answer (optional)}',
                           check=check_thumbs,
                           summary=lambda v: v["thumbs"] + (" (corrected)" if "correction" in v else ""),
                           live=lazy("tunesmith.families.causal_lm.live:measure"),
                           live_metrics=(("thumbs_up_rate", "higher"), ("corrected_rate", "lower"),
                                         ("json_valid_rate", "higher"), ("regression_pass_rate", "higher")),
                           served=lazy("tunesmith.families.causal_lm.live:served"),
                           scheduled=lazy("tunesmith.families.causal_lm.live:scheduled"),
                           to_row=conversation_row),
    dataset=_dataset(),
    safety=SafetyHooks(answers=lazy("tunesmith.families.causal_lm.safety:answers")),
    mlflow=MlflowModel(
        inputs=({"type": "array", "name": "messages", "required": True,
                 "items": {"type": "object", "properties": {"role": {"type": "string"}, "content": {"type": "string"}}}},),
        outputs=({"type": "string", "name": "text", "required": True},
                 {"type": "string", "name": "finish_reason", "required": True},
                 {"type": "long", "name": "prompt_tokens", "required": True},
                 {"type": "long", "name": "completion_tokens", "required": True}),
        params=({"name": "max_tokens", "type": "long", "default": 64, "shape": None},
                {"name": "temperature", "type": "double", "default": 0.0, "shape": None},
                {"name": "top_p", "type": "double", "default": 1.0, "shape": None}),
        example={"messages": [[{"role": "user", "content": "How do I reset my password?"}]]},
        items=lazy(f"{SERVE}:pyfunc_items"), result=lazy(f"{SERVE}:pyfunc_result"),
        flavor="transformers", pipeline_task="text-generation"),
    privacy=PrivacyHooks(canary_row=lazy(f"{PRIVACY}:canary_row"), canary_nll=lazy(f"{PRIVACY}:canary_nll"),
                         extraction=lazy(f"{PRIVACY}:extraction"), row_losses=lazy(f"{PRIVACY}:row_losses")),
    engine=EngineHooks(load=lazy(f"{ENGINE}:load"), predict=lazy(f"{ENGINE}:predict"),
                       forward=lazy(f"{ENGINE}:forward"), launch=lazy(f"{ENGINE}:launch")),
))
