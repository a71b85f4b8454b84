"""Reference solutions to the sprint 7 exercises."""
