"""Multi-model management: the per-instance model cache and the folder of model artifacts.

Internal to :mod:`smclient.local`: import the public names from ``smclient.local``.
"""
