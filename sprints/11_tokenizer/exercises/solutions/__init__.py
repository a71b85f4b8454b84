"""Reference solutions to the sprint 11 exercises."""
