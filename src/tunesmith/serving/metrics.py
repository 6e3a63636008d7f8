"""Prometheus metrics of one server, in their own registry (so several apps can live in one process, e.g. tests).

    curl localhost:8000/metrics | grep tunesmith_requests_total

Every series that depends on a model carries `model` and `version`; `role` is champion / challenger / shadow.
"""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from tunesmith.config.loop import LATENCY_BUCKETS  # shared with the latency objectives' check

BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)


@dataclass
class ServerMetrics:
    registry: CollectorRegistry
    requests: Counter
    latency: Histogram
    first_token: Histogram
    batch_size: Histogram
    queue_depth: Gauge
    errors: Counter
    rejected: Counter
    rollbacks: Counter
    shared_state_errors: Counter
    shadow_compared: Counter
    shadow_latency_delta: Histogram
    loaded: Gauge
    canary_percent: Gauge
    backend: Gauge
    busy_core_seconds: Counter
    filter_actions: Counter
    cost_per_1k: Gauge
    engine_errors: Counter


def create_metrics() -> ServerMetrics:
    reg = CollectorRegistry()
    mv = ["model", "version"]
    return ServerMetrics(
        registry=reg,
        requests=Counter("tunesmith_requests", "Requests answered, by route, model version, role and status",
                         ["route", *mv, "role", "status"], registry=reg),
        latency=Histogram("tunesmith_request_latency_seconds", "Time from arrival to answer",
                          ["route", *mv, "role"], buckets=LATENCY_BUCKETS, registry=reg),
        first_token=Histogram("tunesmith_time_to_first_token_seconds", "Streamed answers: arrival to first token",
                              ["route", *mv, "role"], buckets=LATENCY_BUCKETS, registry=reg),
        batch_size=Histogram("tunesmith_batch_size", "Items per forward pass", mv, buckets=BATCH_BUCKETS,
                             registry=reg),
        queue_depth=Gauge("tunesmith_queue_depth", "Requests waiting for a batch", mv, registry=reg),
        errors=Counter("tunesmith_errors", "Failed predictions, by kind", [*mv, "role", "kind"], registry=reg),
        rejected=Counter("tunesmith_rejected", "Requests refused before inference (429 queue full, 413, 401)",
                         ["reason"], registry=reg),
        rollbacks=Counter("tunesmith_rollbacks", "Automatic rollbacks of a challenger, by reason",
                          [*mv, "reason"], registry=reg),
        shared_state_errors=Counter("tunesmith_shared_state_errors", "Calls to serving.shared_state that failed "
                                    "(the replica judged its own window meanwhile)", registry=reg),
        shadow_compared=Counter("tunesmith_shadow_comparisons", "Shadow answers compared with the champion's",
                                ["champion_version", "challenger_version", "agree"], registry=reg),
        shadow_latency_delta=Histogram(
            "tunesmith_shadow_latency_delta_seconds", "Challenger minus champion latency on shadowed requests",
            ["champion_version", "challenger_version"],
            buckets=(-1, -0.25, -0.1, -0.05, -0.01, 0, 0.01, 0.05, 0.1, 0.25, 1), registry=reg),
        loaded=Gauge("tunesmith_model_loaded", "1 for each model version being served, by role",
                     [*mv, "role"], registry=reg),
        canary_percent=Gauge("tunesmith_canary_percent", "Share of traffic routed to the challenger now",
                             registry=reg),
        backend=Gauge("tunesmith_inference_backend", "1 for the inference backend each loaded version runs on "
                      "(fp32, onnx, int8, bf16: an option that failed its fp32 check is not live)",
                      [*mv, "backend"], registry=reg),
        busy_core_seconds=Counter("tunesmith_inference_core_seconds", "Cores held by forward passes (batch wall "
                                  "time x threads; x GPUs on CUDA counted apart): what answers cost", [*mv, "device"],
                                  registry=reg),
        filter_actions=Counter("tunesmith_filter_actions", "serving.filters actions on answers (confidence_floor: "
                               "abstained, redact_pii: redacted, deny: refused)", [*mv, "filter", "action"],
                               registry=reg),
        cost_per_1k=Gauge("tunesmith_cost_per_1k_inferences", "Money per 1,000 answered items at the config's cost: "
                          "prices (busy core and GPU time since the version loaded)", [*mv, "currency"], registry=reg),
        engine_errors=Counter("tunesmith_engine_errors", "serving.engine: openai-compatible: answers the upstream "
                              "engine failed, by kind (connect, timeout, status, refused, broken, "
                              "bad_response)", [*mv, "role", "kind"], registry=reg),
    )
