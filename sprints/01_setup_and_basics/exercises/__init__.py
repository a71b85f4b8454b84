"""Sprint 1 exercises: see README.md; check with `uv run python -m sprints.check 01`."""
