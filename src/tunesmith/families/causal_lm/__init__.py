"""The causal-lm task family."""
