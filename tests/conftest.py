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
