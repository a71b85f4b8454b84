"""Reference solutions to the sprint 5 exercises."""
