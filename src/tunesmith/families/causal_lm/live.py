"""Live quality of a chat model: the thumbs that came back on its answers."""

from __future__ import annotations


def measure(pairs: list[tuple]) -> dict:
    """The share of answers rated up, and the share a reviewer corrected."""
    if not pairs:
        return {"thumbs_up_rate": None, "corrected_rate": None}
    ups = sum(value.get("thumbs") == "up" for _, value, _ in pairs)
    corrected = sum("correction" in value for _, value, _ in pairs)
    return {"thumbs_up_rate": ups / len(pairs), "corrected_rate": corrected / len(pairs)}
