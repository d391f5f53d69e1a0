"""The plankton-jobs commands: one module per job, each a thin click command.

A job parses its options, makes one call into :mod:`plankton_store` and prints the outcome.
Jobs import :mod:`plankton_store` (and the shared options of :mod:`jobs._options`), never
each other; :mod:`plankton_store` never imports ``jobs``.
"""
