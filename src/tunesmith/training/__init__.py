"""tunesmith training stage."""
