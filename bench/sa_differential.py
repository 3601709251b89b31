"""Rule hits of our engine against SpamAssassin's own (Debian's ``spamassassin`` package, the same
rule files) on corpus messages: which scored rules each one hits where the other does not.

Usage: .venv/bin/python bench/sa_differential.py [--n 300] [--dirs spam,spam_2,easy_ham,hard_ham]
       [--details out.jsonl] [--rule NAME]
       .venv/bin/python bench/sa_differential.py --files ../shared/corpus/mime ../shared/corpus/rspamd/messages
         (every message file under those paths instead: the odd-MIME test messages of other parsers)

SpamAssassin runs in one Perl process (Mail::SpamAssassin, local tests only, no Bayes, no
auto-allowlist, no user preferences) fed message paths; our side is the ``rules`` layer in scan
mode, as the evaluation runs it (bench/antispam_eval.py), with SpamAssassin's score set 0
(no Bayes, no network tests) as SpamAssassin picks it here. Only rules both sides run are
compared: our scored rules (``manage.py rules check`` lists what we do not support) that
SpamAssassin also reports. Messages are every k-th file of each directory (k chosen to give
--n in all), so runs are repeatable. Prints the agreement and, per rule, the messages where only
one side hit (``--rule`` lists them for one rule).

A message whose hits differ is run again in a SpamAssassin process of its own before it counts:
SpamAssassin 4.0.1 fills a capture template (``%{GB_TO_ADDR}`` in GB_CUSTOM_HTM_URI's sub-rules)
once per process (the expression is compiled with ``/o``), so in one long process every later
message is matched against the first message's recipient. Alone, a message is its first.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gateway_milter.antispam.evaluate import make_context
from gateway_milter.pipeline.rawmessage import iter_messages
from gateway_milter.policy.snapshot import PolicySnapshot
from tests.services import shared_path

# One Mail::SpamAssassin object, then a message path per line in, "path<TAB>hits" out. The
# message is read as bytes; SpamAssassin takes the mbox "From " line of the corpus files as
# the envelope, as it does when it is given such a file.
PERL = r"""
use strict; use warnings;
use Mail::SpamAssassin;
$| = 1;
my $sa = Mail::SpamAssassin->new({
    local_tests_only => 1, dont_copy_prefs => 1, userprefs_filename => '/dev/null',
    userstate_dir => $ENV{SA_STATE},
    post_config_text => "use_bayes 0\nuse_auto_whitelist 0\nbayes_auto_learn 0\n",
});
$sa->init(1);
print "ready\n";
while (my $path = <STDIN>) {
    chomp $path;
    open(my $fh, '<:raw', $path) or do { print "$path\t!\n"; next };
    my $raw = do { local $/; <$fh> };
    close $fh;
    my $msg = $sa->parse($raw);
    my $st = $sa->check($msg);
    my $hits = $st->get_names_of_tests_hit();
    my $subtests = $st->get_names_of_subtests_hit();
    print "$path\t$hits\t$subtests\n";
    $st->finish; $msg->finish;
}
"""


def pick(base: Path, dirs: list[str], n: int) -> list[Path]:
    files = {d: sorted(p for p in (base / d).iterdir() if p.name != "cmds") for d in dirs}
    total = sum(len(v) for v in files.values())
    step = max(1, total // n)
    return [p for d in dirs for p in files[d][::step]]


_HEADER_START = re.compile(rb"(?:From |[!-9;-~]+:)")
_NOT_MESSAGES = (".html", ".htm", ".json", ".xml", ".out", ".bin", ".pem", ".pub", ".cs", ".py", ".java", ".md")


def message_files(roots: list[str]) -> list[Path]:
    """The files under ``roots`` (files or directories) that start as a message does: a header
    field or an mbox "From " line (test suites keep their messages beside code, expected
    outputs and decoded parts; a ``*_decoded_*`` file is a part, not a message; what lies in an
    ``mbox`` directory is a mailbox of several messages or a summary of one, which SpamAssassin
    reads as one message and we as its first)."""
    out: list[Path] = []
    for root in map(Path, roots):
        for p in sorted(root.rglob("*")) if root.is_dir() else [root]:
            if (not p.is_file() or p.suffix.lower() in _NOT_MESSAGES or "_decoded_" in p.name or "mbox" in p.parts
                    or p.stat().st_size > 5 << 20):
                continue
            with p.open("rb") as f:
                if _HEADER_START.match(f.read(200)):
                    out.append(p)
    return out


def sa_hits(paths: list[Path], progress: bool = True, subtests: bool = False) -> dict[str, set[str]]:
    """SpamAssassin's scored hits per message path (``subtests``: its ``__`` rules' too)."""
    if not shutil.which("perl"):
        raise SystemExit("perl not found")
    state = tempfile.mkdtemp(prefix="sa-diff-")
    try:
        proc = subprocess.Popen(["perl", "-e", PERL], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL, text=True, env={**os.environ, "SA_STATE": state})
        assert proc.stdin is not None and proc.stdout is not None
        if proc.stdout.readline().strip() != "ready":
            raise SystemExit("Mail::SpamAssassin did not start (is Debian's spamassassin package installed?)")
        out: dict[str, set[str]] = {}
        for i, p in enumerate(paths):
            proc.stdin.write(f"{p}\n")
            proc.stdin.flush()
            path, _, rest = proc.stdout.readline().rstrip("\n").partition("\t")
            hits, _, subs = rest.partition("\t")
            out[path] = {h for h in (hits + "," + subs if subtests else hits).split(",") if h}
            if progress and i % 50 == 0:
                print(f"  SpamAssassin {i}/{len(paths)}", file=sys.stderr, flush=True)
        proc.stdin.close()
        proc.wait()
        return out
    finally:
        shutil.rmtree(state, ignore_errors=True)


def our_hits(paths: list[Path], score_set: int = 0, wait_hyperscan: bool = True) -> tuple[dict[str, set[str]], set[str]]:
    """Our rules layer's scored hits per message, and the scored rules it runs."""
    from gateway_milter.layers.rules import RulesSettings, engine_from_settings

    policy = PolicySnapshot.from_document({"settings": {"rules": {"use_bayes": False, "score_set": score_set}}})
    engine = engine_from_settings(RulesSettings(score_set=score_set))
    if wait_hyperscan:  # (without it the Python path gives the same hits, slower)
        engine.hyperscan(None)
    out: dict[str, set[str]] = {}
    for p in paths:
        raw = next(iter(iter_messages(p)))[1]
        res = make_context(raw, policy).layer("rules")
        out[str(p)] = {x.name for x in res.symbols}
    return out, set(engine.roots)


def compare(paths: list[Path], ours: dict[str, set[str]], ours_run: set[str], theirs: dict[str, set[str]],
            only: set[str] | None = None) -> dict[str, object]:
    """Agreement of the two sides on the rules both could report (``only``: those among them)."""
    # SpamAssassin also names rules we run unscored, and its own pseudo-rules
    both_know = ours_run & ({h for hs in theirs.values() for h in hs} | {h for hs in ours.values() for h in hs})
    if only is not None:
        both_know &= only
    only_ours: Counter[str] = Counter()
    only_theirs: Counter[str] = Counter()
    agree: Counter[str] = Counter()
    same = 0
    for p in paths:
        a, b = ours[str(p)] & both_know, theirs.get(str(p), set()) & both_know
        only_ours.update(a - b)
        only_theirs.update(b - a)
        agree.update(a & b)
        same += a == b
    total = sum(agree.values()) + sum(only_ours.values()) + sum(only_theirs.values())
    rules = sorted(set(only_ours) | set(only_theirs), key=lambda r: -(only_ours[r] + only_theirs[r]))
    return {
        "messages": len(paths),
        "messages_with_the_same_hits": same,
        "hits_agreeing": sum(agree.values()), "hits_ours_only": sum(only_ours.values()),
        "hits_spamassassin_only": sum(only_theirs.values()),
        "agreement_pct": round(100 * sum(agree.values()) / total, 2) if total else 100.0,
        "rules_differing": {r: {"ours_only": only_ours[r], "spamassassin_only": only_theirs[r], "both": agree[r]}
                            for r in rules[:40]},
    }


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=300)
    ap.add_argument("--dirs", default="spam,spam_2,easy_ham,easy_ham_2,hard_ham")
    ap.add_argument("--details", default="", help="per message: both sides' hits (JSON lines)")
    ap.add_argument("--rule", default="", help="list the messages where the sides differ on this rule")
    ap.add_argument("--files", nargs="+", default=[], help="message files, or directories to take every message file under")
    args = ap.parse_args()
    if args.files:
        paths = message_files(args.files)
        if not paths:
            print("no message files under " + " ".join(args.files), file=sys.stderr)
            return 2
    else:
        base = shared_path("corpus", "spamassassin")
        if not base.is_dir():
            print(f"{base} not present", file=sys.stderr)
            return 2
        paths = pick(base, args.dirs.split(","), args.n)
    theirs = sa_hits(paths)
    ours, ours_run = our_hits(paths)
    # where the sides differ, SpamAssassin again with the message alone (capture templates)
    differing = [p for p in paths if ours[str(p)] & ours_run != theirs.get(str(p), set()) & ours_run]
    for p in differing:
        theirs.update(sa_hits([p], progress=False))
    if differing:
        print(f"{len(differing)} message(s) with differing hits run again in a SpamAssassin process of their own",
              file=sys.stderr)
    if args.details or args.rule:
        rows = []
        for p in paths:
            a, b = ours[str(p)] & ours_run, theirs.get(str(p), set()) & ours_run
            rows.append({"path": str(p), "ours": sorted(a), "spamassassin": sorted(b)})
            if args.rule and (args.rule in a) != (args.rule in b):
                print(f"{args.rule}: {'ours only' if args.rule in a else 'SpamAssassin only'}: {p}")
        if args.details:
            with open(args.details, "w") as f:
                for r in rows:
                    f.write(json.dumps(r) + "\n")
    print(json.dumps(compare(paths, ours, ours_run, theirs), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
