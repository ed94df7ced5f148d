"""Hosting Python models: the handler protocol, model directories, bounded calls.

Internal to :mod:`smclient.local`: import the public names from ``smclient.local``.
"""
