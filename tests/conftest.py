"""Shared fixtures: a tiny BERT built from a config with a tokenizer trained here, and a toy labeled dataset.

Nothing touches a hub: HF_HUB_OFFLINE is forced on for the whole suite.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("MLFLOW_ENABLE_ASYNC_LOGGING", "false")

import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from tests.toy import build_tiny_model_dir, make_reviews  # noqa: E402

torch.set_num_threads(1)  # tests are tiny; one thread keeps them deterministic and lets them run side by side

@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> str:
    return build_tiny_model_dir(tmp_path_factory.mktemp("tiny-bert"))


@pytest.fixture()
def reviews() -> pd.DataFrame:
    return make_reviews(120)


@pytest.fixture(scope="session")
def tiny_chat_model_dir(tmp_path_factory) -> str:
    from tests.toy_chat import build_tiny_chat_model_dir

    return build_tiny_chat_model_dir(tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture()
def browser():
    """A headless chromium (Debian's, driven by Playwright) for the browser tests."""
    from playwright.sync_api import sync_playwright
    from tests.browser_helpers import CHROMIUM, CHROMIUM_ARGS

    assert os.path.exists(CHROMIUM), f"{CHROMIUM} missing: `apt-get install chromium` (.ci/run does it)"
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture()
def redis_url(tmp_path):
    """A real redis-server on a free 127.0.0.1 port, nothing persisted; yields its redis://127.0.0.1:PORT/0."""
    import redis

    server = shutil.which("redis-server")
    assert server, "redis-server is not installed (.ci/run installs Debian's redis-server)"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                             "--dir", str(tmp_path)], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    client = redis.Redis(host="127.0.0.1", port=port)
    try:
        deadline = time.monotonic() + 20
        while not _pings(client):
            assert time.monotonic() < deadline and proc.poll() is None, "redis-server did not start"
            time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        client.close()
        proc.terminate()
        proc.wait(timeout=20)


def _pings(client) -> bool:
    try:
        return bool(client.ping())
    except Exception:
        return False


# --- models built once per session for every directory (serving, security, ops, families) -----------------------


@pytest.fixture(scope="session")
def encoder_dir(tmp_path_factory):
    from tests.serving.serve_helpers import build_tiny_model_dir as build_encoder

    return build_encoder(tmp_path_factory.mktemp("encoder"))


@pytest.fixture(scope="session")
def classifier_dirs(tmp_path_factory, encoder_dir):
    from tests.serving.serve_helpers import build_classifier

    return [build_classifier(tmp_path_factory.mktemp(f"clf{seed}"), seed, encoder_dir) for seed in (1, 2)]


@pytest.fixture(scope="session")
def chat_dir(tmp_path_factory):
    from tests.serving.serve_helpers import build_chat_lm

    return build_chat_lm(tmp_path_factory.mktemp("chat-lm"))


@pytest.fixture(scope="session")
def loop_bert(tmp_path_factory) -> str:
    """The closed-loop simulation's tiny BERT (movie and product words as whole tokens)."""
    from tests.monitoring.loop_data import build_base_model

    return build_base_model(tmp_path_factory.mktemp("loop-bert"))


@pytest.fixture()
def store(tmp_path, monkeypatch):
    """A fresh registry in tmp_path, no tracking URI or serving token from the environment."""
    from tunesmith.registry import open_store

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
    monkeypatch.delenv("TUNESMITH_SERVE_TOKEN", raising=False)
    return open_store(workdir=tmp_path)



@pytest.fixture(scope="session")
def tiny_vit_dir(tmp_path_factory) -> str:
    from tests.toy_images import build_tiny_vit_dir

    return build_tiny_vit_dir(tmp_path_factory.mktemp("tiny-vit"))
