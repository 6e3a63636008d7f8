"""Which model answers a request (champion / challenger), and when the challenger must be rolled back.

    pick_role(caller_key="acme-42", percent=10)  # -> "challenger" for ~10% of keys, always the same for a key
    window.record(ok=True, latency_s=0.03); window.breach(cfg.serving.rollback)  # -> None or a reason

Sticky canary: a caller key hashes to a fixed bucket in [0, 100), so a caller never flips between
versions mid-session; requests without a key are split at random.
"""

from __future__ import annotations

import hashlib
import random
from collections import deque
from collections.abc import Iterable
from enum import Enum


class Role(str, Enum):
    CHAMPION = "champion"
    CHALLENGER = "challenger"
    SHADOW = "shadow"  # the challenger answering a copy nobody sees


def bucket(caller_key: str) -> float:
    """A stable position in [0, 100) for a caller key (sha256, so it is the same in every process)."""
    digest = hashlib.sha256(caller_key.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 * 100


def pick_role(caller_key: str | None, percent: float, rng: random.Random | None = None) -> Role:
    """Champion or challenger for one request under a canary of `percent`."""
    if percent <= 0:
        return Role.CHAMPION
    position = bucket(caller_key) if caller_key else (rng or random).random() * 100
    return Role.CHALLENGER if position < percent else Role.CHAMPION


class SloWindow:
    """The challenger's last `size` outcomes (ok, latency); judged against the rollback SLOs. `outcomes`: a window
    recorded elsewhere (the replicas' shared one), judged the same way."""

    def __init__(self, size: int, outcomes: Iterable[tuple[bool, float]] = ()):
        self.outcomes: deque[tuple[bool, float]] = deque(outcomes, maxlen=size)

    def record(self, ok: bool, latency_s: float) -> None:
        self.outcomes.append((ok, latency_s))

    def clear(self) -> None:
        self.outcomes.clear()

    def error_rate(self) -> float:
        return sum(not ok for ok, _ in self.outcomes) / len(self.outcomes) if self.outcomes else 0.0

    def p95_ms(self) -> float:
        latencies = sorted(lat for ok, lat in self.outcomes if ok)
        if not latencies:
            return 0.0
        return latencies[min(len(latencies) - 1, int(0.95 * len(latencies)))] * 1000

    def breach(self, slo) -> str | None:
        """Why the challenger breaches `slo` (a RollbackConfig), or None while it is within it."""
        if not slo.enabled or len(self.outcomes) < slo.min_requests:
            return None
        rate = self.error_rate()
        if rate > slo.max_error_rate:
            return f"error rate {rate:.1%} > {slo.max_error_rate:.1%} over the last {len(self.outcomes)} requests"
        if slo.max_p95_ms is not None:
            p95 = self.p95_ms()
            if p95 > slo.max_p95_ms:
                return f"p95 latency {p95:.0f} ms > {slo.max_p95_ms:g} ms over the last {len(self.outcomes)} requests"
        return None


def agree(a, b) -> bool:
    """Whether a shadow answer matches the champion's: same label, same text, or embeddings within 1e-3 cosine."""
    if isinstance(a, dict) and "label" in a and isinstance(b, dict):
        return a["label"] == b.get("label")
    if isinstance(a, list) and a and isinstance(a[0], float) and isinstance(b, list) and len(a) == len(b):
        dot = sum(x * y for x, y in zip(a, b, strict=True))
        na, nb = sum(x * x for x in a) ** 0.5, sum(y * y for y in b) ** 0.5
        return na > 0 and nb > 0 and dot / (na * nb) > 0.999
    if isinstance(a, float) and isinstance(b, float):
        return abs(a - b) <= 1e-3 * max(1.0, abs(a))
    text_a, text_b = getattr(a, "text", a), getattr(b, "text", b)
    return text_a == text_b
