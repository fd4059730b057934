"""Errors raised by the model registry; each message says what to do next."""

from __future__ import annotations


class ModelError(Exception):
    """A model cannot be found, fetched, converted or trusted."""


class ModelNotFoundError(ModelError):
    pass


class ModelIntegrityError(ModelError):
    """A file's sha256 differs from the one pinned or recorded for it."""
