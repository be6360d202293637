"""The small exception hierarchy every kdasr stage raises (never a bare traceback to users)."""

from __future__ import annotations


class KdasrError(Exception):
    """Base class: a problem the user can act on, printed as one line."""


class AudioError(KdasrError):
    """An audio file could not be used; names the file and the reason."""

    def __init__(self, path: object, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class TextError(KdasrError):
    """A transcript violates the text policy (e.g. contains digits)."""


class ManifestError(KdasrError):
    """A manifest line is malformed; names the file, line and field."""

    def __init__(self, path: object, line: int, field: str, reason: str) -> None:
        self.path, self.line, self.field, self.reason = str(path), line, field, reason
        super().__init__(f"{self.path}:{line}: field '{field}': {reason}")


class ModelError(KdasrError):
    """A model directory or checkpoint is missing, incomplete or inconsistent."""
