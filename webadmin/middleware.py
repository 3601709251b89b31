"""Request checks every page and API endpoint shares."""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest


def refuse_nul_in_query(get_response: Callable[[HttpRequest], HttpResponse]) -> Callable[[HttpRequest], HttpResponse]:
    """A NUL character in the query string (``?q=%00``) is a 400. Searches pass query values to
    the database, and PostgreSQL refuses a NUL in a string: the log search, the quarantine, user
    and list searches and the API's filters answered 500 there (SQLite took it). Django's form
    fields refuse NUL in posted values the same way."""

    def middleware(request: HttpRequest) -> HttpResponse:
        for key, values in request.GET.lists():
            if "\x00" in key or any("\x00" in v for v in values):
                return HttpResponseBadRequest("A NUL character is not allowed in the query.",
                                              content_type="text/plain; charset=utf-8")
        return get_response(request)

    return middleware
