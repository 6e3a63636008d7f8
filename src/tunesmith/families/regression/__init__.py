"""The regression task family."""
