"""Sprint 5 exercises: see README.md; check with `uv run python -m sprints.check 05`."""
