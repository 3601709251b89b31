"""URL de-obfuscation and extraction (gateway_milter.antispam.urls)."""

from __future__ import annotations

import re

import pytest

from gateway_milter.antispam.urls import _DEOBF, deobfuscate, find_urls, org_domain, url_host


def _reference(text: str) -> str:
    for rx, rep in _DEOBF:
        text = rx.sub(rep, text)
    return text


@pytest.mark.parametrize("text", [
    "see example [.] com now", "example(dot)com", "EXAMPLE { DOT } COM", "a ( . ) b", "x[.]y(Dot)z",
    "HXXP://evil.example/", "visit h**ps://evil.example", "hXxPs://a.example", "www.evil[.]co.uk",
    "plain text (with brackets) [and more] {braces} and dots.", "", "dotted [ d o t ] not one",
    "ünïcödé [.] tëxt", "(dot", "[.", "hxx p", "İstanbul hxxp", "\u212a hxxp://k.example",
])
def test_deobfuscate_is_the_substitutions(text: str) -> None:
    assert deobfuscate(text) == _reference(text)


def test_deobfuscate_undoes_the_common_tricks() -> None:
    assert deobfuscate("hxxp://evil [.] example (dot) com/x") == "http://evil.example.com/x"
    assert deobfuscate("nothing to undo (really).") == "nothing to undo (really)."


def test_it_finds_deobfuscated_urls() -> None:
    urls = find_urls("go to hxxp://www.evil[.]co.uk/x or www.other.example, twice: www.other.example")
    assert urls == ["http://www.evil.co.uk/x", "http://www.other.example"]
    assert [org_domain(h) for h in map(url_host, urls) if h] == ["evil.co.uk", "other.example"]


def test_deobfuscate_agrees_with_the_substitutions_on_random_text() -> None:
    import random

    rnd = random.Random(3)
    alphabet = "hxpHXP*dotDOT.[](){} \t\nwe"
    for _ in range(3000):
        t = "".join(rnd.choice(alphabet) for _ in range(rnd.randint(0, 30)))
        assert deobfuscate(t) == _reference(t), re.escape(t)


def test_org_domain_keeps_ip_literals_and_reduces_names_also_with_a_leading_digit() -> None:
    assert org_domain("192.0.2.7") == "192.0.2.7"
    assert org_domain("2001:db8::1") == "2001:db8::1"
    assert org_domain("fe80::1%eth0") == "fe80::1%eth0"
    assert org_domain("mail.163.com") == "163.com"
    assert org_domain("163.com") == "163.com"
    assert org_domain("1and1.co.uk") == "1and1.co.uk"
    assert org_domain("smtp.1and1.co.uk") == "1and1.co.uk"
    assert org_domain("a.b.example.com") == "example.com"
