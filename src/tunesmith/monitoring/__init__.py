"""tunesmith monitoring stage."""
