"""The reranking task family."""
