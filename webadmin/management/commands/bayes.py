"""``manage.py bayes``: train, inspect and evaluate the Bayesian classifier.

    bayes train --spam PATH [--spam PATH ...] --ham PATH [--scope global|dom:D|user:A]
    bayes stats [--scope S]
    bayes forget --spam/--ham PATH ... | --wipe --scope S
    bayes backup FILE [--scope S ...]
    bayes restore FILE [--scope S ...] [--replace]
    bayes evaluate [--corpus DIR] [--train 0.5] [--online] [--limit N] [--sa-scores]
    bayes fit-scores [--corpus DIR] [--train 0.5] [--out FILE] [--max-fp 0] [--prior spamassassin|zero]
                     [--no-token-model]

PATH is a message file, a directory, a maildir (its cur/ and new/; a Maildir++ subfolder such
as .Junk only when named) or an mbox file. Training is idempotent.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from operator import attrgetter
from pathlib import Path
from typing import Any, BinaryIO

from django.core.management.base import BaseCommand, CommandError, OutputWrapper

from gateway_milter.clitext import printable
from gateway_milter.antispam.bayes import BayesClassifier, learn_item, message_digest, order_key
from gateway_milter.antispam.saview import trust_config_for, view_limit
from gateway_milter.pipeline.rawmessage import MessageRef, iter_message_refs, starts_with_field
from gateway_milter.store import StoreError, batch_writes, default_store
from webadmin.antispam_state import StateInputError, parse_scope
from webadmin.antispam_tasks import own_subject_tags, view_of_bytes
from webadmin.services import current_snapshot

TRAIN_BATCH = 64  # messages learned in one read and one write


class Progress:
    """A plain-text progress bar on stderr (no dependency; quiet when not a terminal)."""

    def __init__(self, total: int, label: str, stream: Any = sys.stderr) -> None:
        self.total, self.label, self.stream = max(total, 1), label, stream
        self.tty = hasattr(stream, "isatty") and stream.isatty()
        self.last = 0.0
        self.finished = False

    def update(self, n: int) -> None:
        now = time.monotonic()
        if n < self.total and now - self.last < (0.1 if self.tty else 5.0):
            return
        if n >= self.total:
            if self.finished:
                return  # (the last line once, however often the end is reported)
            self.finished = True
        self.last = now
        width = 30
        filled = int(width * n / self.total)
        line = f"{self.label} [{'#' * filled}{'.' * (width - filled)}] {n}/{self.total}"
        self._write(("\r" + line) if self.tty else line + "\n")
        if n >= self.total and self.tty:
            self._write("\n")
        self.stream.flush()

    def _write(self, text: str) -> None:
        # a command's stderr (Django's OutputWrapper) ends each write with a newline unless told
        # not to: the bar would scroll a line per update instead of redrawing
        if isinstance(self.stream, OutputWrapper):
            self.stream.write(text, ending="")
        else:
            self.stream.write(text)


@dataclass(slots=True)
class _Found:
    """A message found under the paths, not kept in memory (a corpus may be larger than it):
    where it lies, the key of its place in the learning order, a digest of its bytes and one
    of what makes it the same message to Bayes (:func:`_identity`), and of its Message-ID
    (empty without one)."""

    ref: MessageRef
    is_spam: bool
    order: bytes
    digest: bytes
    identity: bytes
    mid: bytes


@dataclass(slots=True)
class _Skipped:
    """Files under the paths that are no message, by kind, as the command reports them."""

    empty: int = 0
    not_mail: int = 0
    # paths that held no message at all (a mistyped folder, a maildir whose mail is all in
    # subfolders): said by name, else only the other class was learned and nothing said so
    no_message: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        shown = ", ".join(printable(p) for p in self.no_message[:5]) + (
            f" and {len(self.no_message) - 5} more" if len(self.no_message) > 5 else "")
        return "".join((f", {self.empty} empty file(s) skipped" if self.empty else "",
                        f", {self.not_mail} file(s) that are not mail skipped" if self.not_mail else "",
                        f"; no message in {shown}" if self.no_message else ""))


def _collect(paths: list[str], is_spam: bool = True, skipped: _Skipped | None = None) -> list[_Found]:
    """The messages under the paths (``cmds`` files of the SpamAssassin corpus left out), the
    files that are none counted in ``skipped``: empty ones, and those whose first line is no
    header field (a README, a spreadsheet, a mail client's index beside the messages, which
    would teach Bayes their words as mail). A missing or unreadable path ends the command with
    its reason."""
    out: list[_Found] = []
    skipped = skipped if skipped is not None else _Skipped()
    for p in paths:
        path = Path(p)
        if not path.exists():
            raise CommandError(f"{p}: no such file or directory")
        found_before = len(out)
        try:
            for ref, raw in iter_message_refs(path):
                if Path(ref.label.split("#")[0]).name == "cmds":
                    continue
                if not raw.strip():  # an empty file is no message (it read as one "already known")
                    skipped.empty += 1
                    continue
                if not starts_with_field(raw):
                    skipped.not_mail += 1
                    continue
                identity, mid = _identity(raw)
                out.append(_Found(ref, is_spam, order_key(raw), hashlib.blake2b(raw, digest_size=20).digest(),
                                  identity, mid))
        except OSError as e:  # (a file or directory this user may not read)
            raise CommandError(f"{e.filename or p}: {e.strerror or e}") from None
        if len(out) == found_before:
            skipped.no_message.append(p)
    return out


_MESSAGE_ID = re.compile(rb"(?im)^message-id:[ \t]*(.*(?:\n[ \t].*)*)")


def _identity(raw: bytes) -> tuple[bytes, bytes]:
    """What makes two copies one message, read without parsing them (the first pass only finds
    and orders): the Message-ID and the body, line ends set aside (an mbox writer's ``>From``
    quoting is gone already: iter_message_refs reads it unquoted). Two mailboxes' copies of one
    message differ in headers that Bayes reads as the same message (``Delivered-To``,
    ``Received``, another filter's ``X-Spam-*``): compared byte for byte, such a pair given as
    spam and as ham was learned as one class and then moved to the other, whichever came last,
    and the summary did not say so. Stricter than Bayes's own identity (Message-ID and rendered
    text): a pair it calls one message is one to Bayes; a copy whose body was re-encoded on its
    way (another Content-Transfer-Encoding) is another here, which :func:`_same_to_bayes`
    settles. Also returned: the digest of the Message-ID alone (empty without one)."""
    ends = [(i, n) for i, n in ((raw.find(b"\r\n\r\n"), 4), (raw.find(b"\n\n"), 2)) if i >= 0]
    at, sep = min(ends) if ends else (len(raw), 0)
    m = _MESSAGE_ID.search(raw[:at].replace(b"\r\n", b"\n"))
    mid = re.sub(rb"\s+", b"", m.group(1)) if m else b""
    h = hashlib.blake2b(mid, digest_size=20)
    mid_key = h.digest() if mid else b""
    h.update(b"\0")
    pos, end = at + sep, len(raw)
    while end > pos and raw[end - 1] in (10, 13):  # (trailing line ends)
        end -= 1
    while pos < end:  # in pieces that end at a line end: a corpus's messages may be megabytes
        stop = min(end, pos + 65536)
        if stop < end and (nl := raw.rfind(b"\n", pos, stop)) > pos:
            stop = nl + 1
        h.update(raw[pos:stop].replace(b"\r\n", b"\n"))
        pos = stop
    return h.digest(), mid_key


def _same_to_bayes(items: list[_Found], both: set[bytes], view: Any) -> tuple[set[bytes], int]:
    """The identities of messages given in both classes that :func:`_identity` told apart but
    Bayes reads as one (its digest: the Message-ID and the rendered text), say a copy in the
    inbox as it arrived and one in the junk folder re-encoded as quoted-printable. Only the
    copies whose Message-ID was given in both classes are read again (``view``: the bytes to
    the view training learns). Returns those identities and how many messages they are."""
    by_mid: dict[bytes, list[_Found]] = {}
    for f in items:
        if f.mid and f.identity not in both:
            by_mid.setdefault(f.mid, []).append(f)
    suspects = [f for group in by_mid.values() if len({g.is_spam for g in group}) > 1 for f in group]
    classes: dict[str, set[bool]] = {}
    identities: dict[str, list[bytes]] = {}
    for f, raw in _read(suspects):
        d = message_digest(view(raw))
        classes.setdefault(d, set()).add(f.is_spam)
        identities.setdefault(d, []).append(f.identity)
    mixed = [d for d, seen in classes.items() if len(seen) > 1]
    return {i for d in mixed for i in identities[d]}, len(mixed)


def _read(found: list[_Found]) -> Iterator[tuple[_Found, bytes]]:
    """The messages' bytes again, in the given order; one that changed since it was found (an
    mbox rewritten meanwhile) is left out."""
    files: dict[str, BinaryIO] = {}
    try:
        for f in found:
            if len(files) >= 16:  # (a maildir is a file a message: never thousands open at once)
                for fh in files.values():
                    fh.close()
                files.clear()
            try:
                raw = f.ref.read(files)
            except OSError:
                continue
            if hashlib.blake2b(raw, digest_size=20).digest() == f.digest:
                yield f, raw
    finally:
        for fh in files.values():
            fh.close()


class Command(BaseCommand):
    help = "Train, inspect and evaluate the Bayesian spam classifier."

    def add_arguments(self, parser: Any) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        for name in ("train", "forget"):
            p = sub.add_parser(name)
            p.add_argument("--spam", action="append", default=[], help="message file, directory, maildir or mbox")
            p.add_argument("--ham", action="append", default=[])
            # (forget --wipe names its scope: a wipe of "global" by default would empty, without
            # a word, the scope every tenant reads)
            p.add_argument("--scope", default="global" if name == "train" else None,
                           help="global, dom:DOMAIN or user:ADDRESS" + (" (default global)" if name == "train" else
                                                                        " (default global; --wipe needs it)"))
            if name == "forget":
                p.add_argument("--wipe", action="store_true", help="forget everything learned in the scope")
        p = sub.add_parser("stats")
        p.add_argument("--scope", default="global")
        p = sub.add_parser("backup", help="write what Bayes learned to a file (gzip JSON lines)")
        p.add_argument("file")
        p.add_argument("--scope", action="append", default=None, help="a scope to include (default: all learned)")
        p = sub.add_parser("restore", help="load a backup made by 'bayes backup' into the store in use")
        p.add_argument("file")
        p.add_argument("--scope", action="append", default=None, help="a scope to restore (default: all in the file)")
        p.add_argument("--replace", action="store_true", help="replace scopes that already hold learned data")
        p = sub.add_parser("evaluate")
        p.add_argument("--corpus", default="", help="directory with spam/, spam_2/, easy_ham/, ... (SpamAssassin layout)")
        p.add_argument("--train", type=float, default=0.5)
        p.add_argument("--online", action="store_true")
        p.add_argument("--limit", type=int, default=None)
        p.add_argument("--min-learned", type=int, default=200)
        p.add_argument("--sa-scores", action="store_true",
                       help="score with SpamAssassin's own scores instead of the fitted ones (the default)")
        p = sub.add_parser("fit-scores", help="re-fit rule and Bayes scores on the training part of a corpus")
        p.add_argument("--corpus", default="")
        p.add_argument("--train", type=float, default=0.5)
        p.add_argument("--limit", type=int, default=None)
        p.add_argument("--min-learned", type=int, default=200)
        p.add_argument("--out", default="", help="score file to write (default: the shipped fitted score file)")
        p.add_argument("--max-fp", type=float, default=None,
                       help="out-of-fold ham false-positive rate the quarantine threshold is set to (default 0)")
        p.add_argument("--prior", choices=("spamassassin", "zero"), default="spamassassin",
                       help="what the fit pulls each weight toward (SpamAssassin's sign rule kept either way)")
        p.add_argument("--no-token-model", action="store_true",
                       help="fit without the token model's logit (the counts-only score file, used until a"
                            " scope's token model has learned enough)")

    def handle(self, *args: Any, **o: Any) -> None:
        if o["action"] in ("evaluate", "fit-scores"):
            # (--train 1.5 left no test part and printed zeros; -1 learned nothing and read 100 %)
            if not 0 < o["train"] < 1:
                raise CommandError("--train is the share of the corpus learned: a number between 0 and 1 (0.5)")
            if o["limit"] is not None and o["limit"] < 1:
                raise CommandError("--limit is the most messages read of each class: 1 or more")
            if o["min_learned"] < 1:
                raise CommandError("--min-learned is the messages of each class learned before Bayes is used: 1 or more")
        if o["action"] == "forget" and o["wipe"] and not o.get("scope") and not (o["spam"] or o["ham"]):
            raise CommandError("--wipe empties a whole scope: name it with --scope (global, dom:DOMAIN or user:ADDRESS)")
        if o["action"] in ("train", "forget", "stats"):
            o["scope"] = self._scope(o.get("scope") or "global")
        elif o["action"] in ("backup", "restore") and o.get("scope"):
            # named as everywhere else (dom:Example.ORG is dom:example.org): else "nothing learned"
            o["scope"] = list(dict.fromkeys(self._scope(s) for s in o["scope"]))
        # a batch job: its writes wait for the milters' (and others') write locks as long as it
        # takes, where a milter's give up after GATEWAY_STORE_WRITE_WAIT
        try:
            with batch_writes():
                getattr(self, "do_" + o["action"].replace("-", "_"))(o)
        except StoreError as e:
            again = (" (learning is idempotent: run it again once the store answers; what was"
                     " learned is not counted twice)") if o["action"] == "train" else ""
            raise CommandError(f"the token store failed: {e}{again}") from None

    def _scope(self, text: str) -> str:
        """The scope as the milter names it: a domain scope under the configured domain (an
        alias's under its main domain, lower case), a user scope in lower case and without its
        address extension, as the bayes layer writes them; a domain this gateway does not know
        is kept, with a warning, since nothing reads it."""
        try:
            scope = parse_scope(text)
        except StateInputError as e:
            raise CommandError(str(e)) from None
        if scope.startswith("dom:"):
            name = scope[4:].lower().rstrip(".")
            main = current_snapshot().canonical_domain(name)
            if main is None:
                self.stderr.write(f"warning: {name} is not a domain of this gateway: nothing reads scope dom:{name}")
            scope = "dom:" + (main or name)
        elif scope.startswith("user:"):
            from gateway_milter.layers.bayes import user_address

            addr = scope[5:]
            # (alice+news@ is read as alice@'s scope: the one the milter reads)
            scope = "user:" + user_address(addr, current_snapshot().settings_for(
                "bayes", addr.rpartition("@")[2].lower()).recipient_delimiter)
        return scope

    def do_train(self, o: dict[str, Any]) -> None:
        if not o["spam"] and not o["ham"]:
            raise CommandError("give --spam and/or --ham")
        # read twice, not kept: once to find and order the messages, once to learn them (a
        # corpus can be larger than the memory)
        skipped = _Skipped()
        spam = _collect(o["spam"], True, skipped)
        ham = _collect(o["ham"], False, skipped)
        # spam and ham mixed (the token model learns online, in this order; the counts do not mind)
        items = sorted(spam + ham, key=attrgetter("order"))
        # a message given as spam and as ham (a copy in the inbox and in the junk folder) is
        # learned as neither: else it was learned as one class, then moved to the other
        classes: dict[bytes, set[bool]] = {}
        for f in items:
            classes.setdefault(f.identity, set()).add(f.is_spam)
        both = {d for d, seen in classes.items() if len(seen) > 1}
        trust = trust_config_for(current_snapshot(), None)  # (relays read as the milter reads them)
        tags = own_subject_tags(current_snapshot())
        limit = view_limit(current_snapshot())
        same, n_same = _same_to_bayes(items, both, lambda raw: view_of_bytes(raw, trust, tags, limit))
        n_both = len(both) + n_same
        both |= same
        items = [f for f in items if f.identity not in both]
        bar = Progress(len(items), "learning", self.stderr)
        learned = read = 0
        bc = BayesClassifier(default_store())
        # in batches: one read and one write a batch, the same store contents as one by one
        # (learn_many; on the embedded SQLite store about 3 times less CPU a message)
        for start in range(0, len(items), TRAIN_BATCH):
            batch = list(_read(items[start:start + TRAIN_BATCH]))
            read += len(batch)
            learned += sum(bc.learn_many([learn_item(view_of_bytes(raw, trust, tags, limit), f.is_spam, [o["scope"]])
                                          for f, raw in batch]))
            bar.update(min(start + TRAIN_BATCH, len(items)))
        changed = len(items) - read
        self.stdout.write(f"learned {learned} message(s), {read - learned} already known"
                          + str(skipped)
                          + (f", {n_both} given as both spam and ham not learned" if both else "")
                          + (f", {changed} changed or gone since they were found not learned" if changed else "")
                          + ("" if items or str(skipped) or both else " (no messages found)"))

    def do_forget(self, o: dict[str, Any]) -> None:
        if o["wipe"] and (o["spam"] or o["ham"]):  # (which was meant: the scope, or those messages?)
            raise CommandError("--wipe empties the whole scope: give it without --spam/--ham paths")
        if not o["wipe"] and not o["spam"] and not o["ham"]:
            raise CommandError("give --spam and/or --ham paths of the messages to forget, or --wipe --scope S")
        bc = BayesClassifier(default_store())
        if o["wipe"]:
            bc.wipe(o["scope"])
            self.stdout.write(f"scope {o['scope']} wiped")
            return
        skipped = _Skipped()
        items = _collect(o["spam"] + o["ham"], skipped=skipped)
        bar = Progress(len(items), "forgetting", self.stderr)
        n = 0
        # the view as train made it (the same trust path): else the sender history taken back
        # is another sender's, and the message's own stays
        trust = trust_config_for(current_snapshot(), None)
        tags = own_subject_tags(current_snapshot())
        limit = view_limit(current_snapshot())
        for i, (_, raw) in enumerate(_read(items), 1):
            n += bc.forget(view_of_bytes(raw, trust, tags, limit), [o["scope"]])
            bar.update(i)
        bar.update(len(items))
        self.stdout.write(f"forgot {n} message(s)" + str(skipped))

    def do_stats(self, o: dict[str, Any]) -> None:
        self.stdout.write(json.dumps(BayesClassifier(default_store()).stats(o["scope"]), indent=2))

    def do_backup(self, o: dict[str, Any]) -> None:
        from gateway_milter.antispam.bayesbackup import BackupError, backup

        store = default_store()
        out = Path(o["file"])
        if not out.parent.is_dir():
            raise CommandError(f"{out.parent}: no such directory")
        if o["scope"]:
            bc = BayesClassifier(store)
            empty = [s for s in o["scope"] if not (st := bc.stats(s))["fields"] and not st["token_weights"]]
            if empty:
                raise CommandError(f"nothing learned in scope(s) {', '.join(empty)}")
        bar = Progress(1, "backing up", self.stderr)

        def progress(i: int, n: int) -> None:
            bar.total = max(n, 1)
            bar.update(i)

        try:
            end = backup(store, out, o["scope"], progress)
        except (BackupError, StoreError, OSError) as e:
            raise CommandError(str(e)) from None
        fields = sum(n for per in end["fields"].values() for n in per.values())
        self.stdout.write(f"wrote {out}: {len(end['fields'])} scope(s), {fields} field(s)")

    def do_restore(self, o: dict[str, Any]) -> None:
        from gateway_milter.antispam.bayesbackup import BackupError, restore

        bar = Progress(1, "restoring", self.stderr)

        def progress(i: int, n: int) -> None:
            bar.total = max(n, 1)
            bar.update(i)

        try:
            written = restore(default_store(), Path(o["file"]), o["scope"], o["replace"], progress)
        except BackupError as e:
            raise CommandError(f"{e}; nothing was changed") from None
        except StoreError as e:
            raise CommandError(f"restore stopped: {e}; the scopes being restored may be partial: run the "
                               f"restore again with --replace") from None
        for scope, n in written.items():
            self.stdout.write(f"restored {scope}: {n} field(s)")

    def _samples(self, o: dict[str, Any]) -> list[Any]:
        from gateway_milter.antispam.evaluate import load_corpus

        base = Path(o["corpus"]) if o["corpus"] else Path(__file__).resolve().parents[4] / "shared" / "corpus" / "spamassassin"
        if not base.is_dir():
            raise CommandError(f"{base}: corpus not found (give --corpus)")
        spam = [d for d in sorted(base.iterdir()) if d.is_dir() and d.name.startswith("spam")]
        ham = [d for d in sorted(base.iterdir()) if d.is_dir() and "ham" in d.name]
        skipped: list[str] = []
        samples = load_corpus(spam, ham, o["limit"], skipped)
        if skipped:
            self.stderr.write(f"{len(skipped)} empty file(s) or file(s) that are not mail skipped, "
                              f"such as {printable(skipped[0])}")
        return samples

    def do_fit_scores(self, o: dict[str, Any]) -> None:
        from gateway_milter.antispam.evaluate import fit_scores
        from gateway_milter.antispam.scorefit import write_score_file
        from gateway_milter.layers.scoring import COUNTS_ONLY_SCORE_FILE, FITTED_SCORE_FILE

        samples = self._samples(o)
        bar = Progress(1, "fitting", self.stderr)

        def progress(i: int, n: int) -> None:
            bar.total = n
            bar.update(i)

        kw = {} if o["max_fp"] is None else {"max_fp": o["max_fp"]}
        res = fit_scores(samples, train_fraction=o["train"], min_learned=o["min_learned"], progress=progress,
                         prior=o["prior"], token_model=not o["no_token_model"], **kw)
        default = COUNTS_ONLY_SCORE_FILE if o["no_token_model"] else FITTED_SCORE_FILE
        out = Path(o["out"]) if o["out"] else default
        header = (f"Fitted scores (gateway_milter/antispam/scorefit.py), generated {time.strftime('%Y-%m-%d')} by\n"
                  f"  manage.py bayes fit-scores (or bench/antispam_eval.py --fit-scores)\n"
                  f"from the training part ({o['train']:g}) of the corpus only.\n"
                  f"Fit: {json.dumps(res.info, sort_keys=True)}\n"
                  f"Columns: score NAME set0 set1 set2 set3 (0: no Bayes, 2: Bayes; no network tests).")
        write_score_file(out, res.without_bayes, res.with_bayes, header)
        self.stdout.write(f"wrote {out}\n" + json.dumps(res.info, indent=2))

    def do_evaluate(self, o: dict[str, Any]) -> None:
        from gateway_milter.antispam.evaluate import evaluate
        from gateway_milter.store.memory import MemoryStore

        samples = self._samples(o)
        bar = Progress(len(samples), "evaluating", self.stderr)
        rep = evaluate(samples, MemoryStore(), train_fraction=o["train"], online=o["online"],
                       min_learned=o["min_learned"], fitted_scores=not o["sa_scores"],
                       progress=lambda i, n: bar.update(i))
        out = rep.summary(5.0, 12.0)
        out["online"] = o["online"]
        self.stdout.write(json.dumps(out, indent=2))
