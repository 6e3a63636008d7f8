"""tunesmith registry stage."""
