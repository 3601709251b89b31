"""The RE2 prefilter (re2filter.py): wherever a rule's Python expression matches, RE2's
expression does; where RE2's is marked exact, it matches exactly there. Hand-made cases for each
construct the translation widens or writes out, and, when ../shared is present, the Debian
rules it serves on corpus messages."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from gateway_milter.antispam import re2filter
from gateway_milter.antispam.engine import RuleEngine, _Texts, engine_for
from gateway_milter.antispam.perlre import parse_perl_regex
from gateway_milter.antispam.sarules import load_rules
from gateway_milter.antispam.saview import message_view
from tests.unit.antispam.helpers import make_ctx, msg, write_rules
from tests.unit.antispam.test_rules_lazy import CORPUS, corpus_sample

needs_re2 = pytest.mark.skipif(not re2filter.available(), reason="google-re2 is not installed")

TEXTS = ["", "x", "\n", "abc", "ABC", "Straße", "\u212aelvin", "\u212aelvin kelvin", "\u017fecret", "\u017fecret secret",
         "caf\u00e9 CAF\u00c9",
         "a\x0bb", "a\x0cb", "a b\n", "end\n", "line one\nline two\n", "foofoo", "foo bar", "foobar",
         "Name: ____ Address: ____ Phone: ____", "name address phone age", "I have installed malware",
         "my m\u0430lware", "x" * 50, "tab\there", "\u00e9t\u00e9", "a\u2028b", "abcabcabcabcabc", "aaa", "k K",
         "WIN $100 NOW", "\u00c4rger \u00e4rger"]

CASES = [  # (perl, lines): Python semantics of each construct against RE2's
    (r"/kelvin/i", True),  # RE2's own case folding would take U+212A: written out as classes
    (r"/secret/i", True),  # and U+017F
    (r"/caf\x{e9}/i", True),  # Python's ASCII case folding leaves é/É apart
    (r"/\x{c4}rger/i", True),
    (r"/[a-c]{3}/i", True),
    (r"/[^k]elvin/i", True),
    (r"/a\sb/", True),  # Python's \s takes the vertical tab, RE2's does not
    (r"/a\Sb/", True),
    (r"/a[\s]b/", True),
    (r"/^line two$/", True),  # body rules are multi-line
    (r"/^end$/", False),  # Python's $: the end or before a last newline
    (r"/end\Z/", False),
    (r"/end\z/", False),
    (r"/\Aline/", True),
    (r"/foo(?=bar)/", True),  # look-around dropped
    (r"/foo(?!bar)/", True),
    (r"/(?<=foo)bar/", True),
    (r"/(foo)\1/", True),  # back-reference: any text
    (r"/(?>a+)a/", True),  # atomic group: can only fail where a plain group matches
    (r"/a++a/", True),
    (r"/(?:abc){5}/", True),
    (r"/(?:abc){2,4}?c/", True),
    (r"/x{1001}/", True),  # over RE2's count
    (r"/(?s)line.two/", True),
    (r"/line.two/", True),
    (r"/(?i:ABC)abc/", True),
    (r"/\bbar\b/", True),
    (r"/\Bbar/", True),
    (r"/\d+/", True),
    (r"/\$\d+/", True),
    (r"/\w\W\w/", True),
    (r"/(?:name|address|phone|age)\W{1,5}(?:name|address|phone|age)/i", True),
    (r"/(?:I(?:'ve|\shave)?\s(?:put|installed)\s|my\s)(?:mal+ware|virus)/i", True),
]


@needs_re2
@pytest.mark.parametrize("perl,lines", CASES)
def test_re2_matches_wherever_python_does_and_exactly_when_it_says_so(perl: str, lines: bool) -> None:
    pat, _ = parse_perl_regex(perl, lines=lines)
    pf = re2filter.prefilter(pat)
    assert pf is not None, perl
    for text in TEXTS:
        py = pat.compiled.search(text) is not None
        got = pf.may_match(text)
        assert got is not None
        if py:
            assert got, (perl, text, pf.expression)
        if pf.exact:
            assert got == py, (perl, text, pf.expression)


@needs_re2
def test_exactness_is_claimed_only_where_nothing_was_widened() -> None:
    def exact(perl: str, lines: bool = True) -> bool:
        pat, _ = parse_perl_regex(perl, lines=lines)
        pf = re2filter.prefilter(pat)
        assert pf is not None
        return pf.exact

    assert exact(r"/kelvin/i") and exact(r"/a\sb/") and exact(r"/^x$/") and exact(r"/(?:abc){5}/")
    assert not exact(r"/foo(?=bar)x/") and not exact(r"/foo(?!bar)/") and not exact(r"/(a)\1/")
    assert not exact(r"/(?>a+)a/") and not exact(r"/end$\n/", lines=False) and not exact(r"/x{1001}/")
    # a look-ahead, or Python's $ (perlre's (?=\n?\Z)), with nothing after it in the pattern:
    # whether there is a match is the same with what it looks at consumed
    assert exact(r"/foo(?=bar)/") and exact(r"/^end$/", lines=False) and exact(r"/(?:a|^\s*$)/", lines=False)


@needs_re2
def test_tail_look_aheads_and_white_space_classes_agree_with_python() -> None:
    """The forms RE2 now takes exactly: a look-ahead or $ at the end of a branch that ends the
    pattern, and a negated class holding \\S (white space but its other members)."""
    rnd = random.Random(11)
    alphabet = "ab\"x \n\t\x0b:;"
    for perl in (r"/(?:^|b)a\s*$/", r"/a(?=b\s)/", r"/(?:x|^\s*$)/", r'/[^\S"]a/', r"/a[^\S\t]b/", r"/[^\S]/"):
        pat, _ = parse_perl_regex(perl)
        pf = re2filter.prefilter(pat)
        assert pf is not None and pf.exact, perl
        for _ in range(400):
            text = "".join(rnd.choice(alphabet) for _ in range(rnd.randint(0, 10)))
            assert pf.may_match(text) == (pat.compiled.search(text) is not None), (perl, text)


@needs_re2
def test_random_texts_agree_with_python_on_exact_expressions() -> None:
    rnd = random.Random(7)
    alphabet = "abcKks \n\x0b\t\u212a\u017f\u00e9\u00c9_-:1"
    pats = [r"/k\s*s/i", r"/^[a-c]+$/", r"/(?:ab|c){2,3}k/i", r"/[^a-c\s]{2}/", r"/\bk\w*\b/i", r"/s\W+k/"]
    for perl in pats:
        pat, _ = parse_perl_regex(perl, lines=True)
        pf = re2filter.prefilter(pat)
        assert pf is not None and pf.exact, perl
        for _ in range(400):
            text = "".join(rnd.choice(alphabet) for _ in range(rnd.randint(0, 12)))
            assert pf.may_match(text) == (pat.compiled.search(text) is not None), (perl, text)


@needs_re2
def test_a_text_re2_cannot_read_is_left_to_python() -> None:
    pat, _ = parse_perl_regex(r"/abc/", lines=True)
    pf = re2filter.prefilter(pat)
    assert pf is not None and pf.may_match("abc \udc80") is None


@needs_re2
def test_an_re2_failure_on_a_text_leaves_it_to_python() -> None:
    class Failing:  # the package's search (no binding beside it)
        def search(self, text: bytes, pos: int = 0) -> None:
            raise re2filter.re2.error("out of memory")

    assert re2filter._binding_search(Failing()) is None
    assert re2filter._searcher(Failing())("some text") is None

    class FailingBinding:  # the binding's call of the expected shape, failing on the text
        def Match(self, anchor: object, data: bytes, pos: int, end: int) -> list[tuple[int, int]]:
            if data:
                raise re2filter.re2.error("out of memory")
            return [(-1, -1)]

    class WithBinding(Failing):
        _regexp = FailingBinding()

    assert re2filter._binding_search(WithBinding()) is not None
    assert re2filter._searcher(WithBinding())("some text") is None


@needs_re2
def test_the_binding_call_finds_what_the_package_search_finds() -> None:
    """RE2 asked through its binding (_binding_search: a byte offset) and through the package's
    own search (a match object, character offsets) on random UTF-8 texts from every position:
    the same leftmost start; a binding of another shape is not used."""
    rnd = random.Random(11)
    alphabet = "abkK \n\u00e9\u00ff\u212a\u20ac:x1"
    for expr in (r"k\s*b", r"(?:ab|\x{e9}){2}", r"^x?$", r"[^a\s]{2}", r"(?m:^)a|b(?:\n){0,1}\z", r"", r"\A\x{20ac}"):
        compiled = re2filter.re2.compile(expr)
        find = re2filter._binding_search(compiled)
        assert find is not None, expr
        for _ in range(200):
            data = "".join(rnd.choice(alphabet) for _ in range(rnd.randint(0, 10))).encode("utf-8")
            for pos in range(len(data) + 1):
                want = compiled.search(data, pos)
                assert find(data, pos) == (-1 if want is None else want.start()), (expr, data, pos)

    class OtherShape:  # a Match of another signature: the package's search instead
        _regexp = type("R", (), {"Match": lambda self, data: None})()

        def search(self, data: bytes, pos: int = 0) -> None:
            return None

    assert re2filter._binding_search(OtherShape()) is None
    assert re2filter._searcher(OtherShape())("abc") is False


def test_what_has_no_superset_gets_no_prefilter() -> None:
    pat, _ = parse_perl_regex(r"/a[^\S\p{L}]b/", lines=True)  # a class member beside \S it cannot read
    assert re2filter.superset_expression(pat) is None
    pat, _ = parse_perl_regex(r"/a b # comment/x", lines=True)
    assert re2filter.superset_expression(pat) is None


LONG_RULES = "body __LONG_FORM /(?:(?:name|address|phone|age|city|country|occupation|zip)e?[\\s:_.]{1,20}){3}" \
             + "".join(f"|w{i}x{i}" for i in range(120)) + "/i\nmeta LONG_FORM __LONG_FORM\nscore LONG_FORM 1.0\n"


@needs_re2
def test_the_engine_asks_re2_before_python_for_long_expressions(tmp_path: Path) -> None:
    eng = RuleEngine(load_rules([write_rules(tmp_path, LONG_RULES)], 2), hs_cache=None)  # no Hyperscan: RE2's turn
    assert "__LONG_FORM" in eng.re2 and eng.re2["__LONG_FORM"].exact
    hit = message_view(make_ctx(msg("form", "Name: ____ Address: ____ Phone: ____ please")))
    miss = message_view(make_ctx(msg("note", "nothing of the kind here")))
    for view, want in ((hit, 1), (miss, 0)):
        assert eng.run(view).values.get("LONG_FORM", 0) == want
        assert eng.run(view, lazy=False).values.get("LONG_FORM", 0) == want


def _debian_engine() -> RuleEngine:
    """The engine on Debian's rules, for checks on corpus messages (skips without them)."""
    if not CORPUS.is_dir():
        pytest.skip(f"{CORPUS} absent (the shared corpus sits beside the repository)")
    if not Path("/usr/share/spamassassin/50_scores.cf").exists():
        pytest.skip("spamassassin rules not installed")
    if not re2filter.available():
        pytest.skip("google-re2 is not installed")
    return engine_for((), 2, include_default=True)


def test_the_debian_rules_re2_serves_agree_with_python_on_corpus_messages() -> None:
    eng = _debian_engine()
    assert len(eng.re2) >= 40  # look-alike letters, form fields, FUZZY_*, ...
    assert {"__MY_MALWARE", "__FILL_THIS_FORM_SHORT2", "__FILL_THIS_FORM_LONG2"} <= set(eng.re2)
    matched = 0
    for path in corpus_sample(240):
        t = _Texts(message_view(make_ctx(path.read_bytes())), eng.indexes, eng.uri_settings)
        for name, pf in eng.re2.items():
            rule = eng.rules[name]
            assert rule.pattern is not None
            text = t.text(rule.kind)
            py = rule.pattern.compiled.search(text) is not None
            got = pf.may_match(text)
            matched += py
            assert not (py and got is False), (path.name, name)
            assert not (got and pf.exact and not py), (path.name, name)
    assert matched > 0  # the sample holds messages these rules hit


LEAD_CASES = [r"/(?!unsub)[uv][nm]s[uv]b/i", r"/(?=[a-c])(?!abc)[a-c]{2,3}x?/", r"/(?!foo)(?!bar)\w{3}\b/",
              r"/(?!ab)(a|b)(b|c)/", r"/(?=<U>)(?!unsubscribe)(?:[uUv]|&\#85;)(?:[nN]|rn)/",
              "/(?!\u00e9a)[\u00e9a][a\u00ff]/"]


@needs_re2
@pytest.mark.parametrize("perl", LEAD_CASES)
def test_lead_search_returns_what_search_returns(perl: str) -> None:
    """Look-aheads first, then a part RE2 takes exactly: the same match (span and groups) from
    every start position, including texts where the look-ahead rules out the first start."""
    pat, _ = parse_perl_regex(perl, lines=True)
    search = re2filter.lead_search(pat)
    assert search is not None
    rnd = random.Random(perl)
    alphabet = "abcfoxrUunvmsb \n&#85;<>\u00e9\u00ff\u212a"  # (offsets differ from UTF-8's past the ASCII ones)
    texts = ["unsub vnsub", "abcab", "foo bar baz", "abab bc", "unsubscribe vnsubscribe", "<U>unsubscribe Un",
             "\u00e9\u00e9a \u00e9\u00ff a\u00ff", "\u212a\u00e9 unsub \u00e9 vnsub"]
    texts += ["".join(rnd.choice(alphabet) for _ in range(rnd.randint(0, 16))) for _ in range(300)]
    for text in texts:
        for pos in range(len(text) + 1):
            want, got = pat.compiled.search(text, pos), search(text, pos)
            assert (want is None) == (got is None), (perl, text, pos)
            if want is not None and got is not None:
                assert (want.span(), want.groups()) == (got.span(), got.groups()), (perl, text, pos)


@needs_re2
def test_lead_search_leaves_other_forms_and_unreadable_texts_to_python() -> None:
    # no look-ahead, nothing after it, a back-reference after it, a look-behind
    for perl in (r"/abc/", r"/(?!a)/", r"/(?!a)(b)\1/", r"/(?<!a)b/"):
        pat, _ = parse_perl_regex(perl, lines=True)
        assert re2filter.lead_search(pat) is None, perl
    pat, _ = parse_perl_regex(r"/(?!ab)a./", lines=True)
    search = re2filter.lead_search(pat)
    assert search is not None
    hit = search("ab ac \udc80")  # RE2 reads UTF-8 only: Python searches
    assert hit is not None and hit.span() == (3, 5)


def test_the_debian_look_alike_rules_search_as_python_does() -> None:
    eng = _debian_engine()
    assert {"FUZZY_UNSUBSCRIBE", "FUZZY_MILLION", "FUZZY_CLICK_HERE"} <= set(eng.lead)
    # look-alike spellings next to the plain words the look-aheads rule out
    variants = ["unsubscribe unsubscr1be", "UNSUBSCRIBE vnsubscribe", "million mi11ion", "M1LLION",
                "click here c1ick h3re", "CLICK HERE", "important 1mportant", "xanax x@nax", "credit cr3dit",
                "prices pr1ces", "security s3curity", "securities", "pharmacy phar-macy ph@rmacy"]
    texts = list(variants)
    for path in corpus_sample(120):
        t = _Texts(message_view(make_ctx(path.read_bytes())), eng.indexes, eng.uri_settings)
        texts.append(t.text("body"))
    hits = 0
    for name, search in eng.lead.items():
        rule = eng.rules[name]
        assert rule.pattern is not None
        for text in texts:
            want, got = rule.pattern.compiled.search(text), search(text)
            assert (want is None) == (got is None), (name, text[:80])
            if want is not None and got is not None:
                assert want.span() == got.span(), (name, text[:80])
                hits += 1
    assert hits > 0  # some of the spellings are look-alikes the rules catch


@needs_re2
def test_lead_search_stays_linear_on_many_ruled_out_starts() -> None:
    """Hostile input: a 400 KB text that is not ASCII, with 40,000 starts the look-ahead rules
    out before the one that matches (offsets are counted on from the last start)."""
    import time

    pat, _ = parse_perl_regex(r"/(?!unsub)[uv][nm]s[uv]b/i", lines=True)
    search = re2filter.lead_search(pat)
    assert search is not None
    text = "\u00e9 unsub " * 40_000 + "vnsub"
    t0 = time.process_time()
    hit = search(text)
    took = time.process_time() - t0
    want = pat.compiled.search(text)
    assert hit is not None and want is not None and hit.span() == want.span()
    assert took < 2.0, f"{took:.2f}s CPU"


@pytest.mark.parametrize(("perl", "nested"), [
    (r"/<\S+(?:\!\S+){1,}>/", True), (r"/(a+)+/", True), (r"/(?:a|b+)*/", True), (r"/(?=(?:x+)+)/", True),
    (r"/a+b+/", False), (r"/(?:ab{1,3})+/", False), (r"/(?:a{2,}){3}/", False),
])
def test_nested_repeats_are_an_unbounded_repeat_holding_another(perl: str, nested: bool) -> None:
    """What long_value_search asks of RE2 at any length (exponential backtracking in ``re``)."""
    from gateway_milter.antispam.matcher import parse_tree

    pat, _ = parse_perl_regex(perl)
    assert re2filter.nested_repeats(parse_tree(pat)) is nested
