"""tunesmith jobs stage."""
