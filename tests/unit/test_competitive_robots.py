"""robots.txt per RFC 9309: our group or '*', longest match wins, Allow wins ties, wildcards."""

from __future__ import annotations

from agency.competitive import robots

UA = "AgencyCompetitiveWatch/1.0 (+https://example.org)"
BASE = "https://peak.example"


def test_star_group_applies_when_we_are_not_named():
    rules = robots.parse("User-agent: *\nDisallow: /private/\n", UA)
    assert not rules.allows(f"{BASE}/private/plans.html")
    assert rules.allows(f"{BASE}/blog/post")


def test_our_own_group_replaces_the_star_group():
    text = "User-agent: *\nDisallow: /\n\nUser-agent: agencycompetitivewatch\nDisallow: /drafts\n"
    rules = robots.parse(text, UA)
    assert rules.allows(f"{BASE}/blog")
    assert not rules.allows(f"{BASE}/drafts/x")


def test_longest_match_wins_regardless_of_order():
    # urllib.robotparser lets the first rule win here and would refuse /shop/public/.
    rules = robots.parse("User-agent: *\nDisallow: /shop/\nAllow: /shop/public/\n", UA)
    assert rules.allows(f"{BASE}/shop/public/item")
    assert not rules.allows(f"{BASE}/shop/cart")


def test_allow_wins_a_tie():
    rules = robots.parse("User-agent: *\nDisallow: /page\nAllow: /page\n", UA)
    assert rules.allows(f"{BASE}/page")


def test_wildcards_and_end_anchor():
    rules = robots.parse("User-agent: *\nDisallow: /*.pdf$\nDisallow: /*?session=\n", UA)
    assert not rules.allows(f"{BASE}/docs/brochure.pdf")
    assert rules.allows(f"{BASE}/docs/brochure.pdf.html")
    assert not rules.allows(f"{BASE}/blog?session=abc")
    assert rules.allows(f"{BASE}/blog?page=2")


def test_grouped_user_agents_share_rules_and_empty_disallow_allows():
    text = "User-agent: other\nUser-agent: AgencyCompetitiveWatch\nDisallow: /a\n\nUser-agent: *\nDisallow:\n"
    rules = robots.parse(text, UA)
    assert not rules.allows(f"{BASE}/a/b")
    assert robots.parse("User-agent: *\nDisallow:\n", UA).allows(f"{BASE}/anything")


def test_percent_encoding_is_compared_normalized():
    rules = robots.parse("User-agent: *\nDisallow: /café\n", UA)
    assert not rules.allows(f"{BASE}/caf%C3%A9/menu")


def test_robots_txt_itself_and_unreachable_and_missing_files():
    assert robots.parse("User-agent: *\nDisallow: /\n", UA).allows(f"{BASE}/robots.txt")
    assert not robots.disallow_all().allows(f"{BASE}/")
    assert robots.allow_all().allows(f"{BASE}/anything")


def test_our_group_with_an_empty_disallow_overrides_a_star_disallow_all():
    text = "User-agent: *\nDisallow: /\nSitemap: /s.xml\n\nUser-agent: AgencyCompetitiveWatch\nDisallow:\n"
    assert robots.parse(text, UA).allows(f"{BASE}/blog")
    assert not robots.parse(text, "OtherBot/2.0").allows(f"{BASE}/blog")
