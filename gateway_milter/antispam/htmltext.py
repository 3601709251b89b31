"""Render HTML to text once per message (bounded) and collect the facts rules ask about.

``html.parser`` is a tokenizer, not a tree builder: deeply nested tags cost nothing extra, and
input is capped at :data:`MAX_HTML` characters so a megabyte of markup stays within budget.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from html.parser import HTMLParser

MAX_HTML = 1_000_000
SKIP_CONTENT = {"script", "style", "head", "title", "noscript", "template"}
BLOCK = {"p", "div", "br", "tr", "li", "h1", "h2", "h3", "h4", "h5", "h6", "table", "blockquote", "hr", "pre",
         "ul", "ol", "dl", "dt", "dd", "section", "article", "header", "footer", "form"}
KNOWN_TAGS = BLOCK | SKIP_CONTENT | {
    "a", "abbr", "b", "body", "big", "center", "code", "em", "font", "html", "i", "img", "input", "label", "link",
    "map", "area", "meta", "small", "span", "strong", "sub", "sup", "tbody", "td", "th", "thead", "tfoot", "u",
    "button", "select", "option", "textarea", "iframe", "frame", "frameset", "object", "embed", "base", "col",
    "colgroup", "caption", "s", "strike", "tt", "nobr", "wbr", "o:p", "st1", "figure", "picture", "source",
    "video", "audio", "svg", "main", "nav", "aside", "address", "cite", "q", "dfn", "kbd", "samp", "var", "mark",
}


@dataclass(slots=True)
class HtmlFacts:
    text: str = ""
    title: str = ""
    links: list[str] = field(default_factory=list)
    tags: Counter[str] = field(default_factory=Counter)
    elements: int = 0
    bad_tags: int = 0
    images: int = 0
    image_area: int = 0
    length: int = 0
    truncated: bool = False
    comments: list[str] = field(default_factory=list)  # "<!--...-->" and "<!DECL>" as written


class _Renderer(HTMLParser):
    def __init__(self, facts: HtmlFacts) -> None:
        super().__init__(convert_charrefs=True)
        self.f = facts
        self.out: list[str] = []
        self.skip = 0
        self.in_title = False
        self.title: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        f = self.f
        f.elements += 1
        f.tags[tag] += 1
        if tag not in KNOWN_TAGS:
            f.bad_tags += 1
        if tag in SKIP_CONTENT:
            self.skip += 1
            if tag == "title":
                self.in_title = True
        if tag in BLOCK:
            self.out.append("\n")
        if len(f.links) < 2000:
            for k, v in attrs:
                if v and k in ("href", "src", "action", "background"):
                    f.links.append(v.strip())
        if tag == "img":
            f.images += 1
            a = dict(attrs)
            try:
                f.image_area += int(str(a.get("width") or 0)) * int(str(a.get("height") or 0))
            except ValueError:
                pass
            alt = a.get("alt")
            if alt:
                self.out.append(" " + alt + " ")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag in SKIP_CONTENT:
            self.handle_endtag(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag in SKIP_CONTENT and self.skip:
            self.skip -= 1
            if tag == "title":
                self.in_title = False
        if tag in BLOCK:
            self.out.append("\n")

    def handle_comment(self, data: str) -> None:
        if len(self.f.comments) < 200:
            self.f.comments.append(f"<!--{data[:2000]}-->")

    def handle_decl(self, decl: str) -> None:
        if len(self.f.comments) < 200:
            self.f.comments.append(f"<!{decl[:2000]}>")

    def handle_data(self, data: str) -> None:
        if self.in_title:
            self.title.append(data)
        if not self.skip:
            self.out.append(data)


def render_html(html: str) -> HtmlFacts:
    facts = HtmlFacts(length=len(html))
    if len(html) > MAX_HTML:
        html = html[:MAX_HTML]
        facts.truncated = True
    r = _Renderer(facts)
    try:
        r.feed(html)
        r.close()
    except (AssertionError, ValueError, RecursionError):
        pass  # malformed markup: keep what was rendered so far
    facts.text = "".join(r.out)
    facts.title = " ".join("".join(r.title).split())
    return facts
