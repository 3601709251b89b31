"""Coverage-guided fuzzing of the anti-spam content path: every input goes through the message
view (MIME parse, decoding, HTML rendering, URIs, relays), Bayes (tokens, keys, classifying),
the rules engine's full run with the Debian rule set (Hyperscan pass, rules, metas, eval
functions) and the scoring layer (which runs the rules and Bayes layers as the milter does).

The invariant checked: no input raises out of these (the milter would tempfail the message
until it bounces) and none takes more than --slow-s of CPU (1 s; a message's content path
is normally a few ms). Exceptions (one file per distinct place, with its traceback) and slow
inputs (with the time of each part) are written to --work's ``crashes/``; the fuzzing goes on
(an input still running after 60 s stops libFuzzer, which writes it there as ``timeout-*``).

Usage: GATEWAY_RULES_CACHE_DIR=var/rules-cache .venv/bin/python bench/fuzz_content.py
       [--engine atheris|random|sweep] [--seconds 1200] [--work /tmp/bulwark-fuzz] [--max-len 65536]
       [--seed-limit 1500] [--slow-s 1.0] [--pipeline] [--replay FILE...] [-- LIBFUZZER_FLAGS...]

--engine atheris (the default): libFuzzer's mutations guided by the coverage of the Python
code of ``gateway_milter`` and of the standard library's ``email`` and ``html`` packages
(atheris instruments Python bytecode: with the compiled modules in use, scripts/compiled.py,
their code gives no coverage; run with BULWARK_COMPILED=0 for the guidance, and with the
compiled modules to run their code on the corpus found). --engine random: a plain mutation
fuzzer over the seeds (no coverage), also used when atheris is not installed. --engine sweep:
no mutation but long runs (--sweep-len bytes) of one token each (the dictionary's and a few
more) in each place of a message (body, HTML, Subject, From, a Content-Type parameter, an
X- header, a Received header): the inputs whose cost grows faster than their length, which
mutating a few bytes at a time seldom builds.

Seeds: a few hand-written messages, plus, when present, up to --seed-limit files of
../shared/corpus (mime, rspamd, gtube and a sample of spamassassin), read at run time and
written only to --work's ``seeds/``. libFuzzer keeps what it finds in --work's ``corpus/``
(a later run starts from it). ``--replay FILE...`` runs the given inputs once each and says
what each did (how a crash file is checked after a fix).

--pipeline: each input then also goes through the whole milter pipeline as ``manage.py scan``
runs it (every layer but antivirus and callback, which need clamd and remote MTAs; every DNS
lookup answered SERVFAIL at once, so the DNS-based layers go on with a temporary error), once
inbound and once outbound (DKIM-signed), with blocked attachments stripped and policy scripts
that copy the Subject and the From address into headers and read the parts' parameters, their
text and the dates: the readers of header values
outside the content path (From screening, the message log's subject, attachment file names,
Sieve) and the transforms are then checked too. A layer the runner caught failing there, or a
4xx answer, is an error (the milter would tempfail the message on every try); its CPU is the
``pipeline`` part.

A summary (executions, CPU, what was found) is rewritten every 10 s to --work's
``summary-<engine>-<code>.json``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import random
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

try:
    import atheris
except ImportError:  # the plain mutation fuzzer still runs
    atheris = None

# hand-written seeds: the shapes the content path takes apart (MIME trees, transfer and header
# encodings, HTML with links and images, relays, URIs written every odd way)
_GIF = (b"R0lGODlhAQABAIAAAP///wAAACH5BAEAAAAALAAAAAABAAEAAAICRAEAOw==")
_PNG = (b"iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==")
_HEAD = (b"Received: from mx.sender.test (mx.sender.test [198.51.100.7])\r\n\tby mx.example.com (Postfix) with ESMTPS"
         b" id 4Xyz for <bob@example.com>; Sat, 28 Nov 2026 10:00:01 +0000\r\n"
         b"Received: from [10.0.0.5] (helo=laptop) by mx.sender.test with esmtpsa (Exim 4.96)\r\n"
         b"\t(envelope-from <alice@sender.test>) id 1abc; Sat, 28 Nov 2026 10:00:00 +0000\r\n"
         b"From: Alice <alice@sender.test>\r\nTo: bob@example.com\r\nDate: Sat, 28 Nov 2026 10:00:00 +0000\r\n"
         b"Message-ID: <1@sender.test>\r\nMIME-Version: 1.0\r\n")
SEEDS: dict[str, bytes] = {
    "plain": _HEAD + b"Subject: Lunch tomorrow?\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
             b"Hi Bob,\r\nare we still on for lunch tomorrow at 12:30? See http://www.example.org/menu\r\n\r\n"
             b"-- \r\nAlice\r\n",
    "html": _HEAD + b"Subject: =?utf-8?B?U3BlY2lhbCDigqwgb2ZmZXI=?=\r\nContent-Type: text/html; charset=iso-8859-1\r\n"
            b"Content-Transfer-Encoding: quoted-printable\r\n\r\n"
            b"<html><head><style>p{color:#fff}</style><title>Offer</title></head><body bgcolor=3D\"#000\">"
            b"<p style=3D\"font-size:1px;color:white\">hidden</p><a href=3D\"http://0x7f.1/%63lick?u=3Dhttp://evil.test/\">"
            b"http://www.paypal.com/</a> <img src=3D\"cid:img1\" width=3D\"600\" height=3D\"400\"><br>"
            b"Caf=E9 &amp; &#x43;&#104;eap m&eacute;ds<!-- comment --><![CDATA[x]]><?pi?>"
            b"<form action=3D\"https://user:pw@198.51.100.9:8080/login\"><input type=3D\"password\"></form>"
            b"<table><tr><td>=\r\ncell</td></tr></table></body></html>\r\n",
    "alternative": _HEAD + b"Subject: Newsletter\r\nContent-Type: multipart/alternative; boundary=\"b1\"\r\n\r\n"
                   b"preamble\r\n--b1\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\nRead it at www.news.test\r\n"
                   b"--b1\r\nContent-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n"
                   b"PGh0bWw+PGJvZHk+PGEgaHJlZj0iaHR0cHM6Ly9uZXdzLnRlc3QvP2lkPTEiPlJlYWQ8L2E+PC9ib2R5PjwvaHRtbD4=\r\n"
                   b"--b1--\r\nepilogue\r\n",
    "mixed": _HEAD + b"Subject: Invoice 2231\r\nContent-Type: multipart/mixed; boundary=\"outer\"\r\n\r\n"
             b"--outer\r\nContent-Type: multipart/related; boundary=\"inner\"\r\n\r\n"
             b"--inner\r\nContent-Type: text/html\r\n\r\n<p>See the picture <img src=\"cid:img1\"></p>\r\n"
             b"--inner\r\nContent-Type: image/gif; name=\"a.gif\"\r\nContent-ID: <img1>\r\n"
             b"Content-Transfer-Encoding: base64\r\n\r\n" + _GIF + b"\r\n--inner--\r\n"
             b"--outer\r\nContent-Type: image/png\r\nContent-Disposition: attachment; filename=\"p.png\"\r\n"
             b"Content-Transfer-Encoding: base64\r\n\r\n" + _PNG + b"\r\n"
             b"--outer\r\nContent-Type: application/octet-stream; name=\"invoice.pdf.exe\"\r\n"
             b"Content-Transfer-Encoding: base64\r\n\r\nTVqQAAMAAAAEAAAA//8AALgAAAAAAAAAQAAAAAAAAAA=\r\n--outer--\r\n",
    "rfc822": _HEAD + b"Subject: Fwd: hello\r\nContent-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\n"
              b"Content-Type: text/plain\r\n\r\nforwarded below\r\n--x\r\nContent-Type: message/rfc822\r\n\r\n"
              b"From: =?iso-2022-jp?B?GyRCJUYlOSVIGyhC?= <c@d.test>\r\nSubject: =?utf-8?Q?caf=C3=A9?=\r\n"
              b"Content-Type: text/plain; charset=iso-2022-jp\r\n\r\n\x1b$B%F%9%H\x1b(B\r\n--x--\r\n",
    "spammy": b"Received: from unknown (HELO 192.168.1.1) (218.5.1.1)\r\n  by smtp.example.com with SMTP; 1 Jan 2026\r\n"
              b"From: \"PayPal Service\" <service@paypa1-secure.test>\r\nReply-To: winner@freemail.test\r\n"
              b"To: undisclosed-recipients:;\r\nSubject: RE: Your account has been SUSPENDED!!! $$$\r\n"
              b"X-Mailer: Microsoft Outlook Express 6.00.2600.0000\r\nContent-Type: text/plain\r\n\r\n"
              b"Dear Valued Customer,\r\nCLICK HERE to verify: http://bit.ly/abc http://%77%77%77.evil.test/"
              b"?a=1&b=http://www.paypal.com hxxp://x.test  w w w . s p a m . t e s t\r\n"
              b"V I A G R A  $0.99  100% FREE!!! unsubscribe mailto:remove@spam.test\r\n"
              b"XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X\r\n",
    "headers": b"From: a@b.test (comment) , \"Last, First\" <x@y.test>\r\nTo: <@route.test:u@v.test>, group: a@b.test;\r\n"
               b"Cc: =?utf-8?Q?=E2=80=8B?= <z@z.test>\r\nSubject: =?gb2312?B?suLK1A==?= =?utf-8?B?4pyU?=\r\n"
               b"Date: Thu, 31 Feb 2026 25:61:61 +9999\r\nMessage-Id: <no-domain>\r\nX-Originating-IP: [203.0.113.5]\r\n"
               b"Content-Type: text/plain; charset=\"unknown-8bit\"\r\nContent-Transfer-Encoding: 8bit\r\n"
               b"List-Unsubscribe: <https://u.test/x>, <mailto:u@u.test>\r\n\r\n\xe9t\xe9 \xff\xfe caf\xc3\xa9\r\n",
    "uuencode": _HEAD + b"Subject: file\r\n\r\nbegin 644 a.txt\r\n#86)C\r\n`\r\nend\r\n",
    "dsn": _HEAD + b"Subject: Undelivered Mail\r\nContent-Type: multipart/report; report-type=delivery-status; "
           b"boundary=r\r\n\r\n--r\r\nContent-Type: text/plain\r\n\r\nfailed\r\n--r\r\n"
           b"Content-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example.com\r\n\r\n"
           b"Final-Recipient: rfc822; x@y.test\r\nAction: failed\r\nStatus: 5.1.1\r\n--r\r\n"
           b"Content-Type: text/rfc822-headers\r\n\r\nFrom: x@y.test\r\nSubject: hi\r\n--r--\r\n",
    "nobody": b"Subject: \r\n\r\n",
}
# tokens libFuzzer inserts (-dict): the syntax the parsers branch on
DICT = [b"\r\n", b"\r\n\r\n", b"Content-Type: ", b"multipart/mixed; boundary=", b"multipart/alternative", b"--",
        b"text/html", b"text/plain", b"message/rfc822", b"image/gif", b"charset=", b"utf-8", b"iso-2022-jp",
        b"Content-Transfer-Encoding: ", b"base64", b"quoted-printable", b"8bit", b"=?utf-8?B?", b"=?iso-8859-1?Q?",
        b"?=", b"Received: from ", b" by ", b" with ESMTP", b"(HELO ", b"[", b"]", b"From: ", b"Reply-To: ",
        b"Subject: ", b"Message-ID: <", b"@", b"<a href=\"", b"\">", b"</a>", b"<img src=", b"<base href=",
        b"<style>", b"<script>", b"<!--", b"-->", b"<![CDATA[", b"<?", b"&#x", b"&#", b"&nbsp;", b"<table>",
        b"<font color=", b"style=\"", b"http://", b"https://", b"mailto:", b"www.", b"%2F", b"%", b"0x", b"::",
        b"=\r\n", b"=3D", b"begin 644 ", b"\t", b"\x00", b"\xc3", b"\xff", b"\\", b"\""]


# --engine sweep: where a long run goes, and what it is made of besides DICT
SWEEP_PLACES: dict[str, Callable[[bytes], bytes]] = {
    "plain": lambda p: _HEAD + b"Subject: x\r\nContent-Type: text/plain\r\n\r\n" + p + b"\r\n",
    "plain_lines": lambda p: _HEAD + b"Subject: x\r\nContent-Type: text/plain\r\n\r\n"
                             + b"".join(p[i:i + 2000] + b"\r\n" for i in range(0, len(p), 2000)),
    "html": lambda p: _HEAD + b"Subject: x\r\nContent-Type: text/html\r\n\r\n<html><body>" + p + b"</body></html>\r\n",
    "subject": lambda p: _HEAD + b"Subject: " + p + b"\r\nContent-Type: text/plain\r\n\r\nhi\r\n",
    "from": lambda p: _HEAD.replace(b"From: Alice <", b"From: " + p + b" <") + b"Subject: x\r\n\r\nhi\r\n",
    "ctype": lambda p: _HEAD + b"Subject: x\r\nContent-Type: text/plain; name=\"" + p + b"\"\r\n\r\nhi\r\n",
    "xheader": lambda p: _HEAD + b"Subject: x\r\nX-Mailer: " + p + b"\r\n\r\nhi\r\n",
    "received": lambda p: b"Received: from " + p + b" by mx.test; Sat, 28 Nov 2026 10:00:00 +0000\r\n" + _HEAD
                          + b"Subject: x\r\n\r\nhi\r\n",
    # (the whole pipeline's readers of header values too: --pipeline; a To: of '<!--' found
    # TO_MALFORMED's exponential backtracking)
    "to": lambda p: _HEAD.replace(b"To: bob@example.com", b"To: " + p) + b"Subject: x\r\n\r\nhi\r\n",
    "reply_to": lambda p: _HEAD + b"Reply-To: " + p + b"\r\nSubject: x\r\n\r\nhi\r\n",
    "message_id": lambda p: _HEAD.replace(b"<1@sender.test>", b"<" + p + b">") + b"Subject: x\r\n\r\nhi\r\n",
    "date": lambda p: _HEAD.replace(b"Date: Sat, 28 Nov 2026 10:00:00 +0000", b"Date: " + p)
                      + b"Subject: x\r\n\r\nhi\r\n",
    "filename": lambda p: _HEAD + b"Subject: x\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
                          b"--b\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; "
                          b'filename="' + p + b'"\r\n\r\nabc\r\n--b--\r\n',
}
SWEEP_TOKENS = [b"a ", b"a", b"$", b"!", b"?", b"<", b">", b"<a", b"<p>", b"</p>", b"<br>", b"&amp;", b"x@y.test ",
                b".", b"-", b"_", b"*", b"http://a.test/ ", b"www.a.test ", b"name=x; ", b"filename=x; ",
                b"=?utf-8?B?YQ==?= ", b"1.2.3.4 ", b"A", b"1", b"\xc3\xa9", b"click here ", b"<img src=x>",
                b"<a href=http://a.test>x</a>", b"<td>", b"<!--x-->", b"%20", b"'", b"(", b")", b"{", b"}", b"|",
                b"/", b":", b";", b",", b"+", b"#", b"~", b"^"]


def _corpus_seeds(limit: int, max_len: int) -> list[Path]:
    """Files of ../shared/corpus to start from: all small ones of mime, rspamd and gtube, then a
    spread of the spamassassin corpus, up to ``limit``."""
    from tests.services import shared_path

    base = shared_path("corpus")
    if not base.is_dir():
        return []
    picked: list[Path] = []
    for sub in ("gtube", "mime", "rspamd"):
        d = base / sub
        if d.is_dir():
            picked += sorted(p for p in d.rglob("*") if p.is_file() and 0 < p.stat().st_size <= max_len)
    sa = base / "spamassassin"
    if sa.is_dir():
        files = sorted(p for p in sa.rglob("*") if p.is_file() and 0 < p.stat().st_size <= max_len)
        room = max(0, limit - len(picked))
        picked += files[:: max(1, len(files) // room)][:room] if room else []
    return picked[:limit]


class Harness:
    """The content path on one input, timed; what went wrong is written to ``crashes``."""

    def __init__(self, work: Path, slow_s: float, label: str, pipeline: bool = False) -> None:
        from gateway_milter.antispam.bayes import BayesClassifier, message_keys
        from gateway_milter.antispam.evaluate import make_context
        from gateway_milter.antispam.saview import message_view
        from gateway_milter.layers.rules import RulesSettings, engine_from_settings
        from gateway_milter.policy.snapshot import PolicySnapshot
        from gateway_milter.store import set_default_store
        from gateway_milter.store.memory import MemoryStore

        self.make_context, self.message_view, self.message_keys = make_context, message_view, message_keys
        self.crashes = work / "crashes"
        self.crashes.mkdir(parents=True, exist_ok=True)
        self.summary_file = work / f"summary-{label}.json"
        self.slow_s = slow_s
        store = MemoryStore()
        set_default_store(store)
        # Bayes combines from the first message (min_learned low), so its whole path runs
        self.policy = PolicySnapshot.from_document({"settings": {
            "scoring": {"layers": ["rules", "bayes"], "exempt_outbound": False},
            "bayes": {"min_learned": 5, "autolearn": False}}})
        self.bayes = BayesClassifier(store, 5)
        t0 = time.process_time()
        self.engine = engine_from_settings(RulesSettings())
        self.rule_load_s = time.process_time() - t0
        self.errors: dict[str, dict[str, Any]] = {}
        self.slow: list[dict[str, Any]] = []
        self.execs = 0
        self.cpu_s = 0.0
        self.slowest = (0.0, "")
        self.started = time.time()
        self.cpu0 = time.process_time()
        self.last_summary = 0.0
        self._logged: list[logging.LogRecord] = []
        logging.getLogger("bulwark").addHandler(_Kept(self._logged))
        self.gateway = _pipeline_gateway() if pipeline else None

    def _through_pipeline(self, data: bytes) -> dict[str, str]:
        """The input through the whole pipeline (--pipeline), as ``manage.py scan`` runs it,
        twice: inbound (from outside to example.com) and outbound (an authenticated client,
        From rewritten to example.com, so DKIM signs it). What failed: the layers the runner
        caught failing, and a 4xx answer, which here only an internal error or a policy
        script's run-time error gives (the script reads every message's Subject and From)."""
        from gateway_milter.context import ConnectionInfo
        from gateway_milter.pipeline.rawmessage import split_message
        from gateway_milter.verdict import Action

        gw = self.gateway
        assert gw is not None
        headers, body = split_message(data)
        failed: dict[str, str] = {}
        for outbound in (False, True):
            macros = {"{auth_authen}": "alice"} if outbound else {}
            ctx = gw.begin(ConnectionInfo(client_ip="198.51.100.7", client_name="unknown", helo="mx.sender.test",
                                          macros=macros), scan_mode=True)
            way = "outbound" if outbound else "inbound"
            try:
                gw.mail(ctx, "alice@example.com" if outbound else "alice@sender.test")
                gw.rcpt(ctx, "carol@remote.test" if outbound else "bob@example.com")
                for n, v in headers:
                    if not (outbound and n.lower() == "from"):
                        ctx.add_header(n, v)
                if outbound:
                    ctx.add_header("From", "Alice <alice@example.com>")
                ctx.body.write(body)
                decision = gw.eom(ctx)
                gw.finish(ctx, decision.action, decision.reply)
                assert ctx.runner is not None
                failed.update({f"{way} {lid}": r.error for lid, r in ctx.runner.computed().items() if r.error})
                if decision.action is Action.TEMPFAIL:
                    errors = [f"{t.source}: {t.detail}" for t in ctx.trace if t.event == "error"]
                    failed[f"{way} tempfail"] = "; ".join(errors) or str(decision.reply)
            finally:
                ctx.close()
        return failed

    def train(self, raws: list[bytes]) -> None:
        for i, raw in enumerate(raws):
            try:
                self.bayes.learn(self.message_view(self.make_context(raw, self.policy)), i % 2 == 0)
            except Exception:  # noqa: BLE001 (a seed that fails is found again by the fuzzing)
                pass

    def run(self, data: bytes) -> dict[str, Any]:
        """One input through the whole path; the CPU of each part, and the error if one raised."""
        parts: dict[str, float] = {}
        error = ""
        where = "context"
        t = t0 = time.process_time()

        def mark(name: str) -> None:
            nonlocal t
            now = time.process_time()
            parts[name] = round(now - t, 4)
            t = now

        self._logged.clear()
        ctx = None
        try:
            ctx = self.make_context(data, self.policy)
            mark("context")
            where = "view"
            view = self.message_view(ctx)
            mark("view")
            where = "keys"
            self.message_keys(view)
            mark("keys")
            where = "bayes"
            p = self.bayes.classify(view).probability
            mark("bayes")
            where = "rules"
            self.engine.run(view, {"bayes_probability": p} if p is not None else None)
            mark("rules")
            where = "scoring"  # the layers as the milter runs them (rules and Bayes again, then scoring)
            ctx.layer("scoring")
            mark("scoring")
            assert ctx.runner is not None
            failed = {lid: r.error for lid, r in ctx.runner.computed().items() if r.error}
            if not failed and self.gateway is not None:
                where = "pipeline"
                failed = self._through_pipeline(data)
                mark("pipeline")
            if failed:  # (the runner caught it: its traceback came through the log)
                logged = "".join(f"{r.getMessage()}\n{r.exc_text or ''}\n" for r in self._logged)
                raise LayerError(f"layers failed: {failed}\n{logged}")
        except Exception as e:  # noqa: BLE001 (every exception is what the fuzzing looks for)
            error = f"{where}: " + "".join(traceback.format_exception(e))
            self._record_error(data, where, e, error)
        finally:
            if ctx is not None:
                ctx.close()  # (its body's spool file)
        took = time.process_time() - t0
        self.execs += 1
        self.cpu_s += took
        if took > self.slowest[0]:
            self.slowest = (took, hashlib.sha1(data).hexdigest())
        if took > self.slow_s:
            self._record_slow(data, took, parts)
        if time.time() - self.last_summary > 10:
            self.write_summary()
        return {"cpu_s": round(took, 4), "parts": parts, "error": error}

    def _record_error(self, data: bytes, where: str, e: BaseException, text: str) -> None:
        """One file per distinct place: the exception's type and its innermost frames in our code
        (or the last ones when none is ours)."""
        if isinstance(e, LayerError):
            ours = [line for line in str(e).splitlines() if "gateway_milter" in line and "File" in line][-3:]
            kind = str(e).splitlines()[0][:200]
        else:
            frames = traceback.extract_tb(e.__traceback__)
            ours = [f"{f.filename}:{f.name}" for f in frames if "gateway_milter" in f.filename][-3:] or \
                [f"{f.filename}:{f.name}" for f in frames[-3:]]
            kind = type(e).__name__
        sig = hashlib.sha1(f"{where}|{kind}|{ours}".encode()).hexdigest()[:12]
        entry = self.errors.get(sig)
        if entry is None:
            entry = self.errors[sig] = {"where": where, "kind": kind, "count": 0, "size": len(data),
                                        "file": str(self.crashes / f"error-{sig}.eml")}
            (self.crashes / f"error-{sig}.eml").write_bytes(data)
            (self.crashes / f"error-{sig}.txt").write_text(text, errors="backslashreplace")  # (surrogates from the input)
            print(f"\n== new error {sig} in {where}: {kind} ({len(data)} bytes)\n{text}", file=sys.stderr, flush=True)
        elif len(data) < entry["size"]:  # keep the smallest input of each
            entry["size"] = len(data)
            (self.crashes / f"error-{sig}.eml").write_bytes(data)
        entry["count"] += 1

    def _record_slow(self, data: bytes, took: float, parts: dict[str, float]) -> None:
        digest = hashlib.sha1(data).hexdigest()[:12]
        (self.crashes / f"slow-{digest}.eml").write_bytes(data)
        info = {"cpu_s": round(took, 3), "parts": parts, "size": len(data), "file": str(self.crashes / f"slow-{digest}.eml")}
        (self.crashes / f"slow-{digest}.json").write_text(json.dumps(info, indent=1))
        self.slow.append(info)
        print(f"\n== slow input {digest}: {took:.2f}s CPU {parts} ({len(data)} bytes)", file=sys.stderr, flush=True)

    def write_summary(self, final: bool = False) -> None:
        from gateway_milter.compiled import status

        self.last_summary = time.time()
        doc = {"code": status(), "executions": self.execs, "wall_s": round(time.time() - self.started),
               "process_cpu_s": round(time.process_time() - self.cpu0), "inputs_cpu_s": round(self.cpu_s),
               "rule_load_cpu_s": round(self.rule_load_s, 1),
               "slowest_cpu_s": round(self.slowest[0], 3), "slowest_sha1": self.slowest[1],
               "errors": self.errors, "slow": self.slow[-50:], "slow_count": len(self.slow), "final": final}
        tmp = self.summary_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(doc, indent=1))
        tmp.replace(self.summary_file)


class _NoQuarantine:
    def store(self, raw: bytes, meta: dict[str, Any]) -> dict[str, Any]:
        return {**meta, "qid": "fuzz", "path": ""}


class _NoLog:
    def emit(self, record: dict[str, Any]) -> None:
        pass


def _pipeline_gateway() -> Any:
    """--pipeline's gateway: example.com is local, every layer on at its defaults but antivirus
    (clamd) and callback (remote MTAs); every DNS lookup answered SERVFAIL at once by an
    in-process backend (a temporary error: the DNS-based layers go on without an answer; a
    closed loopback port cost its time-out in every layer, nine tenths of the wall time)
    unless GATEWAY_DNS_SERVERS names servers to ask."""
    if not os.environ.get("GATEWAY_DNS_SERVERS"):
        from gateway_milter.net.resolver import SERVFAIL, DnsAnswer, Resolver, StaticBackend, set_resolver

        class _ServFail(StaticBackend):
            def lookup(self, name: str, rdtype: str, timeout: float) -> DnsAnswer:
                return DnsAnswer(name, rdtype, SERVFAIL, error="SERVFAIL (fuzz harness)")

        set_resolver(Resolver(backend=_ServFail(), timeout=1.0))
    from gateway_milter.pipeline.transaction import Gateway
    from gateway_milter.policy.provider import StaticPolicyProvider
    from gateway_milter.policy.snapshot import PolicySnapshot

    import tempfile

    from gateway_milter.auth.keystore import KeyStore, set_keystore

    # outbound mail from example.com is DKIM-signed with a key made for the run
    keys = KeyStore(Path(tempfile.mkdtemp(prefix="bulwark-fuzz-dkim-")))
    keys.generate("example.com", "fuzz")
    set_keystore(keys)
    # blocked attachments are stripped (the MIME tree rebuilt around a notice); a policy
    # script copies the Subject and the From address into headers (what a message brings,
    # through variables into addheader)
    copy = ('require ["editheader", "variables"]; if header :matches "subject" "*" { addheader "X-Subject-Copy" "${1}"; }'
            ' if address :matches :all "from" "*" { addheader "X-From-Copy" "${1}"; }')
    # and one that reads the parts, their parameters, the body text and the dates (header
    # edits only: the message goes on to the transforms)
    parts = ('require ["mime", "foreverypart", "extracttext", "variables", "editheader", "body", "date", "relational",'
             ' "index"]; foreverypart { if header :mime :param ["filename", "name", "charset"] :matches'
             ' ["Content-Disposition", "Content-Type"] "*" { set "p" "${1}"; } if header :mime :type :is "Content-Type"'
             ' "text" { extracttext :first 100 "t"; } } if body :text :contains "unsubscribe" { addheader "X-Body" "${t}"; }'
             ' if date :value "gt" "date" "year" "2000" { addheader "X-Param" "${p}"; }'
             ' if date :index 1 :matches "received" "iso8601" "*" { addheader "X-Received-Date" "${1}"; }')
    doc = {"gateway": {"hostname": "mx.example.com"},
           "domains": [{"name": "example.com", "settings": {"dkim": {"sign": True}}}],
           "settings": {"antivirus": {"mode": "off"}, "callback": {"mode": "off"},
                        "attachments": {"action": "strip", "blocked_name_patterns": ["*.exe", "*.zip", "*.pdf"]}},
           "scripts": [{"name": "copy", "source": copy}, {"name": "parts", "source": parts}]}
    return Gateway(StaticPolicyProvider(PolicySnapshot.from_document(doc)), _NoQuarantine(), _NoLog())


class _Kept(logging.Handler):
    """Keeps the records of errors (a layer that raised: the runner logs its traceback)."""

    def __init__(self, into: list[logging.LogRecord]) -> None:
        super().__init__(logging.ERROR)
        self.into = into
        self.traceback_of = logging.Formatter().formatException

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info and not record.exc_text:
            record.exc_text = self.traceback_of(record.exc_info)
        self.into.append(record)


class LayerError(Exception):
    """A layer that the runner caught failing (its traceback came through the log)."""


def mutate(data: bytes, pool: list[bytes], rng: random.Random, max_len: int) -> bytes:
    """The random engine's mutations: bytes flipped, inserted, removed; dictionary tokens;
    pieces of other seeds; a stretch repeated many times (the inputs that cost time grow so)."""
    b = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        op = rng.random()
        pos = rng.randint(0, len(b))
        if op < 0.2 and b:
            b[min(pos, len(b) - 1)] = rng.randrange(256)
        elif op < 0.35:
            b[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 4)))
        elif op < 0.5 and b:
            del b[pos:pos + rng.randint(1, 64)]
        elif op < 0.7:
            b[pos:pos] = rng.choice(DICT)
        elif op < 0.85:
            other = rng.choice(pool)
            s = rng.randint(0, len(other))
            b[pos:pos] = other[s:s + rng.randint(1, 512)]
        else:
            piece = bytes(b[pos:pos + rng.randint(1, 32)]) or rng.choice(DICT)
            b[pos:pos] = piece * rng.choice((2, 10, 100, 1000, 10000))
        if len(b) > max_len:
            del b[max_len:]
    return bytes(b)


def custom_mutator(max_len: int) -> Callable[[bytes, int, int], bytes]:
    """libFuzzer's own mutations, and now and then a stretch repeated many times: libFuzzer
    grows an input a few bytes at a time, and the inputs that cost superlinear time are long
    runs of one construct."""
    def mutator(data: bytes, max_size: int, seed: int) -> bytes:
        rng = random.Random(seed)
        if data and rng.random() < 0.05:
            pos = rng.randrange(len(data))
            piece = data[pos:pos + rng.randint(1, 32)]
            out = data[:pos] + piece * rng.choice((10, 100, 1000)) + data[pos:]
            return out[:min(max_size, max_len)]
        return bytes(atheris.Mutate(data, max_size))
    return mutator


def main() -> int:
    argv = sys.argv[1:]
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    argv = argv[: argv.index("--")] if "--" in argv else argv
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--engine", choices=("atheris", "random", "sweep"), default="atheris" if atheris else "random")
    ap.add_argument("--sweep-len", type=int, default=60_000, help="sweep: bytes of each run")
    ap.add_argument("--seconds", type=int, default=1200, help="wall time to fuzz")
    ap.add_argument("--work", default="/tmp/bulwark-fuzz", help="seeds/, corpus/ and crashes/ go here")
    ap.add_argument("--max-len", type=int, default=65536, help="largest input (bytes)")
    ap.add_argument("--seed-limit", type=int, default=1500, help="files of ../shared/corpus among the seeds")
    ap.add_argument("--slow-s", type=float, default=1.0, help="an input taking more CPU than this is recorded")
    ap.add_argument("--rng-seed", type=int, default=None, help="random engine: its seed")
    ap.add_argument("--replay", nargs="+", default=None, help="run these files once each, print what they did")
    ap.add_argument("--pipeline", action="store_true",
                    help="each input also through the whole milter pipeline (every layer but antivirus and callback)")
    args = ap.parse_args(argv)
    if args.engine == "atheris" and atheris is None:
        ap.error("atheris is not installed (.venv/bin/pip install atheris), use --engine random")
    os.environ.setdefault("GATEWAY_RULES_CACHE_DIR", str(ROOT / "var" / "rules-cache"))
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)

    if args.engine == "atheris" and not args.replay:
        # instrumented: our package and the parsers of the standard library it leans on (only
        # modules imported from here on; the compiled modules are extension modules)
        with atheris.instrument_imports(include=["gateway_milter", "email", "html"]):
            import gateway_milter.antispam.engine
            import gateway_milter.layers.scoring  # noqa: F401
    from gateway_milter.compiled import status

    code = "compiled" if status().startswith("compiled") else "python"
    harness = Harness(work, args.slow_s, f"{args.engine}-{code}" + ("-pipeline" if args.pipeline else ""), args.pipeline)
    print(f"content path fuzzing: {status()}; rules loaded in {harness.rule_load_s:.1f}s CPU", file=sys.stderr)
    if args.replay:
        for f in args.replay:
            print(f, json.dumps(harness.run(Path(f).read_bytes())))
        return 0

    if args.engine == "sweep":
        harness.train(list(SEEDS.values()) * 3)
        tokens = list(dict.fromkeys([t for t in DICT if t.strip(b"\r\n")] + SWEEP_TOKENS))
        for place, build in SWEEP_PLACES.items():
            for tok in tokens:
                harness.run(build((tok * (args.sweep_len // len(tok) + 1))[:args.sweep_len]))
            print(f"{place}: {harness.execs} runs, slowest {harness.slowest[0]:.2f}s", file=sys.stderr, flush=True)
        harness.write_summary(final=True)
        print(json.dumps({"executions": harness.execs, "errors": len(harness.errors), "slow": len(harness.slow),
                          "slowest_cpu_s": round(harness.slowest[0], 3)}))
        return 0

    seed_dir = work / "seeds"
    seed_dir.mkdir(exist_ok=True)
    pool = list(SEEDS.values())
    for name, raw in SEEDS.items():
        (seed_dir / f"hand-{name}.eml").write_bytes(raw)
    for p in _corpus_seeds(args.seed_limit, args.max_len):
        raw = p.read_bytes()
        pool.append(raw)
        (seed_dir / f"corpus-{hashlib.sha1(raw).hexdigest()[:16]}.eml").write_bytes(raw)
    harness.train(pool[:200])
    print(f"{len(pool)} seeds in {seed_dir}", file=sys.stderr, flush=True)

    if args.engine == "random":
        rng = random.Random(args.rng_seed)
        for raw in pool:  # the seeds themselves first
            harness.run(raw)
        end = time.time() + args.seconds
        last = time.time()
        while time.time() < end:
            harness.run(mutate(rng.choice(pool), pool, rng, args.max_len))
            if time.time() - last > 60:
                last = time.time()
                print(f"#{harness.execs} {harness.execs / (last - harness.started):.1f} exec/s, "
                      f"errors {len(harness.errors)}, slow {len(harness.slow)}, slowest {harness.slowest[0]:.2f}s",
                      file=sys.stderr, flush=True)
        harness.write_summary(final=True)
        print(json.dumps({"executions": harness.execs, "errors": len(harness.errors), "slow": len(harness.slow)}))
        return 0

    corpus = work / "corpus"
    corpus.mkdir(exist_ok=True)
    dict_file = work / "content.dict"
    dict_file.write_text("".join('"' + "".join(f"\\x{c:02x}" for c in tok) + '"\n' for tok in DICT))
    flags = [sys.argv[0], str(corpus), str(seed_dir), f"-max_len={args.max_len}", f"-dict={dict_file}",
             f"-max_total_time={args.seconds}", "-timeout=60", "-rss_limit_mb=4096", "-print_final_stats=1",
             f"-artifact_prefix={harness.crashes}/", *extra]  # (a timeout's input: libFuzzer writes it there)

    def one(data: bytes) -> None:
        harness.run(data)

    atheris.Setup(flags, one, custom_mutator=custom_mutator(args.max_len))
    try:
        atheris.Fuzz()
    finally:  # (libFuzzer ends the process itself at -max_total_time; the summary is rewritten every 10 s)
        harness.write_summary(final=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
