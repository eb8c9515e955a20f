"""Feeds, sitemaps and pages -> items; fingerprints that notice a changed item; hostile XML refused."""

from __future__ import annotations

import pytest

from agency.competitive.feeds import FeedError, fingerprint, parse_document, slug_title

RSS = b"""<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0" xmlns:content="http://purl.org/rss/1.0/modules/content/">
<channel><title>Peak Gear blog</title><link>https://peak.example/blog</link>
<item><title>Trail running shoes for wet autumn</title><link>https://peak.example/blog/wet-trail-shoes</link>
  <guid isPermaLink="false">peak-101</guid><pubDate>Tue, 10 Nov 2026 09:30:00 +0100</pubDate>
  <description>&lt;p&gt;Grip &amp;amp; drainage matter &lt;b&gt;most&lt;/b&gt;.&lt;/p&gt;</description></item>
<item><title>Layering for winter hikes</title><link>/blog/layering</link>
  <pubDate>Mon, 09 Nov 2026 08:00:00 GMT</pubDate>
  <content:encoded><![CDATA[<p>Base, mid and shell layers.</p><script>track()</script>]]></content:encoded></item>
</channel></rss>"""

ATOM = b"""<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom"><title>Summit news</title>
<entry><id>tag:summit.example,2026:1</id><title type="html">Ultralight tents &amp;amp; tarps</title>
  <link rel="alternate" href="https://summit.example/posts/ultralight"/>
  <link rel="edit" href="https://summit.example/edit/1"/>
  <updated>2026-11-12T10:00:00Z</updated><summary>Under one kilo.</summary></entry>
</feed>"""

SITEMAP_INDEX = b"""<?xml version="1.0" encoding="UTF-8"?>
<sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">
<sitemap><loc>https://peak.example/sitemap-blog.xml</loc></sitemap>
<sitemap><loc>/sitemap-shop.xml</loc></sitemap></sitemapindex>"""

SITEMAP = b"""<?xml version="1.0" encoding="UTF-8"?>
<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">
<url><loc>https://peak.example/blog/trail-running-shoes.html</loc><lastmod>2026-11-10</lastmod></url>
<url><loc>https://peak.example/blog/winter_layering/</loc></url></urlset>"""

PAGE = b"""<!DOCTYPE html><html><head><title> Peak Gear | Autumn sale </title><script>var x=1</script></head>
<body><nav>Home Shop Blog</nav><header>Logo</header>
<main><h1>Autumn sale</h1><p>30% off rain jackets &amp; trail shoes.</p></main>
<footer>Copyright</footer></body></html>"""


def test_rss_items_carry_guid_link_text_and_utc_date():
    doc = parse_document(RSS, "application/rss+xml", "https://peak.example/feed.xml")
    assert doc.kind == "rss"
    first, second = doc.items
    assert first.external_id == "peak-101"
    assert first.title == "Trail running shoes for wet autumn"
    assert first.text == "Grip & drainage matter most."
    assert first.published == "2026-11-10T08:30:00+00:00"
    # No guid: the link identifies the item, made absolute against the feed's URL.
    assert second.external_id == second.url == "https://peak.example/blog/layering"
    assert second.text == "Base, mid and shell layers."  # content:encoded preferred, scripts dropped


def test_atom_entry_uses_id_alternate_link_and_updated():
    (entry,) = parse_document(ATOM, "application/atom+xml", "https://summit.example/atom").items
    assert entry.external_id == "tag:summit.example,2026:1"
    assert entry.url == "https://summit.example/posts/ultralight"
    assert entry.title == "Ultralight tents & tarps"
    assert entry.published == "2026-11-12T10:00:00+00:00"


def test_sitemap_index_lists_children_and_sitemap_lists_pages():
    index = parse_document(SITEMAP_INDEX, "application/xml", "https://peak.example/sitemap.xml")
    assert index.kind == "sitemap_index"
    assert index.sitemaps == ["https://peak.example/sitemap-blog.xml", "https://peak.example/sitemap-shop.xml"]
    pages = parse_document(SITEMAP, "text/xml", "https://peak.example/sitemap-blog.xml").items
    assert [p.title for p in pages] == ["trail running shoes", "winter layering"]
    assert pages[0].published == "2026-11-10T00:00:00+00:00"


def test_sitemap_lastmod_change_changes_the_fingerprint():
    before = parse_document(SITEMAP, "text/xml", "https://peak.example/s.xml").items[0]
    after = parse_document(SITEMAP.replace(b"2026-11-10", b"2026-11-20"), "text/xml", "https://peak.example/s.xml").items[0]
    assert before.external_id == after.external_id
    assert before.fingerprint != after.fingerprint


def test_page_keeps_title_and_main_text_only():
    (page,) = parse_document(PAGE, "text/html; charset=utf-8", "https://peak.example/sale").items
    assert page.external_id == "https://peak.example/sale"
    assert page.title == "Peak Gear | Autumn sale"
    assert page.text == "Autumn sale 30% off rain jackets & trail shoes."


def test_fingerprint_ignores_case_and_whitespace_but_not_words():
    assert fingerprint("Trail  Shoes", "Grip\nmatters") == fingerprint("trail shoes", " grip matters ")
    assert fingerprint("Trail Shoes", "Grip matters") != fingerprint("Trail Shoes", "Grip matters less")


def test_changed_rss_item_keeps_its_id_and_gets_a_new_fingerprint():
    before = parse_document(RSS, "", "https://peak.example/feed.xml").items[0]
    after = parse_document(RSS.replace(b"most", b"more than weight"), "", "https://peak.example/feed.xml").items[0]
    assert before.external_id == after.external_id
    assert before.fingerprint != after.fingerprint


@pytest.mark.parametrize(
    "body",
    [
        b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;">]>'
        b"<rss><channel><item><title>&lol2;</title></item></channel></rss>",
        b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><rss>&x;</rss>',
        b"<rss><channel><item><title>unclosed",
        b"<html-ish>not a feed</html-ish>",
    ],
)
def test_hostile_or_unknown_xml_is_refused(body):
    with pytest.raises(FeedError):
        parse_document(body, "application/xml", "https://x.example/feed")


def test_slug_title():
    assert slug_title("https://x.example/blog/how-to_pack+light.html?x=1") == "how to pack light"
