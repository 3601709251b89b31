"""Command-line tools refuse bad arguments with a CommandError naming them, instead of a
traceback or a run with an address no SMTP session could have: ``sieve test``'s envelope (the
same checks as ``scan``'s: webadmin/cliargs.py) and ``bootstrap --domain``."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from webadmin.cliargs import envelope_args

pytestmark = pytest.mark.django_db


def _files(tmp_path: Path) -> tuple[str, str]:
    script, message = tmp_path / "s.sieve", tmp_path / "m.eml"
    script.write_text('if address :is "from" "a@x.test" { discard; }\n')
    message.write_bytes(b"From: a@x.test\r\nTo: b@example.com\r\nSubject: s\r\n\r\nhi\r\n")
    return str(script), str(message)


@pytest.mark.parametrize(("args", "says"), [
    (("--ip", "999.9.9.9"), "--ip '999.9.9.9' is not an IPv4 or IPv6 address"),
    (("--rcpt", "bad"), "--rcpt 'bad' is not an email address"),
    (("--from", "@x"), "--from '@x' is not an email address"),
])
def test_sieve_test_refuses_a_bad_envelope(tmp_path: Path, args: tuple[str, ...], says: str) -> None:
    with pytest.raises(CommandError) as e:
        call_command("sieve", "test", *_files(tmp_path), *args, stdout=io.StringIO())
    assert str(e.value) == says


def test_sieve_test_runs_with_a_good_envelope(tmp_path: Path) -> None:
    out = io.StringIO()
    call_command("sieve", "test", *_files(tmp_path), "--from", "<>", "--rcpt", "<b@example.com>", "--ip", " ::1 ",
                 stdout=out)
    assert out.getvalue().strip() == "discard"


def test_the_envelope_is_normalised() -> None:
    assert envelope_args(" 2001:DB8::1 ", "<>", ["<a@b>", " c@localhost "]) == ("2001:db8::1", "", ["a@b", "c@localhost"])
    assert envelope_args(None, None, []) == (None, None, [])


def test_bootstrap_names_a_bad_domain(gateway_dir: Path) -> None:
    from webadmin.models import PublishedPolicy

    with pytest.raises(CommandError) as e:
        call_command("bootstrap", "--domain", "bad domain", "--no-antivirus", stdout=io.StringIO())
    assert "nothing imported: domains[0].name: 'bad domain' is not a valid domain name" in str(e.value)
    assert not PublishedPolicy.objects.exists()
    assert (gateway_dir / "admin-password").is_file()  # (in the test's data directory)
