"""Helpers for users' own tests: fakes, switches and pytest fixtures."""
