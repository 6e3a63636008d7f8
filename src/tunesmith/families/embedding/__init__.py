"""The embedding task family."""
