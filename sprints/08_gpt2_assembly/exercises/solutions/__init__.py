"""Reference solutions to the sprint 8 exercises."""
