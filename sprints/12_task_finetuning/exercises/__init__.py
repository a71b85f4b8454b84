"""Sprint 12 exercises: see README.md; check with `uv run python -m sprints.check 12`."""
