"""Chat SFT throughput: TRL's SFTTrainer with its defaults against tunesmith's causal-lm training with its defaults.

    make bench        # or: python benchmarks/train_causal_lm.py --rows 64

Both train builtin:smollm2-135m-instruct with LoRA (same r/alpha/targets) for one epoch over the same conversations
at the same batch size, one after the other in this process run, with the same loss semantics: loss on the
assistant answer only, divided by the number of loss tokens of the accumulated batch. TRL gets the rows as
conversational prompt/completion (its default `completion_only_loss`), tunesmith as `messages` (`train_on:
assistant`); the script checks that both put loss on the same number of tokens. The defaults that differ are each
tool's own: TRL pads every batch to its longest row and turns gradient checkpointing on; tunesmith packs each
micro-batch into one padding-free row (positions restart per example), attends within each conversation only
(one causal SDPA call per conversation), computes logits only where the loss reads them, and keeps activations.
The optimisation hyperparameters are TRL's defaults on both sides (learning rate 2e-5, no warm-up, no weight
decay, bf16 where the CPU has it), so after the same tokens both models must have the same loss (tolerance
LOSS_TOLERANCE): a speed-up that learned less would show there. The loss is measured after training, teacher-forced
on the first EVAL_ROWS conversations with the same tokens for both (loss per loss token), not as the mean of the
logged step losses, which depends on how each tool happened to batch the rows. Prints the machine (CPU model, AMX / AVX512-BF16
flags, load), trained (non-pad) tokens/s of both, the ratio with its target and verdict, and writes a JSON file.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import pandas as pd  # noqa: E402
import torch  # noqa: E402
from machine import cpu_info, cpu_line, verdict  # noqa: E402  (sibling module: benchmarks/ is on sys.path)

DATA = Path(__file__).resolve().parent.parent / "examples/support-chat/chats.jsonl"
MODEL = "builtin:smollm2-135m-instruct"
BATCH = 8
LORA = {"r": 16, "alpha": 32, "dropout": 0.0}
TARGET_RATIO = 4.0  # issue 21: >= 4x TRL SFTTrainer defaults' trained tokens/s
LOSS_TOLERANCE = 0.02  # relative difference of the loss per loss token after the same tokens
EVAL_ROWS = 16
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


@dataclass
class Bundle:
    train: pd.DataFrame
    eval: pd.DataFrame
    test: pd.DataFrame
    labels: list[str] = field(default_factory=list)
    fingerprint: str = "bench"


def load_rows(n: int) -> list[list[dict]]:
    """The first n two-turn conversations of the support-chat example (prompt -> one answer)."""
    rows = [json.loads(line)["messages"] for line in DATA.read_text(encoding="utf-8").splitlines()]
    return [m for m in rows if len(m) == 2][:n]


def loss_per_token(model, tokenizer_path: str, rows: list[list[dict]]) -> float:
    """Teacher-forced loss per loss token of `model` on the first EVAL_ROWS conversations (tunesmith's encoding,
    the same token ids for both sides), in fp32."""
    from tunesmith.families.causal_lm.model import example_losses, load_tokenizer

    sums, counts = example_losses(model.float(), load_tokenizer(tokenizer_path), [(m, None) for m in rows[:EVAL_ROWS]],
                                  max_length=1024)
    return sum(sums) / max(sum(counts), 1)


def run_trl(model_path: str, rows: list[list[dict]], work: Path) -> dict:
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, TrainerCallback
    from trl import SFTConfig, SFTTrainer

    data = Dataset.from_list([{"prompt": m[:1], "completion": m[1:]} for m in rows])
    args = SFTConfig(output_dir=str(work / "trl"), num_train_epochs=1, per_device_train_batch_size=BATCH,
                     report_to="none", save_strategy="no", logging_steps=1000, use_cpu=not torch.cuda.is_available(),
                     seed=42, disable_tqdm=True)
    model = AutoModelForCausalLM.from_pretrained(model_path)
    peft = LoraConfig(r=LORA["r"], lora_alpha=LORA["alpha"], lora_dropout=LORA["dropout"], target_modules=TARGETS,
                      task_type="CAUSAL_LM")
    trainer = SFTTrainer(model=model, args=args, train_dataset=data, peft_config=peft)
    ds = trainer.train_dataset
    tokens = sum(len(x) for x in ds["input_ids"])
    if "completion_mask" in ds.column_names:  # label 0 is never predicted
        loss_tokens = sum(sum(m[1:]) for m in ds["completion_mask"])
    else:  # TRL folds the completion mask into `labels`
        loss_tokens = sum(sum(1 for x in lab[1:] if x != -100) for lab in ds["labels"])

    class Timer(TrainerCallback):
        def on_train_begin(self, *a, **k):
            self.t0 = time.perf_counter()

        def on_train_end(self, *a, **k):
            self.seconds = time.perf_counter() - self.t0

    timer = Timer()
    trainer.add_callback(timer)
    out = trainer.train()
    loss_after = loss_per_token(trainer.model, model_path, rows)
    return {"loss_after": loss_after, "seconds": timer.seconds, "tokens": tokens, "loss_tokens": loss_tokens,
            "train_loss": out.training_loss,
            "gradient_checkpointing": args.gradient_checkpointing, "bf16": args.bf16, "packing": args.packing,
            "padding_free": args.padding_free, "optim": str(args.optim),
            "matched": {"learning_rate": args.learning_rate, "warmup_ratio": 0.0, "weight_decay": args.weight_decay,
                        "precision": "bf16" if args.bf16 else "fp32"}}


def run_tunesmith(rows: list[list[dict]], work: Path, trl_args: dict) -> dict:
    from transformers import TrainerCallback

    from tunesmith.config import config_from_dict
    from tunesmith.families.causal_lm.model import conversation_lengths, to_dataset, tokenizer_for
    from tunesmith.training import train

    cfg = config_from_dict({
        "name": "bench", "task": "causal-lm", "data": {"path": "unused.jsonl"},
        "model": {"base": MODEL, "max_length": 1024},
        "method": {"kind": "lora", "lora": {**LORA, "target_modules": TARGETS}},
        "training": {"epochs": 1, "batch_size": BATCH, "early_stopping_patience": None, **trl_args},
    })
    frame = pd.DataFrame({"text": [str(m) for m in rows], "label": "", "messages": rows, "tools": [None] * len(rows)})
    tokens = sum(conversation_lengths(cfg, rows, [None] * len(rows)))
    ds = to_dataset(frame, tokenizer_for(cfg), cfg.model.max_length, cfg.chat.train_on)
    loss_tokens = sum(ds["loss_tokens"])

    class Timer(TrainerCallback):
        def on_train_begin(self, *a, **k):
            self.t0 = time.perf_counter()

        def on_train_end(self, *a, **k):
            self.seconds = time.perf_counter() - self.t0

    timer = Timer()
    result = train(cfg, Bundle(frame, frame.iloc[:0], frame.iloc[:0]), work / "tunesmith", callbacks=[timer])
    losses = [h["train_loss"] for h in result.log_history if "train_loss" in h]
    from transformers import AutoModelForCausalLM

    loss_after = loss_per_token(AutoModelForCausalLM.from_pretrained(result.model_dir), str(result.model_dir), rows)
    return {"loss_after": loss_after, "seconds": timer.seconds, "tokens": tokens, "loss_tokens": loss_tokens,
            "train_loss": losses[-1] if losses else None, "precision": result.precision,
            "packing": cfg.training.packing}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=64, help="conversations (one epoch; steps = rows / 8)")
    parser.add_argument("--out", default="benchmarks/results/train_causal_lm.json")
    args = parser.parse_args()

    from tunesmith.hub import resolve_model

    model_path = resolve_model(MODEL).path  # converted once from the wheel's GGUF, then cached
    rows = load_rows(args.rows)
    before = cpu_info()
    print(cpu_line(before), flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        trl = run_trl(model_path, rows, Path(tmp))
        m = trl["matched"]
        ours = run_tunesmith(rows, Path(tmp), {"learning_rate": m["learning_rate"], "warmup_ratio": m["warmup_ratio"],
                                               "weight_decay": m["weight_decay"], "precision": m["precision"]})
    after = cpu_info()
    for r in (trl, ours):
        r["tokens_per_s"] = r["tokens"] / r["seconds"]
    ratio = ours["tokens_per_s"] / trl["tokens_per_s"]
    same_semantics = trl["loss_tokens"] == ours["loss_tokens"] and trl["tokens"] == ours["tokens"]
    loss_gap = abs(ours["loss_after"] - trl["loss_after"]) / abs(trl["loss_after"])
    summary = {"model": MODEL, "rows": len(rows), "batch_size": BATCH, "steps": -(-len(rows) // BATCH),
               "threads": torch.get_num_threads(), "machine": before, "load_average_after": after["load_average"],
               "trl": trl, "tunesmith": ours, "same_tokens_and_loss_tokens": same_semantics, "ratio": ratio,
               "target_ratio": TARGET_RATIO, "ratio_verdict": verdict(ratio, TARGET_RATIO),
               "train_loss_relative_gap": loss_gap, "same_loss": loss_gap <= LOSS_TOLERANCE}
    print(f"trl SFTTrainer (defaults): {trl['tokens_per_s']:.1f} trained tokens/s "
          f"({trl['tokens']} tokens, {trl['loss_tokens']} carry loss, {trl['seconds']:.1f}s)")
    print(f"tunesmith (defaults):      {ours['tokens_per_s']:.1f} trained tokens/s "
          f"({ours['tokens']} tokens, {ours['loss_tokens']} carry loss, {ours['seconds']:.1f}s)")
    print(f"same tokens and loss tokens: {same_semantics}")
    print(f"loss per loss token after the same tokens ({min(EVAL_ROWS, len(rows))} conversations, teacher-forced): TRL "
          f"{trl['loss_after']:.4f}, tunesmith {ours['loss_after']:.4f} ({loss_gap:.2%} apart; tolerance "
          f"{LOSS_TOLERANCE:.0%}: {'same' if loss_gap <= LOSS_TOLERANCE else 'DIFFERENT'}); mean logged step loss "
          f"TRL {trl['train_loss']:.4f}, tunesmith {ours['train_loss']:.4f} (depends on the batching)")
    print(f"load average after: {', '.join(f'{x:.2f}' for x in after['load_average'])}")
    print(f"train_causal_lm_tokens_per_s: {ratio:.2f} (target >= {TARGET_RATIO:.0f}x: "
          f"{verdict(ratio, TARGET_RATIO) if loss_gap <= LOSS_TOLERANCE else 'NOT MET (loss differs)'})")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
