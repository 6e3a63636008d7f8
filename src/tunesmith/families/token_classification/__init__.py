"""The token-classification task family."""
