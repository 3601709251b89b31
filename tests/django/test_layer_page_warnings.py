"""The layer settings page shows the warnings the save returns (the API returns them as
``warnings``): a skipped rule the rule set does not have is kept and named."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.django.conftest import World

pytestmark = pytest.mark.django_db


def test_the_page_shows_the_warnings_of_a_save(world: World, tmp_path: Path) -> None:
    d = tmp_path / "rules.d"
    d.mkdir()
    (d / "50_local.cf").write_text("header LOCAL_TEST_SUBJECT Subject =~ /buy now/i\nscore LOCAL_TEST_SUBJECT 2.5\n")
    c = world.client("global_admin")
    url = "/security/layers/rules/"
    form = c.get(url).context["form"]
    data = {k: ("on" if v is True else v) for k, v in form.initial.items() if v is not None and v is not False}
    data.pop("include_default", None)  # unchecked: only the local directory
    data["rule_dirs"] = str(d)
    data["skip_rules"] = "LOCAL_TEST_SUBJECT\r\nNO_SUCH_RULE"
    r = c.post(url, data, follow=True)
    assert r.status_code == 200
    shown = [str(m) for m in r.context["messages"]]
    assert any("saved" in m for m in shown), shown
    assert any("NO_SUCH_RULE" in m for m in shown), shown
