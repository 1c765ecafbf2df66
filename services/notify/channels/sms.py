"""How many SMS parts a text takes (3GPP TS 23.038 / 23.040), and fitting a text into a number
of parts by shortening its free text, never the tracking id.

A text made only of GSM 7-bit characters fits 160 of them in one SMS; longer, it is sent as
concatenated parts of 153 (the header takes 7). The extension characters (€ [ ] { } ^ ~ \\ |
and form feed) are an escape plus a character, so they count 2 and are never split across
parts. One character outside the alphabet makes the whole text UCS-2: 70 UTF-16 units in one
SMS, 67 per part; a character beyond the BMP (most emoji) is two units, never split."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà")
GSM7_EXTENSION = frozenset("\f^{}\\[]~|€")

GSM7_SINGLE, GSM7_PART = 160, 153
UCS2_SINGLE, UCS2_PART = 70, 67

# Punctuation that templates and people type which has a GSM-7 look-alike: replaced before
# sending, so that one typographic quote does not halve what fits in a part.
_PLAIN = str.maketrans({"…": "...", "‘": "'", "’": "'", "‚": "'", "“": '"', "”": '"',
                        "„": '"', "–": "-", "—": "-", "\u00a0": " ", "\u2009": " ",
                        "\u202f": " ", "\t": " "})


def plain(text: str) -> str:
    """`text` with typographic punctuation as its GSM-7 look-alike."""
    return text.translate(_PLAIN)


def is_gsm7(text: str) -> bool:
    return all(ch in GSM7_BASIC or ch in GSM7_EXTENSION for ch in text)


@dataclass(frozen=True)
class Size:
    encoding: str   # "GSM-7" or "UCS-2"
    units: int      # septets (GSM-7) or UTF-16 code units (UCS-2)
    parts: int


def _unit_sizes(text: str) -> tuple[str, list[int]]:
    if is_gsm7(text):
        return "GSM-7", [2 if ch in GSM7_EXTENSION else 1 for ch in text]
    return "UCS-2", [2 if ord(ch) > 0xFFFF else 1 for ch in text]


def split(text: str) -> list[str]:
    """The parts `text` is sent as (one part when it fits a single SMS)."""
    encoding, sizes = _unit_sizes(text)
    single, per_part = (GSM7_SINGLE, GSM7_PART) if encoding == "GSM-7" else \
        (UCS2_SINGLE, UCS2_PART)
    if sum(sizes) <= single:
        return [text] if text else []
    parts: list[str] = []
    start = used = 0
    for index, size in enumerate(sizes):
        if used + size > per_part:  # a two-unit character is never split between parts
            parts.append(text[start:index])
            start, used = index, 0
        used += size
    parts.append(text[start:])
    return parts


def size(text: str) -> Size:
    encoding, sizes = _unit_sizes(text)
    return Size(encoding, sum(sizes), len(split(text)))


def parts(text: str) -> int:
    return size(text).parts


def fit(render: Callable[[int | None], str], max_parts: int,
        measure: Callable[[str], int] = parts) -> str:
    """The longest rendering that fits `max_parts`: `render(limit)` gives the text with each
    free-text value cut to `limit` characters (None: uncut). When even empty free text does
    not fit, that shortest rendering is returned: the fixed text and the tracking id stay."""
    whole = render(None)
    if measure(whole) <= max_parts:
        return whole
    low, high = 0, len(whole)  # no free-text value is longer than the whole text
    while low < high:  # the largest limit that fits; parts never fall as a limit grows
        middle = (low + high + 1) // 2
        if measure(render(middle)) <= max_parts:
            low = middle
        else:
            high = middle - 1
    return render(low)


def shorten(value: str, limit: int | None, ellipsis: str = "...") -> str:
    """`value` cut to at most `limit` characters, the cut marked; whole words where it can."""
    value = " ".join(value.split())
    if limit is None or len(value) <= limit:
        return value
    if limit <= len(ellipsis):
        return ""
    cut = value[:limit - len(ellipsis)]
    space = cut.rfind(" ")
    if space >= max(1, len(cut) - 15):
        cut = cut[:space]
    return cut.rstrip(" ,.;:-") + ellipsis


def max_parts_from(raw: str) -> int:
    """NOTIFY_SMS_MAX_PARTS: a whole number from 1 to 10 (networks rarely join more)."""
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"expected a whole number of parts, got {raw!r}") from None
    if not 1 <= value <= 10:
        raise ValueError(f"expected 1 to 10 parts, got {value}")
    return value

