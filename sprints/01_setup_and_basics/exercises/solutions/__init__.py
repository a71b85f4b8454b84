"""Reference solutions to the sprint 1 exercises."""
