"""The loopback HTTP server and the wire format (requests, answers, errors, events).

Internal to :mod:`smclient.local`: import the public names from ``smclient.local``.
"""
