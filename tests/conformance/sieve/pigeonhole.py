"""Run Pigeonhole's .svtest suite and count passing test blocks per extension.

``python -m tests.conformance.sieve.pigeonhole [-v]`` prints the table used in
docs/policy/sieve.md; the pytest module asserts the >= 95 % target per claimed extension.
"""

from __future__ import annotations

import sys
from collections import defaultdict
from pathlib import Path

from tests.conformance.sieve.testsuite import BlockResult, run_svtest

# Directory (relative to the suite root) -> the extension it measures.
CLAIMED: dict[str, str] = {
    "": "core (RFC 5228)", "match-types": "core (RFC 5228)", "comparators": "core (RFC 5228)",
    "extensions/body": "body", "extensions/date": "date", "extensions/editheader": "editheader",
    "extensions/encoded-character.svtest": "encoded-character", "extensions/envelope.svtest": "envelope",
    "extensions/environment": "environment", "extensions/ihave": "ihave", "extensions/imap4flags": "imap4flags",
    "extensions/include": "include", "extensions/index": "index", "extensions/mime": "mime/foreverypart/extracttext",
    "extensions/regex": "regex", "extensions/reject": "reject", "extensions/relational": "relational",
    "extensions/spamvirustest": "spamtest/spamtestplus/virustest", "extensions/subaddress": "subaddress",
    "extensions/variables": "variables", "extensions/mailbox": "mailbox",
}
NOT_CLAIMED = ("extensions/vacation", "extensions/enotify", "extensions/duplicate", "extensions/extlists",
               "extensions/metadata", "extensions/special-use", "extensions/vnd.dovecot", "plugins", "multiscript",
               "execute", "compile", "failures")


def extension_of(root: Path, f: Path) -> str | None:
    rel = f.relative_to(root).as_posix()
    best = None
    for prefix, ext in CLAIMED.items():
        if prefix == "":
            if "/" not in rel:
                best = best or ext
            continue
        if rel == prefix or rel.startswith(prefix + "/"):
            best = ext
    if best is None:
        for p in NOT_CLAIMED:
            if rel.startswith(p + "/") or rel == p:
                return None
    return best


def run_all(root: Path) -> dict[str, list[tuple[str, BlockResult]]]:
    out: dict[str, list[tuple[str, BlockResult]]] = defaultdict(list)
    for f in sorted(root.rglob("*.svtest")):
        ext = extension_of(root, f)
        if ext is None:
            continue
        results, _ = run_svtest(f)
        for r in results:
            out[ext].append((f.relative_to(root).as_posix(), r))
    return out


def main() -> None:
    from tests.services import shared_path

    root = Path(shared_path("conformance/sieve/pigeonhole"))
    verbose = "-v" in sys.argv
    res = run_all(root)
    total = passed = 0
    for ext in sorted(res):
        rs = res[ext]
        ok = sum(1 for _, r in rs if r.passed)
        total += len(rs)
        passed += ok
        print(f"| {ext} | {ok}/{len(rs)} | {100 * ok / max(1, len(rs)):.0f}% |")
        if verbose:
            for f, r in rs:
                if not r.passed:
                    print(f"    FAIL {f} :: {r.name} :: {r.reason}")
    print(f"| total | {passed}/{total} | {100 * passed / max(1, total):.0f}% |")


if __name__ == "__main__":
    main()
