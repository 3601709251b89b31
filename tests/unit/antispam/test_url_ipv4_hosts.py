"""URL hosts that a browser reads as IPv4 addresses (WHATWG URL Standard, "IPv4 parser"): one
to four parts, each decimal, octal (leading 0) or hex (0x), the last filling the remaining
bytes. URIBL looks them up as addresses, never as domain names."""

from __future__ import annotations

import pytest

from gateway_milter.antispam.urls import url_host


@pytest.mark.parametrize("url", [
    "http://0x7f000002/",  # one hex number
    "http://0X7F000002/x",
    "http://017700000002/",  # one octal number
    "http://2130706434/",  # one decimal number
    "http://0x7f.0.0.2/",  # dotted, hex and octal parts
    "http://0177.0.0.02/",
    "http://0x7f.0x0.0x0.0x2/",
    "http://127.0.0.2/",
    "http://127.2/",  # two parts: the last fills three bytes
    "http://0x7f.2/",
    "http://127.0.2/",  # three parts: the last fills two bytes
    "http://user:pw@0x7f000002:8080/p",
    "http://0x7f000002./",  # a trailing dot
    "http://%30x7f000002/",  # percent-encoded
    "http://１２７.０.０.２/",  # full-width digits (IDNA maps them to ASCII)
])
def test_it_reads_numeric_hosts_as_the_address_a_browser_goes_to(url: str) -> None:
    assert url_host(url) == "127.0.0.2"


def test_it_keeps_the_existing_forms() -> None:
    assert url_host("http://3627733038/") == "216.58.208.46"
    assert url_host("http://0xd8.0x3a.0xd6.0x4e/") == "216.58.214.78"
    assert url_host("http://0330.072.0326.0116/") == "216.58.214.78"
    assert url_host("http://0x/") == "0.0.0.0"  # "0x" alone is zero


@pytest.mark.parametrize("url", [
    "http://0x100000000/",  # more than 32 bits
    "http://4294967296/",
    "http://256.0.0.1/",  # a part other than the last above 255
    "http://1.2.3.256/",  # the last part too large for the one byte left
    "http://1.2.65536/",
    "http://1.2.3.4.5/",  # more than four parts
    "http://08.1.1.1/",  # not an octal number
    "http://0x1g.1.1.1/",  # not a hex number: the host still ends in a number
    "http://evil.1/",  # a name whose last label is a number is no host at all
    "http://1..2/",
])
def test_a_host_ending_in_a_number_that_is_no_address_gives_no_host(url: str) -> None:
    assert url_host(url) is None


@pytest.mark.parametrize(("url", "host"), [
    ("http://0x7f.example/", "0x7f.example"),  # ends in a name: a domain
    ("http://1.2.3.example/", "1.2.3.example"),
    ("http://example.0x1g/", "example.0x1g"),  # "0x1g" is no number: a name
    ("http://163.com/", "163.com"),
    ("http://www.1and1.co.uk/", "www.1and1.co.uk"),
])
def test_names_stay_names(url: str, host: str) -> None:
    assert url_host(url) == host


def test_leading_zeros_do_not_count_toward_the_size() -> None:
    assert url_host("http://0x00000000000000007f000002/") == "127.0.0.2"
    assert url_host("http://00000000000000000000000000000177.0.0.2/") == "127.0.0.2"
    assert url_host("http://0x" + "f" * 40 + "/") is None
    assert url_host("http://" + "9" * 5000 + "/") is None  # no int() of 5000 digits
