"""Reference solutions to the sprint 2 exercises."""
