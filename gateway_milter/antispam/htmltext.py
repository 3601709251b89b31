"""Render HTML to text once per message (bounded) and collect the facts rules ask about.

``html.parser`` is a tokenizer, not a tree builder: deeply nested tags cost nothing extra, and
input is capped at :data:`MAX_HTML` characters so a megabyte of markup stays within budget.

The same pass keeps SpamAssassin 4's HTML facts (Mail::SpamAssassin::HTML, read by
Plugin::HTMLEval): the count of each tag still open (``inside``: +1 per start tag, -1 per end
tag, never below 0, an end tag too many counted in ``closed_extra``), tags and known elements
seen, text runs glued to the previous one without a space or punctuation (``obfuscation``),
the stack of text styles (colour, background, font size, CSS ``display``/``visibility``) from
which text in a colour near its background (``font_low_contrast``) or an unparsable colour
(``font_invalid_color``) is noticed, image area, anchor texts, titles, comments. The facts
follow SpamAssassin's own model of the page, not our rendering (which leaves out the head and
title): SpamAssassin counts every text outside ``<script>``/``<style>``. The style stack is
kept with a count per tag, so closing a tag costs no search (SpamAssassin scans the stack),
and it stops growing past :data:`MAX_STYLE_DEPTH`.
"""

from __future__ import annotations

import re
import sys
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
import html.parser
from html import unescape
from html.parser import HTMLParser

from gateway_milter.antispam.sauris import URI_TAGS, HtmlUris

MAX_HTML = 1_000_000
MAX_STYLE_DEPTH = 10_000  # text-style entries kept (hostile nesting); deeper ones inherit the top
MAX_STRINGS = 1_000  # anchors and titles kept
MAX_STRING = 4_096  # characters kept of each anchor text and title

# Mail::SpamAssassin::HTML's tag sets: HTML 4 elements (strict, loose, SpamAssassin's own),
# "tricks" (acted on but not elements), the tags that change the text style, and those that
# break the text (br/div: a newline, cells and list items: a space, paragraphs: a blank line).
ELEMENTS = frozenset({
    "a", "abbr", "acronym", "address", "area", "b", "base", "bdo", "big", "blockquote", "body", "br", "button",
    "caption", "cite", "code", "col", "colgroup", "dd", "del", "dfn", "div", "dl", "dt", "em", "fieldset", "form",
    "h1", "h2", "h3", "h4", "h5", "h6", "head", "hr", "html", "i", "img", "input", "ins", "kbd", "label", "legend",
    "li", "link", "map", "meta", "noscript", "object", "ol", "optgroup", "option", "p", "param", "pre", "q", "samp",
    "script", "select", "small", "span", "strong", "style", "sub", "sup", "table", "tbody", "td", "textarea",
    "tfoot", "th", "thead", "title", "tr", "tt", "ul", "var",
    "applet", "basefont", "center", "dir", "font", "frame", "frameset", "iframe", "isindex", "menu", "noframes", "s",
    "strike", "u",
    "nobr", "x-sigsep", "x-tab"})
TRICKS = frozenset(("bgsound", "embed", "listing", "plaintext", "xmp"))
_BREAKS = {"br": "\n", "div": "\n", "li": " ", "th": " ", "td": " ", "dt": " ", "dd": " ", "embed": " ", "h1": " ",
           "h2": " ", "h3": " ", "h4": " ", "h5": " ", "h6": " "}  # the others: a blank line
# "[ \t\n\r\x0c\x0b]+|\xa0" as one space, leaving a lone plain space alone (replaced by itself:
# most matches of that on ordinary text, for the same result)
_SA_SPACES = re.compile("[ \t\n\r\x0c\x0b\xa0]"
                        "(?:(?<=\xa0)|(?<= )[ \t\n\r\x0c\x0b]+|(?<=[\t\n\r\x0c\x0b])[ \t\n\r\x0c\x0b]*)")
# html.parser's: a character after which a start tag may go on (check_for_whole_start_tag)
_TAG_GOES_ON = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ=/")
_SPACE_OR_SEMI = re.compile(r"[\s;]")
# html.parser's own expressions (module globals, not in its typed API): the hot paths of
# _FastRenderer must cut the markup exactly where html.parser does. A Python without them gets
# a pattern that never matches and the stock tokenizer (_RENDERER).
_TOKENIZER_GLOBALS = ("locatestarttagend_tolerant", "tagfind_tolerant", "attrfind_tolerant", "endtagfind")
_NO_MATCH = re.compile("(?!)")
_LOCATE_START_END: re.Pattern[str] = getattr(html.parser, "locatestarttagend_tolerant", _NO_MATCH)
_TAG_NAME: re.Pattern[str] = getattr(html.parser, "tagfind_tolerant", _NO_MATCH)
_ATTRIBUTE: re.Pattern[str] = getattr(html.parser, "attrfind_tolerant", _NO_MATCH)
_END_TAG: re.Pattern[str] = getattr(html.parser, "endtagfind", _NO_MATCH)
# _markupbase's marked sections: the keyword decides which close is looked for
_SECTION_NAME = re.compile(r"[a-zA-Z][-_.a-zA-Z0-9]*")
_SECTION_CLOSE = {"temp": "]]>", "cdata": "]]>", "ignore": "]]>", "include": "]]>", "rcdata": "]]>",
                  "if": "]>", "else": "]>", "endif": "]>"}
_NOWHERE = sys.maxsize
ACTED_ON = ELEMENTS | TRICKS
TEXT_STYLE = frozenset(("body", "font", "table", "tr", "th", "td", "big", "small", "basefont", "marquee", "span",
                        "p", "div", "a"))
WHITESPACE = frozenset(("br", "div", "li", "th", "td", "dt", "dd", "embed", "h1", "h2", "h3", "h4", "h5", "h6",
                        "p", "hr", "blockquote", "pre", "listing", "plaintext", "xmp", "title"))
OK_ATTRIBUTES = {
    "basefont": ("color", "face", "size"), "body": ("text", "bgcolor", "link", "alink", "vlink", "background"),
    "font": ("color", "face", "size"), "marquee": ("bgcolor", "background"), "table": ("bgcolor", "style"),
    "td": ("bgcolor", "style"), "th": ("bgcolor", "style"), "tr": ("bgcolor", "style"), "span": ("style",),
    "p": ("style",), "div": ("style",), "a": ("style",),
}
# start tags whose attributes html_tests reads
_TESTED = frozenset(("font", "img", "form", "iframe"))
_NAMESPACED = re.compile(r"(?:o|st\d):[\w-]+/?\Z")
# a character that is neither white space nor ASCII punctuation (curly double quotes count as
# punctuation: SpamAssassin turns them into '"' before parsing)
_WORDISH = re.compile(r"[^\s\x21-\x2f\x3a-\x40\x5b-\x60\x7b-\x7e\u201c\u201d]")
_HTML_WS = " \t\n\r\x0c\x0b"  # white space to HTML (a text of only these is never invisible)
_FONT_FACE = re.compile(r"\s*[\"'.]?[a-z ][a-z -]*[a-z]\d?[\"']?(?:,\s*[\"']?[a-z][a-z -]*[a-z]\d?[\"']?)*;?\n?\Z",
                        re.I | re.ASCII)
_DIMENSION = re.compile(r"(\d+)(%)?\n?\Z", re.ASCII)
_HEX_RGB = re.compile(r"#?([0-9a-f]{2})([0-9a-f]{2})([0-9a-f]{2})\n?\Z")
_STYLE_COLOR = re.compile(r"\s*(background-)?color:\s*(.+?)\s*$", re.I)
_STYLE_BACKGROUND = re.compile(r"\s*background:\s*(.+?)\s*$")
_STYLE_OTHER = re.compile(r"\s*([a-z_-]+)\s*:\s*(\S.*?)\s*$", re.I)
_IMPORTANT = re.compile(r"\s*!\s*important$")
_COLOR_SYNTAX = re.compile(r"^[#a-f0-9]*$|rgb\([\d%, ]*\)", re.I)
_RGB_PCT = re.compile(r"rgb\((\d+)%,\s*(\d+)%,\s*(\d+)%\s*\)", re.I)
_RGB = re.compile(r"rgb\((\d+),\s*(\d+),\s*(\d+)\s*\)", re.I)
_SIZE_REL = re.compile(r"\s*([+-]\d+)", re.ASCII)
_SIZE_ABS = re.compile(r"\s*(\d+)", re.ASCII)

# (tag, foreground, background, font size, CSS display, CSS visibility)
Style = tuple[str, str, str, int, str, str]
DEFAULT_STYLE: Style = ("default", "#000000", "#ffffff", 3, "", "")

_NAMED_COLORS = {
    "aliceblue": 0xf0f8ff, "antiquewhite": 0xfaebd7, "aqua": 0x00ffff, "aquamarine": 0x7fffd4, "azure": 0xf0ffff,
    "beige": 0xf5f5dc, "bisque": 0xffe4c4, "black": 0x000000, "blanchedalmond": 0xffebcd, "blue": 0x0000ff,
    "blueviolet": 0x8a2be2, "brown": 0xa52a2a, "burlywood": 0xdeb887, "cadetblue": 0x5f9ea0,
    "chartreuse": 0x7fff00, "chocolate": 0xd2691e, "coral": 0xff7f50, "cornflowerblue": 0x6495ed,
    "cornsilk": 0xfff8dc, "crimson": 0xdc143c, "cyan": 0x00ffff, "darkblue": 0x00008b, "darkcyan": 0x008b8b,
    "darkgoldenrod": 0xb8860b, "darkgray": 0xa9a9a9, "darkgreen": 0x006400, "darkgrey": 0xa9a9a9,
    "darkkhaki": 0xbdb76b, "darkmagenta": 0x8b008b, "darkolivegreen": 0x556b2f, "darkorange": 0xff8c00,
    "darkorchid": 0x9932cc, "darkred": 0x8b0000, "darksalmon": 0xe9967a, "darkseagreen": 0x8fbc8f,
    "darkslateblue": 0x483d8b, "darkslategray": 0x2f4f4f, "darkslategrey": 0x2f4f4f, "darkturquoise": 0x00ced1,
    "darkviolet": 0x9400d3, "deeppink": 0xff1493, "deepskyblue": 0x00bfff, "dimgray": 0x696969,
    "dimgrey": 0x696969, "dodgerblue": 0x1e90ff, "firebrick": 0xb22222, "floralwhite": 0xfffaf0,
    "forestgreen": 0x228b22, "fuchsia": 0xff00ff, "gainsboro": 0xdcdcdc, "ghostwhite": 0xf8f8ff, "gold": 0xffd700,
    "goldenrod": 0xdaa520, "gray": 0x808080, "green": 0x008000, "greenyellow": 0xadff2f, "grey": 0x808080,
    "honeydew": 0xf0fff0, "hotpink": 0xff69b4, "indianred": 0xcd5c5c, "indigo": 0x4b0082, "ivory": 0xfffff0,
    "khaki": 0xf0e68c, "lavender": 0xe6e6fa, "lavenderblush": 0xfff0f5, "lawngreen": 0x7cfc00,
    "lemonchiffon": 0xfffacd, "lightblue": 0xadd8e6, "lightcoral": 0xf08080, "lightcyan": 0xe0ffff,
    "lightgoldenrodyellow": 0xfafad2, "lightgray": 0xd3d3d3, "lightgreen": 0x90ee90, "lightgrey": 0xd3d3d3,
    "lightpink": 0xffb6c1, "lightsalmon": 0xffa07a, "lightseagreen": 0x20b2aa, "lightskyblue": 0x87cefa,
    "lightslategray": 0x778899, "lightslategrey": 0x778899, "lightsteelblue": 0xb0c4de,
    "lightyellow": 0xffffe0, "lime": 0x00ff00, "limegreen": 0x32cd32, "linen": 0xfaf0e6, "magenta": 0xff00ff,
    "maroon": 0x800000, "mediumaquamarine": 0x66cdaa, "mediumblue": 0x0000cd, "mediumorchid": 0xba55d3,
    "mediumpurple": 0x9370db, "mediumseagreen": 0x3cb371, "mediumslateblue": 0x7b68ee,
    "mediumspringgreen": 0x00fa9a, "mediumturquoise": 0x48d1cc, "mediumvioletred": 0xc71585,
    "midnightblue": 0x191970, "mintcream": 0xf5fffa, "mistyrose": 0xffe4e1, "moccasin": 0xffe4b5,
    "navajowhite": 0xffdead, "navy": 0x000080, "oldlace": 0xfdf5e6, "olive": 0x808000, "olivedrab": 0x6b8e23,
    "orange": 0xffa500, "orangered": 0xff4500, "orchid": 0xda70d6, "palegoldenrod": 0xeee8aa,
    "palegreen": 0x98fb98, "paleturquoise": 0xafeeee, "palevioletred": 0xdb7093, "papayawhip": 0xffefd5,
    "peachpuff": 0xffdab9, "peru": 0xcd853f, "pink": 0xffc0cb, "plum": 0xdda0dd, "powderblue": 0xb0e0e6,
    "purple": 0x800080, "red": 0xff0000, "rosybrown": 0xbc8f8f, "royalblue": 0x4169e1, "saddlebrown": 0x8b4513,
    "salmon": 0xfa8072, "sandybrown": 0xf4a460, "seagreen": 0x2e8b57, "seashell": 0xfff5ee, "sienna": 0xa0522d,
    "silver": 0xc0c0c0, "skyblue": 0x87ceeb, "slateblue": 0x6a5acd, "slategray": 0x708090,
    "slategrey": 0x708090, "snow": 0xfffafa, "springgreen": 0x00ff7f, "steelblue": 0x4682b4, "tan": 0xd2b48c,
    "teal": 0x008080, "thistle": 0xd8bfd8, "tomato": 0xff6347, "turquoise": 0x40e0d0, "violet": 0xee82ee,
    "wheat": 0xf5deb3, "white": 0xffffff, "whitesmoke": 0xf5f5f5, "yellow": 0xffff00, "yellowgreen": 0x9acd32,
}


def _dec2hex(n: int) -> str:
    return f"0{n:x}" if n < 16 else f"{n:x}"


def name_to_rgb(value: str) -> str:
    """A colour as ``#rrggbb``, or ``"invalid"`` (SpamAssassin's name_to_rgb: names, ``#rgb``,
    ``#rrggbb`` with junk dropped and short forms padded, ``rgb(r,g,b)`` and ``rgb(r%,g%,b%)``)."""
    color = value.lower().strip(" \t\n\r\x0c\x0b")
    named = _NAMED_COLORS.get(color)
    if named is not None:
        return f"#{named:06x}"
    if not _COLOR_SYNTAX.search(color):
        return "invalid"
    m = _RGB_PCT.search(color)
    if m:
        color = "#" + "".join(_dec2hex(int(int(g) / 100 * 255)) for g in m.groups())
    m = _RGB.search(color)
    if m:
        color = "#" + "".join(_dec2hex(int(g)) for g in m.groups())
    if not color.startswith("#"):
        return "invalid"
    color = re.sub(r"[^a-f0-9]", "", color)
    if len(color) > 6:
        color = color[:6]
    if 3 < len(color) < 6:
        color = color[:3]
    if len(color) % 3:
        color += "0" * (3 - len(color) % 3)
    if len(color) == 3:
        color = "".join(c + c for c in color)
    return "#" + color


def _css_background_layers(background: str) -> list[list[str]]:
    """SpamAssassin's parse_css_background: the layers (comma-separated) of a CSS
    ``background`` value, each a list of tokens; brackets and quotes keep their content whole."""
    layers: list[list[str]] = []
    tokens: list[str] = []
    stack: list[int] = []
    state = 0
    token = ""
    for ch in background:
        if state == 0:
            if ch == " ":
                if token:
                    tokens.append(token)
                token = ""
            elif ch in "(\"'":
                token += ch
                stack.append(state)
                state = {"(": 1, '"': 2, "'": 3}[ch]
            elif ch == ",":
                if token:
                    tokens.append(token)
                token = ""
                layers.append(tokens)
                tokens = []
            else:
                token += ch
        elif state == 1:
            token += ch
            if ch == ")":
                tokens.append(token)
                token = ""
                state = stack.pop()
            elif ch in "\"'":
                stack.append(state)
                state = 2 if ch == '"' else 3
        else:
            token += ch
            if ch == ('"' if state == 2 else "'"):
                state = stack.pop()
    if token:
        tokens.append(token)
    if tokens:
        layers.append(tokens)
    return layers


def _perl_int(s: str) -> int:
    """Perl's numeric value of a string of digits (``''`` is 0)."""
    return int(s) if s else 0


@dataclass(slots=True)
class HtmlFacts:
    text: str = ""
    title: str = ""
    links: list[str] = field(default_factory=list)
    uris: list[str] = field(default_factory=list)  # SpamAssassin's HTML URIs (sauris.HtmlUris)
    # what each of ``uris`` is (URIDNSBL's ranks): "a" (an anchor with text or an image),
    # "a_empty" (an anchor without), "form", "img" or "other" (sauris.HtmlUris.kinds)
    uri_kinds: list[str] = field(default_factory=list)
    tags: Counter[str] = field(default_factory=Counter)  # start tags (Bayes tokens)
    images: int = 0
    length: int = 0
    truncated: bool = False
    comments: list[str] = field(default_factory=list)  # "<!--...-->" and "<!x>" as written
    # SpamAssassin's facts (Mail::SpamAssassin::HTML)
    inside: dict[str, int] = field(default_factory=dict)  # every tag name seen -> start minus end tags
    tag_count: int = 0  # start and end tags, <!DOCTYPE> included
    element_count: int = 0  # of them, HTML elements
    tags_seen: int = 0  # distinct tag names
    elements_seen: int = 0
    closed_extra: int = 0  # end tags without a start tag
    obfuscation: int = 0  # text runs glued to the previous one (no space, no punctuation)
    image_area: int = 0  # sum of width x height of <img> with both (missing/0: 200; %: x8 / x6)
    non_space_len: int = 0  # non-space characters of the text (script and style aside)
    max_size: int = 3  # font sizes (the default is 3)
    min_size: int = 3
    titles: list[str] = field(default_factory=list)  # each <title>'s text
    anchors: list[str] = field(default_factory=list)  # each <a>'s text, "<img>\n" per image inside
    font_low_contrast: bool = False
    font_invalid_color: bool = False
    font_face_bad: bool = False
    form_action_mailto: bool = False
    embeds: bool = False
    iframe_src: bool = False

    def value(self, name: str) -> float | None:
        """A numeric fact by SpamAssassin's name; None where SpamAssassin leaves it undefined."""
        if name == "length":
            return float(self.length)
        if name == "closed_extra_ratio":
            return self.closed_extra / self.tag_count if self.tag_count else None
        if name == "bad_tag_ratio":
            return ((self.tag_count - self.element_count) / self.tag_count
                    if self.tag_count and self.element_count else None)
        if name == "non_element_ratio":
            return ((self.tags_seen - self.elements_seen) / self.tags_seen
                    if self.tags_seen and self.elements_seen else None)
        if name == "obfuscation_ratio":
            return self.obfuscation / self.tag_count if self.tag_count and self.obfuscation else None
        if name in ("max_size", "min_size", "image_area", "non_space_len"):
            return float(getattr(self, name))
        raise KeyError(name)


NUMERIC_FACTS = frozenset(("length", "closed_extra_ratio", "bad_tag_ratio", "non_element_ratio",
                           "obfuscation_ratio", "max_size", "min_size", "image_area", "non_space_len"))
FLAG_FACTS = frozenset(("font_low_contrast", "font_invalid_color", "font_face_bad", "form_action_mailto",
                        "embeds"))
STRING_FACTS = frozenset(("comment", "title", "anchor"))


class _Renderer(HTMLParser):
    def __init__(self, facts: HtmlFacts) -> None:
        super().__init__(convert_charrefs=True)
        self.f = facts
        self.uris = HtmlUris()
        # the URIs (indices in uris.uris) of the <a> being read, and those of anchors with text
        self.a_next: list[int] = []
        self.a_open: list[int] = []
        self.a_text: set[int] = set()
        # SpamAssassin's rendered text (HTML::display_text): the pieces, and which are the
        # white space of a tag (a text piece after one loses a leading space, one before loses
        # a trailing space)
        self.sa_text: list[str] = []
        self.sa_ws: list[bool] = []
        self.in_title = False
        self.title: list[str] = []
        self.bogus = ""  # "!" or "/" while Python reads a bogus comment
        # SpamAssassin's model: the text-style stack, the basefont size, the last text piece
        self.styles: list[Style] = [DEFAULT_STYLE]
        self.on_stack: Counter[str] = Counter()
        self.basefont = 3
        self.checked: Style | None = None  # the style whose visibility was last looked at
        self.colors_checked: set[tuple[str, ...]] = set()
        self.pending: list[str] = []  # text not yet handed to SpamAssassin's model (one text event)
        self.has_text = False
        self.last_ws = False  # the last piece is a break from a tag
        self.last_wordish = False  # it ends with neither space nor punctuation
        self._begin(False)

    # -- the end of the data, in linear time ------------------------------------------------------
    # At the end of the data (close), html.parser 3.11 takes markup that does not end as text, up
    # to its first '>' or else the next '<', and parses on from there; each later '<' looks for
    # its own end again up to the end of the data: quadratic in the number of '<' (CPU, before:
    # "<a x " repeated 20 KB 4.8 s, 40 KB 18 s; "<a x=y" 160 KB 133 s; "<!--" 160 KB 22 s;
    # "<!--<a x " 160 KB 113 s; "<?x" 160 KB 3 s; "<![if x" 160 KB 1.4 s). What a search found is
    # kept for the rest of the close instead, so no stretch is searched twice:
    # - the last '>': none is looked for after it (end tags, processing instructions, doctypes,
    #   "<!x" comments, the text taken up to a '>');
    # - where "-->" and each marked section's close ("]]>", "]>") were looked for in vain: they
    #   are not further on either (the searches run forward to the end of the data);
    # - how far html.parser's start-tag expression ran for a start tag that does not end. That
    #   cannot be carried over exactly: one unclosed quote in a mail (<a href='x) can make the
    #   expression run to the end while html.parser parses on after the next '>' and the tags
    #   after it are whole. So such scans run as html.parser's do until they have covered four
    #   times the data plus 64 KB (the corpus HTML and 30,000 cut and mutated inputs: at most
    #   2.1 times, on a short one; none over the budget); past that budget a '<' inside
    #   the stretch the last one covered is taken as text at once (it starts no tag either,
    #   unless a '>' in a quoted value of the open tag came before a whole tag: <a b='>' c='<i>x).
    #   Those stretches follow each other, so the work stays linear; only input past the budget
    #   can render differently from html.parser.
    # After (1 MB, the most render_html reads, of any of those patterns and of "<!DOCTYPE x",
    # "<![CDATA[x", "<!x", "</", "<a b='>' c "): 0.1 to 1.4 s, on either tokenizer.
    # Everything else is html.parser's own behaviour at the end of the data. The guards wrap
    # html.parser's methods, so the stock tokenizer (_RENDERER on a Python whose html.parser
    # _FastRenderer does not mirror) is linear too.
    def goahead(self, end: int) -> None:  # (html.parser passes 0 or 1)
        self._begin(bool(end))
        super().goahead(bool(end))

    def _begin(self, end: bool) -> None:
        self.at_end = end
        self.no_gt_from = self.rawdata.rfind(">") + 1 if end else _NOWHERE  # no '>' at or after it
        self.open_tag_to = -1  # a start tag before it does not end (past the budget)
        self.tag_scans = 0  # characters scanned for start tags that did not end
        self.tag_scan_budget = 4 * len(self.rawdata) + 65_536
        self.comment_open_from = _NOWHERE  # no "-->" at or after it
        self.section_open_from: dict[str, int] = {}  # no "]]>" (or "]>") at or after it

    def _cut_off(self, i: int) -> int:
        """Markup at i that does not end, at the end of the data: text up to its first '>' or
        else the next '<' (html.parser 3.11's goahead), without looking for a '>' after the last."""
        rawdata = self.rawdata
        k = rawdata.find(">", i + 1) + 1 if i + 1 < self.no_gt_from else 0
        if not k:
            k = rawdata.find("<", i + 1)
            if k < 0:
                k = i + 1
        self.handle_data(unescape(rawdata[i:k]) if self.cdata_elem is None else rawdata[i:k])
        return k

    def _open_tag(self, i: int, reach: int) -> int:
        """A start tag at i that does not end, its scan run up to reach: text (_cut_off)."""
        self.tag_scans += reach - i
        if self.tag_scans > self.tag_scan_budget:
            self.open_tag_to = reach
        return self._cut_off(i)

    def parse_starttag(self, i: int) -> int:
        if i < self.open_tag_to:
            return self._cut_off(i)
        k = int(super().parse_starttag(i))
        if k < 0 and self.at_end:
            m = _LOCATE_START_END.match(self.rawdata, i)
            return self._open_tag(i, m.end() if m else len(self.rawdata))
        return k

    def _ends_at_gt(self, i: int, lead: int, parse: Callable[[int], int]) -> int:
        """Markup whose end is a '>' after its first ``lead`` characters (an end tag, a
        processing instruction, a doctype): html.parser's ``parse``, unless the end of the data
        has no '>' left for it."""
        if self.at_end and i + lead >= self.no_gt_from:
            return self._cut_off(i)
        k = int(parse(i))
        return self._cut_off(i) if k < 0 and self.at_end else k

    def parse_endtag(self, i: int) -> int:
        return self._ends_at_gt(i, 1, super().parse_endtag)

    def parse_comment(self, i: int, report: bool = True) -> int:
        if i + 4 >= self.comment_open_from:
            return self._cut_off(i)
        k = int(super().parse_comment(i, report))
        if k < 0 and self.at_end:
            self.comment_open_from = i + 4
            return self._cut_off(i)
        return k

    def parse_marked_section(self, i: int, report: bool = True) -> int:
        close = ""
        if self.at_end:
            m = _SECTION_NAME.match(self.rawdata, i + 3)
            close = _SECTION_CLOSE.get(m.group().lower(), "") if m else ""
            if close and i + 3 >= self.section_open_from.get(close, _NOWHERE):
                return self._cut_off(i)
        k = int(super().parse_marked_section(i, report))
        if k < 0 and self.at_end:
            if close:
                self.section_open_from[close] = i + 3
            return self._cut_off(i)
        return k

    def parse_pi(self, i: int) -> int:
        return self._ends_at_gt(i, 2, super().parse_pi)

    def parse_html_declaration(self, i: int) -> int:
        if not self.rawdata.startswith(("<!--", "<!["), i):  # a doctype or a "<!x" comment
            return self._ends_at_gt(i, 2, super().parse_html_declaration)
        k = int(super().parse_html_declaration(i))  # (comments and marked sections: above)
        return self._cut_off(i) if k < 0 and self.at_end else k

    # -- events -----------------------------------------------------------------------------------
    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._render_start(tag, attrs)
        self._tag(tag, attrs, 1)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        # SpamAssassin reads "<br/>" as "<br>" (HTML::Parser reports no end tag)
        self._render_start(tag, attrs)
        if tag == "title":
            self._render_end(tag)
        self._tag(tag, attrs, 1)

    def handle_endtag(self, tag: str) -> None:
        self._render_end(tag)
        self._tag(tag, (), -1)

    def parse_bogus_comment(self, i: int, report: bool = True) -> int:
        # "<!x>" is a comment to SpamAssassin too, written as it is
        # ("</3>" is not a comment: dropped)
        self.bogus = self.rawdata[i + 1:i + 2]
        try:
            return super().parse_bogus_comment(i, report)
        finally:
            self.bogus = ""

    def handle_comment(self, data: str) -> None:
        self._flush()
        if len(self.f.comments) < 200 and self.bogus != "/":
            self.f.comments.append(f"<!{data[:2000]}>" if self.bogus else f"<!--{data[:2000]}-->")

    def unknown_decl(self, data: str) -> None:
        # marked sections: "<![if ...]>" is a comment to SpamAssassin, "<![CDATA[...]]>" text
        if data[:6].upper() == "CDATA[":
            self.pending.append(data[6:])
            return
        self._flush()
        if len(self.f.comments) < 200:
            self.f.comments.append(f"<![{data[:2000]}]>")

    def handle_decl(self, decl: str) -> None:
        self._flush()
        if decl[:7].lower() == "doctype":
            f = self.f
            f.element_count += 1
            f.tag_count += 1
            f.inside["!doctype"] = 0

    def handle_data(self, data: str) -> None:
        if self.in_title:
            self.title.append(data)
        self.pending.append(data)

    # -- our rendering ----------------------------------------------------------------------------
    def _render_start(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        f = self.f
        f.tags[tag] += 1
        if tag == "title":
            self.in_title = True
        if tag in URI_TAGS:
            n = len(self.uris.uris)
            self.uris.start(tag, attrs)
            if tag == "a":
                self.a_next = list(range(n, len(self.uris.uris)))
        if len(f.links) < 2000:
            for k, v in attrs:
                if v and k in ("href", "src", "action", "background"):
                    f.links.append(v.strip())
        if tag == "img":
            f.images += 1

    def _render_end(self, tag: str) -> None:
        if tag == "title":
            self.in_title = False

    # -- SpamAssassin's facts -----------------------------------------------------------------------
    def _tag(self, tag: str, attrs: list[tuple[str, str | None]] | tuple[()], num: int) -> None:
        """Mail::SpamAssassin::HTML::html_tag for one start (+1) or end (-1) tag."""
        if self.pending:
            self._flush()
        f = self.f
        inside = f.inside
        old = inside.get(tag)
        if tag in ELEMENTS:
            namespaced = False
        else:
            namespaced = ":" in tag and _NAMESPACED.match(tag) is not None
            if not namespaced:
                f.tag_count += 1
                if old is None:
                    f.tags_seen += 1
                    inside[tag] = 1 if num > 0 else 0
                    if num < 0:
                        f.closed_extra += 1
                elif old + num < 0:
                    f.closed_extra += 1  # (stays 0)
                else:
                    inside[tag] = old + num
                if tag in TRICKS and num == 1:
                    if tag == "embed":
                        f.embeds = True
                    if tag != "bgsound":
                        self._break(tag)
                elif tag in TRICKS and tag != "bgsound":
                    self._break(tag)
                return
        # an element (or an Office namespace tag)
        f.element_count += 1
        f.tag_count += 1
        if old is None:
            f.elements_seen += 1
            f.tags_seen += 1
            old = 0
        n = old + num
        if n < 0:
            n = 0
            f.closed_extra += 1
        inside[tag] = n
        if namespaced:
            return
        a: dict[str, str] | None = None
        if tag in TEXT_STYLE:
            # only the attributes text_style reads (the first of repeated names wins; the order
            # of SpamAssassin's hash is arbitrary)
            ok = OK_ATTRIBUTES.get(tag, ())
            a = {k: k if v is None else v for k, v in reversed(attrs) if k in ok} if num == 1 and ok else {}
            self._text_style(tag, a, num)
        if tag in WHITESPACE:
            self._break(tag)
        if num == 1:
            if tag in _TESTED:
                self._tests(tag, a if a is not None else _attrs(attrs))
            elif tag == "a":
                self.a_open = self.a_next
                self.a_next = []
                if len(f.anchors) < MAX_STRINGS:
                    f.anchors.append("")
            elif tag == "title":
                if len(f.titles) < MAX_STRINGS:
                    f.titles.append("")
            elif tag == "object":
                f.embeds = True

    def _break(self, tag: str) -> None:
        # html_whitespace: a newline (br, div), a space (li, td, h1, ...) or a blank line (p, hr,
        # title, ...) follows in SpamAssassin's text; the text before it loses a trailing space
        if self.sa_text and not self.sa_ws[-1] and self.sa_text[-1].endswith(" "):
            self.sa_text[-1] = self.sa_text[-1][:-1]
        self.sa_text.append(_BREAKS.get(tag, "\n\n"))
        self.sa_ws.append(True)
        self.has_text = True
        self.last_ws = True
        self.last_wordish = False

    def _tests(self, tag: str, a: dict[str, str]) -> None:
        """html_tests (and html_uri's iframe) for the start tags whose attributes matter."""
        f = self.f
        if tag == "font":
            face = a.get("face")
            if face is not None and not _FONT_FACE.match(face):
                f.font_face_bad = True
        elif tag == "img":
            if self.a_open and self.f.inside.get("a", 0) > 0:
                self.a_text.update(self.a_open)
            if self.f.inside.get("a", 0) > 0 and f.anchors:
                f.anchors[-1] = (f.anchors[-1] + "<img>\n")[:MAX_STRING]
            w, h = a.get("width"), a.get("height")
            if w is not None and h is not None:
                width = height = 0
                m = _DIMENSION.match(w)
                if m:
                    width = int(m.group(1)) * (8 if m.group(2) else 1)
                m = _DIMENSION.match(h)
                if m:
                    height = int(m.group(1)) * (6 if m.group(2) else 1)
                f.image_area += (width if width > 0 else 200) * (height if height > 0 else 200)
        elif tag == "form":
            action = a.get("action")
            if action is not None and "mailto:" in action.lower():
                f.form_action_mailto = True
        elif tag == "iframe":
            src = a.get("src")
            if src is not None and src.strip(_HTML_WS + "\xa0"):
                f.iframe_src = True

    def _text_style(self, tag: str, a: dict[str, str], num: int) -> None:
        """text_style: push the style a start tag sets, pop to the matching start on an end tag."""
        if tag == "th":
            tag = "td"
        if num != 1:
            if tag != "body" and self.on_stack[tag]:
                while True:
                    top = self.styles.pop()
                    self.on_stack[top[0]] -= 1
                    if top[0] == tag:
                        break
            return
        if tag == "basefont" and "size" in a:
            m = _SIZE_ABS.match(a["size"])
            if m:
                self.basefont = int(m.group(1))
                return
        if tag in ("td", "tr") and self.on_stack[tag]:
            # close_table_tag: a new cell closes the fonts and the cell (row) left open
            closes = ("font", "td") if tag == "td" else ("font", "td", "tr")
            while len(self.styles) > 1 and self.styles[-1][0] in closes:
                self.on_stack[self.styles.pop()[0]] -= 1
        _, fg, bg, size, display, visibility = self.styles[-1]
        if tag in ("big", "small"):
            self._push((tag, fg, bg, size + (1 if tag == "big" else -1), display, visibility))
            return
        for name, value in a.items():
            if name in ("text", "color"):
                fg = name_to_rgb(value)
            elif name == "size":
                m = _SIZE_REL.match(value)
                if m:
                    size = self.basefont + int(m.group(1))
                else:
                    m = _SIZE_ABS.match(value)
                    if m:
                        size = int(m.group(1))
            elif name == "style":
                fg, bg, display, visibility = self._css(value, fg, bg, display, visibility)
            # bgcolor: SpamAssassin converts the attribute but never applies it; the other
            # attributes (face, link, background, ...) do not change what is visible
            if size > self.f.max_size:
                self.f.max_size = size
            elif size < self.f.min_size:
                self.f.min_size = size
        self._push((tag, fg, bg, size, display, visibility))

    def _css(self, style: str, fg: str, bg: str, display: str, visibility: str) -> tuple[str, str, str, str]:
        for part in style.split(";"):
            m = _STYLE_COLOR.match(part)
            if m:
                value = _IMPORTANT.sub("", m.group(2).lower())
                if "rgb" in value:
                    digits = re.sub(r"[^0-9,]", "", value).split(",")[:3]
                    digits += [""] * (3 - len(digits))
                    color = "#" + "".join(f"{min(_perl_int(d), 255):02x}" for d in digits)
                elif value == "inherit":
                    continue
                elif value == "transparent":
                    color = value
                else:
                    color = name_to_rgb(value)
                if m.group(1):
                    bg = color
                else:
                    fg = color
                continue
            m = _STYLE_BACKGROUND.match(part)
            if m:
                layers = _css_background_layers(m.group(1).lower())
                for token in layers[-1] if layers else ():
                    color = name_to_rgb(token)
                    if color != "invalid":
                        bg = color
                        break
                continue
            m = _STYLE_OTHER.match(part)
            if m:
                if m.group(1) == "display":
                    display = m.group(2)
                elif m.group(1) == "visibility":
                    visibility = m.group(2)
        if bg == "transparent":
            bg = self.styles[-1][2]
        if fg == "transparent":
            fg = bg
        return fg, bg, display, visibility

    def _push(self, style: Style) -> None:
        if len(self.styles) < MAX_STYLE_DEPTH:
            self.styles.append(style)
            self.on_stack[style[0]] += 1

    def _flush(self) -> None:
        """html_text for the text since the last tag (HTML::Parser reports it as one piece)."""
        if not self.pending:
            return
        text = self.pending[0] if len(self.pending) == 1 else "".join(self.pending)
        self.pending.clear()
        if not text:
            # a reference to nothing ("&#1;" is "") or an empty "<![CDATA[]]>": SpamAssassin's
            # html_text adds nothing for an empty text (and the last character is read below)
            return
        f = self.f
        inside = f.inside
        if inside.get("script", 0) > 0 or inside.get("style", 0) > 0:
            return
        # (white space alone, as between two tags, is common: it has nothing for what follows)
        blank = not text.strip(_HTML_WS)  # (text is not empty here)
        # display_text: white space runs (and no-break spaces) as one space; none leading after
        # a tag's white space (a text invisible by its colours keeps it there: not modelled)
        piece = " " if blank else _SA_SPACES.sub(" ", text)
        if self.sa_ws and self.sa_ws[-1] and piece[:1] == " ":
            piece = piece[1:]
        self.sa_text.append(piece)
        self.sa_ws.append(False)
        if self.a_open and inside.get("a", 0) > 0:
            self.a_text.update(self.a_open)
        if inside.get("a", 0) > 0 and f.anchors and len(f.anchors[-1]) < MAX_STRING:
            f.anchors[-1] = (f.anchors[-1] + text)[:MAX_STRING]
        if inside.get("title", 0) > 0 and f.titles and len(f.titles[-1]) < MAX_STRING:
            f.titles[-1] = (f.titles[-1] + text)[:MAX_STRING]
        if blank:
            self.last_wordish = self.last_ws = False
            self.has_text = True
            return
        f.non_space_len += len("".join(text.split()))
        if self.styles[-1] is not self.checked and text.strip(_HTML_WS):
            # only the colours decide the facts noted: once per style entry, once per pair
            style = self.checked = self.styles[-1]
            if style[1:3] not in self.colors_checked:
                self.colors_checked.add(style[1:3])
                self._invisible()
        if self.has_text and self.last_wordish and _WORDISH.match(text):
            f.obfuscation += 1
        # display_text keeps the piece with white space runs as one space (a leading one after a
        # break dropped): the next piece only asks whether it ends in neither space nor punctuation
        self.last_wordish = _WORDISH.match(text[-1]) is not None
        self.last_ws = False
        self.has_text = True

    def _invisible(self) -> bool:
        """html_font_invisible: notes a colour close to its background or an invalid colour."""
        _, fg, bg, size, display, visibility = self.styles[-1]
        if fg[-6:] == bg[-6:]:
            self.f.font_low_contrast = True
            return True
        m1 = _HEX_RGB.match(fg)
        if m1:
            m2 = _HEX_RGB.match(bg)
            if m2:
                r, g, b = (int(x, 16) - int(y, 16) for x, y in zip(m1.groups(), m2.groups(), strict=True))
                if ((0.2126 * r) ** 2 + (0.7152 * g) ** 2 + (0.0722 * b) ** 2) ** 0.5 < 12:
                    self.f.font_low_contrast = True
                    return True
        if fg == "invalid" or bg == "invalid":
            self.f.font_invalid_color = True
            return True
        return size <= 1 or display.lower() == "none" or visibility.lower() == "hidden"

    def finish(self) -> None:
        """SpamAssassin closes a <style> or <script> left open, then ends the document."""
        for tag in ("style", "script"):
            if self.f.inside.get(tag, 0) > 0:
                self.feed(f"</{tag}>")  # ends the raw-text section, if one is open
                for _ in range(self.f.inside.get(tag, 0)):
                    self._tag(tag, (), -1)
        self._flush()
        tail = self.rawdata if self.rawdata.startswith("<") else ""
        comments = len(self.f.comments)
        self.close()
        if tail:  # HTML::Parser reports markup cut off by the end of the document as a comment
            self.pending.clear()
            del self.f.comments[comments:]
            if len(self.f.comments) < 200:
                self.f.comments.append(tail[:2000])
        self._flush()


class _FastRenderer(_Renderer):
    """_Renderer with html.parser 3.11's hot paths in one place (used when they agree, _RENDERER)."""

    # goahead, parse_starttag and parse_endtag are html.parser's own (Python 3.11.7), step for
    # step and event for event, without what costs and is never read here: line numbers
    # (updatepos), the start tag's text, a method call per test (render_html: 1.3 instead of
    # 1.6 ms per 3 KB of mail HTML; the same events, text and facts on 30,000 corpus, cut and
    # mutated HTML inputs). Comments, declarations, processing instructions and malformed end
    # tags still go through html.parser's methods (and the guards above). A Python whose
    # html.parser tokenizes differently (3.11.13, 3.12.11, 3.13.4 changed the end of the data,
    # attribute values, comments) gets the stock methods: _RENDERER.
    def updatepos(self, i: int, j: int) -> int:
        return j

    def goahead(self, end: int) -> None:  # (html.parser passes 0 or 1)
        rawdata = self.rawdata
        i = 0
        n = len(rawdata)
        handle_data = self.handle_data
        self._begin(bool(end))
        while i < n:
            if self.cdata_elem is None:
                j = rawdata.find("<", i)
                if j < 0:
                    # text ending in what may be a character reference cut in two waits for more
                    amppos = rawdata.rfind("&", max(i, n - 34))
                    if amppos >= 0 and not _SPACE_OR_SEMI.search(rawdata, amppos):
                        break
                    j = n
                if i < j:
                    handle_data(unescape(rawdata[i:j]))
            else:  # inside <script> or <style>: only its end tag ends the text
                match = self.interesting.search(rawdata, i)
                if match is None:
                    break
                j = match.start()
                if i < j:
                    handle_data(rawdata[i:j])
            i = j
            if i == n:
                break
            nxt = rawdata[i + 1:i + 2]
            if nxt.isascii() and nxt.isalpha():
                k = self.parse_starttag(i)
            elif nxt == "/":
                k = self.parse_endtag(i)
            elif rawdata.startswith("<!--", i):
                k = self.parse_comment(i)
            elif nxt == "?":
                k = self.parse_pi(i)
            elif nxt == "!":
                k = self.parse_html_declaration(i)
            elif i + 1 < n:
                handle_data("<")
                k = i + 1
            else:
                break
            if k < 0:  # unterminated: wait for more (at the end the parse methods take it as text)
                if not end:
                    break
                k = self._cut_off(i)
            i = k
        if end and i < n and self.cdata_elem is None:
            handle_data(unescape(rawdata[i:n]))
            i = n
        self.rawdata = rawdata[i:]

    def parse_starttag(self, i: int) -> int:
        if i < self.open_tag_to:
            return self._cut_off(i)
        rawdata = self.rawdata
        # check_for_whole_start_tag: where the tag ends, or -1 when it may go on
        m = _LOCATE_START_END.match(rawdata, i)
        assert m is not None  # ("<" and a letter always match)
        j = m.end()
        nxt = rawdata[j:j + 1]
        if nxt == ">":
            endpos = j + 1
        elif nxt == "/":
            if not rawdata.startswith("/>", j):
                return self._open_tag(i, j) if self.at_end else -1
            endpos = j + 2
        elif nxt == "" or nxt in _TAG_GOES_ON:
            return self._open_tag(i, j) if self.at_end else -1
        else:
            endpos = j if j > i else i + 1
        m = _TAG_NAME.match(rawdata, i + 1)
        assert m is not None
        k = m.end()
        tag = m.group(1).lower()
        attrs: list[tuple[str, str | None]] = []
        while k < endpos:
            m = _ATTRIBUTE.match(rawdata, k)
            if not m:
                break
            name, rest, value = m.group(1, 2, 3)
            if not rest:
                value = None
            elif value[:1] == "'" == value[-1:] or value[:1] == '"' == value[-1:]:
                value = value[1:-1]
            if value and "&" in value:  # (unescape's own first test, without the call)
                value = unescape(value)
            attrs.append((name.lower(), value))
            k = m.end()
        close = rawdata[k:endpos].strip()
        if close not in (">", "/>"):
            self.handle_data(rawdata[i:endpos])
        elif close == "/>":
            self.handle_startendtag(tag, attrs)
        else:
            self.handle_starttag(tag, attrs)
            if tag in self.CDATA_CONTENT_ELEMENTS:
                self.set_cdata_mode(tag)
        return endpos

    def parse_endtag(self, i: int) -> int:
        rawdata = self.rawdata
        gtpos = rawdata.find(">", i + 1) + 1 if i + 1 < self.no_gt_from else 0
        if not gtpos:
            return self._cut_off(i) if self.at_end else -1
        m = _END_TAG.match(rawdata, i)
        if m is None:  # "</ x>", "</a b>", "</>" ...: html.parser's own way
            return int(super().parse_endtag(i))
        tag = m.group(1).lower()
        if self.cdata_elem is not None and tag != self.cdata_elem:
            self.handle_data(rawdata[i:gtpos])
            return gtpos
        self.handle_endtag(tag)
        self.clear_cdata_mode()
        return gtpos


def _attrs(attrs: list[tuple[str, str | None]] | tuple[()]) -> dict[str, str]:
    """HTML::Parser's attribute hash: the first of repeated names wins, a bare name is its value."""
    out: dict[str, str] = {}
    for k, v in attrs:
        if k not in out:
            out[k] = k if v is None else v
    return out


def render_html(html: str) -> HtmlFacts:
    return _render(html, _RENDERER)


def _render(html: str, renderer: type[_Renderer]) -> HtmlFacts:
    facts = HtmlFacts(length=len(html))
    if len(html) > MAX_HTML:
        html = html[:MAX_HTML]
        facts.truncated = True
    if "&nbsp;" in html:
        html = html.replace("&nbsp;", " ")  # as SpamAssassin does before parsing
    r = renderer(facts)
    try:
        r.feed(html)
        r.finish()
    except (AssertionError, ValueError, RecursionError):
        pass  # malformed markup: keep what was rendered so far
    facts.text = "".join(r.sa_text)
    facts.uris = r.uris.uris
    facts.uri_kinds = [("a" if i in r.a_text else "a_empty") if k == "a" else k for i, k in enumerate(r.uris.kinds)]
    facts.title = " ".join("".join(r.title).split())
    return facts


# inputs on which html.parser 3.11 and 3.12.11 / 3.13.4 and later differ, and the corners of
# _FastRenderer's own code: attributes (quoted, bare, repeated, character references), "/>",
# bogus start and end tags, script and style, comments, declarations, marked sections, text cut
# off in a tag, a comment, a reference
_TOKENIZER_PROBES = (
    "<p class=a id=\"b\" title='c' checked>x</p><P CLASS=A>y</P><div\n class=x\t/ >z",
    "<a href=\"?a=1&copy=2&amp;b&#65;\" title='&lt;x&gt'>l</a><img src=x alt= />",
    "<br/><a/b>< a><a\x00b>t<a b c=d=e f==g>u",
    "</a ></ a></><//x></3></a b=c></A\n>",
    "<script>if (a<b) x='</scr'+'ipt>';</script ><style>p{}</style x><script>s</script>",
    "<textarea><b>x</b></textarea><title>T&amp;</title><xmp>v</xmp>",
    "<!--c--><!--x--!>y--><!---->w<!-->z<!--->q<!- x>",
    "<!DOCTYPE html><![CDATA[d]]><![if !mso]>e<![endif]><?pi x><!x><!>",
    "&amp;&lt &#1;&#x41;&notit; &frac12x &#0; a<b>&#1;</b>",
    "<a b='>' c=\"<i>\">i</a><a b='x>y'>",
    "<p>t<a href='http://cut.example/ x",
    "<a x <a x <a b='<a b='<a",
    "<!--a<!--b<!--",
    "<!doctype x<!doctype",
    "<![CDATA[x<![CDATA[y",
    "</a x</b",
    "<?x<?y",
    "<p>x<script>y",
    "<p>x &am",
)


def _fast_tokenizer_agrees() -> bool:
    """Whether _FastRenderer cuts the markup as the running html.parser does (it is 3.11's)."""
    if any(not isinstance(getattr(html.parser, name, None), re.Pattern) for name in _TOKENIZER_GLOBALS):
        return False
    try:
        return all(_render(h, _FastRenderer) == _render(h, _Renderer) for h in _TOKENIZER_PROBES)
    except Exception:  # noqa: BLE001 (any failure: the stock methods)
        return False


# the class render_html uses: checked once, at import (1 ms)
_RENDERER: type[_Renderer] = _FastRenderer if _fast_tokenizer_agrees() else _Renderer
