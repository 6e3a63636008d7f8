"""tunesmith serving stage."""
