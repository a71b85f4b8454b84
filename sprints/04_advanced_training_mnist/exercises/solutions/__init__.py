"""Reference solutions to the sprint 4 exercises."""
