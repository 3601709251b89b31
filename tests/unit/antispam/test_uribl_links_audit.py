"""Links a browser follows are links for URIBL too:

- a host with a label beyond U+FFFF (an emoji, CJK Extension B) was no host: the listed
  domain it is under was never looked up;
- ``http:evil.test`` (no slashes) goes to evil.test for browsers and SpamAssassin;
- 500 links to one host no longer hide a link to another after them: past 500, links of hosts
  not among them are kept, up to 500 more.

And a zone's ``codes`` that cannot list anything (outside 127.0.0.0/8, only the lists' error
answers) or that is not a list is refused when saved, naming the field."""

from __future__ import annotations

import pytest

from gateway_milter.antispam.dnslists import parse_zones
from gateway_milter.antispam.saview import message_view
from gateway_milter.antispam.urls import find_urls, normalize_link, url_host
from gateway_milter.layers.base import SettingsError
from gateway_milter.layers.uribl import lookup_targets
from tests.unit.antispam.helpers import make_ctx, msg


@pytest.mark.parametrize("url", ["http://😀.evil.test/buy", "http://𠀀.evil.test/"])
def test_a_host_beyond_the_basic_plane_is_a_host(url: str) -> None:
    host = url_host(url)
    assert host is not None and host.endswith(".evil.test")
    assert lookup_targets([url], set(), 20) == ["evil.test"]


@pytest.mark.parametrize(("link", "want"), [("http:evil.test/buy", "http://evil.test/buy"),
                                            ("HTTPS:evil.test", "HTTPS://evil.test"),
                                            ("http:/evil.test/x", "http://evil.test/x")])
def test_a_web_link_without_slashes_is_read_as_browsers_read_it(link: str, want: str) -> None:
    assert normalize_link(link) == want
    assert url_host(want) == "evil.test"


@pytest.mark.parametrize("ctype", ["text/plain", "text/html"])
def test_padding_links_to_one_host_do_not_hide_another(ctype: str) -> None:
    good = [f"http://good.test/t?u={i}" for i in range(600)]
    if ctype == "text/html":
        body = "".join(f"<a href='{u}'>x</a>" for u in good) + "<a href='http://evil.test/buy'>buy</a>"
    else:
        body = "\n".join(good) + "\nhttp://evil.test/buy\n"
    view = message_view(make_ctx(msg("links", body, ctype=ctype)))
    assert "http://evil.test/buy" in view.uris and len(view.uris) == 501
    assert lookup_targets(view.uris, set(), 20) == ["good.test", "evil.test"]


def test_find_urls_keeps_at_most_twice_its_limit() -> None:
    text = "\n".join(f"http://h{i}.test/" for i in range(5000))
    got = find_urls(text, 10)
    assert len(got) == 20 and got[:10] == [f"http://h{i}.test/" for i in range(10)]


@pytest.mark.parametrize("codes", [["10.0.0.2"], ["127.0.0.255"], ["127.255.255.254"], ["127.0.1.255"],
                                   ["127.255.255.0-127.255.255.255"]])
def test_codes_that_cannot_list_are_refused(codes: list[str]) -> None:
    with pytest.raises(SettingsError) as e:
        parse_zones(({"zone": "bl.example", "codes": codes},), "zones", "DNSBL_")
    assert e.value.path == "zones[0].codes[0]" and "no answer that can list" in e.value.message


@pytest.mark.parametrize("codes", ["127.0.0.2-127.0.0.11", 2])
def test_codes_must_be_a_list(codes: object) -> None:
    with pytest.raises(SettingsError) as e:
        parse_zones(({"zone": "bl.example", "codes": codes},), "zones", "DNSBL_")
    assert e.value.path == "zones[0].codes"


@pytest.mark.parametrize("codes", [["127.0.0.2"], ["127.0.0.1-127.0.0.3"], ["127.0.0.0-127.255.255.255"],
                                   ["127.0.1.2-127.0.1.255"]])
def test_codes_that_can_list_are_kept(codes: list[str]) -> None:
    assert parse_zones(({"zone": "bl.example", "codes": codes},), "zones", "DNSBL_")[0].codes
