"""Sprint 4 exercises: see README.md; check with `uv run python -m sprints.check 04`."""
