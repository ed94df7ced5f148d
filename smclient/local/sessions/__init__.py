"""Stateful sessions: the session store and the helpers handlers use to take part.

Internal to :mod:`smclient.local`: import the public names from ``smclient.local``.
"""
