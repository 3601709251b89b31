"""A zipped maildir given to the web's "Train Bayes" page teaches what ``bayes train`` reads in
the unpacked maildir: its cur/ and new/, not its tmp/ (half-written messages) nor its
``.Junk`` and ``.Sent`` folders. The upload read every file whose own name did not start with
a dot: a mailbox given as ham taught its junk folder's spam as ham."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

from gateway_milter.pipeline.rawmessage import archive_messages, iter_messages


def _msg(subject: str) -> bytes:
    return f"From: x@example.com\nTo: u@example.org\nSubject: {subject}\nMessage-ID: <{subject}@x>\n\nbody {subject}\n".encode()


LAYOUT = {"Maildir/cur/inbox1:2,S": _msg("inbox1"), "Maildir/new/inbox2": _msg("inbox2"),
          "Maildir/tmp/partial": _msg("partial"), "Maildir/.Junk/cur/junk1:2,S": _msg("junk1"),
          "Maildir/.Junk/maildirfolder": b"", "Maildir/.Sent/cur/sent1:2,S": _msg("sent1"),
          "Maildir/dovecot-uidlist": b"3 V1700000000 N3\n", "Maildir/cur/.hidden": _msg("hidden"),
          "exports/one.eml": _msg("export1"), "exports/.DS_Store": b"\0\0", "__MACOSX/exports/._one.eml": b"\0",
          "top/cur/a": _msg("topcur"), "top/new/b": _msg("topnew")}


def _subjects(raws: list[bytes]) -> list[str]:
    return sorted(r.split(b"Subject: ")[1].split(b"\n")[0].decode() for r in raws)


def test_the_upload_reads_a_zipped_maildir_as_bayes_train_reads_it(tmp_path: Path) -> None:
    from webadmin import training

    tree = tmp_path / "tree"
    for name, data in LAYOUT.items():
        (tree / name).parent.mkdir(parents=True, exist_ok=True)
        (tree / name).write_bytes(data)
    (tree / "Maildir/.Junk/new").mkdir()
    (tree / "Maildir/.Junk/tmp").mkdir()
    cli = _subjects([raw for _, raw in iter_messages(tree) if raw.startswith(b"From: x@")])
    assert cli == ["export1", "inbox1", "inbox2", "topcur", "topnew"]

    z = io.BytesIO()
    with zipfile.ZipFile(z, "w") as zf:
        for name, data in LAYOUT.items():
            zf.writestr(name, data)
    up = tmp_path / "mail.zip"
    up.write_bytes(z.getvalue())
    spool = training.Spool(tmp_path / "mail.spool")
    training.messages_of(up, spool)
    spool.close()
    assert _subjects(spool.messages(0, len(spool.spans))) == cli


def test_archive_messages_follows_the_maildir_rules() -> None:
    names = ["cur/", "new/", "tmp/", "cur/a", "tmp/b", ".Trash/cur/c", "x/.git/config", "x/y.eml"]
    assert archive_messages(names) == {"cur/a"}  # (the zip's root is a maildir: only cur/, new/)
    assert archive_messages(["x/y.eml", "x/.git/config", "x/dovecot.index"]) == {"x/y.eml"}
    # a maildir whose empty new/ and tmp/ the zip left out: a directory of files, read as such
    assert archive_messages(["box/cur/a", "box/cur/b"]) == {"box/cur/a", "box/cur/b"}
