"""Text regression: a 1-output sequence-classification head (problem_type regression) trained with MSE or Huber."""
