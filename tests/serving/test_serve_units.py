"""Serving building blocks without a server: micro-batching, routing buckets, SLO window, task detection,
CPU inference options with their fp32 check, and the prediction log (sampling, redaction)."""

from __future__ import annotations

import asyncio
import json
import logging
import threading

import pytest

from tunesmith.config import InferenceConfig, RollbackConfig
from tunesmith.families.classification.serve import predict as classify
from tunesmith.monitoring import PredictionLog, read_predictions
from tunesmith.serving import detect_family, load_served, redactor
from tunesmith.serving.batching import Batcher, QueueFull
from tunesmith.serving.optimize import apply_inference_options
from tunesmith.serving.router import Role, SloWindow, bucket, pick_role


def test_batcher_groups_concurrent_requests_and_keeps_order():
    sizes = []

    def double(items):
        sizes.append(len(items))
        return [x * 2 for x in items]

    async def main():
        batcher = Batcher(double, max_batch_size=8, max_wait_ms=50, max_queue=100)
        await batcher.start()
        results = await asyncio.gather(*(batcher.submit(i, timeout=10) for i in range(20)))
        await batcher.stop()
        return results

    assert asyncio.run(main()) == [i * 2 for i in range(20)]
    assert sizes == [8, 8, 4]


def test_batcher_queue_full_timeout_and_failures():
    gate = threading.Event()

    def blocked(items):
        gate.wait(5)
        if "boom" in items:
            raise ValueError("bad item")
        return items

    async def main():
        batcher = Batcher(blocked, max_batch_size=1, max_wait_ms=0, max_queue=2)
        await batcher.start()
        first = asyncio.ensure_future(batcher.submit("a", timeout=10))
        await asyncio.sleep(0.05)  # "a" is running, the queue is empty again
        queued = [asyncio.ensure_future(batcher.submit(x, timeout=10)) for x in ("b", "boom")]
        await asyncio.sleep(0.01)
        with pytest.raises(QueueFull) as full:
            await batcher.submit("c", timeout=10)
        assert full.value.retry_after >= 1
        gate.set()
        assert await first == "a" and await queued[0] == "b"
        with pytest.raises(ValueError, match="bad item"):
            await queued[1]
        gate.clear()
        with pytest.raises(TimeoutError, match="within 0.05s"):
            await batcher.submit("slow", timeout=0.05)
        gate.set()
        await batcher.stop()

    asyncio.run(main())


def test_batcher_workers_run_batches_at_once_and_stop_drains():
    barrier = threading.Barrier(2, timeout=5)  # passes only if two batches are inside fn together

    def meet(items):
        barrier.wait()
        return items

    async def main():
        batcher = Batcher(meet, max_batch_size=2, max_wait_ms=20, max_queue=10, workers=2)
        await batcher.start()
        pending = [asyncio.ensure_future(batcher.submit(i, timeout=10)) for i in range(4)]
        await asyncio.sleep(0)
        await batcher.stop()  # returns only after every queued item was answered
        return [p.result() for p in pending]

    assert asyncio.run(main()) == [0, 1, 2, 3]


def test_canary_buckets_are_stable_and_proportional():
    assert bucket("acme") == bucket("acme")
    share = sum(pick_role(f"caller-{i}", 25) is Role.CHALLENGER for i in range(4000)) / 4000
    assert abs(share - 0.25) < 0.03
    assert pick_role("anyone", 0) is Role.CHAMPION
    assert pick_role("anyone", 100) is Role.CHALLENGER


def test_slo_window_reports_breaches_with_reason():
    slo = RollbackConfig(window=10, min_requests=5, max_error_rate=0.2, max_p95_ms=100)
    window = SloWindow(slo.window)
    for _ in range(4):
        window.record(False, 0.01)
    assert window.breach(slo) is None  # not enough requests yet
    window.record(True, 0.01)
    assert window.breach(slo).startswith("error rate 80.0%")
    window.clear()
    for _ in range(10):
        window.record(True, 0.5)
    assert "p95 latency 500 ms > 100 ms" in window.breach(slo)


def test_task_detection_from_architectures(tmp_path, classifier_dirs, chat_dir, encoder_dir):
    assert detect_family(classifier_dirs[0]) == "classification"
    assert detect_family(chat_dir) == "causal-lm"
    assert detect_family(encoder_dir) == "embedding"
    odd = tmp_path / "odd"
    odd.mkdir()
    (odd / "config.json").write_text(json.dumps({"architectures": ["WhisperForConditionalGeneration"]}))
    with pytest.raises(ValueError, match="not one tunesmith serves"):
        detect_family(odd)


def test_int8_and_bf16_are_checked_against_fp32(classifier_dirs, caplog):
    texts = ["great film", "dull boring plot"]
    fp32 = classify(load_served(classifier_dirs[0], name="clf", version=1), texts)
    for options, expected in ((dict(quantize="int8"), ["int8"]), (dict(dtype="bf16"), ["bf16"])):
        served = load_served(classifier_dirs[0], name="clf", version=1)
        assert apply_inference_options(served, InferenceConfig(tolerance=0.05, **options)) == expected
        for a, b in zip(fp32, classify(served, texts), strict=True):
            assert a["score"] == pytest.approx(b["score"], abs=0.05)
    # A tolerance nothing can meet: both options fall back to fp32, and say so.
    strict = load_served(classifier_dirs[0], name="clf", version=1)
    with caplog.at_level(logging.WARNING, logger="tunesmith.serving"):
        assert apply_inference_options(strict, InferenceConfig(quantize="int8", dtype="bf16", tolerance=1e-12)) == []
    assert "int8 inference not used, serving fp32 instead" in caplog.text
    assert "bf16 inference not used" in caplog.text
    assert strict.autocast is False
    assert classify(strict, texts) == fp32


def test_prediction_log_samples_and_redacts(tmp_path):
    url = f"sqlite:///{tmp_path}/p.db"
    log = PredictionLog(url, sample_rate=0.5, seed=0, redact=lambda t: t.replace("alice@example.com", "[EMAIL]"))
    kept = sum(log.record(request_id=f"r{i}", model="m", version=1, role="champion", route="/v1/classify",
                          input=f"mail alice@example.com {i}", output={"label": "pos"}, confidence=0.9,
                          latency_ms=3.0) for i in range(200))
    log.close()
    rows = read_predictions(url, model="m")
    assert len(rows) == kept and 70 < kept < 130
    assert all("[EMAIL]" in r["input"] and "alice" not in r["input"] for r in rows)
    assert rows[0]["output"] == {"label": "pos"} and rows[0]["redacted"] is True


def test_redactor_uses_the_data_gate_detectors():
    assert redactor(False) is None
    redact = redactor(True)
    out = redact("mail alice@example.com or call +31 20 123 4567, card 4111 1111 1111 1111")
    assert "alice@example.com" not in out and "4111" not in out
    assert "<EMAIL>" in out and "<CREDIT_CARD>" in out


def test_serve_cli_rejects_bad_settings_by_key_path():
    from typer.testing import CliRunner

    from tunesmith.cli import app

    result = CliRunner().invoke(app, ["serve", "--model", "clf", "--canary", "150"])
    assert result.exit_code == 2
    assert "canary.percent" in result.output and "less than or equal to 100" in result.output
    result = CliRunner().invoke(app, ["serve", "--model", "clf", "--set", "serving.max_batch_sise=4"])
    assert result.exit_code == 2 and "max_batch_sise" in result.output


def test_serve_cli_names_a_missing_model_or_champion(store, tmp_path, classifier_dirs):
    from tests.serving.serve_helpers import register
    from typer.testing import CliRunner

    from tunesmith.cli import app

    result = CliRunner().invoke(app, ["serve", "--model", "nope", "--tracking-uri", store.tracking_uri])
    assert result.exit_code == 2 and "no registered model named 'nope'" in result.output
    register(store, tmp_path, "clf", classifier_dirs[0], champion=False)  # a challenger only
    result = CliRunner().invoke(app, ["serve", "--model", "clf", "--tracking-uri", store.tracking_uri])
    assert result.exit_code == 2 and "clf has no champion to serve" in result.output


def test_length_sorted_sub_batches_answer_in_input_order(classifier_dirs, monkeypatch):
    from tunesmith.serving import handlers

    served = load_served(classifier_dirs[0], name="clf", version=1)
    texts = [("great film " * n).strip() for n in (9, 1, 5, 12, 2, 7, 1, 3)]
    alone = [classify(served, [t])[0] for t in texts]
    monkeypatch.setattr(handlers, "PADDED_TOKENS_PER_PASS", 24)  # forces several sub-batches
    together = classify(served, texts)
    for a, b in zip(alone, together, strict=True):
        assert a["scores"] == pytest.approx(b["scores"], abs=1e-4)
