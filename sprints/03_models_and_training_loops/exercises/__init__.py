"""Sprint 3 exercises: see README.md; check with `uv run python -m sprints.check 03`."""
