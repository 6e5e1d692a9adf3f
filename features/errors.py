"""Errors that end a command, each carrying the exit code a CI job acts on.

The message is one line that names the file and the problem; ``analyzer`` prints it to stderr
without a traceback. Bad *packets* are never errors: they are counted by name.
"""

from __future__ import annotations


class NtaError(Exception):
    """Base of every error nta reports to the user as one line."""

    exit_code: int = 1


class InputError(NtaError):
    """Bad input or usage: not a capture, unreadable, nothing to scan (exit 2)."""

    exit_code = 2


class ModelError(NtaError):
    """Model missing, corrupt, tampered with, or incompatible with the features (exit 3)."""

    exit_code = 3
