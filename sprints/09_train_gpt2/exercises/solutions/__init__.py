"""Reference solutions to the sprint 9 exercises."""
