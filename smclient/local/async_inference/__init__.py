"""Asynchronous inference: the worker behind async-invocations, S3/SNS, notifications.

Internal to :mod:`smclient.local`: import the public names from ``smclient.local``.
"""
