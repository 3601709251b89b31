"""Security → Train Bayes: learn a whole mailbox as spam or as ham from the web admin (and the
API), with its progress shown while it runs: what ``manage.py bayes train`` does, for an
administrator without a shell.

The upload is one message (``.eml``), an mbox file, or a zip of either (a mail client's
export, a maildir zipped). It is stored in ``GATEWAY_DATA_DIR/training/`` and learned in a
background thread of the web process, in batches (one store read and one write a batch, as the
command does), into one scope the administrator holds: a global administrator any scope
(``global`` or ``dom:<local domain>``), a domain administrator their domains' scopes. One
training runs at a time in a process. The job's file says how far it got; the upload is removed
when it ends. Learning is idempotent (a message learned again with the same label changes
nothing), so a training cut short (the web server restarted) is started again with the same file.

Hostile uploads are bounded: the file's size, the number of messages, each message's size, and a
zip's members (their count, and the bytes read from each one and from all, whatever their
headers say); nothing is extracted to disk by its own name. The messages wait in a spool file
beside the upload, so the web process holds their positions, not the messages.
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
import threading
import time
import zipfile
import zlib
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from gateway_milter.pipeline.rawmessage import archive_messages, iter_messages, starts_with_field
from webadmin.errors import FieldError
from webadmin.jobfiles import JobFiles

if TYPE_CHECKING:
    from gateway_milter.antispam.relays import TrustConfig

log = logging.getLogger("bulwark.antispam")

MAX_UPLOAD = 100 * 1024 * 1024  # bytes of the uploaded file
MAX_MESSAGES = 50_000
MAX_MESSAGE = 10 * 1024 * 1024  # a larger message is skipped (the milter's Bayes reads no more)
MAX_MEMBERS = 100_000  # zip members looked at
MAX_UNZIPPED = 1024 * 1024 * 1024  # uncompressed bytes of a zip's members, all together
BATCH = 64
KEEP_S = 24 * 3600  # a job's file is removed this long after it started
STALL_S = 600  # a job "running" without progress this long is reported as interrupted
_running = threading.BoundedSemaphore(1)
JOBS = JobFiles("training", KEEP_S, ("upload", "spool"))


class TrainingError(FieldError):
    """Bad input for a training: the message says which field and why."""


class TrainingBusy(TrainingError):
    """A training already runs in this process (the API's 503)."""


def jobs_dir() -> Path:
    return JOBS.dir()


def scopes_for(user: Any) -> list[str]:
    """The scopes ``user`` may train: a global administrator ``global`` and every local domain's,
    a domain administrator their own domains' (those still local)."""
    from webadmin import access, services

    p = access.principal(user)
    local = services.current_snapshot().domain_names  # (alias domains: their domain's)
    own = sorted(local if p.is_global else set(p.domains) & local)
    return (["global"] if p.is_global else []) + [f"dom:{d}" for d in own]


def start(upload: BinaryIO, size: int | None, label: str, scope: str, owner: int, scopes: list[str],
          actor: str = "") -> str:
    """Store the upload and learn it in the background; returns the job's token. TrainingError
    for a bad label, scope or file; TrainingBusy while another training runs here."""
    if label not in ("spam", "ham"):
        raise TrainingError("label", "Choose spam or ham.")
    if scope not in scopes:
        raise TrainingError("scope", f"{scope[:80]!r} is not a scope you may train"
                                     + (f" (yours: {', '.join(scopes)})." if scopes else ": you administer no domain."))
    if size is not None and size > MAX_UPLOAD:
        raise TrainingError("file", f"The file is larger than {MAX_UPLOAD // (1024 * 1024)} MB: "
                                    "split it, or use manage.py bayes train on the server.")
    if not _running.acquire(blocking=False):
        raise TrainingBusy("file", "A training is running; try again when it has finished.")
    try:
        JOBS.clean()
        token = JOBS.new_token()
        path = jobs_dir() / f"{token}.upload"
        written = 0
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            while chunk := upload.read(1024 * 1024):
                written += len(chunk)
                if written > MAX_UPLOAD:
                    break
                f.write(chunk)
        if written > MAX_UPLOAD:
            path.unlink(missing_ok=True)
            raise TrainingError("file", f"The file is larger than {MAX_UPLOAD // (1024 * 1024)} MB.")
        if written == 0:
            path.unlink(missing_ok=True)
            raise TrainingError("file", "The file is empty.")
        from gateway_milter.antispam.saview import trust_config_for, view_limit
        from webadmin.services import current_snapshot

        # the relays read as the milter reads them; read here: the thread needs no database connection
        trust = trust_config_for(current_snapshot(), None)
        from webadmin.antispam_tasks import own_subject_tags

        tags = own_subject_tags(current_snapshot())  # (the gateway's own subject tags, taken off its spam)
        limit = view_limit(current_snapshot())  # (the view's bound, as the milter's)
        JOBS.write(token, {"state": "running", "owner": owner, "label": label, "scope": scope, "started": time.time(),
                       "updated": time.time(), "total": None, "done": 0, "learned": 0, "known": 0, "skipped": 0,
                       "actor": actor})
        threading.Thread(target=_run, args=(token, path, label == "spam", scope, trust, tags, limit), daemon=True,
                         name=f"train-{token[:6]}").start()
    except BaseException:
        _running.release()
        raise
    return token


class Spool:
    """The messages of an upload, one after another in a file beside it, and where each one is:
    the training holds positions in memory, never the messages (a 100 MB zip can hold a few GB)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.spans: list[tuple[int, int]] = []
        self.skipped = 0
        # (mail: readable by the gateway's own user only, as the upload is)
        self._f = os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb")
        self._at = 0

    def add(self, raw: bytes) -> None:
        # (empty, too large, or no mail: a zip's README, a mail client's index file)
        if not raw.strip() or len(raw) > MAX_MESSAGE or not starts_with_field(raw):
            self.skipped += 1
            return
        if len(self.spans) >= MAX_MESSAGES:
            raise TrainingError("file", f"More than {MAX_MESSAGES:,} messages: split the file.")
        self._f.write(raw)
        self.spans.append((self._at, len(raw)))
        self._at += len(raw)

    def close(self) -> None:
        self._f.close()

    def messages(self, start: int, end: int) -> list[bytes]:
        with open(self.path, "rb") as f:
            out = []
            for at, n in self.spans[start:end]:
                f.seek(at)
                out.append(f.read(n))
            return out


def messages_of(path: Path, spool: Spool) -> None:
    """Put the messages of an upload into ``spool`` (empty ones, those over MAX_MESSAGE and
    files of a zip that are not mail, their first line no header field, skipped).
    TrainingError when it is none of the kinds taken, or over a bound: a zip's members are read
    up to MAX_UPLOAD each and MAX_UNZIPPED in all, whatever their headers say."""
    with open(path, "rb") as f:
        head = f.read(5)
        if not head.startswith(b"PK"):
            head = _content_start(head + f.read(4096))[:5]
    if head.startswith(b"PK"):
        try:
            with zipfile.ZipFile(path) as z:
                infos = [i for i in z.infolist() if not i.is_dir()]
                if len(infos) > MAX_MEMBERS:
                    raise TrainingError("file", f"The zip has more than {MAX_MEMBERS:,} files.")
                # the members `bayes train` reads in the unpacked tree: a zipped maildir's cur/
                # and new/, not its tmp/ nor its .Junk and .Sent folders
                wanted = archive_messages(i.filename for i in z.infolist())
                total = 0
                for info in infos:
                    if info.filename not in wanted:
                        continue
                    if info.file_size > MAX_UPLOAD:
                        spool.skipped += 1
                        continue
                    with z.open(info) as member:
                        data = member.read(MAX_UPLOAD + 1)  # (a member whose header lies stops here)
                    total += len(data)
                    if total > MAX_UNZIPPED:
                        raise TrainingError("file", f"The zip holds more than {MAX_UNZIPPED // 2**20:,} MB.")
                    if len(data) > MAX_UPLOAD:
                        spool.skipped += 1
                    elif _content_start(data).startswith(b"From "):
                        for raw in _mbox_messages(data):
                            spool.add(raw)
                    else:
                        spool.add(_content_start(data))
        except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, RuntimeError, EOFError,
                zlib.error) as e:  # (zlib.error: a member whose deflate stream is damaged)
            raise TrainingError("file", f"The zip cannot be read: {e}"[:200]) from None
    elif head == b"From ":
        for _, raw in iter_messages(path):  # (an mbox: read where it lies)
            spool.add(raw)
    else:
        raw = _content_start(path.read_bytes())
        if not re.match(rb"[\x21-\x39\x3b-\x7e]+:", raw[:1000]):
            raise TrainingError("file", "This is not a message, an mbox file or a zip of them.")
        spool.add(raw)
    if not spool.spans:
        raise TrainingError("file", "No message in the file.")


def _content_start(data: bytes) -> bytes:
    """``data`` from its first line with text: past a byte order mark and empty lines (an
    editor's), as ``bayes train`` reads a file. Before, an mbox so written was learned as one
    message, and a message's header as its body."""
    data = data.lstrip(b"\r\n")
    return data[3:].lstrip(b"\r\n") if data.startswith(b"\xef\xbb\xbf") else data


def _mbox_messages(data: bytes) -> list[bytes]:
    """The messages of an mbox held in memory (a zip's member), read as a file is."""
    with tempfile.NamedTemporaryFile(prefix="bulwark-mbox-", dir=jobs_dir()) as tmp:
        tmp.write(data)
        tmp.flush()
        return [raw for _, raw in iter_messages(Path(tmp.name))]


def _run(token: str, path: Path, is_spam: bool, scope: str, trust: TrustConfig, tags: tuple[str, ...] = (),
         limit: int | None = None) -> None:
    from gateway_milter.antispam.bayes import BayesClassifier, learn_item
    from gateway_milter.store import batch_writes, default_store
    from webadmin.antispam_tasks import view_of_bytes

    doc = JOBS.load(token) or {}
    spool: Spool | None = None
    try:
        spool = Spool(path.with_suffix(".spool"))
        try:
            messages_of(path, spool)
        finally:
            spool.close()
            path.unlink(missing_ok=True)  # (what it held is in the spool now)
        total = len(spool.spans)
        doc.update(total=total, skipped=spool.skipped, updated=time.time())
        JOBS.write(token, doc)
        bc = BayesClassifier(default_store())
        with batch_writes():  # (a batch job: it waits for the milters' write locks)
            for at in range(0, total, BATCH):
                batch = spool.messages(at, at + BATCH)
                learned = sum(bc.learn_many([learn_item(view_of_bytes(raw, trust, tags, limit), is_spam, [scope])
                                             for raw in batch]))
                doc.update(done=at + len(batch), learned=doc["learned"] + learned,
                           known=doc["known"] + len(batch) - learned, updated=time.time())
                JOBS.write(token, doc)
        doc.update(state="done", took_s=round(time.time() - float(doc.get("started") or 0), 1))
        log.info("%s trained %s as %s: %d learned, %d already known, %d skipped", doc.get("actor") or "?", scope,
                 "spam" if is_spam else "ham", doc["learned"], doc["known"], doc["skipped"])
    except TrainingError as e:
        doc.update(state="error", error=e.message)
    except Exception as e:  # the job says it failed; the page stops waiting
        log.exception("training %s failed", token)
        doc.update(state="error", error=f"{type(e).__name__}: {e}"[:300])
    finally:
        path.unlink(missing_ok=True)
        if spool is not None:
            spool.close()
            spool.path.unlink(missing_ok=True)
        doc["updated"] = time.time()
        # the slot first: whoever reads that the job is over may start the next one at once (a
        # release after the write let that request be refused as busy, and let a test that swaps
        # the semaphore in between get this release)
        _running.release()
        JOBS.write(token, doc)


def read(token: str, owner: int) -> dict[str, Any] | None:
    """The job's state, or None (no such job, expired, or another account's)."""
    doc = JOBS.owned(token, owner)
    if doc is None:
        return None
    if doc.get("state") == "running" and time.time() - float(doc.get("updated") or 0) > STALL_S:
        doc = {**doc, "state": "error", "error": "The training was interrupted (the web server restarted?). "
                                                 "Start it again with the same file: what was learned stays."}
    doc["percent"] = int(100 * doc["done"] / doc["total"]) if doc.get("total") else (100 if doc["state"] == "done" else 0)
    return {k: v for k, v in doc.items() if k not in ("owner", "actor")}
