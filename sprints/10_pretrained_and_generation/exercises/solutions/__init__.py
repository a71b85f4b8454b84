"""Reference solutions to the sprint 10 exercises."""
