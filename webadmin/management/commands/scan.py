"""``manage.py scan``: run the full pipeline on .eml files, directories or mbox files without
an MTA (our rspamc). Nothing is stored, logged or delivered: every message runs in scan mode
(no Bayes learning, no spam-trap marks, no DMARC report data, no BATV signing). Greylisting
is skipped unless ``--greylist``; then it answers from the live greylisting state, as the
gateway would now, without recording the attempt."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from gateway_milter.context import ConnectionInfo
from gateway_milter.mime.headers import addresses
from gateway_milter.clitext import printable
from gateway_milter.pipeline.rawmessage import iter_messages, split_message, starts_with_field
from gateway_milter.pipeline.runner import LayerFailure
from gateway_milter.pipeline.transaction import Gateway
from gateway_milter.policy.provider import StaticPolicyProvider
from gateway_milter.verdict import Action
from webadmin.cliargs import envelope_args
from webadmin.services import current_snapshot


class _NoStore:
    def store(self, raw: bytes, meta: dict[str, Any]) -> dict[str, Any]:
        return {**meta, "qid": "scan-" + uuid.uuid4().hex[:12], "path": ""}


class _NoLog:
    def emit(self, record: dict[str, Any]) -> None:
        pass


def guess_sender(headers: list[tuple[str, str]]) -> str:
    """The envelope sender of a message scanned without one: its Return-Path, else its From."""
    hdr = dict((n.lower(), v) for n, v in reversed(headers))
    for name in ("return-path", "from"):
        found = addresses([hdr.get(name, "")])
        if found and found[0][1]:
            return found[0][1]
    return ""


def scan_one(gw: Gateway, raw: bytes, *, ip: str | None, helo: str, sender: str | None, rcpts: list[str],
             auth: str, greylist: bool = False, score_refused: bool = False) -> dict[str, Any]:
    """``score_refused``: a message every recipient of which was refused at RCPT (relay denied
    for a corpus's own addresses, an unknown user) still has its content scored, as if it had
    been accepted (the record says ``content_scored_after_refusal``); its action stays the
    refusal. Else a corpus scanned on a gateway whose domains are not the corpus's read
    "reject score=0.00" for every message, spam or ham."""
    written, body = split_message(raw, verbatim=True)  # (the milter's reading: add_raw_header)
    headers = [(n, v.lstrip(" \t")) for n, v in written]
    conn = ConnectionInfo(client_ip=ip, client_name="unknown", helo=helo)
    if auth:
        conn.macros["{auth_authen}"] = auth
    ctx = gw.begin(conn, scan_mode=True)
    ctx.greylist_in_scan = greylist
    hdr = dict((n.lower(), v) for n, v in reversed(headers))
    guessed = sender is None
    if sender is None:
        sender = guess_sender(headers)
    if not rcpts:
        rcpts = [a for _, a in addresses([hdr.get("to", ""), hdr.get("cc", "")]) if a] or ["postmaster@localhost"]
    gw.mail(ctx, sender or "")
    ctx.envelope_guessed = guessed
    for r in rcpts:
        gw.rcpt(ctx, r)
    refused_all = not ctx.recipients
    for n, v in written:
        ctx.add_raw_header(n, v)
    ctx.body.write(body)
    t0 = time.perf_counter()
    if refused_all:
        scored = False
        failed = ""
        if score_refused and ctx.rejected_recipients:
            try:
                res = ctx.layer("scoring")
                scored = not res.error and not res.skipped
            except LayerFailure as e:  # (a layer that fails with tempfail: this message's answer,
                failed = str(e)  # not the end of the scan and of every verdict after it)
                ctx.add_trace("scoring", "error", f"content not scored: {e}")
        rec = gw.finish(ctx)
        if scored:
            rec["content_scored_after_refusal"] = True
        elif failed:
            rec["content_scoring_failed"] = failed
    else:
        d = gw.eom(ctx)
        # as the milter logs it: a message taken into quarantine is discarded from the MTA's
        # delivery, and its record says quarantine (front/milter.py)
        final = Action.QUARANTINE if d.action is Action.DISCARD and d.quarantine_ids else d.action
        rec = gw.finish(ctx, final, d.reply)
    rec["ms"] = round((time.perf_counter() - t0) * 1000, 3)
    ctx.close()
    return rec


class Command(BaseCommand):
    help = "Run the full pipeline on messages (.eml files, directories, mbox) and print the verdicts."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("paths", nargs="+")
        parser.add_argument("--ip", default=None, help="client IP address")
        parser.add_argument("--helo", default="", help="HELO/EHLO name")
        parser.add_argument("--from", dest="sender", default=None,
                            help="envelope sender (default: From header; '' or '<>': the null sender)")
        parser.add_argument("--rcpt", action="append", default=[], help="envelope recipient (repeatable)")
        parser.add_argument("--auth", default="", help="SMTP AUTH user name (marks the sender authenticated)")
        parser.add_argument("--greylist", action="store_true", help="also judge greylisting, read-only (skipped by default)")
        parser.add_argument("--json", action="store_true", help="one JSON object per line")

    def handle(self, *args: Any, **o: Any) -> None:
        o["ip"], o["sender"], o["rcpt"] = envelope_args(o["ip"], o["sender"], o["rcpt"])
        gw = Gateway(StaticPolicyProvider(current_snapshot()), _NoStore(), _NoLog())
        n = 0
        not_mail: list[str] = []
        for p in o["paths"]:
            path = Path(p)
            if not path.exists():
                raise CommandError(f"{p}: no such file or directory")
            for label, raw in _read(path):
                if not raw.strip() or not starts_with_field(raw):
                    # (an empty file, a README or an index among the messages: said, not scored)
                    self.stderr.write(printable(f"{label}: not a mail message (empty, or no header field first): skipped"))
                    if path.is_file():
                        not_mail.append(label)
                    continue
                n += 1
                rec = scan_one(gw, raw, ip=o["ip"], helo=o["helo"], sender=o["sender"], rcpts=o["rcpt"],
                               auth=o["auth"], greylist=o["greylist"], score_refused=True)
                self._print(label, rec, o["json"])
        if not_mail:
            raise CommandError(printable(f"not a mail message: {', '.join(not_mail)[:500]}"))
        if n == 0:
            raise CommandError("no messages found")

    def _print(self, label: str, rec: dict[str, Any], as_json: bool) -> None:
        if as_json:
            out = {"file": label, "action": rec["action"], "score": rec["score"],
                   "symbols": [{k: s[k] for k in ("name", "score", "points") if k in s} for s in rec["symbols"]],
                   "reason": rec["reason"], "trace": rec["trace"], "direction": rec["direction"],
                   "recipients": rec["recipients"], "ms": rec["ms"],
                   **({"content_scored_after_refusal": True} if rec.get("content_scored_after_refusal") else {}),
                   **({"content_scoring_failed": rec["content_scoring_failed"]}
                      if rec.get("content_scoring_failed") else {})}
            self.stdout.write(json.dumps(out))
            return
        lines = [f"{label}: {rec['action']} score={rec['score']:.2f} reason={rec['reason'] or '-'}"
                 + (" (every recipient refused at RCPT; the score is the content's, as if accepted)"
                    if rec.get("content_scored_after_refusal") else "")
                 + (f" (every recipient refused at RCPT; the content could not be scored: "
                    f"{rec['content_scoring_failed']})" if rec.get("content_scoring_failed") else "")]
        lines += [f"  symbol {s['name']} ({_points(s)}) {s['detail']}" for s in rec["symbols"]]
        lines += [f"  trace {t['source']}: {t['event']} {t['detail']} [{t['ms']} ms]" for t in rec["trace"]]
        for line in lines:
            self.stdout.write(printable(line))


def _points(s: dict[str, Any]) -> str:
    """A symbol's points in the total, and its own score where that differs (a fitted score
    counted instead of the rule file's, a layer the total does not count)."""
    own = f"{s['score']:g}"
    if "points" not in s or f"{s['points']:g}" == own:
        return own
    return f"{s['points']:g}; own score {own}"


def _read(path: Path) -> Iterator[tuple[str, bytes]]:
    """The messages of a path; a file or directory this user may not read ends the scan with its
    name (an error of the pipeline itself is not caught here)."""
    it = iter_messages(path)
    while True:
        try:
            item = next(it)
        except StopIteration:
            return
        except OSError as e:
            raise CommandError(printable(f"{e.filename or path}: {e.strerror or e}")) from None
        yield item
