"""Security → Heuristic rules counts a rule's hits in good mail (accepted) apart from junk; a
tempfailed message (an antivirus outage, say, with the spam it held) counted as good mail, so a
rule that only catches spam showed good hits, and its link (the log's accepted mail) listed none
of them."""

from __future__ import annotations

import pytest

from tests.django.conftest import World
from tests.django.test_rules_browser import _get, _log, _policy, _rows

pytestmark = pytest.mark.django_db


def test_a_tempfailed_message_is_not_good_mail(world: World) -> None:
    _policy(world)
    _log(world, "a", "tempfail", ["LOCAL_PRIZE"], n=2)
    _log(world, "a", "accept", ["LOCAL_NEWSLETTER"])
    c = world.client("global_admin")
    rows = _rows(_get(c, "/security/antispam/rules/?only=hits"))
    assert rows["LOCAL_NEWSLETTER"]["good"] == "1"
    assert "LOCAL_PRIZE" not in rows or rows["LOCAL_PRIZE"]["good"] == "0", rows.get("LOCAL_PRIZE")
    assert "LOCAL_PRIZE" not in _rows(_get(c, "/security/antispam/rules/?only=good"))
    assert c.get("/logging/log/?symbol=LOCAL_PRIZE&result=accept").content.count(b"rb-a-tempfail") == 0
