"""robots.txt (RFC 9309) for our crawler: which group applies to us, and may we fetch a path.

urllib.robotparser is not used: it lets the first matching rule win (RFC 9309 says the longest
match wins, Allow on a tie) and it ignores the ``*`` and ``$`` wildcards, so it would fetch
paths a site forbids.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import quote, unquote, urlsplit

MAX_ROBOTS_BYTES = 500 * 1024  # RFC 9309 §2.5: parse at least 500 KiB, ignore the rest


@dataclass(frozen=True)
class Rule:
    allow: bool
    pattern: str

    def matches(self, path: str) -> bool:
        return _compile(self.pattern).match(path) is not None


@dataclass
class Robots:
    """The rules of the group that applies to our user agent (empty: everything allowed)."""

    rules: list[Rule] = field(default_factory=list)
    disallow_all: bool = False  # robots.txt unreachable (5xx, network): assume complete disallow

    def allows(self, url: str) -> bool:
        if self.disallow_all:
            return False
        path = _path(url)
        if path == "/robots.txt":
            return True
        best: Rule | None = None
        for rule in self.rules:
            if not rule.matches(path):
                continue
            # Longest pattern wins; on equal length the less restrictive (Allow) wins.
            if best is None or (len(rule.pattern), rule.allow) > (len(best.pattern), best.allow):
                best = rule
        return best is None or best.allow


def allow_all() -> Robots:
    """robots.txt missing (4xx): everything may be fetched (RFC 9309 §2.3.1.3)."""
    return Robots()


def disallow_all() -> Robots:
    """robots.txt unreachable (5xx or network error): nothing may be fetched (RFC 9309 §2.3.1.4)."""
    return Robots(disallow_all=True)


def _normalize_path(path: str) -> str:
    # Compare percent-encoded forms so "/caf%C3%A9" and "/café" are the same path.
    return quote(unquote(path), safe="/?=&;:@!$'()*+,~%-._")


def _path(url: str) -> str:
    parts = urlsplit(url)
    path = parts.path or "/"
    if parts.query:
        path = f"{path}?{parts.query}"
    return _normalize_path(path)


_COMPILED: dict[str, re.Pattern[str]] = {}


def _compile(pattern: str) -> re.Pattern[str]:
    compiled = _COMPILED.get(pattern)
    if compiled is None:
        anchored = pattern.endswith("$")
        body = pattern[:-1] if anchored else pattern
        regex = ".*".join(re.escape(part) for part in body.split("*"))
        compiled = re.compile(regex + ("$" if anchored else ""))
        _COMPILED[pattern] = compiled
    return compiled


def product_token(user_agent: str) -> str:
    """'AgencyCompetitiveWatch/1.0 (+https://...)' -> 'agencycompetitivewatch' (what robots.txt names)."""
    token = re.match(r"[A-Za-z_-]+", user_agent.strip())
    return token.group(0).lower() if token else ""


def parse(text: str, user_agent: str) -> Robots:
    """The rules for ``user_agent``: all groups naming it merged, else all ``*`` groups merged.

    A group is one or more user-agent lines followed by rules; a user-agent line after a rule
    starts the next group. Other lines (sitemap, crawl-delay) neither start nor end a group.
    """
    token = product_token(user_agent)
    groups: list[tuple[list[str], list[Rule]]] = []
    has_rules = False  # the current group has had an allow/disallow line
    for raw in text[:MAX_ROBOTS_BYTES].splitlines():
        line = raw.split("#", 1)[0].strip()
        if ":" not in line:
            continue
        key, value = (part.strip() for part in line.split(":", 1))
        key = key.lower()
        if key == "user-agent":
            if not groups or has_rules:
                groups.append(([], []))
                has_rules = False
            groups[-1][0].append(value.lower())
        elif key in ("allow", "disallow") and groups:
            has_rules = True
            if value:  # an empty Disallow allows everything: no rule
                groups[-1][1].append(Rule(allow=key == "allow", pattern=_normalize_path(value)))
    for wanted in (token, "*"):
        if wanted and any(wanted in agents for agents, _ in groups):
            return Robots(rules=[rule for agents, rules in groups if wanted in agents for rule in rules])
    return Robots()
