"""The pytest plugin registered by smclient (entry point ``pytest11``).

Fixtures import their heavy dependencies lazily so that merely having smclient
installed does not slow down pytest's start-up.
"""
