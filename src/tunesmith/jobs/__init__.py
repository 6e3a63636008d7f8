"""Fine-tuning as a service: an OpenAI-compatible jobs API (`tunesmith api`), a job store, a huey queue and
`tunesmith worker`. See api.py (routes), store.py (the database), queue.py (huey), runner.py (one job)."""
