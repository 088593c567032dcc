"""Errors that reach the user: each names the cause and the fix."""

from __future__ import annotations


class EdgekitError(Exception):
    """A failure the user can act on.

    ``cause`` says what is wrong, ``fix`` what to do about it. The CLI prints both
    and exits with ``exit_code``.
    """

    exit_code = 2

    def __init__(self, cause: str, fix: str | None = None):
        super().__init__(cause)
        self.cause = cause
        self.fix = fix

    def __str__(self) -> str:
        return self.cause if not self.fix else f"{self.cause}\n  fix: {self.fix}"


class BackendMissing(EdgekitError):
    """An optional backend is not installed."""


class ConversionError(EdgekitError):
    """A converter failed; ``target`` names which one."""

    def __init__(self, target: str, cause: str, fix: str | None = None):
        super().__init__(cause, fix)
        self.target = target


class ParityError(EdgekitError):
    """An artifact's outputs differ from its source's beyond tolerance."""

    exit_code = 1
