"""SpamAssassin's HTML facts (Mail::SpamAssassin::HTML) collected while rendering, and the
HTMLEval functions on them. The expected values are those SpamAssassin 4 computes for the same
markup."""

from __future__ import annotations

from html import parser as html_parser
import time
from pathlib import Path

import pytest

from gateway_milter.antispam import htmltext
from gateway_milter.antispam.engine import RuleEngine, engine_for
from gateway_milter.antispam.htmltext import MAX_STYLE_DEPTH, _Renderer, HtmlFacts, name_to_rgb, render_html
from gateway_milter.antispam.saview import message_view
from tests.unit.antispam.helpers import make_ctx, msg, write_rules


def test_it_counts_tags_their_balance_and_glued_text() -> None:
    f = render_html("<!DOCTYPE html><html><head><title>Hi</title></head><body><center><p>Hel<b>lo</b> wo<i>rld</i>"
                    "</p></center></center></body>")
    assert f.inside == {"!doctype": 0, "html": 1, "head": 0, "title": 0, "body": 0, "center": 0, "p": 0, "b": 0,
                        "i": 0}
    assert (f.tag_count, f.element_count, f.tags_seen, f.elements_seen) == (17, 17, 8, 8)
    assert f.closed_extra == 1 and f.value("closed_extra_ratio") == pytest.approx(1 / 17)
    assert f.obfuscation == 2 and f.value("obfuscation_ratio") == pytest.approx(2 / 17)  # Hel|lo, wo|rld
    assert f.titles == ["Hi"] and f.non_space_len == 12  # the title's text counts, as in SpamAssassin
    assert f.value("bad_tag_ratio") == 0.0 and f.value("non_element_ratio") == 0.0


def test_it_tells_elements_from_unknown_tags() -> None:
    f = render_html("<foo>x</foo><p>y</p><o:p>z</o:p>")  # o:p: an Office namespace tag counts as an element
    assert (f.tag_count, f.element_count, f.tags_seen, f.elements_seen) == (6, 4, 3, 2)
    assert f.value("bad_tag_ratio") == pytest.approx(1 / 3)
    assert f.value("non_element_ratio") == pytest.approx(1 / 3)
    assert f.value("obfuscation_ratio") is None  # undefined without any glued text
    assert render_html("<!-- only a comment -->").value("closed_extra_ratio") is None


def test_it_tracks_font_sizes_through_the_style_stack() -> None:
    f = render_html("<font size=6>big</font><font size=-2>small</font>"
                    "<big><big><big><big><font color=red>x</font></big></big></big></big>")
    assert (f.max_size, f.min_size) == (7, 1)  # basefont 3 - 2; four <big> and an attribute to notice them


@pytest.mark.parametrize("html", [
    '<p>seen <font color="#fefefe">hidden</font></p>',  # near white on the default white
    '<div style="color: rgb(250,250,250)">pale</div>',
    '<table><tr><td style="background-color:#000"><font color=black>x</font><td>y</table>',
    '<p style="background: url(x.png) #ffffff"><span style="color: white">w</span></p>',
])
def test_it_notices_text_in_its_background_colour(html: str) -> None:
    f = render_html(html)
    assert f.font_low_contrast and not f.font_invalid_color


def test_it_ignores_the_bgcolor_attribute_and_invisible_styles_as_spamassassin() -> None:
    # SpamAssassin converts bgcolor= but never applies it; display:none hides text without a flag
    assert not render_html('<body bgcolor="#000000"><font color="#000000">x</font></body>').font_low_contrast
    f = render_html('<span style="display:none">a</span>b<br/>c<br />d')
    assert not f.font_low_contrast and f.obfuscation == 1 and f.inside == {"span": 0, "br": 2}


def test_it_flags_invalid_colours_bad_faces_mailto_forms_embeds_and_iframes() -> None:
    assert render_html('<font color="zz">bad colour</font>').font_invalid_color
    f = render_html('<font face="Arial, Helvetica">ok</font><font face="$$$">bad</font>')
    assert f.font_face_bad
    f = render_html('<iframe src=" http://frame.example/ "></iframe><form action="MAILTO:a@b"></form><embed src=x>')
    assert f.iframe_src and f.form_action_mailto and f.embeds
    assert not render_html('<iframe src=" "></iframe>').iframe_src


def test_it_converts_colours_as_spamassassin() -> None:
    assert name_to_rgb("White") == "#ffffff"
    assert name_to_rgb("#abc") == "#aabbcc"
    assert name_to_rgb("#12345") == "#112233"  # 4-5 digits: the first three
    assert name_to_rgb("#1234567") == "#123456"
    assert name_to_rgb("rgb(100%, 0%, 50%)") == "#ff007f"
    assert name_to_rgb("rgb(1,2,3)") == "#010203"
    assert name_to_rgb("abc") == "invalid" and name_to_rgb("zz") == "invalid"


def test_it_measures_images_anchors_and_comments() -> None:
    f = render_html("<img width=10 height=20><img width=50% height=10><img width=abc height=3>text here")
    assert f.image_area == 10 * 20 + 50 * 8 * 10 + 200 * 3 and f.non_space_len == 8
    f = render_html('<a href="http://x.example/"><img src="http://x.example/i.gif"></a>'
                    '<a href="http://y.example/">Click here</a>')
    assert f.anchors == ["<img>\n", "Click here"]
    f = render_html("<!DOCTYPE html><!-- c --><!x><![if !mso]>t<![endif]>")
    assert f.comments == ["<!-- c -->", "<!x>", "<![if !mso]>", "<![endif]>"]  # a doctype is no comment
    f = render_html("<p>text</p><a href='http://cut.example/ x")
    assert f.comments == ["<a href='http://cut.example/ x"]  # markup cut off at the end


def test_it_bounds_the_style_stack_on_hostile_nesting() -> None:
    t0 = time.process_time()
    f = render_html("<font color=red>" * 20_000 + "x" + "</font>" * 20_000 + "<div>" * 40_000 + "</div>" * 40_000)
    assert time.process_time() - t0 < 5.0
    assert f.inside == {"font": 0, "div": 0} and f.non_space_len == 1
    r = _Renderer(HtmlFacts())
    r.feed("<span>" * (MAX_STYLE_DEPTH + 50))
    assert len(r.styles) == MAX_STYLE_DEPTH


RULES = r"""
body T_BALANCE_BODY  eval:html_tag_balance('body', '!= 0')
body T_BALANCE_HEAD  eval:html_tag_balance('head', '!= 0')
body T_LINK_IMAGE    eval:html_text_match('anchor', '<img>')
body T_LOW_CONTRAST  eval:html_test('font_low_contrast')
body T_FONT_HUGE     eval:html_range('max_size', '6', 'inf')
body T_OBFUSCATE     eval:html_range('obfuscation_ratio', '.2', '.3')
body T_NONELEMENT    eval:html_range('non_element_ratio', '0.30', '0.40')
body T_IMAGE_RATIO   eval:html_image_ratio('0.000', '0.002')
body T_IMAGE_ONLY    eval:html_image_only('0000', '0400')
body T_IFRAME        eval:check_iframe_src()
body T_TITLE_SUBJ    eval:html_title_subject_ratio('3.5')
body T_SHORT         eval:html_eval('length', '< 384')
body T_TAG_CENTER    eval:html_tag_exists('center')
body T_BAD_EXPR      eval:html_eval('length', 'system(1)')
body T_BAD_TEST      eval:html_range('no_such_fact', '0', '1')
meta T_ON_BAD        T_BAD_EXPR || T_LINK_IMAGE
"""
for _line in RULES.split("\n"):
    if _line.startswith("body"):
        RULES += f"score {_line.split()[1]} 1\n"


@pytest.fixture()
def engine(tmp_path: Path) -> RuleEngine:
    return engine_for((str(write_rules(tmp_path, RULES)),), 2, include_default=False)


def hits(engine: RuleEngine, html: str, subject: str = "Hello") -> set[str]:
    return {h.name for h in engine.run(message_view(make_ctx(msg(subject, html, ctype="text/html")))).hits}


def test_it_lists_what_it_cannot_evaluate(engine: RuleEngine) -> None:
    assert {"T_BAD_EXPR", "T_BAD_TEST", "T_ON_BAD"} <= set(engine.unsupported)
    assert "T_LINK_IMAGE" not in engine.unsupported


def test_it_hits_the_html_rules(engine: RuleEngine) -> None:
    page = ("<html><head><title>" + "A long title far longer than the subject" + "</title><body>"
            "<a href='http://x.example/'><img src='http://x.example/i.gif' width=600 height=400></a>"
            "<iframe src='http://f.example/'></iframe><font size=7 color='#fffffe'>Fr<b>ee</b> mo<b>ney</b></font>")
    got = hits(engine, page, subject="Hi")
    assert {"T_BALANCE_BODY", "T_BALANCE_HEAD", "T_LINK_IMAGE", "T_LOW_CONTRAST", "T_FONT_HUGE", "T_IMAGE_RATIO",
            "T_IFRAME", "T_TITLE_SUBJ", "T_SHORT", "T_IMAGE_ONLY"} <= got
    assert not got & {"T_OBFUSCATE", "T_TAG_CENTER"}  # 2 glued of 12 tags: 0.17


def test_it_leaves_a_plain_page_alone(engine: RuleEngine) -> None:
    page = "<html><head><title>Hello</title></head><body><p>Minutes of the meeting, as agreed.</p></body></html>"
    assert hits(engine, page) == {"T_SHORT"}
    plain = {h.name for h in engine.run(message_view(make_ctx(msg("Hello", "<b>not</b> HTML")))).hits}
    assert plain == set()


def test_it_answers_for_any_html_part(engine: RuleEngine) -> None:
    # two HTML parts: the link image is in the smaller one; SpamAssassin asks every part
    boundary = "b1"
    body = (f"--{boundary}\r\nContent-Type: text/html\r\n\r\n<p>" + "long text " * 100 + "</p>\r\n"
            f"--{boundary}\r\nContent-Type: text/html\r\n\r\n<a href='http://x.example/'><img src='i.gif'></a>\r\n"
            f"--{boundary}--\r\n")
    raw = msg("Hello", body, ctype=f'multipart/mixed; boundary="{boundary}"')
    view = message_view(make_ctx(raw))
    assert len(view.html_all) == 2 and view.html.anchors == []
    assert "T_LINK_IMAGE" in {h.name for h in engine.run(view).hits}


def test_it_supports_the_debian_html_rules_when_installed() -> None:
    if not Path("/usr/share/spamassassin/50_scores.cf").exists():
        pytest.skip("spamassassin rules not installed")
    eng = engine_for((), 2, include_default=True)
    html_rules = [n for n in eng.unsupported if "HTML" in n or "IMAGE" in n or "CONTRAST" in n]
    assert html_rules == []
    assert {"HTML_TAG_BALANCE_BODY", "HTML_FONT_LOW_CONTRAST", "__HTML_LINK_IMAGE", "ALL_TRUSTED",
            "RCVD_HELO_IP_MISMATCH"} <= set(eng.rules)


def test_the_text_is_rendered_as_spamassassin_renders_it() -> None:
    # HTML::display_text: white space runs in the markup are one space (a newline in the source
    # breaks nothing); <br>/<div> a newline, cells and items a space, <p> and <title> a blank
    # line; the title's text is text; alt text is not; script and style are left out
    f = render_html("<html><head><title>Deal</title><style>p{}</style></head><body>Best\r\n\r\n  offer<br>"
                    "now<p>second</p><table><tr><td>a</td><td>b</td></tr></table><img alt='ALT TEXT' src=x>"
                    "<script>var x;</script>end</body></html>")
    assert f.text == "\n\nDeal\n\nBest offer\nnow\n\nsecond\n\n a  b end"  # (</td><td>: two spaces)
    # in the view: a blank line starts a paragraph, a single newline does not
    v = message_view(make_ctx(msg("s", "<p>LIMITED Time OFFER!!<BR>\r\nQuick natural <BR>\r\n choice</p>"
                                  "<p>Next</p>", ctype="text/html")))
    assert v.paragraphs == ["s", "LIMITED Time OFFER!! Quick natural choice", "Next"]


def test_parts_run_on_into_each_other_as_in_spamassassin() -> None:
    # Message::get_body_text_array_common joins the parts' rendered texts with one newline
    raw = (b"From: a@b.example\r\nTo: c@d.example\r\nSubject: s\r\nMIME-Version: 1.0\r\n"
           b"Content-Type: multipart/mixed; boundary=XX\r\n\r\n--XX\r\nContent-Type: text/plain\r\n\r\nfirst part"
           b"\r\n--XX\r\nContent-Type: text/html\r\n\r\n<b>second</b> part\r\n--XX--\r\n")
    assert message_view(make_ctx(raw)).paragraphs == ["s", "first part second part"]


def test_it_adds_nothing_for_an_empty_text() -> None:
    # "&#1;" is a reference to nothing and "<![CDATA[]]>" an empty section: an empty text piece,
    # which SpamAssassin's html_text adds nothing for (it once raised IndexError: rules tempfailed)
    for html, without in (("a<b>&#1;</b>c", "a<b></b>c"), ("a<i><![CDATA[]]></i>b", "a<i></i>b"), ("&#1;", "")):
        f, g = render_html(html), render_html(without)
        assert (f.text, f.obfuscation, f.non_space_len) == (g.text, g.obfuscation, g.non_space_len)
    v = message_view(make_ctx(msg("s", "<p>a<b>&#1;</b> two<i><![CDATA[]]></i></p>", ctype="text/html")))
    assert v.paragraphs == ["s", "a two"]


# SpamAssassin's cut-off markup, html.parser's tokenizer corners and the end-of-data guards
ENDS_OF_DATA = (
    "<p>Hi</p><font face='Arial>Call <b>now</b> or <i>later</i>. Don't wait",  # one unclosed quote
    "<p>t<a href='http://cut.example/ x",
    "<a b='>' c=\"<i>\">i</a><a b='x>y'>z",
    "<p>x<!--a<!--b<!--",
    "<p>x<![CDATA[x<![CDATA[y<![if z<![if",
    "<p>x<!doctype x<!doctype</a x</b<?x<?y<!x",
    "<p>x" + "<a x " * 50 + "<b>y</b>" + "<a b='" * 50,
)


def test_an_unclosed_quote_leaves_the_tags_after_the_next_gt_alone() -> None:
    f = render_html(ENDS_OF_DATA[0])
    assert set(f.tags) == {"p", "b", "i"}  # (html.parser: text up to the first '>', then tags again)
    assert "now or later" in f.text and f.comments == ["<font face='Arial>Call <b>now</b> or <i>later</i>. Don't wait"]


def test_the_stock_tokenizer_renders_as_the_fast_one(monkeypatch: pytest.MonkeyPatch) -> None:
    # this Python's html.parser is the one _FastRenderer mirrors; the stock methods (another
    # Python's html.parser) give the same facts, also at the end of the data
    assert htmltext._RENDERER is htmltext._FastRenderer and htmltext._fast_tokenizer_agrees()
    inputs = ENDS_OF_DATA + htmltext._TOKENIZER_PROBES + (HOSTILE_HTML["unclosed_start_tags"][:3000],)
    fast = [render_html(h) for h in inputs]
    monkeypatch.setattr(htmltext, "_RENDERER", htmltext._Renderer)
    assert [render_html(h) for h in inputs] == fast


def test_it_falls_back_to_the_stock_tokenizer_when_html_parser_differs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(html_parser, "attrfind_tolerant")
    assert not htmltext._fast_tokenizer_agrees()
    monkeypatch.undo()
    # a later html.parser (3.11.13, 3.12.11, 3.13.4: named references in attribute values
    # only when whole and not before '=')
    real = html_parser.HTMLParser.parse_starttag

    def parse_starttag(self: html_parser.HTMLParser, i: int) -> int:
        k: int = real(self, i)
        if k >= 0 and self.rawdata.startswith("<a href=\"?a=1&copy=2", i):
            self.handle_data("(changed)")
        return k

    monkeypatch.setattr(html_parser.HTMLParser, "parse_starttag", parse_starttag)
    assert not htmltext._fast_tokenizer_agrees()


# markup that never ends, followed by many more '<' (200 KB each): html.parser rescans the rest
# of the data from every '<' at the end of the data (CPU before, from 20 and 160 KB: 0.1 s for
# the doctypes, whose '>' is looked for by memchr, to some 8 minutes for the start tags;
# test_hostile_input has the whole content path at sizes that took over 10 s)
HOSTILE_HTML = {
    "unclosed_start_tags": "<a x " * 40_000,
    "unclosed_quotes": "<a b='" * 33_000,
    "bare_values": "<a x=y" * 33_000,
    "quoted_gt": "<a b='>' c " * 18_000,
    "unclosed_comments": "<!--" * 50_000,
    "comments_of_tags": "<!--<a x " * 22_000,
    "unclosed_doctypes": "<!DOCTYPE x" * 18_000,
    "unclosed_cdata": "<![CDATA[x" * 20_000,
    "unclosed_conditionals": "<![if x>" * 25_000,
    "unclosed_bogus_comments": "<!x" * 66_500,
    "unclosed_processing": "<?x" * 66_500,
    "unclosed_end_tags": "</" * 100_000,
}


@pytest.mark.parametrize("stock", [False, True], ids=["fast", "stock"])
def test_it_stays_linear_on_markup_that_never_ends(stock: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    if stock:
        monkeypatch.setattr(htmltext, "_RENDERER", htmltext._Renderer)
    for name, html in HOSTILE_HTML.items():
        t0 = time.process_time()
        f = render_html(html)
        took = time.process_time() - t0
        assert took < 2.0, f"{name}: {took:.1f}s CPU"  # (now 0.05 to 0.3 s)
        assert f.text == "" and len(f.comments) == 1  # (cut off by the end: a comment, as in SpamAssassin)
