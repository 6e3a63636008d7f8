"""tunesmith review stage."""
