"""Shared fixtures: a tiny BERT built from a config with a tokenizer trained here, and a toy labeled dataset.

Nothing touches a hub: HF_HUB_OFFLINE is forced on for the whole suite.
"""

from __future__ import annotations

import os

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
