"""``bayes``'s progress bar on a terminal redraws one line: the command's stderr (Django's
OutputWrapper) ends every write with a newline unless told not to, which made the bar scroll
one line per update (ten a second) instead of redrawing in place."""

from __future__ import annotations

import io
import mailbox
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import OutputWrapper

from gateway_milter.store.memory import MemoryStore
from tests.unit.antispam.helpers import msg
from webadmin.management.commands.bayes import Progress


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_it_redraws_the_bar_in_place_on_a_terminal() -> None:
    term = Terminal()
    bar = Progress(3, "learning", OutputWrapper(term))
    for i in (1, 2, 3):
        bar.last = 0.0  # (past the redraw interval)
        bar.update(i)
    out = term.getvalue()
    assert out.count("\n") == 1 and out.endswith("3/3\n"), repr(out)
    assert out.count("\r") == 3


def test_it_writes_one_line_per_report_when_not_a_terminal() -> None:
    pipe = io.StringIO()
    bar = Progress(2, "learning", OutputWrapper(pipe))
    bar.update(1)
    bar.update(2)
    assert pipe.getvalue() == ("learning [###############...............] 1/2\n"
                               "learning [##############################] 2/2\n")


@pytest.mark.django_db  # (the published policy's trust path)
def test_bayes_train_on_a_terminal_ends_with_one_bar_line(tmp_path: Path, store: MemoryStore) -> None:
    mb = mailbox.mbox(str(tmp_path / "spam.mbox"))
    for i in range(3):
        mb.add(msg(f"win {i}", "lottery winner prize"))
    mb.close()
    term = Terminal()
    call_command("bayes", "train", "--spam", str(tmp_path / "spam.mbox"), stdout=io.StringIO(), stderr=term)
    assert term.getvalue() == "\rlearning [##############################] 3/3\n"
