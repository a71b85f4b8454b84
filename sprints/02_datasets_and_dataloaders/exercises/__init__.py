"""Sprint 2 exercises: see README.md; check with `uv run python -m sprints.check 02`."""
