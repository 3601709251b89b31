"""Bayes: tokenizer, classifier, idempotent training, scopes and fallback, one round trip."""

from __future__ import annotations

import hashlib
import math
import random

import pytest

from gateway_milter.antispam.bayes import (W_MOD, BayesClassifier, chi2q, log_chi2_tails, mixed_order, model_keys,
                                           scope_key, token_logit, token_step, weight_key, weight_of)
from gateway_milter.antispam.saview import message_view
from gateway_milter.antispam.tokenizer import (HEADERS, MAX_FEATURES, MAX_ORDER_HEADERS, _RCVD_HOST, _WORD, _WORD_ASCII,
                                              _shape, _words, hashed, header_order, is_ignored_header, tokens)
from gateway_milter.layers.bayes import band, scopes_for
from gateway_milter.store.memory import MemoryStore
from tests.services import shared_path
from tests.unit.antispam.helpers import hashes, hashes_as_read, make_ctx, msg, policy

SPAM_WORDS = ["viagra", "cheap", "pills", "winner", "lottery", "prize", "claim", "unsubscribe", "offer", "casino", "bonus"]
HAM_WORDS = ["meeting", "agenda", "project", "review", "lunch", "report", "tomorrow", "schedule", "patch", "build", "release"]


def sample(words: list[str], i: int, rnd: random.Random) -> bytes:
    body = " ".join(rnd.choice(words) for _ in range(40)) + f" filler{i % 7}"
    return msg(f"note {rnd.choice(words)}", body)


def trained(store: MemoryStore, n: int = 30, min_learned: int = 20) -> BayesClassifier:
    rnd = random.Random(5)
    bc = BayesClassifier(store, min_learned)
    for i in range(n):
        bc.learn(message_view(make_ctx(sample(SPAM_WORDS, i, rnd))), True)
        bc.learn(message_view(make_ctx(sample(HAM_WORDS, i, rnd))), False)
    return bc


def test_it_separates_spam_from_ham(store: MemoryStore) -> None:
    bc = trained(store)
    rnd = random.Random(99)
    ps = bc.classify(message_view(make_ctx(sample(SPAM_WORDS, 1000, rnd)))).probability
    ph = bc.classify(message_view(make_ctx(sample(HAM_WORDS, 1001, rnd)))).probability
    assert ps is not None and ph is not None
    assert ps > 0.95 and ph < 0.05


def test_it_gives_no_opinion_before_min_learned(store: MemoryStore) -> None:
    bc = trained(store, n=10, min_learned=20)
    assert bc.classify(message_view(make_ctx(msg()))).probability is None


def test_it_trains_idempotently_and_corrects_labels(store: MemoryStore) -> None:
    bc = BayesClassifier(store, 1)
    view = message_view(make_ctx(msg("same", "identical body words")))
    assert bc.learn(view, True) is True
    assert bc.learn(view, True) is False  # the same message twice: no change
    assert bc.stats()["spam_learned"] == 1
    assert bc.learn(view, False) is True  # relearned as ham: moved, not doubled
    st = bc.stats()
    assert (st["spam_learned"], st["ham_learned"]) == (0, 1)
    assert bc.forget(view) is True
    assert bc.stats()["ham_learned"] == 0 and bc.stats()["fields"] == 0
    # the counts are gone; the token model's steps stay (an online model cannot take one back)
    assert bc.stats()["token_weights"] > 0
    assert bc.wipe("global") >= 2 and bc.stats()["token_weights"] == 0  # --wipe clears both


def test_the_token_model_learns_online_and_separates(store: MemoryStore) -> None:
    bc = trained(store)
    rnd = random.Random(99)
    cs = bc.classify(message_view(make_ctx(sample(SPAM_WORDS, 1000, rnd))))
    ch = bc.classify(message_view(make_ctx(sample(HAM_WORDS, 1001, rnd))))
    assert cs.token_logit is not None and ch.token_logit is not None
    assert cs.token_logit > 1.0 and ch.token_logit < -1.0
    # read in the same single round trip as the counts
    before = store.round_trips
    bc.classify(message_view(make_ctx(sample(SPAM_WORDS, 1002, rnd))))
    assert store.round_trips == before + 1
    # learning (autolearn does it in the milter): one read and one write, the token model included
    before = store.round_trips
    assert bc.learn(message_view(make_ctx(sample(SPAM_WORDS, 1003, rnd))), True, ["dom:example.com", "global"])
    assert store.round_trips == before + 2


def test_the_token_model_waits_for_min_learned_of_each_class(store: MemoryStore) -> None:
    bc = trained(store, n=30, min_learned=20)
    st = bc.stats()
    assert (st["token_model_spam"], st["token_model_ham"]) == (30, 30) and st["token_weights"] > 0
    view = message_view(make_ctx(sample(SPAM_WORDS, 1000, random.Random(3))))
    assert bc.classify(view).token_logit is not None
    assert BayesClassifier(store, 31).classify(view).probability is None  # neither is ready at 31
    store.add_counters([(weight_key("global"), {"#h": -25})])  # the model learned 5 ham, the counts 30
    c = bc.classify(view)
    assert c.probability is not None and c.token_logit is None


def test_header_order_pairs_the_fields_the_sender_wrote() -> None:
    raw = (b"Return-Path: <a@sender.test>\r\nX-Spam-Status: No\r\nReceived: from relay.test by mx.test\r\n"
           b"Received: from client.test by relay.test\r\nX-Mailer: Mass 1.0\r\nFrom: a@sender.test\r\n"
           b"X-Spam-Flag: YES\r\nSubject: hi\r\nTo: b@example.com\r\nFrom: again@sender.test\r\n\r\nbody\r\n")
    # after the last Received only (not the trace above it), no field of another filter, each pair once
    assert header_order(message_view(make_ctx(raw))) == [
        "hseq:x-mailer>from", "hseq:from>subject", "hseq:subject>to", "hseq:to>from"]
    assert header_order(message_view(make_ctx(msg()))) == [
        "hseq:from>to", "hseq:to>subject", "hseq:subject>message-id", "hseq:message-id>date",
        "hseq:date>mime-version", "hseq:mime-version>content-type"]
    # hostile input: thousands of fields give a bounded number of pairs
    many = "".join(f"X-H{i}: v\r\n" for i in range(5000))
    assert len(header_order(message_view(make_ctx(msg(headers=many))))) < MAX_ORDER_HEADERS
    # the counts never learn these; the token model does, once each
    view = message_view(make_ctx(msg()))
    feat_keys = hashed(tokens(view))
    keys = model_keys(feat_keys, view)
    assert keys[:len(feat_keys)] == feat_keys and set(keys[len(feat_keys):]) == set(hashed(header_order(view)))


def test_the_token_model_learns_the_header_order_and_the_counts_do_not(store: MemoryStore) -> None:
    bc = BayesClassifier(store, 1)
    rnd = random.Random(7)
    mass = "X-Mailer: Mass 1.0\r\nX-Priority: 1\r\n"
    for i in range(40):  # the same words in both classes: only the header order tells them apart
        words = " ".join(rnd.choice(SPAM_WORDS + HAM_WORDS) for _ in range(30))
        bc.learn(message_view(make_ctx(msg(f"s{i}", words, headers=mass))), True)
        bc.learn(message_view(make_ctx(msg(f"h{i}", words))), False)
    pair = hashed(["hseq:x-mailer>x-priority"])[0]
    assert weight_of(store.counters([(weight_key("global"), [pair])])[0][0]) > 0.5
    assert store.counters([(scope_key("global"), ["t" + pair])])[0][0] == 0
    words = " ".join(rnd.choice(SPAM_WORDS + HAM_WORDS) for _ in range(30))
    cs = bc.classify(message_view(make_ctx(msg("new", words, headers=mass))))
    ch = bc.classify(message_view(make_ctx(msg("new", words))))
    assert cs.token_logit is not None and ch.token_logit is not None and cs.token_logit > ch.token_logit + 0.5


def test_classify_then_learn_reads_one_tokenization_and_learns_as_a_fresh_view_would() -> None:
    from gateway_milter.antispam.bayes import message_keys

    def trained_store(classify_first: bool) -> MemoryStore:
        st = MemoryStore()
        bc = trained(st, 30, 20)
        raw = msg("autolearn me", "cheap pills lottery prize claim", headers="From: Some One <one@sender.example>\r\n")
        view = message_view(make_ctx(raw))
        if classify_first:  # as the milter does: the layer classifies, then autolearn learns the same view
            assert bc.classify(view).probability is not None
            mk = message_keys(view)
            assert message_keys(view) is mk  # made once per message
            assert mk.nfeats == len(mk.features) == len(tokens(view)) and len(mk.keys) == mk.nfeats + 1  # + the sender
        assert bc.learn(view, True)
        return st

    # the same store either way: the keys learn reads from the message's cache are those a fresh view makes
    assert hashes(trained_store(True)) == hashes(trained_store(False))


def test_learning_a_batch_leaves_the_store_as_learning_one_by_one() -> None:
    from gateway_milter.antispam.bayes import learn_item

    rnd = random.Random(11)
    raws = [(sample(SPAM_WORDS if i % 3 else HAM_WORDS, i, rnd), bool(i % 3)) for i in range(24)]
    views = [message_view(make_ctx(r)) for r, _ in raws]
    scopes = [("user:bob@example.com", "dom:example.com", "global") if i % 4 == 0 else ("global",) for i in range(24)]
    # a message met twice in a batch, then corrected in the same batch, and one learned before
    plan = [(i, raws[i][1]) for i in range(24)] + [(5, raws[5][1]), (7, not raws[7][1]), (0, raws[0][1])]

    def store_after(batch: int) -> tuple[MemoryStore, list[bool], int]:
        st = MemoryStore()
        bc = trained(st, 25, 20)
        bc.learn(views[3], raws[3][1])  # already learned as this class: nothing happens to it
        got: list[bool] = []
        items = [learn_item(views[i], spam, scopes[i]) for i, spam in plan]
        before = st.round_trips
        for k in range(0, len(items), batch):
            got += bc.learn_many(items[k:k + batch])
        return st, got, st.round_trips - before

    one_by_one, learned, trips = store_after(1)
    assert learned.count(False) == 3  # message 3 (learned before), 5 again, 0 again
    assert not learned[3] and not learned[24] and learned[25] and not learned[26]
    assert trips == 27 + 24  # a read each, a write for each that learned
    for batch, want_trips in ((4, 14), (27, 2)):  # one read and one write a batch
        st, got, trips = store_after(batch)
        assert got == learned and trips == want_trips
        assert hashes_as_read(st) == hashes_as_read(one_by_one)



def test_token_weights_survive_concurrent_first_writes_and_negative_values() -> None:
    # two learners that both found a field empty each add W_MOD: the value still decodes
    raw = W_MOD + 1_500_000 + W_MOD - 250_000
    assert weight_of(raw) == 1.25
    assert weight_of(W_MOD - 3_000_000) == -3.0 and W_MOD - 3_000_000 > 0  # stored above 0 (never deleted)
    assert weight_of(0) == 0.0
    assert token_logit([W_MOD + 2_000_000, W_MOD + 2_000_000, 0, 0]) == 2.0  # 4 / sqrt(4)
    dws, dgs = token_step([0, W_MOD + 1_000_000], [0, 5_000_000], True)
    assert dws[0] > W_MOD and dws[1] > 0  # toward spam; the empty field gets W_MOD once
    assert all(d > 0 for d in dgs)
    dws, _ = token_step([W_MOD + 1_000_000], [0], False)
    assert dws[0] < 0  # toward ham


def test_mixed_order_interleaves_classes_deterministically() -> None:
    items = [(True, f"spam {i}".encode()) for i in range(50)] + [(False, f"ham {i}".encode()) for i in range(50)]
    a = mixed_order(items, lambda it: it[1])
    assert a == mixed_order(list(reversed(items)), lambda it: it[1])
    assert sum(x[0] for x in a[:50]) not in (0, 50)  # not all of one class first


def test_it_reads_every_scope_in_one_round_trip(store: MemoryStore) -> None:
    bc = trained(store)
    before = store.round_trips
    bc.classify(message_view(make_ctx(msg())), ["user:bob@example.com", "dom:example.com", "global"])
    assert store.round_trips - before == 1


def test_it_falls_back_to_a_wider_scope(store: MemoryStore) -> None:
    bc = trained(store)
    res = bc.classify(message_view(make_ctx(msg())), ["dom:example.com", "global"])
    assert res.scope == "global"


def test_it_ignores_headers_of_other_filters() -> None:
    plain = tokens(message_view(make_ctx(msg("s", "body"))))
    tagged = tokens(message_view(make_ctx(msg("s", "body", headers="X-Spam-Flag: YES\r\nX-Spam-Status: Yes, score=9\r\n"
                                                              "X-Foo-Spam-Score: 10\r\n"))))
    assert plain == tagged


def test_it_tokenizes_urls_attachments_and_word_pairs() -> None:
    raw = (b"From: a@b.test\r\nSubject: hi\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=XX\r\n\r\n"
           b"--XX\r\nContent-Type: text/plain\r\n\r\nclick http://promo.shop.example.co.uk/buy now please\r\n"
           b"--XX\r\nContent-Type: application/zip\r\nContent-Disposition: attachment; filename=\"invoice.zip\"\r\n\r\n"
           b"UEsDBA==\r\n--XX--\r\n")
    t = tokens(message_view(make_ctx(raw)))
    assert "url-dom:example.co.uk" in t and "att:invoice.zip" in t and "att-ext:zip" in t
    assert "click|1|http" in t and "now|1|please" in t


def test_it_tokenizes_a_message_into_these_features_in_this_order() -> None:
    # pinned by hand: the order is part of the output (MAX_FEATURES keeps the first ones); a
    # faster tokenizer must give exactly this list
    raw = ("Received: from relay.mail.example.net (relay.mail.example.net [198.51.100.23])\r\n"
           "\tby MX1.Example.ORG with ESMTP id 42; Mon, 1 Jan 2024 10:00:00 +0000\r\n"
           "From: \"Shop Team\" <Deals@Promo.Example.COM>\r\nTo: bob@example.com\r\n"
           "Subject: Save 50% on 2,000 items: a 3rd chance\r\nMessage-ID: <abc.123@Mailer.Example.com>\r\n"
           "X-Mailer: Mass  Mailer\t9.1\r\nX-Spam-Status: Yes, score=9\r\nMIME-Version: 1.0\r\n"
           "Content-Type: text/plain; charset=\"ISO-8859-1\"\r\n\r\n"
           "Hi Bob, prices from $1,299.00 -- call 555-0100 today!\r\n"
           "Code: QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo0 or visit https://www.shop.example.com/offers/today?id=7 now.\r\n"
           "Il y a d_un x'y \u0663\u0664 it's o.k.\r\n").encode("utf-8")
    words = ["hi", "bob", "prices", "from", "num:8", "call", "555-0100", "today", "code", "skip:q:30", "or", "visit",
             "https", "www.shop.example.com", "offers", "today", "id", "now", "il", "d_un", "x'y", "num:2", "it's", "o.k"]
    assert tokens(message_view(make_ctx(raw))) == [
        "rcvd-dom:example.net", "rcvd-dom:example.org", "rcvd-ip:198.51.100",
        "from:shop", "from:team", "from:addr:deals@promo.example.com", "from:dom:promo.example.com",
        "subj:save", "subj:num:2", "subj:on", "subj:num:5", "subj:items", "subj:3rd", "subj:chance",
        "x-mailer:mass mailer 9.1", "mime-version:1.0", "ct:text/plain", "charset:iso-8859-1",
        "msgid-dom:mailer.example.com", "part:text/plain",
        "url-host:www.shop.example.com", "url-dom:example.com", "url-w:offers", "url-w:today",
        *dict.fromkeys(words), *(f"{a}|1|{b}" for a, b in zip(words, words[1:], strict=False))]


def test_the_fast_patterns_match_as_their_readable_forms() -> None:
    # _WORD, _WORD_ASCII and _RCVD_HOST are written for the regex engine's speed; these are their meanings
    import re

    word = re.compile(r"[^\W_](?:[\w'$%.,-]*[^\W_])?")
    rcvd_host = re.compile(r"(?i)\b(?:from|by)\s+([a-z0-9][a-z0-9.-]*\.[a-z]{2,})")
    rnd = random.Random(12)
    pieces = ["from", "FROM", "By", "bY", "xfrom", "_by", "\u00e9by", " ", "\t", "\n", "(", "[", "a", "Q9", "ex.com",
              "_", "'", "$", "%", ".", ",", "-", "--", "1,2", "\u00b2", "\u0663", "\u212a", "\u017f", "\u0130", "\u0131",
              "\u00a0", "\u0301", "x" * 25]
    for _ in range(3000):
        text = "".join(rnd.choice(pieces) for _ in range(rnd.randrange(1, 14)))
        assert _WORD.findall(text) == word.findall(text), text
        ascii_text = text.encode("ascii", "ignore").decode()
        assert _WORD_ASCII.findall(ascii_text) == word.findall(ascii_text), ascii_text
        assert _RCVD_HOST.findall(text) == rcvd_host.findall(text), text
        # _words splits ASCII text without the expression: the same words
        assert _words(ascii_text, 10_000) == words_by_the_expression(ascii_text), ascii_text


def words_by_the_expression(text: str) -> list[str]:
    """tokenizer._words of an ASCII text as the expression finds them (no bound reached)."""
    return [w if len(w) <= 20 and not w[0].isdigit() else _shape(w) for w in _WORD_ASCII.findall(text.lower())
            if len(w) > 1]


def test_the_ascii_words_split_without_the_expression_are_its_matches_on_the_corpus() -> None:
    corpus = shared_path("corpus", "spamassassin")
    if not corpus.is_dir():
        pytest.skip(f"{corpus} not present: the shared corpus is not on this machine")
    n = 0
    for d in sorted(corpus.iterdir()):
        for p in sorted(d.iterdir())[:300] if d.is_dir() else []:
            text = p.read_bytes().decode("latin-1").encode("ascii", "replace").decode()
            assert _words(text, 1_000_000) == words_by_the_expression(text), p
            n += 1
    assert n > 1000


def test_no_header_the_tokenizer_reads_is_one_it_ignores() -> None:
    # tokens() reads the HEADERS without matching them against the ignored ones
    assert not [h for h in HEADERS if is_ignored_header(h)]


@pytest.mark.parametrize("name", [
    "X-Spam-Status", "X-Spam", "X-Spam_score", "X-Spam_bar", "X-Spamd-Bar", "X-Spamd-Result",
    "X-Rspamd-Score", "X-Rspamd-Queue-Id", "X-Ham-Report", "X-Microsoft-Antispam",
    "X-Microsoft-Antispam-Mailbox-Delivery", "X-Forefront-Antispam-Report", "X-Barracuda-Spam-Score",
    "X-Spambayes-Classification", "X-Antispam", "X-SpamExperts-Class", "X-SpamTest-Status", "X-SpamScore",
    "X-Junk-Score", "X-Barracuda-Bayes", "X-Cloudmark-SP-Result", "X-CMAE-Score", "X-ESET-AS", "X-TMASE-Result",
    "X-TM-AS-Result", "X-Sophos-SenderHistory", "X-Halon-Scanned", "X-UCE-Status", "X-Policyd-Weight",
    "X-Bayes-Prob", "X-Recommended-Action", "X-Greylist", "X-Scanned-By", "X-Gmail-Labels", "X-SpamAssassin",
    "X-MailScanner-SpamCheck", "X-MailScanner-SpamScore", "X-Spamina-Bogosity",
    # SpamAssassin's Bayes ignores these as well ($IGNORED_HDRS): filters' and scanners' fields,
    # mail stores' and readers' annotations, which sit at the end of the header (header_order)
    "X-RBL-Warning", "X-Pyzor", "X-DCC-Servers-Metrics", "X-Filtered-By", "X-Scanner", "X-SpamCop-Checked",
    "X-SMTPD", "Spam-Apparently-To", "SPAM", "X-Mass-Check-Id", "X-MDaemon-Deliver-To", "Status", "X-Status",
    "X-Flags", "X-Keywords", "Replied", "Forwarded", "Lines", "Content-Length", "X-UID", "X-UIDL", "X-IMAPbase",
    "X-Mozilla-Status", "X-VM-Labels", "X-Gnus-Mail-Source", "Xref", "X-OriginalArrivalTime",
    "X-Proofpoint-Virus-Version", "X-AntiVirus", "X-IronPort-AV", "X-ClamAV-Scanned", "X-Kaspersky-Antivirus"])
def test_it_ignores_every_common_filters_verdict_header(name: str) -> None:
    # else Bayes learns another filter's verdict (its header's presence) instead of the message
    assert is_ignored_header(name)


@pytest.mark.parametrize("name", ["X-Mailer", "X-Spammer-Name", "X-Priority", "Subject", "X-Hamster", "X-AntiAbuse",
                                  "X-Junkie", "Thread-Index", "Thread-Topic", "Content-Class", "X-Statusbar"])
def test_it_keeps_headers_that_are_no_filters_verdict(name: str) -> None:
    assert not is_ignored_header(name)


def test_it_bounds_features_on_hostile_input() -> None:
    body = " ".join(f"w{i}" for i in range(100_000))
    t = tokens(message_view(make_ctx(msg("x", body))))
    assert len(t) <= MAX_FEATURES


def test_it_maps_probabilities_to_spamassassin_bands() -> None:
    assert band(0.9995)[0] == "BAYES_999" and band(0.995)[0] == "BAYES_99"
    assert band(0.5)[0] == "BAYES_50" and band(0.001)[0] == "BAYES_00"
    assert band(0.995, {"BAYES_99": 9.0})[1] == 9.0


def test_it_computes_chi_square_tail() -> None:
    assert abs(chi2q(2.0, 2) - 0.36788) < 1e-4
    assert chi2q(0.0, 4) == 1.0


def test_it_picks_user_domain_and_global_scopes() -> None:
    pol = policy({"bayes": {"per_user": True}})
    ctx = make_ctx(msg(), pol)
    assert scopes_for(ctx, pol.settings_for("bayes", "example.com")) == ["user:bob@example.com", "dom:example.com", "global"]


def test_it_scores_through_the_layer(store: MemoryStore) -> None:
    trained(store, n=30, min_learned=20)
    pol = policy({"bayes": {"min_learned": 20}})
    rnd = random.Random(7)
    ctx = make_ctx(sample(SPAM_WORDS, 5000, rnd), pol)
    res = ctx.layer("bayes")
    assert res.fact("probability") > 0.9 and res.symbols and res.symbols[0].name.startswith("BAYES_9")


def test_it_keeps_spam_and_ham_counts_of_a_token_in_one_field(store: MemoryStore) -> None:
    bc = BayesClassifier(store, 1)
    spam = message_view(make_ctx(msg("a", "shared words here")))
    ham = message_view(make_ctx(msg("b", "shared words there")))
    bc.learn(spam, True)
    bc.learn(ham, False)
    bc.learn(message_view(make_ctx(msg("c", "shared words again"))), True)
    key = hashed(["shared"])[0]
    (packed,) = store.counters([("bayes2:global", ["t" + key])])[0]
    assert (packed >> 32, packed & 0xFFFFFFFF) == (2, 1)  # two spam, one ham contain "shared"
    bc.forget(spam)
    (packed,) = store.counters([("bayes2:global", ["t" + key])])[0]
    assert (packed >> 32, packed & 0xFFFFFFFF) == (1, 1)


def test_it_computes_chi_square_tails_in_the_log_domain() -> None:
    for x2, v in ((2.0, 2), (10.0, 20), (299.0, 300), (500.0, 300), (40.0, 300)):
        lq, lp = log_chi2_tails(x2, v)
        assert abs(math.exp(lq) - chi2q(x2, v)) < 1e-12
        assert abs(math.exp(lq) + math.exp(lp) - 1.0) < 1e-12
    lq, lp = log_chi2_tails(4000.0, 300)  # survival far below the smallest double
    assert chi2q(4000.0, 300) == 0.0 and -2000.0 < lq < -1000.0 and lp == 0.0
    lq, lp = log_chi2_tails(1.0, 300)  # CDF far below the smallest double
    assert -1e-300 < lq <= 0.0 and lp < -700.0
    assert log_chi2_tails(0.0, 4) == (0.0, -math.inf)


def test_it_ranks_messages_it_is_certain_about_by_log_odds(store: MemoryStore) -> None:
    bc = trained(store)
    rnd = random.Random(11)
    words = [rnd.choice(SPAM_WORDS) for _ in range(60)]
    some = bc.classify(message_view(make_ctx(msg("note", " ".join(words[:15])))))
    most = bc.classify(message_view(make_ctx(msg("note", " ".join(words)))))  # the same and more evidence
    ham = bc.classify(message_view(make_ctx(sample(HAM_WORDS, 2001, rnd))))
    assert some.probability == most.probability == 1.0  # saturated ...
    assert most.logodds > some.logodds > 20.0  # ... the log-odds still orders them
    assert ham.logodds < -20.0 and ham.probability == 0.0
    half = bc.classify(message_view(make_ctx(msg("x", "meeting agenda viagra lottery"))))
    assert half.probability is not None
    assert abs(half.probability - 1.0 / (1.0 + math.exp(-half.logodds))) < 1e-4  # the same number where p is exact


def test_store_keys_stay_48_bit_blake2b_of_the_utf8_feature() -> None:
    # learned stores are keyed by these: a faster way of hashing must give the same keys
    feats = ["shared", "url-dom:example.com", "w|1|ü", "", "lone\udc80surrogate"]
    want = [hashlib.blake2b(f.encode("utf-8", "surrogatepass"), digest_size=6).hexdigest() for f in feats]
    assert hashed(feats) == want
    assert hashed(["shared"]) == ["1d065be4e747"]  # pinned: the key every release has used


def _combine_token_by_token(ns: int, nh: int, packed: list[int]) -> tuple[float, float, int, list[tuple[int, float]]]:
    # the classifier's arithmetic as first written: a clue per feature, the largest 150 of
    # (|f - 0.5|, f, index), logs summed in that order
    import heapq

    from gateway_milter.antispam import bayes as b

    clues = []
    for i, v in enumerate(packed):
        s, h = v >> 32, v & b.HAM_MASK
        if not (s or h):
            continue
        sr, hr = min(s * (1.0 / ns), 1.0), min(h * (1.0 / nh), 1.0)
        n = s + h
        f = (b.UNKNOWN_STRENGTH * b.UNKNOWN_PROB + n * sr / (sr + hr)) / (b.UNKNOWN_STRENGTH + n)
        if f <= 0.5 - b.MIN_STRENGTH or f >= 0.5 + b.MIN_STRENGTH:
            clues.append((abs(f - 0.5), f, i))
    clues = heapq.nlargest(b.MAX_DISCRIMINATORS, clues)
    a = c = 0.0
    for _d, f, _i in clues:
        f = min(max(f, 1e-6), 1 - 1e-6)
        a += math.log(f)
        c += math.log(1.0 - f)
    lq_s, lp_s = log_chi2_tails(-2.0 * c, 2 * len(clues))
    lq_h, lp_h = log_chi2_tails(-2.0 * a, 2 * len(clues))
    logodds = b._logaddexp(lp_s, lq_h) - b._logaddexp(lq_s, lp_h)
    return round(logodds, 4), a, len(clues), [(i, f) for _d, f, i in clues[:20]]


def test_combining_by_distinct_counts_gives_the_token_by_token_figures() -> None:
    rnd = random.Random(3)
    bc = BayesClassifier(MemoryStore(), 1)
    for trial in range(300):
        ns, nh = rnd.randint(5, 3000), rnd.randint(5, 3000)
        small = trial % 2 == 0  # few distinct counts: many ties in |f - 0.5|, f
        packed = [0 if rnd.random() < 0.4 else
                  (rnd.randint(0, 3 if small else ns) << 32) + rnd.randint(0, 3 if small else nh)
                  for _ in range(rnd.randint(0, 600))]
        got = bc._combine("global", ns, nh, packed, [f"f{i}" for i in range(len(packed))])
        quiet = bc._combine("global", ns, nh, packed, None)  # the classifier's own path: no names
        logodds, _a, used, top = _combine_token_by_token(ns, nh, packed)
        assert got.used == used == quiet.used
        assert quiet.clues == ()
        if used:
            assert got.logodds == logodds == quiet.logodds
            assert got.probability == quiet.probability
            assert [(n, f) for n, f in got.clues] == [(f"f{i}", round(f, 4)) for i, f in top]
