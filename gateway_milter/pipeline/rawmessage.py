"""Split a raw RFC 5322 message into the (name, value) header list and body, as an MTA hands
them to a milter. Tolerant: bare LF, a missing blank line, or header lines without a colon never
raise. :func:`iter_messages` reads the messages of a file, an mbox file, a maildir or a
directory; :func:`iter_message_refs` also says where each lies, to read it again later."""

from __future__ import annotations

import itertools
import os
import re
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

_HDR = re.compile(rb"^([!-9;-~]+)[ \t]*:(.*)$", re.S)


def split_message(raw: bytes, *, verbatim: bool = False) -> tuple[list[tuple[str, str]], bytes]:
    """``verbatim``: each value with the white space that follows its colon (for
    :meth:`MessageContext.add_raw_header`, as the milter gets it); else without."""
    m = re.search(rb"\r?\n\r?\n", raw)
    if raw.startswith((b"\r\n", b"\n")):
        head, body = b"", raw.split(b"\n", 1)[1]
    elif m:
        head, body = raw[: m.start()], raw[m.end():]
    else:
        head, body = raw, b""
    fields: list[tuple[str, list[str]]] = []  # a field's lines joined once (not once per line)
    pieces = re.split(rb"(\r?\n)", head) if head else []  # lines, each followed by its line end
    for i in range(0, len(pieces), 2):
        line = pieces[i]
        if line[:1] in (b" ", b"\t") and fields:
            fields[-1][1].append(line.decode("utf-8", "surrogateescape"))
            continue
        hm = _HDR.match(line)
        if hm:
            value = hm.group(2) if verbatim else hm.group(2).lstrip(b" \t")
            fields.append((hm.group(1).decode("ascii"), [value.decode("utf-8", "surrogateescape")]))
            continue
        if i == 0 and line.startswith(b"From "):
            continue  # an mbox From_ line before the header section (as mail programs skip it)
        # a line that is neither a header nor a continuation ends the header section: it and
        # what follows are the body, as Postfix and Sendmail read a message without its empty
        # line (and SpamAssassin's parser); the line was dropped, and with it a multipart's first
        # boundary (its parts then read as header fields)
        body = b"".join(pieces[i:]) + (raw[m.start():m.end()] if m else b"") + body
        break
    headers = [(name, "\r\n".join(parts)) for name, parts in fields]
    body = re.sub(rb"(?<!\r)\n", b"\r\n", body)
    return headers, body


# what a mail server keeps beside the messages in a directory: hidden names (Maildir++
# subfolders such as .Junk, .DS_Store), Dovecot's and Courier's indexes, uid lists and folder
# lists, Maildir++'s subfolder mark
_NOT_MESSAGES = re.compile(r"\.|dovecot[.-]|courierimap|maildirfolder$|subscriptions$")


# a From_ line as mbox writers make it: sender, then asctime's date ("Mon Jan  1 00:00:00 2024",
# a zone before the year in some)
_FROM_LINE = re.compile(rb"From \S+ +[A-Z][a-z]{2} +[A-Z][a-z]{2} +\d{1,2} +\d{1,2}:\d\d(:\d\d)? +(\S+ +)?\d{4}\s*$")


def _mbox_messages(file_lines: Iterable[bytes], at: int = 0) -> Iterator[tuple[int, bytes]]:
    """The messages of an mbox file (its lines), each with its offset in the file and as it lies
    there (less its From_ line and the empty line before the next): not parsed and written out
    again by the email package, which refolds long headers and turns bare CRs into line ends
    (another text, another Bayes identity). A message starts at a line starting ``From `` at
    the top of the file or after an empty line (RFC 4155), or at one that reads as a whole From_
    line, sender and date (files joined with cat), not at every such line: Dovecot, Thunderbird
    and Content-Length mboxes leave a body's ``From `` lines unquoted. One message in memory at
    a time."""
    lines: list[bytes] | None = None
    after_empty = True
    start = at  # (at: the offset of the first line given, past a byte order mark)
    for line in file_lines:
        if line.startswith(b"From ") and (after_empty or _FROM_LINE.match(line)):
            if lines is not None:
                yield start, _without_separator(lines)
            lines = []
            start = at + len(line)
        elif lines is not None:
            lines.append(line)
        after_empty = line in (b"\n", b"\r\n")
        at += len(line)
    if lines is not None:
        yield start, _without_separator(lines)


def _without_separator(lines: list[bytes]) -> bytes:
    if lines and lines[-1] in (b"\n", b"\r\n"):  # (the empty line before the next From_ line)
        lines.pop()
    return b"".join(lines)


_QUOTED_FROM = re.compile(rb"(?m)^>(>*From )")
_BARE_FROM = re.compile(rb"(?m)^From ")


def unquote_from(raw: bytes) -> bytes:
    """A message of an mbox as it was sent: most mbox writers (Postfix's local delivery, mutt,
    procmail, Python's mailbox, mail exports) quote a body line starting ``From `` as ``>From ``
    (mboxo; mboxrd also ``>From `` as ``>>From ``), and one ``>`` goes again, as mboxrd readers
    do: the milter saw ``From ``, and a message learned from an mbox and then seen by the milter
    is one text, one Bayes identity. A message with an unquoted body line starting ``From `` is
    from a writer that quotes nothing (Dovecot, Thunderbird, Content-Length mboxes): its ``>From``
    lines are the sender's own and stay."""
    if b">From " not in raw or _BARE_FROM.search(raw):
        return raw
    return _QUOTED_FROM.sub(rb"\1", raw)


def starts_with_field(raw: bytes) -> bool:
    """Whether ``raw`` reads as mail: its first line a header field (``Name: value``) or an mbox
    From_ line, after a byte order mark or empty lines an editor left. A README, a spreadsheet
    or an index file beside the messages of a directory is not, and learning it would teach
    Bayes its words as mail."""
    head = raw[:1000].lstrip(b"\r\n")
    head = head[3:] if head.startswith(b"\xef\xbb\xbf") else head
    return head.startswith(b"From ") or _HDR.match(head.split(b"\n", 1)[0]) is not None


@dataclass(frozen=True, slots=True)
class MessageRef:
    """Where a message lies, to read it again later instead of keeping it in memory: a span of
    a regular file (a whole .eml file, or one message of an mbox), or the bytes themselves when
    the source cannot be read twice (a pipe)."""

    label: str
    path: str = ""
    offset: int = 0
    length: int = 0
    raw: bytes | None = None
    mbox: bool = False  # a message of an mbox: its quoted From lines are read unquoted (unquote_from)

    def read(self, files: dict[str, BinaryIO] | None = None) -> bytes:
        """The message's bytes (*files*: open files to reuse, by path; the caller closes them)."""
        if self.raw is not None:
            return self.raw
        if files is None:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                raw = f.read(self.length)
        else:
            fh = files.get(self.path)
            if fh is None:
                fh = files[self.path] = open(self.path, "rb")  # noqa: SIM115 - closed by the caller
            fh.seek(self.offset)
            raw = fh.read(self.length)
        return unquote_from(raw) if self.mbox else raw


def is_maildir(path: Path) -> bool:
    """A maildir has cur/ and new/ (and tmp/, where messages are still being written); a copy
    may lack one that was empty (tar, rsync filters and backup tools skip empty directories), so
    two of the three, one of them cur/ or new/, make one too (its tmp/ is never read)."""
    has = [(path / d).is_dir() for d in ("cur", "new", "tmp")]
    return (has[0] or has[1]) and sum(has) >= 2


def archive_messages(names: Iterable[str]) -> set[str]:
    """Of an archive's member names (a zip: ``dir/sub/file``, directories ending in ``/``), the
    files :func:`iter_messages` reads once it is unpacked: in a maildir only the files of its
    cur/ and new/ (not tmp/, where messages are half written, nor its ``.Junk``, ``.Sent``
    folders), elsewhere every file and directory but those ``_NOT_MESSAGES`` names (dot files,
    Dovecot's and Courier's indexes) and a Mac's ``__MACOSX/`` resource forks. So a zipped
    mailbox given as ham teaches its inbox, not its junk folder, as ``--ham ~/Maildir`` does."""
    names = list(names)
    files = [n for n in names if n and not n.endswith("/")]
    dirs = {n.rstrip("/") for n in names if n.endswith("/")}
    for n in files:
        parts = n.split("/")
        dirs.update("/".join(parts[:i]) for i in range(1, len(parts)))

    def maildir(d: str) -> bool:  # as is_maildir
        has = [(f"{d}/{x}" if d else x) in dirs for x in ("cur", "new", "tmp")]
        return (has[0] or has[1]) and sum(has) >= 2

    out: set[str] = set()
    for n in files:
        parts = n.split("/")
        if parts[0] == "__MACOSX":
            continue
        for i in range(len(parts)):
            if maildir("/".join(parts[:i])):
                if len(parts) == i + 2 and parts[i] in ("cur", "new") and not parts[-1].startswith("."):
                    out.add(n)
                break
            if _NOT_MESSAGES.match(parts[i]):
                break
        else:
            out.add(n)
    return out


def iter_messages(path: Path) -> Iterator[tuple[str, bytes]]:
    """(label, raw bytes) for an .eml file, every message of an mbox file, or every message of a
    directory: of a maildir its cur/ and new/ only (not tmp/, not its Maildir++ subfolders such
    as .Junk, which must be named on their own, not the server's files beside them); of another
    directory every file and subdirectory in name order, leaving out hidden names and mail
    server bookkeeping (``dovecot-uidlist``, ``maildirfolder``, ``subscriptions``, ...)."""
    for ref, raw in _iter_messages(path, set()):
        yield ref.label, raw


def iter_message_refs(path: Path) -> Iterator[tuple[MessageRef, bytes]]:
    """As :func:`iter_messages`, each message with where it lies (:class:`MessageRef`), so that
    a caller going over a corpus twice (to count and order it, then to use it) need not keep
    every message in memory in between."""
    yield from _iter_messages(path, set())


def _past_lead(f: BinaryIO) -> tuple[bytes, int]:
    """The first line of ``f`` with text (without a byte order mark before it) and the number
    of bytes before that text: empty lines and one byte order mark, in any order."""
    skipped, bom = 0, False
    while True:
        line = f.readline()
        if not bom and line.startswith(b"\xef\xbb\xbf"):
            bom, line, skipped = True, line[3:], skipped + 3
        if line not in (b"\n", b"\r\n"):
            return line, skipped
        skipped += len(line)


def _iter_messages(path: Path, seen: set[Path]) -> Iterator[tuple[MessageRef, bytes]]:
    if path.is_dir():
        real = path.resolve()
        if real in seen:  # a symbolic link back up the tree
            return
        seen.add(real)
        if is_maildir(path):
            for p in sorted(p for sub in ("cur", "new") if (path / sub).is_dir() for p in (path / sub).iterdir()):
                if p.is_file() and not p.name.startswith("."):
                    raw = p.read_bytes()
                    yield MessageRef(str(p), str(p), 0, len(raw)), raw
            return
        for p in sorted(path.iterdir()):  # (not a socket, not a dangling link)
            if not _NOT_MESSAGES.match(p.name) and (p.is_dir() or p.is_file()):
                yield from _iter_messages(p, seen)
        return
    # opened once, read on from its first bytes: a pipe (/dev/stdin, <(zcat junk.mbox.gz)) has
    # nothing left for a second open
    with open(path, "rb") as f:
        again = stat.S_ISREG(os.fstat(f.fileno()).st_mode)  # (can be read again later)
        # a file may start with a byte order mark or empty lines (an editor's), in either order:
        # read from its first line with text
        first, skipped = _past_lead(f)
        if first.startswith(b"From "):
            lines = itertools.chain([first], f)
            for i, (offset, quoted) in enumerate(_mbox_messages(lines, skipped)):
                label = f"{path}#{i + 1}"
                raw = unquote_from(quoted)
                yield (MessageRef(label, str(path), offset, len(quoted), mbox=True) if again
                       else MessageRef(label, raw=raw)), raw
            return
        # one message: read from its first field, past the byte order mark and the empty lines
        # (kept, its header read as body and its identity another than the same mail's)
        raw = first + f.read()
    yield (MessageRef(str(path), str(path), skipped, len(raw)) if again else MessageRef(str(path), raw=raw)), raw
