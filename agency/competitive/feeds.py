"""Competitors' public documents -> items: RSS 2.0, Atom, sitemap.xml (and sitemap indexes), HTML pages.

Pure functions over the response body. XML goes through defusedxml with DTDs forbidden: feeds
never need one, and a DTD is how entity-expansion ("billion laughs") and external-entity
attacks get in.
"""

from __future__ import annotations

import hashlib
import html
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from html.parser import HTMLParser
from urllib.parse import unquote, urljoin, urlsplit
from xml.etree.ElementTree import Element

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import ParseError, fromstring

from agency.competitive.contracts import FetchedItem

MAX_TEXT_CHARS = 2000  # enough for topics and embeddings (the embedder reads 256 tokens)
MAX_ITEMS = 200  # per document: a huge sitemap is sampled, not shipped whole through Temporal
_SPACES = re.compile(r"\s+")
_HTML_START = re.compile(rb"<(!doctype\s+html|html[\s>])")


class FeedError(ValueError):
    """The body is not a document we can read (malformed XML, a DTD, an unknown root)."""


@dataclass
class ParsedDocument:
    kind: str  # "rss" | "atom" | "sitemap" | "sitemap_index" | "page"
    items: list[FetchedItem] = field(default_factory=list)
    sitemaps: list[str] = field(default_factory=list)  # a sitemap index's children


def normalize(text: str) -> str:
    return _SPACES.sub(" ", text).strip().casefold()


def fingerprint(title: str, text: str) -> str:
    """Same title and text (ignoring case and whitespace) -> same fingerprint."""
    return hashlib.sha256(f"{normalize(title)}\n{normalize(text)}".encode()).hexdigest()[:32]


def _clip(text: str) -> str:
    text = _SPACES.sub(" ", text).strip()
    return text if len(text) <= MAX_TEXT_CHARS else text[:MAX_TEXT_CHARS].rsplit(" ", 1)[0]


def _iso(value: datetime | None) -> str:
    if value is None:
        return ""
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc).isoformat()


def parse_date(value: str | None) -> str:
    """RFC 822 (RSS) or ISO 8601 (Atom, sitemaps) -> ISO-8601 UTC; "" when unreadable."""
    value = (value or "").strip()
    if not value:
        return ""
    try:
        return _iso(datetime.fromisoformat(value.replace("Z", "+00:00")))
    except ValueError:
        pass
    try:
        return _iso(parsedate_to_datetime(value))
    except (TypeError, ValueError, IndexError):
        return ""


def item(external_id: str, url: str, title: str, text: str, published: str = "", *, version: str = "") -> FetchedItem:
    title, text = _clip(title), _clip(text)
    # ``version`` joins the fingerprint for entries without text (sitemap lastmod).
    return FetchedItem(
        external_id=external_id.strip()[:1000], url=url.strip(), title=title[:500], text=text, published=published,
        fingerprint=fingerprint(title, f"{text}\n{version}" if version else text),
    )


# ---- HTML --------------------------------------------------------------------------------
_SKIP = {"script", "style", "noscript", "template", "svg", "nav", "header", "footer", "aside", "form"}
_VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}
_BLOCK = {"p", "div", "li", "h1", "h2", "h3", "h4", "h5", "h6", "br", "tr", "section", "article", "main", "pre"}


class _PageText(HTMLParser):
    """Collects the <title>, and the text of <main>/<article> if present, else of the body,
    leaving out scripts, styles and the chrome around content (nav, header, footer, aside)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.title: list[str] = []
        self.all_text: list[str] = []
        self.main_text: list[str] = []
        self._in_title = False
        self._skip = 0
        self._main = 0

    def handle_starttag(self, tag: str, attrs) -> None:
        if tag in _VOID:
            return
        if tag == "title":
            self._in_title = True
        elif tag in _SKIP:
            self._skip += 1
        elif tag in ("main", "article"):
            self._main += 1
        if tag in _BLOCK:
            self._emit(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self._in_title = False
        elif tag in _SKIP:
            self._skip = max(0, self._skip - 1)
        elif tag in ("main", "article"):
            self._main = max(0, self._main - 1)
        if tag in _BLOCK:
            self._emit(" ")

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title.append(data)
        elif not self._skip:
            self._emit(data)

    def _emit(self, data: str) -> None:
        self.all_text.append(data)
        if self._main:
            self.main_text.append(data)


def html_text(markup: str) -> str:
    """Plain text of an HTML fragment (feed descriptions often carry HTML)."""
    if "<" not in markup:
        return _SPACES.sub(" ", html.unescape(markup)).strip()
    parser = _PageText()
    parser.feed(markup)
    parser.close()
    return _SPACES.sub(" ", "".join(parser.all_text)).strip()


def parse_page(body: str, url: str) -> FetchedItem:
    """An HTML page -> one item: its title and main text, identified by its URL."""
    parser = _PageText()
    parser.feed(body)
    parser.close()
    title = _SPACES.sub(" ", "".join(parser.title)).strip()
    text = "".join(parser.main_text) if "".join(parser.main_text).strip() else "".join(parser.all_text)
    return item(url, url, title, text)


# ---- XML ---------------------------------------------------------------------------------
def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _child(el: Element, name: str) -> Element | None:
    return next((c for c in el if _local(c.tag) == name), None)


def _text(el: Element, name: str) -> str:
    child = _child(el, name)
    return "".join(child.itertext()).strip() if child is not None else ""


def _rss(root: Element, base_url: str) -> ParsedDocument:
    channel = _child(root, "channel")
    entries = [c for c in (channel if channel is not None else root) if _local(c.tag) == "item"]
    items = []
    for entry in entries[:MAX_ITEMS]:
        title = html_text(_text(entry, "title"))
        link = urljoin(base_url, _text(entry, "link"))
        # content:encoded carries the full post where the feed has it; description is the summary.
        body = _text(entry, "encoded") or _text(entry, "description")
        external = _text(entry, "guid") or link or fingerprint(title, body)
        items.append(item(external, link, title, html_text(body), parse_date(_text(entry, "pubDate"))))
    return ParsedDocument("rss", items)


def _atom_link(entry: Element, base_url: str) -> str:
    links = [c for c in entry if _local(c.tag) == "link"]
    chosen = next((c for c in links if c.get("rel", "alternate") == "alternate"), links[0] if links else None)
    return urljoin(base_url, chosen.get("href", "")) if chosen is not None else ""


def _atom(root: Element, base_url: str) -> ParsedDocument:
    items = []
    for entry in [c for c in root if _local(c.tag) == "entry"][:MAX_ITEMS]:
        title = html_text(_text(entry, "title"))
        link = _atom_link(entry, base_url)
        body = _text(entry, "content") or _text(entry, "summary")
        external = _text(entry, "id") or link or fingerprint(title, body)
        published = parse_date(_text(entry, "published") or _text(entry, "updated"))
        items.append(item(external, link, title, html_text(body), published))
    return ParsedDocument("atom", items)


def slug_title(url: str) -> str:
    """'https://x.com/blog/trail-running-shoes.html' -> 'trail running shoes': a sitemap's only words."""
    path = unquote(urlsplit(url).path).rstrip("/")
    last = path.rsplit("/", 1)[-1]
    last = re.sub(r"\.(html?|php|aspx?)$", "", last)
    return _SPACES.sub(" ", re.sub(r"[-_+]+", " ", last)).strip()


def _sitemap(root: Element, base_url: str) -> ParsedDocument:
    items = []
    for entry in [c for c in root if _local(c.tag) == "url"][:MAX_ITEMS]:
        loc = urljoin(base_url, _text(entry, "loc"))
        if not loc:
            continue
        lastmod = parse_date(_text(entry, "lastmod"))
        # No text in a sitemap: a new lastmod is how the site says the page changed.
        items.append(item(loc, loc, slug_title(loc), "", lastmod, version=lastmod))
    return ParsedDocument("sitemap", items)


def _sitemap_index(root: Element, base_url: str) -> ParsedDocument:
    children = [urljoin(base_url, _text(c, "loc")) for c in root if _local(c.tag) == "sitemap"]
    return ParsedDocument("sitemap_index", sitemaps=[c for c in children if c])


_XML_ROOTS = {"rss": _rss, "RDF": _rss, "feed": _atom, "urlset": _sitemap, "sitemapindex": _sitemap_index}


def parse_xml(body: bytes, base_url: str) -> ParsedDocument:
    try:
        root = fromstring(body, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except (ParseError, DefusedXmlException) as err:
        raise FeedError(f"unreadable XML: {err}") from err
    handler = _XML_ROOTS.get(_local(root.tag))
    if handler is None:
        raise FeedError(f"unknown XML document <{_local(root.tag)}>")
    return handler(root, base_url)


def parse_document(body: bytes, content_type: str, url: str) -> ParsedDocument:
    """Whatever the source serves, by its content (a declared kind can be wrong: sites move
    from RSS to Atom without telling anyone)."""
    head = body[:512].lstrip().lower()
    is_html = "html" in content_type.lower() or _HTML_START.match(head) is not None
    if is_html:
        charset = re.search(r"charset=([\w-]+)", content_type or "")
        try:
            text = body.decode(charset.group(1) if charset else "utf-8", errors="replace")
        except LookupError:  # a charset Python does not know
            text = body.decode("utf-8", errors="replace")
        return ParsedDocument("page", [parse_page(text, url)])
    return parse_xml(body, url)
