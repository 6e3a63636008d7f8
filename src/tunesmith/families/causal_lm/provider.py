"""`training.backend: openai-compatible`: a provider's fine-tuning API trains; tunesmith gates before and after.

    tunesmith run cfg.yaml     # with training.backend: openai-compatible and training.provider.base_url

The data is prepared and gated here first (nothing is uploaded when a gate fails). The train and eval splits go up
as chat JSONL with the official `openai` client, the job is created and its events followed (printed as they come;
cancelled on timeout or Ctrl-C). The fine-tuned model is then evaluated through the provider's chat endpoint on
the test split with the causal-lm metrics (ROUGE-L, exact match, JSON validity, the regression suite) against the
base model (through the provider when it serves it, else loaded here), with the same bootstrap CIs and gates, and
registered as an *external* version: its "model" is `external_model.json` (provider, base URL, job, model id), so
lineage, aliases and champion comparisons work as for local runs.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np

from tunesmith.config import Config
from tunesmith.families.causal_lm.evaluate import PRIMARY, CausalEvalReport, Scored, deltas
from tunesmith.families.causal_lm.suite import check, load_suite
from tunesmith.families.causal_lm.text_metrics import exact_match, json_valid, rouge_l
from tunesmith.io import atomic_write_json

EXTERNAL_FILE = "external_model.json"
TERMINAL = ("succeeded", "failed", "cancelled")


class ProviderError(RuntimeError):
    """The provider refused the upload or the job, or the job did not succeed."""


def client_for(cfg: Config):
    import openai

    p = cfg.training.provider
    key = os.environ.get(p.api_key_env)
    if not key:
        raise ProviderError(f"training.provider.api_key_env: the environment variable {p.api_key_env} is not set; "
                            "export the provider's API key there")
    return openai.OpenAI(base_url=p.base_url, api_key=key, max_retries=2, timeout=120)


def write_chat_jsonl(frame, path: Path) -> Path:
    lines = []
    for messages, tools in zip(frame["messages"], frame["tools"], strict=True):
        row = {"messages": list(messages)}
        if tools:
            row["tools"] = list(tools)
        lines.append(json.dumps(row, ensure_ascii=False))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def fine_tune(cfg: Config, bundle, run_dir: Path, say) -> dict:
    """Upload the gated splits, create the job, follow it to the end; returns what lineage records."""
    p = cfg.training.provider
    client = client_for(cfg)
    up = Path(run_dir) / "provider"
    up.mkdir(parents=True, exist_ok=True)
    try:
        train = client.files.create(file=write_chat_jsonl(bundle.train, up / "train.jsonl").open("rb"),
                                    purpose="fine-tune")
        valid = client.files.create(file=write_chat_jsonl(bundle.eval, up / "eval.jsonl").open("rb"),
                                    purpose="fine-tune") if len(bundle.eval) else None
        say(f"provider: uploaded {len(bundle.train)} train rows as {train.id}"
            + (f", {len(bundle.eval)} eval rows as {valid.id}" if valid else ""))
        job = client.fine_tuning.jobs.create(model=p.model or cfg.model.base, training_file=train.id,
                                             validation_file=valid.id if valid else None, seed=cfg.seed,
                                             suffix=p.suffix, hyperparameters=p.hyperparameters or None)
    except Exception as exc:  # openai.APIStatusError carries the provider's message
        raise ProviderError(f"the provider refused the fine-tuning request: {_message(exc)}") from None
    say(f"provider: job {job.id} created ({job.status})")
    job = _follow(client, job.id, p, say)
    if job.status != "succeeded":
        error = job.error.message if job.error else "no reason given"
        raise ProviderError(f"provider job {job.id} ended {job.status}: {error}")
    return {"provider.base_url": p.base_url, "provider.job_id": job.id, "provider.fine_tuned_model":
            job.fine_tuned_model, "provider.base_model": job.model, "provider.training_file": train.id,
            "provider.validation_file": valid.id if valid else "", "provider.trained_tokens": job.trained_tokens or 0}


def _follow(client, job_id: str, p, say):
    seen: set[str] = set()
    deadline = time.monotonic() + p.timeout_s

    def new_events() -> None:
        page = client.fine_tuning.jobs.list_events(job_id, limit=100)
        for event in reversed(page.data):  # oldest first
            if event.id not in seen:
                seen.add(event.id)
                say(f"provider: {event.message}")

    try:
        while True:
            new_events()
            job = client.fine_tuning.jobs.retrieve(job_id)
            if job.status in TERMINAL:
                new_events()  # what the job logged between the last listing and its end (its final event among them)
                return job
            if time.monotonic() > deadline:
                client.fine_tuning.jobs.cancel(job_id)
                raise ProviderError(f"provider job {job_id} still {job.status} after training.provider.timeout_s="
                                    f"{p.timeout_s:g}s; cancelled")
            time.sleep(p.poll_interval_s)
    except KeyboardInterrupt:
        client.fine_tuning.jobs.cancel(job_id)
        raise


def evaluate_remote(cfg: Config, bundle, fine_tuned_model: str, say) -> CausalEvalReport:
    """The fine-tuned model through the provider's chat endpoint vs the base model, on the test split."""
    client = client_for(cfg)
    test = bundle.test.iloc[: cfg.evaluation.max_eval_rows] if cfg.evaluation.max_eval_rows else bundle.test
    prompts = [list(m[:-1]) for m in test["messages"]]
    references = [m[-1]["content"] or "" for m in test["messages"]]
    suite = load_suite(cfg.resolve_path(cfg.evaluation.regression)) if cfg.evaluation.regression else []
    tuned = _score(cfg, lambda msgs: _chat(client, fine_tuned_model, msgs, cfg), prompts, references, suite)
    notes = ["trained by the provider; answers come from its chat endpoint (no token probabilities: loss and "
             "perplexity are not measured)"]
    base_model = cfg.training.provider.model or cfg.model.base
    try:
        base = _score(cfg, lambda msgs: _chat(client, base_model, msgs, cfg), prompts, references, suite)
        notes.append(f"baseline: {base_model} through the provider's chat endpoint")
    except Exception as exc:  # the provider does not serve its base model for chat: run it here when we can
        say(f"provider: the base model is not served for chat ({_message(exc)}); scoring it locally")
        base = _local_base(cfg, prompts, references, suite)
        notes.append(f"baseline: {cfg.model.base} generated locally (the provider does not serve it for chat)")
    report = CausalEvalReport(primary_metric=PRIMARY, tuned=tuned.metrics, baseline=base.metrics,
                              uplift=deltas(tuned, base, cfg), rows=len(test), notes=notes,
                              regression={"base": base.regression, "tuned": tuned.regression})
    report.samples = [{"source": "", "prompt": p[-1]["content"] if p else "", "reference": r, "base": b, "tuned": a,
                       "rouge_l_base": float(rb), "rouge_l_tuned": float(ra)}
                      for p, r, b, a, rb, ra in zip(prompts, references, base.answers, tuned.answers,
                                                    base.per_row["rouge_l"], tuned.per_row["rouge_l"], strict=True)
                      ][: cfg.evaluation.samples]
    return report


def _chat(client, model: str, messages: list[dict], cfg: Config) -> str:
    reply = client.chat.completions.create(model=model, messages=messages, max_tokens=cfg.chat.max_new_tokens,
                                           temperature=0)
    return reply.choices[0].message.content or ""


def _score(cfg: Config, answer, prompts, references, suite) -> Scored:
    answers = [answer(p) for p in prompts]
    return _scored(cfg, answers, references, suite, [answer(c.messages) for c in suite])


def _scored(cfg, answers, references, suite, suite_answers) -> Scored:
    per_row = {"rouge_l": np.array(rouge_l(answers, references)), "exact_match": np.array(exact_match(answers, references))}
    if cfg.evaluation.json_schema is not None:
        per_row["json_valid"] = np.array(json_valid(answers, cfg.evaluation.json_schema)[0])
    metrics = {k: float(v.mean()) if len(v) else float("nan") for k, v in per_row.items()}
    results = [check(c, a).to_dict() for c, a in zip(suite, suite_answers, strict=True)]
    if results:
        metrics["regression_pass_rate"] = sum(r["passed"] for r in results) / len(results)
    return Scored(metrics, per_row, answers, results)


def _local_base(cfg: Config, prompts, references, suite) -> Scored:
    from tunesmith.families.causal_lm.evaluate import load_lm
    from tunesmith.families.causal_lm.model import generate
    from tunesmith.hub import resolve_model

    model, tokenizer = load_lm(resolve_model(cfg.model.base, cfg.model.revision).path, cfg, "model.base")
    answers = generate(model, tokenizer, [(p, None) for p in prompts], max_new_tokens=cfg.chat.max_new_tokens)
    suite_answers = generate(model, tokenizer, [(c.messages, None) for c in suite],
                             max_new_tokens=cfg.chat.max_new_tokens) if suite else []
    return _scored(cfg, answers, references, suite, suite_answers)


def write_external_model(run_dir: Path, record: dict) -> Path:
    """run_dir/model/external_model.json: what the registered version points at (no weights here)."""
    model_dir = Path(run_dir) / "model"
    model_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(model_dir / EXTERNAL_FILE, {"external": True, **record})
    return model_dir


def _message(exc: Exception) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict) and body.get("message"):
        return str(body["message"])
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
