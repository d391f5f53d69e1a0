"""Batch jobs of plankton-jobs: one module per job, each a plain function plus a click command.

``jobs`` imports :mod:`plankton_store`, never the reverse.
"""
