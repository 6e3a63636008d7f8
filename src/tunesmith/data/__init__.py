"""tunesmith data stage."""
