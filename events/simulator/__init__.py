"""Fraud simulator: a population with behaviour profiles, fraud scenarios, drift regimes, late labels.

``config`` (what a run looks like), ``population`` (who the accounts are), ``legit`` and
``scenarios`` (what they do), ``engine`` (window-by-window generation with pending fraud and
labels), ``history`` and ``live`` (the two modes of ``riskpipe simulate``).
"""
