"""Tiny servable models (BERT classifier, BERT encoder, Llama-style chat LM), registered the way pipeline.run does,
and a real uvicorn server on a loopback port in a background thread."""

from __future__ import annotations

import json
import socket
import threading
import time
from pathlib import Path

import torch
from tests.toy import NEGATIVE, NEUTRAL, POSITIVE, build_tiny_model_dir, make_reviews

from tunesmith.config import ServingConfig, config_from_dict
from tunesmith.registry import log_run, promote, register_version

CHATML = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def build_classifier(path: Path, seed: int, encoder_dir: str, max_positions: int | None = None) -> Path:
    """A 2-layer BERT sequence classifier (labels neg/pos) on the toy tokenizer; `seed` makes versions differ.
    `max_positions` below the tokenizer's 128: a model that answers short inputs and fails on longer ones."""
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    config = BertConfig.from_pretrained(encoder_dir)
    config.max_position_embeddings = max_positions or config.max_position_embeddings
    config.id2label, config.label2id = {0: "neg", 1: "pos"}, {"neg": 0, "pos": 1}
    config.architectures = ["BertForSequenceClassification"]
    torch.manual_seed(seed)
    BertForSequenceClassification(config).save_pretrained(path)
    AutoTokenizer.from_pretrained(encoder_dir).save_pretrained(path)
    (path / "calibration.json").write_text(json.dumps({"temperature": 1.5}))
    return path


def build_chat_lm(path: Path) -> Path:
    """A 2-layer, 32-dim Llama with a byte-level BPE tokenizer trained here and a ChatML chat template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    specials = ["<|pad|>", "<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=specials,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    corpus = make_reviews(200, seed=7)["text"].tolist() + [" ".join(POSITIVE + NEGATIVE + NEUTRAL)] * 3
    tok.train_from_iterator(corpus + ["user assistant system hello"] * 3, trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<|pad|>", eos_token="<|im_end|>",
                                   bos_token="<|endoftext|>", model_max_length=256)
    fast.chat_template = CHATML
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=tok.get_vocab_size(), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=256,
                         pad_token_id=fast.pad_token_id, eos_token_id=fast.eos_token_id,
                         bos_token_id=fast.bos_token_id)
    model = LlamaForCausalLM(config)
    model.generation_config.eos_token_id = fast.eos_token_id
    model.save_pretrained(path)
    fast.save_pretrained(path)
    return path


def register(store, tmp_path: Path, name: str, model_dir: Path, *, champion: bool) -> int:
    """log_run + register_version (+ promote), as pipeline.run does after the gates pass."""
    cfg = config_from_dict({"name": name, "data": {"path": str(tmp_path / "unused.jsonl")}})
    run_dir = tmp_path / "runs" / f"{name}-{time.time_ns()}"
    run_dir.mkdir(parents=True)
    run_id = log_run(cfg, run_dir=run_dir, model_dir=model_dir, store=store)
    version = register_version(name, run_id=run_id, store=store).version
    if champion:
        promote(name, store=store)
    return version


def settings(**overrides) -> ServingConfig:
    base = {"poll_interval_s": 0.2, "max_wait_ms": 2, "predictions": {"enabled": False}}
    for key, value in overrides.items():
        base[key] = value
    return ServingConfig.model_validate(base)


class LiveServer:
    """uvicorn on 127.0.0.1:<free port> in a thread; `with LiveServer(app) as url:`."""

    def __init__(self, app, grace_s: int = 10):
        import uvicorn

        # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY only on sockets whose proto says TCP (else Nagle adds 40 ms)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        config = uvicorn.Config(app, log_level="warning", access_log=False, timeout_graceful_shutdown=grace_s)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)
        self.app = app

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 120
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("server did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=60)
        self.sock.close()


def wait_for(predicate, timeout: float = 30.0, step: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return predicate()


class ServeProcess:
    """`tunesmith serve` in its own process on 127.0.0.1:<free port> (its own session, so it can be killed whole);
    `with ServeProcess(store, "chat", log) as proc: proc.url`; `proc.kill()` makes it die at once (SIGKILL)."""

    def __init__(self, store, model: str, log: Path, *sets: str):
        import os
        import subprocess
        import sys

        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
        env.pop("TUNESMITH_SERVE_TOKEN", None)
        args = [sys.executable, "-m", "tunesmith.cli", "serve", "--model", model, "--tracking-uri",
                store.tracking_uri, "--port", str(self.port)]
        for value in ("serving.predictions.enabled=false", *sets):
            args += ["--set", value]
        self.log = log
        self.proc = subprocess.Popen(args, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT,
                                     start_new_session=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_ready(self, timeout: float = 60) -> ServeProcess:
        import httpx

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"tunesmith serve exited {self.proc.returncode}: {self.log.read_text()[-3000:]}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"{self.url} not ready in time: {self.log.read_text()[-3000:]}")

    def kill(self) -> None:
        import os
        import signal

        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=20)

    def __enter__(self) -> ServeProcess:
        return self

    def __exit__(self, *exc) -> None:
        self.kill()


__all__ = ["LiveServer", "ServeProcess", "build_chat_lm", "build_classifier", "build_tiny_model_dir", "register", "settings",
           "wait_for"]
