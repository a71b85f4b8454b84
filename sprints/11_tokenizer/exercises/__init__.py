"""Sprint 11 exercises: see README.md; check with `uv run python -m sprints.check 11`."""
