"""URIBL walks a link's redirector target as SpamAssassin's URIDNSBL does: through the URI
canonicalisation with the rule set's ``redirector_pattern`` lines (Util::uri_list_canonicalize;
Debian's name Google's url?q=, AOL's, Facebook's and others), not only the generic split that
finds an http link inside another. A target without a scheme (``?q=evil.example/buy``) was
missed: the generic split needs ``http`` in it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gateway_milter.antispam.saview import message_view
from gateway_milter.layers.rules import engine_from_settings
from gateway_milter.layers.uribl import lookup_targets, message_links, rule_set_redirectors
from gateway_milter.net.resolver import StaticBackend
from gateway_milter.policy.snapshot import PolicySnapshot
from tests.unit.antispam.helpers import make_ctx, msg, policy, write_rules

# Debian's google.com/url?q= pattern (20_uri_tests.cf) and one of a site's own
RULES = (r"redirector_pattern m'^https?:/*(?:\w+\.)?google(?:\.\w{2,3}){1,2}/url\?.*?(?<=[?&])q=(.*?)(?:$|[&\#])'i"
         "\nredirector_pattern /^https?:\\/\\/go\\.tracker\\.test\\/r\\/\\d+\\/(.*)$/i\n"
         "body LOCAL_NOTHING /zzzz-never/\n")
LINKS = [("https://www.google.com/url?q=evilq.test/buy&sa=D", "evilq.test"),
         ("http://go.tracker.test/r/42/evilr.test/offer", "evilr.test"),
         ("http://go.tracker.test/r/7/evilp.test:8080/offer", "evilp.test")]  # a port is no scheme


def _policy(tmp_path: Path, rules_on: bool = True) -> PolicySnapshot:
    settings: dict[str, Any] = {"rules": {"include_default": False, "rule_dirs": [str(write_rules(tmp_path, RULES))]},
                                "uribl": {"zones": [{"zone": "uri.test", "weight": 4}]}}
    if not rules_on:
        settings["rules"]["mode"] = "off"
    pol = policy(settings)
    engine_from_settings(pol.settings_for("rules", None))  # the worker builds it at start
    return pol


def _targets(raw: bytes, pol: PolicySnapshot) -> list[str]:
    ctx = make_ctx(raw, pol)
    return lookup_targets(message_links(message_view(ctx), rule_set_redirectors(ctx)), set(), 50)


@pytest.mark.parametrize(("link", "inner"), LINKS)
def test_a_redirector_patterns_target_is_looked_up(tmp_path: Path, link: str, inner: str) -> None:
    pol = _policy(tmp_path)
    assert inner in _targets(msg("x", f"go {link} now"), pol)
    assert inner in _targets(msg("x", f'<html><body><a href="{link}">go</a></body></html>',
                                 ctype="text/html; charset=utf-8"), pol)


@pytest.mark.parametrize(("link", "inner"), LINKS)
def test_without_the_rule_set_only_the_generic_split_runs(tmp_path: Path, link: str, inner: str) -> None:
    pol = _policy(tmp_path, rules_on=False)
    assert inner not in _targets(msg("x", f"go {link} now"), pol)


def test_the_target_is_listed_through_the_layer(tmp_path: Path, dns: StaticBackend) -> None:
    dns.add("evilq.test.uri.test", "A", ["127.0.0.2"])
    res = make_ctx(msg("x", f"go {LINKS[0][0]} now"), _policy(tmp_path)).layer("uribl")
    assert res.has("URIBL_URI_TEST"), res.fact("targets")


def test_the_generic_split_still_runs_where_no_pattern_captures(tmp_path: Path) -> None:
    # a google.com link without q=: no pattern captures, so the http link inside is found
    pol = _policy(tmp_path)
    assert "evilg.test" in _targets(msg("x", "go https://www.google.com/url?u=http://evilg.test/ now"), pol)
