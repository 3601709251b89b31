"""``manage.py bayes`` and ``manage.py rules check``, and the ``bayes.train_message`` task."""

from __future__ import annotations

import io
import json
import mailbox
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from gateway_milter.store.memory import MemoryStore
from tests.unit.antispam.helpers import msg, write_rules


def corpus(tmp_path: Path) -> tuple[Path, Path]:
    spam = tmp_path / "spam"
    (spam / "cur").mkdir(parents=True)  # a maildir
    for i in range(3):
        (spam / "cur" / f"{i}.eml").write_bytes(msg(f"win {i}", "lottery winner prize"))
    mbox_path = tmp_path / "ham.mbox"
    mb = mailbox.mbox(str(mbox_path))
    for i in range(2):
        mb.add(msg(f"meeting {i}", "agenda for tomorrow"))
    mb.close()
    return spam, mbox_path


@pytest.mark.django_db  # (the published policy's trust path)
def test_it_trains_from_maildirs_and_mbox_idempotently(tmp_path: Path, store: MemoryStore) -> None:
    spam, ham = corpus(tmp_path)
    out, err = io.StringIO(), io.StringIO()
    call_command("bayes", "train", "--spam", str(spam), "--ham", str(ham), stdout=out, stderr=err)
    assert "learned 5 message(s)" in out.getvalue() and "learning [" in err.getvalue()
    out = io.StringIO()
    call_command("bayes", "train", "--spam", str(spam), "--ham", str(ham), stdout=out, stderr=io.StringIO())
    assert "learned 0 message(s), 5 already known" in out.getvalue()
    out = io.StringIO()
    call_command("bayes", "stats", stdout=out)
    st = json.loads(out.getvalue())
    assert (st["spam_learned"], st["ham_learned"]) == (3, 2)
    call_command("bayes", "forget", "--spam", str(spam), stdout=io.StringIO(), stderr=io.StringIO())
    out = io.StringIO()
    call_command("bayes", "stats", stdout=out)
    assert json.loads(out.getvalue())["spam_learned"] == 0


def test_it_lists_unsupported_rules(tmp_path: Path) -> None:
    d = write_rules(tmp_path, "body OK_RULE /fine/\nbody BAD_RULE eval:nope()\nmeta BAD_META BAD_RULE\n")
    out = io.StringIO()
    call_command("rules", "check", "--no-default", "--dir", str(d), "--json", stdout=out)
    rep = json.loads(out.getvalue())
    assert rep["running"] == 1 and set(rep["unsupported"]) == {"BAD_RULE", "BAD_META"}


def test_it_names_score_lines_for_rules_no_file_defines(tmp_path: Path) -> None:
    """A misspelt name in a score, describe or tflags line is listed with its file:line (the
    rule keeps its default score), as SpamAssassin's --lint warns; a rule another layer answers
    (SPF_PASS) is no typo."""
    d = write_rules(tmp_path, "body LOCAL_CHEAP_PILLS /cheap pills/i\nscore LOCAL_CHEAP_PILS 8.0\n"
                              "describe LOCAL_CHEAP_PILS Cheap pills\nscore LOCAL_CHEAP_PILLS 2\nscore SPF_PASS -0.1\n")
    out = io.StringIO()
    call_command("rules", "check", "--no-default", "--dir", str(d), "--json", stdout=out)
    rep = json.loads(out.getvalue())
    assert rep["unknown_names"] == {"local.cf:2": "score LOCAL_CHEAP_PILS", "local.cf:3": "describe LOCAL_CHEAP_PILS"}
    out = io.StringIO()
    call_command("rules", "check", "--no-default", "--dir", str(d), stdout=out)
    assert "2 line(s) of your rule files name a rule no file defines" in out.getvalue()
    assert "score LOCAL_CHEAP_PILS (local.cf:2)" in out.getvalue()


def test_it_lists_capture_tags_and_their_readers(tmp_path: Path) -> None:
    d = write_rules(tmp_path, "header __TO_ADDR To:addr =~ /(?<TO_ADDR>.*)/\n"
                              "uri URI_TO m|\\#%{TO_ADDR}|\nscore URI_TO 1\n"
                              "uri URI_LOST m|%{LOST_TAG}|\nscore URI_LOST 1\n")
    out = io.StringIO()
    call_command("rules", "check", "--no-default", "--dir", str(d), "--json", stdout=out)
    rep = json.loads(out.getvalue())
    assert rep["capture_tags"] == {"TO_ADDR": ["__TO_ADDR"]} and rep["template_rules"] == ["URI_TO"]
    assert "no rule here captures" in rep["unsupported"]["URI_LOST"]
    out = io.StringIO()
    call_command("rules", "check", "--no-default", "--dir", str(d), stdout=out)
    assert "1 rule(s) read captured tags: %{TO_ADDR} (set by __TO_ADDR)" in out.getvalue()


@pytest.mark.django_db
def test_it_trains_from_mark_as_spam_events(tmp_path: Path, store: MemoryStore, settings: object,
                                            caplog: pytest.LogCaptureFixture) -> None:
    from django.conf import settings as dj

    from webadmin.antispam_tasks import train_message

    f = Path(dj.GATEWAY.data_dir) / "test-train-message.eml"
    f.parent.mkdir(parents=True, exist_ok=True)
    f.write_bytes(msg("buy now", "cheap pills"))
    try:
        assert train_message.delay("spam", paths=[str(f)]).get() == {"learned": 1, "unchanged": 0, "missing": 0}
        assert train_message.delay("spam", paths=[str(f)]).get()["unchanged"] == 1
        assert train_message.delay("ham", quarantine_ids=["nope"]).get()["missing"] == 1
        assert "1 of the message(s) to learn as ham were gone" in caplog.text  # (the worker's log says so)
        with pytest.raises(ValueError):
            train_message.delay("spam", paths=["/etc/passwd"]).get()
    finally:
        f.unlink()


@pytest.mark.django_db
def test_mark_as_spam_reads_the_relays_with_the_published_trust_path(store: MemoryStore) -> None:
    """The sender history's network is the first untrusted relay's: learning a stored message
    must place the trust boundary where the milter placed it, or the two keys never meet."""
    from gateway_milter.antispam.bayes import BayesClassifier
    from gateway_milter.antispam.saview import message_view
    from gateway_milter.antispam.tokenizer import sender_key
    from tests.unit.antispam.helpers import make_ctx, policy
    from webadmin.antispam_tasks import learn_bytes
    from webadmin.models import TrustedNetwork
    from webadmin.services import do_publish_policy

    # our MTA took it from our own front relay (192.0.2.25), which had it from the sender
    raw = (b"Received: from front.example.com (front.example.com [192.0.2.25]) by gw.example.com; "
           b"Sat, 28 Nov 2026 10:00:02 +0000\r\n"
           b"Received: from mail.shop.test (mail.shop.test [198.51.100.7]) by front.example.com; "
           b"Sat, 28 Nov 2026 10:00:01 +0000\r\n") + msg("deal", "cheap pills").replace(b"alice@sender.test", b"news@shop.test")
    TrustedNetwork.objects.create(network="192.0.2.0/24")
    do_publish_policy("test")
    milter_view = message_view(make_ctx(raw, policy(trusted=["192.0.2.0/24"])))
    assert sender_key(milter_view) == "sender-net:news@shop.test|198.51.0.0/16"
    assert learn_bytes(raw, True, ["global"], min_learned=1)
    assert learn_bytes(msg("lunch", "see you at noon"), False, ["global"], min_learned=1)  # (a scope needs both)
    res = BayesClassifier(store, 1).classify(milter_view)
    assert (res.sender_spam, res.sender_ham) == (1, 0)


def test_it_rotates_batv_keys_from_a_task(store: MemoryStore) -> None:
    from gateway_milter.layers.backscatter import BackscatterSettings, sign, verify
    from webadmin.antispam_tasks import rotate_batv_keys

    old = sign("a@example.com", store)
    res = rotate_batv_keys.delay().get()
    assert res["key_id"] == 2 and res["keys"] == 2 and res["rotated"] is True
    assert sign("a@example.com", store).startswith("prvs=2")
    assert verify(old, store, BackscatterSettings()) == "a@example.com"  # within the grace period


def test_it_fits_scores_on_the_training_part_of_a_corpus(tmp_path: Path, store: MemoryStore) -> None:
    base = tmp_path / "corpus"
    for name, subject, body in (("spam", "win", "lottery winner prize claim now"), ("easy_ham", "meeting", "agenda review")):
        (base / name).mkdir(parents=True)
        for i in range(40):
            (base / name / f"{i:05d}.{name}").write_bytes(msg(f"{subject} {i}", f"{body} {i}"))
    out_file = tmp_path / "fitted.cf"
    out = io.StringIO()
    call_command("bayes", "fit-scores", "--corpus", str(base), "--min-learned", "2", "--out", str(out_file),
                 stdout=out, stderr=io.StringIO())
    info = json.loads(out.getvalue().split("\n", 1)[1])
    assert info["train_spam"] + info["train_ham"] < 80  # the test part is never used
    from gateway_milter.antispam.scorefit import TOKEN_LOGIT, read_score_sets

    sets = read_score_sets(out_file)
    assert sets["BAYES_00"][1] < sets["BAYES_99"][1] + sets["BAYES_999"][1]
    assert out_file.read_text().startswith("# Fitted scores")
    assert info["prior"] == "spamassassin"
    assert 0.0 <= info["with_bayes"]["cv_caught_at_max_fp_pct"] <= 100.0  # the fit's own cross-validation
    # ... and its ranking of the out-of-fold scores: the two classes here are far apart
    assert 0.0 <= info["with_bayes"]["cv_one_minus_auc_pct"] < 10.0
    # the token model's logit is one of the fit's inputs: a positive weight for these two classes
    assert info["token_model"] is True and sets[TOKEN_LOGIT][1] > 0.0
    # its growth between fold classifiers is measured and recorded (ADR 0058), not applied
    assert info["with_bayes"]["token_logit_growth"] >= 1.0
    out = io.StringIO()
    call_command("bayes", "fit-scores", "--corpus", str(base), "--min-learned", "2", "--out", str(out_file),
                 "--prior", "zero", stdout=out, stderr=io.StringIO())
    assert json.loads(out.getvalue().split("\n", 1)[1])["prior"] == "zero"
    from gateway_milter.antispam.evaluate import fit_scores

    with pytest.raises(ValueError, match="prior"):
        fit_scores([], prior="none")


@pytest.mark.parametrize(("dirs", "says"), [
    (["/nonexistent/rules"], "/nonexistent/rules: [Errno 2] No such file or directory"),
    (["relative/rules"], "rule_dirs[0]: 'relative/rules' is not an absolute path"),
])
def test_rules_check_names_a_bad_directory_instead_of_a_traceback(dirs: list[str], says: str) -> None:

    with pytest.raises(CommandError) as e:
        call_command("rules", "check", "--no-default", *[a for d in dirs for a in ("--dir", d)], stdout=io.StringIO())
    assert str(e.value).startswith(says), str(e.value)


@pytest.mark.django_db  # (the published policy's trust path)
def test_training_skips_empty_files_and_says_when_it_found_nothing(tmp_path: Path, store: MemoryStore) -> None:
    d = tmp_path / "spam"
    d.mkdir()
    (d / "empty.eml").write_bytes(b"")
    (d / "blank.eml").write_bytes(b"\r\n \n")
    (d / "one.eml").write_bytes(msg("win", "lottery prize"))
    out = io.StringIO()
    call_command("bayes", "train", "--spam", str(d), stdout=out, stderr=io.StringIO())
    assert out.getvalue().strip() == "learned 1 message(s), 0 already known, 2 empty file(s) skipped"
    (tmp_path / "none").mkdir()
    out = io.StringIO()
    call_command("bayes", "train", "--spam", str(tmp_path / "none"), stdout=out, stderr=io.StringIO())
    assert out.getvalue().strip() == f"learned 0 message(s), 0 already known; no message in {tmp_path / 'none'}"


@pytest.mark.django_db  # (the published policy's domains)
def test_train_names_a_domain_scope_as_the_milter_reads_it(tmp_path: Path, store: MemoryStore) -> None:
    from gateway_milter.antispam.bayes import BayesClassifier
    from webadmin.models import Domain
    from webadmin.services import do_publish_policy

    Domain.objects.create(name="a.example", aliases=["alias-a.example"])
    do_publish_policy("test")
    spam, ham = corpus(tmp_path)
    err = io.StringIO()
    call_command("bayes", "train", "--spam", str(spam), "--ham", str(ham), "--scope", "dom:Alias-A.example.",
                 stdout=io.StringIO(), stderr=err)
    bc = BayesClassifier(store)
    assert (bc.stats("dom:a.example")["spam_learned"], bc.stats("dom:a.example")["ham_learned"]) == (3, 2)
    assert bc.stats("dom:alias-a.example")["spam_learned"] == 0 and "warning" not in err.getvalue()
    err = io.StringIO()
    call_command("bayes", "train", "--spam", str(spam), "--scope", "dom:elsewhere.test", stdout=io.StringIO(), stderr=err)
    assert "elsewhere.test is not a domain of this gateway" in err.getvalue()
    with pytest.raises(CommandError, match="is not a scope"):
        call_command("bayes", "train", "--spam", str(spam), "--scope", "domain:a.example", stdout=io.StringIO())


@pytest.mark.django_db
def test_train_says_the_store_failed_instead_of_a_traceback(tmp_path: Path) -> None:
    from gateway_milter.store import StoreError, set_default_store

    class DownStore(MemoryStore):
        def counters(self, requests: object) -> list[list[int]]:
            raise StoreError("connection refused")

    spam, _ = corpus(tmp_path)
    set_default_store(DownStore())
    try:
        with pytest.raises(CommandError, match="the token store failed: connection refused .*run it again"):
            call_command("bayes", "train", "--spam", str(spam), stdout=io.StringIO(), stderr=io.StringIO())
        with pytest.raises(CommandError, match="the token store failed"):
            call_command("bayes", "stats", stdout=io.StringIO())
    finally:
        set_default_store(None)
