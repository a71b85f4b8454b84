"""Reference solutions to the sprint 6 exercises."""
