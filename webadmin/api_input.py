"""What the API takes as input, and how it answers input the database refuses.

The JSON parser: valid JSON may still hold a string that is not text. A ``\\ud800``
escape (a lone UTF-16 surrogate) parses into a Python string that no UTF-8 encoder takes: stored
or echoed, it failed later, as a 500 while rendering the answer or in the database. A ``\\u0000``
(NUL) is refused by PostgreSQL in text and jsonb. Such a body is refused here, with a 400 that
says why (Django's own form fields refuse NUL the same way). Every endpoint takes an object: a
body that is JSON but not an object (an array, a string, a number) is a 400 too (views that read
``request.data.get`` failed on it with a 500)."""

from __future__ import annotations

import logging
import re
from typing import Any

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

_NOT_TEXT = re.compile("[\x00\ud800-\udfff]")


def not_text(data: Any) -> bool:
    """Whether any string in parsed JSON (keys included) holds a surrogate code point or NUL."""
    stack = [data]
    while stack:
        x = stack.pop()
        if isinstance(x, str):
            if _NOT_TEXT.search(x):
                return True
        elif isinstance(x, dict):
            stack.extend(x.keys())
            stack.extend(x.values())
        elif isinstance(x, list):
            stack.extend(x)
    return False


class TextJSONParser(JSONParser):
    """JSONParser that refuses strings which are not text (lone surrogates, NUL)."""

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        data = super().parse(stream, media_type, parser_context)
        if not isinstance(data, dict):
            raise ParseError(f"JSON parse error - the body must be an object ({{...}}), not {type(data).__name__}")
        if not_text(data):
            raise ParseError("JSON parse error - a string holds a NUL (\\u0000) or a lone surrogate"
                             " (\\ud800-\\udfff): not text")
        return data


def exception_handler(exc: Exception, context: Any) -> Any:
    """DRF's handler, and a value the database refuses (``DataError``: too long for its column,
    out of range) answered as the 400 it is instead of a 500, for any check a view misses (the
    known ones are checked before they reach the database, with a message naming the field)."""
    from django.db import DataError
    from rest_framework.response import Response
    from rest_framework.views import exception_handler as drf_handler

    if isinstance(exc, DataError):
        logging.getLogger("bulwark.api").warning("a value the database refused: %s", exc)
        return Response({"detail": "a value does not fit the database (too long or out of range); nothing changed"},
                        status=400)
    return drf_handler(exc, context)
