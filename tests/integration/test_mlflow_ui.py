"""MLflow's own UI, in a real headless browser, shows what tunesmith records for a registered version.

A tiny classifier trains and registers through the real pipeline; `mlflow server` serves its SQLite store on
127.0.0.1; Debian's chromium (driven by Playwright, no browser download) opens
- the version page (`#/models/<name>/versions/<n>`): the signature (input `text`, outputs `label`, `score`)
  in its Schema section and the lineage tags (data_fingerprint, gate_decision, task, ...);
- the run's `model` artifact (`#/experiments/<id>/runs/<run>/artifactPath/model`): the folder linked to the
  registered version and shown as an MLflow Model (schema, input example), its MLmodel (signature,
  saved_input_example_info) and its serving input example.
Screenshots of each are kept under $TUNESMITH_TEST_ARTIFACTS (default <repo>/test-artifacts).
"""

from __future__ import annotations

import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image
from tests.browser_helpers import CHROMIUM, CHROMIUM_ARGS, artifacts_dir
from tests.families.specs import FAST
from tests.toy import make_reviews

from tunesmith.config import config_from_dict
from tunesmith.pipeline import run
from tunesmith.registry.store import local_path

pytestmark = pytest.mark.integration

NAME = "demo-sentiment"
WAIT_MS = 60_000
VIEWPORT = {"width": 1400, "height": 1400}  # tall enough that the page's own scroll area holds every section



def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_model_dir):
    """(outcome of `tunesmith run`, tracking URI, project folder): a tiny classifier, registered as v1."""
    folder = tmp_path_factory.mktemp("mlflow-ui")
    make_reviews(90, seed=1).to_csv(folder / "reviews.csv", index=False)
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    cfg = config_from_dict({
        "name": NAME, "task": "classification", "seed": 0, "output_dir": str(folder / "runs"),
        "data": {"path": str(folder / "reviews.csv"), "checks": {"pii": {"presidio": "off"}}},
        "model": {"base": tiny_model_dir, "max_length": 32},
        "method": {"kind": "freeze", "freeze": {"layers": 1}},
        "training": dict(FAST), "evaluation": {"bootstrap": {"samples": 100}}, "gates": [],
        "registry": {"tracking_uri": uri},
    })
    return run(cfg), uri, folder


@pytest.fixture(scope="module")
def server(trained):
    """The base URL of `mlflow server` on the store; its log is kept beside the screenshots."""
    _, uri, folder = trained
    port = _free_port()
    venv_bin = str(Path(sys.executable).parent)
    # uvicorn is looked up on PATH; no job runner or huey workers: only the UI and its REST API are needed
    env = {**os.environ, "PATH": venv_bin + os.pathsep + os.environ.get("PATH", ""),
           "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    for key in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI"):
        env.pop(key, None)
    # The run's artifact_uri is file:///<folder>/mlartifacts/<experiment>/<run>/artifacts: the server reads
    # such URIs itself, so no mlflow-artifacts: proxy is needed (--no-serve-artifacts), and a new experiment's
    # root would be in the same folder, not ./mlartifacts of the current dir.
    cmd = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", uri,
           "--default-artifact-root", (folder / "mlartifacts").as_uri(), "--no-serve-artifacts",
           "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    log_path = folder / "mlflow-server.log"
    with log_path.open("wb") as log:
        # its own process group, so that uvicorn's worker is stopped with it
        proc = subprocess.Popen(cmd, cwd=folder, env=env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"mlflow server exited {proc.returncode}:\n{log_path.read_text()}")
            try:
                if httpx.get(base + "/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"mlflow server did not come up in 90 s:\n{log_path.read_text()}")
            time.sleep(0.25)
        yield base
    finally:
        _stop(proc)
        (artifacts_dir() / "mlflow-ui-server.log").write_bytes(log_path.read_bytes())


def _stop(proc: subprocess.Popen) -> None:
    for sig, grace in ((signal.SIGTERM, 15), (signal.SIGKILL, 15)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=grace)
            return
        except subprocess.TimeoutExpired:
            continue


@pytest.fixture()
def page():
    from playwright.sync_api import sync_playwright

    assert os.path.exists(CHROMIUM), f"{CHROMIUM} missing: `apt-get install chromium` (.ci/run does it)"
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser.new_page(viewport=VIEWPORT)
        finally:
            browser.close()


def _close_assistant(page) -> None:
    """MLflow 3's assistant panel opens beside every page at first; closed, the page gets the whole width."""
    close = page.get_by_role("button", name="Close")
    if close.count() == 1 and close.is_visible():
        close.click()


def _tree_item(page, name: str):
    """A file in the artifact tree (not the same name shown in a file's preview)."""
    return page.get_by_label(name, exact=True).get_by_text(name, exact=True)


def _scroll_to_top_of_its_box(locator) -> None:
    """Scroll the nearest scrolling ancestor (the tags table's body) so this element is at its top."""
    locator.evaluate("""e => {
        for (let box = e.parentElement; box; box = box.parentElement) {
            const overflow = getComputedStyle(box).overflowY;
            if ((overflow === 'auto' || overflow === 'scroll') && box.scrollHeight > box.clientHeight) {
                box.scrollTop += e.getBoundingClientRect().top - box.getBoundingClientRect().top;
                return;
            }
        }
    }""")


def _shoot(page, name: str) -> Path:
    path = artifacts_dir() / name
    page.screenshot(path=str(path), full_page=True)
    _check_rendered(path)
    return path


def _check_rendered(path: Path) -> None:
    """Not a golden image: a real PNG of the viewport's size that is not a blank or single-colour page."""
    assert path.is_file() and path.stat().st_size > 10_000, path
    pixels = np.asarray(Image.open(io.BytesIO(path.read_bytes())).convert("RGB"), dtype=np.float64)
    assert pixels.shape[0] >= VIEWPORT["height"] and pixels.shape[1] == VIEWPORT["width"], pixels.shape
    assert pixels.std() > 10, path  # a blank page is ~0
    colours = len(np.unique(pixels.reshape(-1, 3), axis=0))
    assert colours > 50, (path, colours)  # text anti-aliasing, the sidebar, icons, code highlighting


def test_the_mlflow_ui_shows_signature_input_example_and_lineage(trained, server, page):
    outcome, _, _ = trained
    version = outcome.registered_version
    assert version is not None and version.name == NAME
    run_id = outcome.mlflow_run_id
    tags = version.tags
    assert tags["task"] == "classification" and {"data_fingerprint", "gate_decision"} <= set(tags)
    example_dir = local_path(version.source)
    serving = json.loads((example_dir / "serving_input_example.json").read_text())
    example_text = serving["dataframe_split"]["data"][0][0]
    got = httpx.get(f"{server}/ajax-api/2.0/mlflow/runs/get", params={"run_id": run_id}, timeout=10)
    experiment_id = got.json()["run"]["info"]["experiment_id"]

    # The registered version: Tags (lineage) and Schema (from the version's MLmodel, fetched through
    # /model-versions/get-artifact?path=MLmodel).
    page.goto(f"{server}/#/models/{NAME}/versions/{version.version}")
    page.get_by_text(f"Version {version.version}", exact=True).wait_for(timeout=WAIT_MS)
    page.get_by_text("Inputs (1)").wait_for(timeout=WAIT_MS)
    _close_assistant(page)
    page.get_by_text("Inputs (1)").click()  # the schema's input and output groups start folded
    page.get_by_text("Outputs (3)").click()
    page.get_by_text("score (required)").wait_for(timeout=WAIT_MS)
    body = page.inner_text("body")
    for column in ("text (required)", "label (required)", "score (required)", "scores (required)"):
        assert column in body, column
    for key in ("data_fingerprint", "config_hash", "gate_decision", "base_model", "task", "method",
                "weights_sha256"):
        assert page.get_by_text(key, exact=True).count() >= 1, key
    for key in ("data_fingerprint", "gate_decision", "task", "weights_sha256"):
        assert page.get_by_text(tags[key], exact=True).count() >= 1, (key, tags[key])
    # the tags table scrolls by itself: bring data_fingerprint ... gate_decision into the screenshot
    _scroll_to_top_of_its_box(page.get_by_text("data_fingerprint", exact=True))
    _shoot(page, "mlflow-ui-version.png")

    # The run's `model` artifact: the folder, linked to its registered version, shown as an MLflow Model (the run
    # tag mlflow.log-model.history that tunesmith sets): its schema, and its input example in the load snippet ...
    page.goto(f"{server}/#/experiments/{experiment_id}/runs/{run_id}/artifactPath/model")
    page.get_by_text(f"{NAME}, v{version.version}").wait_for(timeout=WAIT_MS)
    _close_assistant(page)
    _tree_item(page, "serving_input_example.json").wait_for(timeout=WAIT_MS)
    page.get_by_text("Model schema", exact=True).wait_for(timeout=WAIT_MS)
    body = page.inner_text("body")
    for text in ("MLflow Model", "Inputs (1)", "text (required)", "Outputs (3)", "scores (required)",
                 "The model is logged with an input example", "pyfunc_model.input_example"):
        assert text in body, text
    _shoot(page, "mlflow-ui-model-folder.png")
    # ... its MLmodel: the signature and where the input example is ...
    _tree_item(page, "MLmodel").click()
    page.get_by_text("saved_input_example_info").wait_for(timeout=WAIT_MS)
    body = page.inner_text("body")
    for text in ('"name": "text"', '"name": "label"', '"name": "score"', "artifact_path: input_example.json",
                 "serving_input_path: serving_input_example.json", "loader_module: tunesmith.serving.pyfunc"):
        assert text in body, text
    _shoot(page, "mlflow-ui-model-artifact.png")
    # ... and the serving input example itself.
    _tree_item(page, "serving_input_example.json").click()
    page.get_by_text("dataframe_split").first.wait_for(timeout=WAIT_MS)
    body = page.inner_text("body")
    assert "dataframe_split" in body and example_text in body, body[-2000:]
    _shoot(page, "mlflow-ui-input-example.png")
