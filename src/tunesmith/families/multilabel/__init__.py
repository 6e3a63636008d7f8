"""The multilabel task family."""
