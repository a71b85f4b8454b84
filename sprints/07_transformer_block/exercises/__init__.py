"""Sprint 7 exercises: see README.md; check with `uv run python -m sprints.check 07`."""
