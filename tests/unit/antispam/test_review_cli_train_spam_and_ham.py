"""The same message given in both ``--spam`` and ``--ham`` of one ``bayes train`` (a copy left in
the inbox and in the junk folder) is learned as neither, and the command says so: it was learned
as spam and then moved to ham (the class depending on which option came first in the sorted
order), and counted as learned twice."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from django.core.management import call_command

from gateway_milter.store.memory import MemoryStore
from tests.unit.antispam.helpers import msg


@pytest.mark.django_db  # (the published policy's trust path)
def test_a_message_given_as_spam_and_ham_is_learned_as_neither(tmp_path: Path, store: MemoryStore) -> None:
    junk, inbox = tmp_path / "junk", tmp_path / "inbox"
    junk.mkdir()
    inbox.mkdir()
    both = msg("quarterly figures", "the numbers for the board")
    (junk / "1.eml").write_bytes(both)
    (inbox / "1.eml").write_bytes(both)
    (junk / "2.eml").write_bytes(msg("win", "lottery winner prize"))
    (inbox / "2.eml").write_bytes(msg("lunch", "see you at noon"))
    out = io.StringIO()
    call_command("bayes", "train", "--spam", str(junk), "--ham", str(inbox), stdout=out, stderr=io.StringIO())
    assert out.getvalue().strip() == ("learned 2 message(s), 0 already known, "
                                      "1 given as both spam and ham not learned")
    out = io.StringIO()
    call_command("bayes", "stats", stdout=out)
    st = json.loads(out.getvalue())
    assert (st["spam_learned"], st["ham_learned"]) == (1, 1)
