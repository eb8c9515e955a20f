"""A seeded generator of messy contact CSVs, the kind real exports are.

Duplicates (case, whitespace and ``mailto:`` variants of an earlier email), bad and missing
emails, phones in national / international / extension formats and garbage, UK national numbers
(valid only when the import's region is GB), missing and unicode names, names in all caps or all
lower case, company websites with schemes and paths, UTM junk, and a few rows with stray cells.
The same seed gives the same file.
"""

from __future__ import annotations

import csv
import io
import random
from dataclasses import dataclass, field

HEADER = ["Email", "First Name", "last_name", "Phone", "Company", "Website", "Job Title", "Lifecycle Stage",
          "UTM_Source", "utm_medium", "utm_campaign", "utm_foo", "Notes"]

FIRST_NAMES = ["james", "MARY", "John", "patricia", "Robert", "Jennifer", "michael", "Linda", "José", "Zoë",
               "Łukasz", "Søren", "Ólafur", "Anne-Marie", "jean-luc", "Chloé", "Björn", "Renée", "Nguyễn", "Aoife"]
LAST_NAMES = ["smith", "JOHNSON", "Williams", "mcdonald", "van der berg", "O'Neil", "o'brien", "García", "Müller",
              "DE LA CRUZ", "Nowak", "Østergaard", "d'angelo", "MacLeod", "Brown", "Kowalski", "Dubois", "Rossi"]
COMPANIES = [("Acme Outdoor", "acme-outdoor.com"), ("Trailhead Gear", "trailhead.io"), ("Summit Supply", "summit.co.uk"),
             ("Northwind", "northwind.example.com"), ("Blue Ridge", "blueridge.net"), ("Café Nord", "cafe-nord.de")]
JOB_TITLES = ["Marketing Manager", "  head of growth ", "CEO", "Buyer", "", "VP   Sales"]
STAGES = ["lead", "Lead", "MQL", "customer", "Subscriber", "", "opportunity", "sales qualified lead"]
SOURCES = ["google", "  Google ", "FACEBOOK", "newsletter", "(not set)", "", "linkedin", "bing%20ads"]
MEDIUMS = ["cpc", "CPC ", "email", "social", "", "null"]
US_AREAS = ["212", "415", "312", "617", "202", "303", "512", "206"]
BAD_EMAILS = ["john.doe@", "no-at-sign.example.com", "a..b@example.com", "x@localhost", "@example.com",
              "two@@example.com", "spaces in@example.com"]
GARBAGE_PHONES = ["call me", "n/a?", "12", "555-CALL-NOW", "+999 123", "0000"]


@dataclass
class MessyFile:
    text: str
    rows: int
    uk_rows: set[int] = field(default_factory=set)  # rows whose only flaw is a UK national phone
    duplicate_rows: int = 0  # rows repeating an earlier row's email in another spelling


def _us_phone(rng: random.Random) -> str:
    area, line = rng.choice(US_AREAS), f"01{rng.randrange(100):02d}"
    return rng.choice([
        f"({area}) 555-{line}", f"{area}.555.{line}", f"{area}-555-{line}", f"+1 {area} 555 {line}",
        f"1-{area}-555-{line}", f"({area}) 555-{line} x{rng.randrange(10, 999)}", f"{area} 555 {line} ext. 7",
        f"001 {area} 555 {line}",
    ])


def _uk_national(rng: random.Random) -> str:
    return f"020 7946 0{rng.randrange(1000):03d}"


def _variant(rng: random.Random, email: str) -> str:
    local, domain = email.split("@")
    return rng.choice([
        email.upper(), f"  {email} ", f"{local.capitalize()}@{domain.upper()}", f"mailto:{email}",
        f"{local}@{domain.capitalize()}\t", email,
    ])


def generate(rows: int, *, seed: int = 7, uk_share: float = 0.03) -> MessyFile:
    rng = random.Random(seed)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(HEADER)
    emails: list[str] = []
    uk_rows: set[int] = set()
    duplicates = 0
    for number in range(1, rows + 1):
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        company, domain = rng.choice(COMPANIES)
        fresh = f"{first.lower().replace(' ', '')}.{number}@{domain}".replace("'", "")
        roll = rng.random()
        if roll < uk_share:
            # Otherwise clean and unique: it passes as soon as the region reads the number.
            writer.writerow([fresh, first, last, _uk_national(rng), company, domain, "Buyer", "lead",
                             "google", "cpc", "spring", "", ""])
            uk_rows.add(number)
            emails.append(fresh)
            continue
        if emails and roll < uk_share + 0.12:
            email = _variant(rng, rng.choice(emails))
            duplicates += 1
        elif roll < uk_share + 0.15:
            email = rng.choice(BAD_EMAILS)
        elif roll < uk_share + 0.17:
            email = rng.choice(["", "  ", "N/A"])
        else:
            email = fresh
            emails.append(fresh)
        phone_roll = rng.random()
        if phone_roll < 0.55:
            phone = _us_phone(rng)
        elif phone_roll < 0.65:
            phone = rng.choice(["+44 20 7946 0123", "+49 30 901820", "+33 1 42 68 53 00", "0044 20 7946 0991"])
        elif phone_roll < 0.68:
            phone = rng.choice(GARBAGE_PHONES)
        else:
            phone = ""
        name_roll = rng.random()
        if name_roll < 0.05:
            first, last = "", ""
        elif name_roll < 0.10:
            first, last = f"  {first.upper()}  ", f" {last.upper()}"
        website = rng.choice([domain, f"https://www.{domain}/about", f"WWW.{domain.upper()}", f"http://{domain}:8080",
                              "", domain])
        cells = [email, first, last, phone, company, website, rng.choice(JOB_TITLES), rng.choice(STAGES),
                 rng.choice(SOURCES), rng.choice(MEDIUMS), rng.choice(["Spring Sale ", "launch", ""]),
                 rng.choice(["", "junk", "xyz"]), rng.choice(["", "met at expo", "vip"])]
        if rng.random() < 0.005:
            cells.append("stray cell")
        writer.writerow(cells)
    return MessyFile(text=out.getvalue(), rows=rows, uk_rows=uk_rows, duplicate_rows=duplicates)
