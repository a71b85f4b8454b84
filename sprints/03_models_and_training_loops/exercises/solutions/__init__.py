"""Reference solutions to the sprint 3 exercises."""
