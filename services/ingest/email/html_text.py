"""HTML bodies as plain text, with the quoted history of a reply told apart."""

from __future__ import annotations

import re
from dataclasses import dataclass
from html import unescape as _html_unescape
from typing import Final

from bs4 import BeautifulSoup
from bs4.element import NavigableString, PageElement, PreformattedString, Tag
from bs4.exceptions import ParserRejectedMarkup

from services.ingest.email.headers import HEADER_ERRORS
from services.ingest.email.text import WHITESPACE_RE, collapse_whitespace, normalise_newlines, tidy

# HTML beyond these limits is not converted: customer text sits at the top of a message, and
# the limits bound the time spent on adversarial markup.
_MAX_HTML_CHARS: Final = 500_000
_MAX_HTML_TAGS: Final = 20_000


# --------------------------------------------------------------------------------------------
# HTML to text
# --------------------------------------------------------------------------------------------

_SKIP_TAGS: Final = frozenset(
    {"script", "style", "head", "title", "template", "noscript", "svg", "math", "object"}
)
_BLOCK_TAGS: Final = frozenset(
    {
        "address", "article", "aside", "blockquote", "caption", "center", "dd", "details",
        "dialog", "dir", "div", "dl", "dt", "fieldset", "figcaption", "figure", "footer",
        "form", "header", "hgroup", "hr", "legend", "li", "main", "menu", "nav", "ol", "pre",
        "section", "summary", "table", "tbody", "tfoot", "thead", "tr", "ul",
    }
)  # fmt: skip
_PARAGRAPH_TAGS: Final = frozenset({"p", "h1", "h2", "h3", "h4", "h5", "h6"})
_PRE_TAGS: Final = frozenset({"pre", "textarea", "listing", "plaintext", "xmp"})
_CELL_TAGS: Final = frozenset({"td", "th"})
_QUOTE_CLASSES: Final = frozenset(
    {"gmail_quote", "gmail_quote_container", "yahoo_quoted", "moz-cite-prefix"}
)
_HISTORY_IDS: Final = frozenset({"divrplyfwdmsg", "appendonsend"})
_XML_DECLARATION_RE: Final = re.compile(r"^\s*<\?xml[^>]*>")
_CRUDE_BREAK_RE: Final = re.compile(
    r"<\s*(?:br|/?p|/?div|/?li|/?tr|/?h[1-6]|/?ul|/?ol|/?table|/?blockquote)\b[^<>]*>",
    re.IGNORECASE,
)
_CRUDE_TAG_RE: Final = re.compile(r"<[^<>]*>")


class _TextSink:
    """Accumulates rendered text, turning requested line breaks into newlines lazily."""

    __slots__ = ("_at_line_start", "_last_space", "_parts", "_pending")

    def __init__(self) -> None:
        self._parts: list[str] = []
        self._pending = 0
        self._at_line_start = True
        self._last_space = False

    def text(self, text: str, *, pre: bool) -> None:
        if pre:
            text = normalise_newlines(text)
        else:
            hard_space = "\xa0" in text
            text = WHITESPACE_RE.sub(" ", text)
            if self._at_line_start or self._pending or self._last_space:
                text = text.lstrip(" ")
            if not text and hard_space:
                # A non-breaking space keeps its line, e.g. Outlook's <p>&nbsp;</p> blank lines.
                self._flush_pending()
                self._at_line_start = False
                self._last_space = True
        if not text:
            return
        self._flush_pending()
        self._parts.append(text)
        self._at_line_start = text.endswith("\n")
        self._last_space = text.endswith(" ")

    def _flush_pending(self) -> None:
        if self._pending and self._parts:
            self._parts.append("\n" * self._pending)
        self._pending = 0

    def block_break(self, newlines: int) -> None:
        """Ensure at least ``newlines`` line breaks before the next text."""
        self._pending = max(self._pending, newlines)

    def line_break(self) -> None:
        """Add one line break (``<br>``)."""
        self._pending += 1

    def result(self) -> str:
        return tidy("".join(self._parts))


@dataclass(frozen=True, slots=True)
class _Exit:
    newlines: int
    quote: bool
    pre: bool


def _classes(tag: Tag) -> list[str]:
    value = tag.get("class")
    if value is None:
        return []
    if isinstance(value, str):
        return value.split()
    return [str(item) for item in value]


def _is_quote_container(tag: Tag) -> bool:
    return tag.name == "blockquote" or any(c.lower() in _QUOTE_CLASSES for c in _classes(tag))


def _starts_history(tag: Tag) -> bool:
    value = tag.get("id")
    return isinstance(value, str) and value.strip().lower() in _HISTORY_IDS


def _block_newlines(tag: Tag) -> int:
    if tag.name in _PARAGRAPH_TAGS:
        # Outlook writes every line as <p class=MsoNormal> with no margin: one line each.
        if any(c.lower() == "msonormal" for c in _classes(tag)):
            return 1
        return 2
    return 1 if tag.name in _BLOCK_TAGS else 0


def _limit_html(html: str) -> str:
    html = _XML_DECLARATION_RE.sub("", html[:_MAX_HTML_CHARS], count=1)
    position = -1
    for _ in range(_MAX_HTML_TAGS):
        position = html.find("<", position + 1)
        if position < 0:
            return html
    return html[:position]


def _crude_html_to_text(html: str) -> str:
    text = _CRUDE_BREAK_RE.sub("\n", html)
    text = _html_unescape(_CRUDE_TAG_RE.sub(" ", text))
    lines = (collapse_whitespace(line) for line in normalise_newlines(text).split("\n"))
    return tidy("\n".join(lines))


def render_html(html: str) -> tuple[str, str]:
    """Render HTML as (text without quoted history, text with everything)."""
    html = _limit_html(html)
    if "<" not in html:
        text = _crude_html_to_text(html)
        return text, text
    try:
        soup = BeautifulSoup(html, "html.parser")
    except (ParserRejectedMarkup, *HEADER_ERRORS):
        text = _crude_html_to_text(html)
        return text, text
    return _render_tree(soup)


def _render_tree(soup: BeautifulSoup) -> tuple[str, str]:
    reply = _TextSink()
    full = _TextSink()
    in_history = False
    quote_depth = 0
    pre_depth = 0
    work: list[PageElement | _Exit] = [soup]
    while work:
        node = work.pop()
        if isinstance(node, _Exit):
            quote_depth -= node.quote
            pre_depth -= node.pre
            reply.block_break(node.newlines)
            full.block_break(node.newlines)
            continue
        if isinstance(node, NavigableString):
            if isinstance(node, PreformattedString):
                continue
            full.text(str(node), pre=pre_depth > 0)
            if not in_history and not quote_depth:
                reply.text(str(node), pre=pre_depth > 0)
            continue
        if not isinstance(node, Tag) or node.name in _SKIP_TAGS:
            continue
        if _starts_history(node):
            in_history = True
        quoted = in_history or quote_depth > 0
        if node.name == "br":
            reply.line_break()
            full.line_break()
            continue
        newlines = _block_newlines(node)
        reply.block_break(newlines)
        full.block_break(newlines)
        if node.name == "li":
            full.text("- ", pre=False)
            if not quoted:
                reply.text("- ", pre=False)
        elif node.name in _CELL_TAGS:
            full.text(" ", pre=False)
            if not quoted:
                reply.text(" ", pre=False)
        is_quote = _is_quote_container(node)
        is_pre = node.name in _PRE_TAGS
        quote_depth += is_quote
        pre_depth += is_pre
        work.append(_Exit(newlines, is_quote, is_pre))
        work.extend(reversed(node.contents))
    return reply.result(), full.result()


def html_to_text(html: str) -> str:
    """Readable plain text from an HTML body, without quoted reply history.

    Scripts, styles and the document head are dropped; block elements and ``<br>`` become line
    breaks, list items get their own ``- `` lines, entities are decoded, whitespace is collapsed
    within lines and at most one blank line is kept in a row. ``<blockquote>``, Gmail's
    ``div.gmail_quote``, Yahoo's and Thunderbird's quote containers are dropped, and so is
    everything from Outlook's ``#divRplyFwdMsg`` or ``#appendonsend`` onwards. Only the first
    500,000 characters and 20,000 tags are converted.
    """
    return render_html(html)[0]
