"""The two ways a training flow stops, which the command line maps to its exit codes."""

from __future__ import annotations


class TrainingRequestError(ValueError):
    """What was asked cannot be done (a bad setting, a missing file or model, a name taken):
    refused before any work, nothing written. The message names the command's option."""


class TrainingFailed(RuntimeError):
    """The work failed (the API, a file, training, a model that does not evaluate): what
    was finished before stays (a registered model), nothing is half-written."""
