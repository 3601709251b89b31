"""A message's content path (MIME view, rules, Bayes, scoring) frees what it made when the
message is done: nothing is left in reference cycles for the garbage collector (they held the
message's view, its parts and the rules' memo until the next collection, which then ran
every 3-4 messages; docs/layers/rules.md "Matching")."""

from __future__ import annotations

from pathlib import Path

from gateway_milter.antispam.bayes import BayesClassifier
from gateway_milter.antispam.saview import message_view
from gateway_milter.layers.rules import engine_from_settings
from gateway_milter.store.memory import MemoryStore
from tests.unit.antispam.helpers import make_ctx, policy, write_rules
from tests.unit.cyclic import cyclic_garbage

RULES = """body LOCAL_BODY /cheap pills/
score LOCAL_BODY 2
uri LOCAL_URI /pills\\.test/
score LOCAL_URI 1
header LOCAL_SUBJ Subject =~ /offer/i
score LOCAL_SUBJ 1
meta LOCAL_META LOCAL_BODY && (LOCAL_URI || LOCAL_SUBJ)
score LOCAL_META 1
"""

# nested multiparts with an alternative: the MIME walk and the alternatives' walk both recurse
NESTED = (b"From: Alice <alice@sender.test>\r\nTo: bob@example.com\r\nSubject: An offer\r\n"
          b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=outer\r\n\r\n"
          b"--outer\r\nContent-Type: multipart/alternative; boundary=inner\r\n\r\n"
          b"--inner\r\nContent-Type: text/plain\r\n\r\ncheap pills at http://pills.test/buy\r\n"
          b"--inner\r\nContent-Type: text/html\r\n\r\n<p>cheap <b>pills</b> <a href=\"http://pills.test/buy\">here</a></p>\r\n"
          b"--inner--\r\n--outer\r\nContent-Type: application/octet-stream; name=a.bin\r\n"
          b"Content-Transfer-Encoding: base64\r\n\r\nAAECAw==\r\n--outer--\r\n")


def test_the_content_path_leaves_no_reference_cycles(tmp_path: Path, store: MemoryStore) -> None:
    d = write_rules(tmp_path, RULES)
    pol = policy({"rules": {"include_default": False, "rule_dirs": [str(d)]},
                  "scoring": {"layers": ["rules", "bayes"]}, "bayes": {"min_learned": 1, "autolearn": False}})
    bc = BayesClassifier(store, 1)
    bc.learn(message_view(make_ctx(NESTED, pol)), True)
    bc.learn(message_view(make_ctx(b"Subject: lunch\r\n\r\nSee you at noon.\r\n", pol)), False)
    first = make_ctx(NESTED, pol).layer("scoring")  # builds the engine, fills the caches
    # and its Hyperscan databases, when there are any, loaded and put to use by a message (the
    # metas are compiled again then, once, which leaves the first version's to the collector)
    engine_from_settings(pol.settings_for("rules", "example.com")).hyperscan(None)
    make_ctx(NESTED, pol).layer("scoring")
    # every part ran: the rules (each kind, and a meta) and Bayes
    assert {"LOCAL_BODY", "LOCAL_URI", "LOCAL_SUBJ", "LOCAL_META", "BAYES_99"} <= set(first.fact("tests"))
    with cyclic_garbage() as left:
        for _ in range(3):
            res = make_ctx(NESTED, pol).layer("scoring")
            assert res.fact("score") == first.fact("score")
    assert left == [], left
