"""A file that cannot be read (a message of mode 0600 owned by the mail user, the command run as
another) ends ``bayes train`` and ``scan`` with its name and the reason, as a missing path does:
PermissionError ran out of the command as a traceback."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from gateway_milter.pipeline import rawmessage
from gateway_milter.store.memory import MemoryStore
from tests.unit.antispam.helpers import msg


@pytest.mark.django_db  # (the published policy's trust path)
def test_bayes_train_names_a_file_it_cannot_read(tmp_path: Path, store: MemoryStore,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    d = tmp_path / "spam"
    d.mkdir()
    (d / "1.eml").write_bytes(msg("a", "one"))
    (d / "2.eml").write_bytes(msg("b", "two"))

    def deny(file: Any, *args: Any, **kw: Any) -> Any:  # (as for a non-root user, a file of mode 0600)
        if str(file).endswith("2.eml"):
            raise PermissionError(13, "Permission denied", str(file))
        return open(file, *args, **kw)

    monkeypatch.setattr(rawmessage, "open", deny, raising=False)
    with pytest.raises(CommandError, match=r"spam/2\.eml: Permission denied"):
        call_command("bayes", "train", "--spam", str(d), stdout=io.StringIO(), stderr=io.StringIO())


@pytest.mark.django_db
def test_scan_names_a_file_it_cannot_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    eml = tmp_path / "m.eml"
    eml.write_bytes(msg("a", "one"))

    def deny(file: Any, *args: Any, **kw: Any) -> Any:
        raise PermissionError(13, "Permission denied", str(file))

    monkeypatch.setattr(rawmessage, "open", deny, raising=False)
    with pytest.raises(CommandError, match=r"m\.eml: Permission denied"):
        call_command("scan", str(eml), stdout=io.StringIO())
