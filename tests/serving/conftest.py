"""Serving fixtures live in tests/conftest.py (tiny models built once per session for every directory)."""
