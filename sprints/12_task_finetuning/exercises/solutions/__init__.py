"""Reference solutions to the sprint 12 exercises."""
