"""tunesmith evaluation stage."""
