"""Errors the web admin's tools give for bad input, naming the field at fault."""

from __future__ import annotations


class FieldError(ValueError):
    """Bad input: ``field`` names the form or API field, ``message`` says why (for a person)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message
