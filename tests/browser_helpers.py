"""What the browser tests share: Debian's chromium driven by Playwright, and where screenshots are kept."""

from __future__ import annotations

import os
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"  # Debian's package, installed by .ci/run; Playwright downloads no browser
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def artifacts_dir() -> Path:
    """Screenshots kept after the run: $TUNESMITH_TEST_ARTIFACTS, default <repo>/test-artifacts (gitignored)."""
    folder = Path(os.environ.get("TUNESMITH_TEST_ARTIFACTS", Path(__file__).resolve().parents[1] / "test-artifacts"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder
