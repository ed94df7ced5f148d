"""Bring-your-own containers: contract client, model sources, Docker launcher, checker.

Internal to :mod:`smclient.local`: import the public names from ``smclient.local``.
"""
