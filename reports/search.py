"""Message-log search: one parser for pages, CSV export and the REST API, and keyset
pagination (no OFFSET, no COUNT) so that page N costs the same as page 1 on millions of rows.

The cursor is the sort key of the last row shown plus its id; the next page is
"rows strictly after that (key, id)" in the sort order, served by the (time, id) index.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
from dataclasses import dataclass, replace
from typing import Any

from django.db.models import Q, QuerySet, TextField
from django.db.models.functions import Cast
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from reports.models import MessageLog, MessageRecipient

JUNK = ("reject", "quarantine", "discard")
SORTS = {"time": "time", "-time": "time", "score": "score", "-score": "score", "size": "size", "-size": "size"}
MAX_PAGE = 200
SYMBOL_NAME = re.compile(r"[A-Za-z0-9_.:-]{1,100}")


class SearchError(ValueError):
    pass


@dataclass(frozen=True)
class LogQuery:
    since: dt.datetime | None = None
    until: dt.datetime | None = None
    sender: str = ""
    recipient: str = ""
    subject: str = ""
    result: str = ""
    reason: str = ""
    direction: str = ""
    domain: str = ""
    score_min: float | None = None
    score_max: float | None = None
    symbol: str = ""  # messages with this symbol (a rule or test name, e.g. BAYES_99)
    sort: str = "-time"
    limit: int = 50
    cursor: str = ""

    PARAMS = ("since", "until", "sender", "recipient", "subject", "result", "reason", "direction", "domain",
              "score_min", "score_max", "symbol", "sort", "limit", "cursor")

    @classmethod
    def from_params(cls, params: Any) -> LogQuery:
        def s(name: str) -> str:
            return (params.get(name) or "").strip()[:320]

        def when(name: str) -> dt.datetime | None:
            v = s(name)
            if not v:
                return None
            d = parse_datetime(v) or parse_datetime(v + ":00")
            if d is None:
                try:
                    d = dt.datetime.fromisoformat(v)
                except ValueError:
                    raise SearchError(f"{name}: {v!r} is not a date and time") from None
            return d if timezone.is_aware(d) else timezone.make_aware(d, dt.UTC)

        def num(name: str) -> float | None:
            v = s(name)
            if not v:
                return None
            try:
                return float(v)
            except ValueError:
                raise SearchError(f"{name}: {v!r} is not a number") from None

        result = s("result")
        if result and result not in ("accept", "reject", "tempfail", "discard", "quarantine", "junk"):
            raise SearchError(f"result: unknown result {result!r}")
        direction = s("direction")
        if direction and direction not in ("inbound", "outbound", "local", "relay"):
            raise SearchError(f"direction: unknown direction {direction!r}")
        symbol = s("symbol")
        if symbol and not SYMBOL_NAME.fullmatch(symbol):
            raise SearchError(f"symbol: {symbol!r} is not a symbol name (letters, digits, _ . : -)")
        sort = s("sort") or "-time"
        if sort not in SORTS:
            raise SearchError(f"sort: must be one of {', '.join(SORTS)}")
        try:
            limit = max(1, min(MAX_PAGE, int(s("limit") or 50)))
        except ValueError:
            raise SearchError("limit: must be a whole number") from None
        return cls(since=when("since"), until=when("until"), sender=s("sender").lower(),
                   recipient=s("recipient").lower(), subject=s("subject"), result=result, reason=s("reason"),
                   direction=direction, domain=s("domain").lower().lstrip("@"), score_min=num("score_min"),
                   score_max=num("score_max"), symbol=symbol, sort=sort, limit=limit, cursor=s("cursor"))

    def as_params(self, **changes: Any) -> dict[str, str]:
        q = replace(self, **changes)
        out: dict[str, str] = {}
        for name in self.PARAMS:
            v = getattr(q, name)
            if v in (None, "") or (name == "sort" and v == "-time") or (name == "limit" and v == 50):
                continue
            out[name] = v.isoformat() if isinstance(v, dt.datetime) else str(v)
        return out

    # -- filtering ------------------------------------------------------------------------------
    def apply(self, qs: QuerySet[MessageLog]) -> QuerySet[MessageLog]:
        if self.since:
            qs = qs.filter(time__gte=self.since)
        if self.until:
            qs = qs.filter(time__lt=self.until)
        if self.sender:
            if self.sender.startswith("@"):
                qs = qs.filter(sender_domain=self.sender[1:])
            elif "@" in self.sender:
                qs = qs.filter(mail_from__in={self.sender, self.sender.lower()})
            else:
                qs = qs.filter(mail_from__icontains=self.sender)
        # Recipient filters select message ids through the recipient indexes (address, domain)
        # first; the database then walks only those rows in time order.
        if self.recipient:
            if self.recipient.startswith("@"):
                rc = MessageRecipient.objects.filter(domain=self.recipient[1:])
            elif "@" in self.recipient:
                rc = MessageRecipient.objects.filter(address=self.recipient)
            else:
                rc = MessageRecipient.objects.filter(address__icontains=self.recipient)
            qs = qs.filter(id__in=rc.values("message_id"))
        if self.domain:
            rc = MessageRecipient.objects.filter(domain=self.domain)
            qs = qs.filter(Q(id__in=rc.values("message_id")) | Q(sender_domain=self.domain))
        if self.subject:
            qs = _subject_filter(qs, self.subject)
        if self.result == "junk":
            qs = qs.filter(action__in=JUNK)
        elif self.result:
            qs = qs.filter(action=self.result)
        if self.reason:
            qs = qs.filter(reason__icontains=self.reason)
        if self.direction:
            qs = qs.filter(direction=self.direction)
        if self.score_min is not None:
            qs = qs.filter(score__gte=self.score_min)
        if self.score_max is not None:
            qs = qs.filter(score__lte=self.score_max)
        if self.symbol:
            qs = _symbol_filter(qs, self.symbol)
        return qs

    # -- keyset pagination ----------------------------------------------------------------------
    def page(self, qs: QuerySet[MessageLog]) -> tuple[list[MessageLog], str]:
        """One page of rows and the cursor of the next page ("" when this is the last)."""
        field = SORTS[self.sort]
        desc = self.sort.startswith("-")
        qs = self.apply(qs)
        if self.cursor:
            key, last_id = _decode_cursor(self.cursor, field)
            if desc:
                qs = qs.filter(Q(**{f"{field}__lt": key}) | Q(**{field: key, "id__lt": last_id}))
            else:
                qs = qs.filter(Q(**{f"{field}__gt": key}) | Q(**{field: key, "id__gt": last_id}))
        order = [f"-{field}", "-id"] if desc else [field, "id"]
        rows = list(qs.order_by(*order).defer("trace", "transcript", "symbols")[: self.limit + 1])
        more = len(rows) > self.limit
        rows = rows[: self.limit]
        nxt = _encode_cursor(getattr(rows[-1], field), rows[-1].pk) if more and rows else ""
        return rows, nxt


FTS_PROBE = 2000
_fts_ready: dict[str, bool] = {}


def _sqlite_fts_ready() -> bool:
    """The trigram index exists and its triggers are in place (a table rebuild by a later
    migration would drop them: then we scan rather than miss rows)."""
    from django.db import connection

    alias = connection.alias + ":" + str(connection.settings_dict.get("NAME"))
    if alias not in _fts_ready:
        with connection.cursor() as c:
            c.execute("SELECT count(*) FROM sqlite_master WHERE type = 'trigger' AND name LIKE 'reports_messagelog_fts_%'")
            _fts_ready[alias] = c.fetchone()[0] == 3
    return _fts_ready[alias]


def _symbol_filter(qs: QuerySet[MessageLog], name: str) -> QuerySet[MessageLog]:
    """Rows whose symbols list holds one named ``name``. PostgreSQL: jsonb containment. Elsewhere
    the stored JSON text (written compact by the log writer, with spaces by the ORM) is searched
    for the name's member, in both spellings; ``name`` holds no quote (SYMBOL_NAME)."""
    from django.db import connection

    if connection.vendor == "postgresql":
        return qs.filter(symbols__contains=[{"name": name}])
    text = Cast("symbols", TextField())
    return qs.annotate(symbols_text=text).filter(Q(symbols_text__contains=f'"name":"{name}"')
                                                 | Q(symbols_text__contains=f'"name": "{name}"'))


def _subject_filter(qs: QuerySet[MessageLog], text: str) -> QuerySet[MessageLog]:
    """Substring match on the subject. On SQLite the trigram index is probed first: a rare
    text (fewer than FTS_PROBE matches) is answered from the index; a common one by walking the
    newest rows, which finds a page of matches quickly (figures: ADR 0051)."""
    from django.db import connection

    # The index serves LIKE only without ESCAPE: texts with wildcard characters scan instead.
    if (connection.vendor != "sqlite" or len(text) < 3 or any(ch in text for ch in "%_")
            or not _sqlite_fts_ready()):
        return qs.filter(subject__icontains=text)
    with connection.cursor() as c:
        c.execute("SELECT rowid FROM reports_messagelog_fts WHERE subject LIKE %s LIMIT %s",
                  ["%" + text + "%", FTS_PROBE + 1])
        ids = [r[0] for r in c.fetchall()]
    if len(ids) > FTS_PROBE:
        return qs.filter(subject__icontains=text)
    # The index's LIKE folds ASCII case only, like icontains on SQLite.
    return qs.filter(id__in=ids)


def _encode_cursor(key: Any, pk: int) -> str:
    v = key.isoformat() if isinstance(key, dt.datetime) else key
    return base64.urlsafe_b64encode(json.dumps([v, pk]).encode()).decode().rstrip("=")


def _decode_cursor(cursor: str, field: str) -> tuple[Any, int]:
    try:
        key, pk = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if field == "time":
            key = dt.datetime.fromisoformat(key)
        elif field == "size":
            key = int(key)
        else:
            key = float(key)
        return key, int(pk)
    except (ValueError, TypeError):
        raise SearchError("cursor: invalid") from None
