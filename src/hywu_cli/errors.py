"""Exceptions and warnings raised by hywu.

The CLI catches `HywuError` at the command boundary, prints its message as one line on stderr and exits with
code 1. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class HywuError(Exception):
    """An expected failure whose message states what failed, on which value, and what to do next."""


class InvalidImageError(HywuError):
    """An input image is missing, unreadable, truncated or too large."""


class OutputPathError(HywuError):
    """An output path cannot be used: it is the input, already exists, or its folder cannot be written."""


class ModelFilesError(HywuError):
    """A model folder is missing files or contains broken ones."""


class NonFiniteLoraError(HywuError):
    """A generated LoRA factor contains NaN or infinite values."""


class DownloadError(HywuError):
    """A model download failed or produced files that do not match the manifest."""


class HywuWarning(UserWarning):
    """A warning a user can act on; filter it with `warnings.filterwarnings("ignore", category=HywuWarning)`."""
