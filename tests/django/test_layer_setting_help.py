"""Each layer's settings page says what every setting means, from the layer's doc page
(webadmin/layerdocs.py), and calls the layer by its name: the page and docs/layers/<id>.md
cannot drift apart, and a setting nobody documented fails here."""

from __future__ import annotations

import dataclasses
import re

import pytest

from gateway_milter import layers
from tests.django.conftest import World
from webadmin.layerdocs import parse_settings_table, setting_help


@pytest.mark.parametrize("layer_id", layers.available())
def test_every_setting_of_every_layer_has_a_meaning_on_its_doc_page(layer_id: str) -> None:
    layer = layers.get(layer_id)
    meanings = setting_help(layer_id)
    undocumented = [f.name for f in dataclasses.fields(layer.Settings) if not meanings.get(f.name)]
    assert not undocumented, f"docs/layers/{layer_id}.md has no meaning for {undocumented}"
    assert layer.title, f"layer {layer_id} has no title (the web admin would show its id)"


def test_the_table_parser_reads_names_meanings_and_nothing_else() -> None:
    text = """# Layer

| symbol | default score | meaning |
|---|---|---|
| `NOT_A_SETTING` | 1.0 | a symbol table is not read |

| setting | default | meaning |
|---|---|---|
| `netmask_v4`, `netmask_v6` | `24`, `64` | client **network** of the `triplet` |
| `reply_text` | `a \\| b` | the text, see [the RFC](https://example.test/) |
| `no_meaning` | `1` | |

Text between tables ends one.
| `after_the_table` | `1` | not read |
"""
    assert parse_settings_table(text) == {
        "netmask_v4": "client network of the triplet", "netmask_v6": "client network of the triplet",
        "reply_text": "the text, see the RFC"}
    assert setting_help("../../etc/passwd") == {} and setting_help("nosuchlayer") == {}


def test_the_settings_page_shows_the_meanings_and_the_layers_name(world: World) -> None:
    c = world.client("global_admin")
    page = c.get("/security/layers/greylist/").content.decode()
    assert "<h1>Greylisting settings" in page
    assert "seconds before a retry is accepted · default: 300" in page
    index = c.get("/security/layers/").content.decode()
    assert ">Greylisting</a>" in index and ">URI blocklists (URIBL)</a>" in index
    landing = c.get("/security/").content.decode()
    assert "Greylisting settings" in landing and "Spam scoring settings" in landing
    assert "GREYLIST settings" not in landing and "BAYES settings" not in landing
    # a domain administrator sees the same meanings, and which fields only a global admin sets
    dom = world.client("domain_admin", "a").get("/security/layers/attachments/").content.decode()
    assert "set by a global administrator; nesting depth of archives read" in dom


def test_the_api_gives_titles_defaults_and_meanings(world: World) -> None:
    c = world.client("global_admin")
    listed = {x["id"]: x for x in c.get("/api/layers/").json()}
    assert listed["greylist"]["title"] == "Greylisting"
    got = c.get("/api/layers/greylist/").json()
    assert got["defaults"]["delay"] == 300 and got["meanings"]["delay"] == "seconds before a retry is accepted"
    assert set(got["meanings"]) == set(got["settings"])
    dom = world.client("domain_admin", "a").get("/api/layers/attachments/?domain=a.example").json()
    assert "archive_max_depth" in dom["global_only"] and dom["meanings"]["archive_max_depth"].startswith("nesting")


@pytest.mark.parametrize(("seconds", "said"), [
    (0, "0 seconds"), (1, "1 second"), (59, "59 seconds"), (60, "1 minute"), (90, "1.5 minutes"),
    (300, "5 minutes"), (14400, "4 hours"), (86400, "1 day"), (3110400, "36 days"), (2.5, "2.5 seconds"),
])
def test_durations_are_said_as_a_person_says_them(seconds: float, said: str) -> None:
    from webadmin.forms import human_seconds

    assert human_seconds(seconds) == said


def test_a_number_of_seconds_is_marked_for_its_duration(world: World) -> None:
    page = world.client("global_admin").get("/security/layers/greylist/").content.decode()
    assert 'name="expiry"' in page and "default: 3110400 (36 days)" in page
    assert len(re.findall(r'<input[^>]*data-unit="s"', page)) == 3  # delay, retry_window, expiry
    spf = world.client("global_admin").get("/security/layers/spf/").content.decode()
    assert re.search(r'<input[^>]*name="lookup_timeout_s"[^>]*data-unit="s"', spf)  # a name ending in _s
