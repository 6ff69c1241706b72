"""Normalisation for matching only: Traditional to Simplified, full-width to half-width, whitespace.

The original text is what users see; these functions produce keys for tokenising, embedding and
comparing. They never feed back into stored offsets.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

import opencc

_WS = re.compile(r"\s+")


@lru_cache(maxsize=4)
def _converter(config: str) -> opencc.OpenCC:
    return opencc.OpenCC(config)


def to_simplified(text: str) -> str:
    """Traditional Chinese to Simplified (OpenCC ``t2s``)."""
    return _converter("t2s").convert(text)


def to_traditional(text: str) -> str:
    """Simplified Chinese to Traditional (OpenCC ``s2tw``, the forms Taiwan and Hong Kong readers expect)."""
    return _converter("s2tw").convert(text)


def to_halfwidth(text: str) -> str:
    """Full-width ASCII letters, digits and punctuation to half-width (NFKC), keeping 。、 etc."""
    return unicodedata.normalize("NFKC", text)


def normalize(text: str) -> str:
    """The matching key of ``text``: Simplified, half-width, lower case, single spaces."""
    return _WS.sub(" ", to_halfwidth(to_simplified(text))).strip().lower()


def script_of(text: str) -> str:
    """``"traditional"`` when the text has more Traditional-only characters than Simplified-only
    ones, else ``"simplified"``."""
    simp = to_simplified(text)
    trad = to_traditional(text)
    trad_only = sum(1 for a, b in zip(text, simp, strict=False) if a != b)
    simp_only = sum(1 for a, b in zip(text, trad, strict=False) if a != b)
    return "traditional" if trad_only > simp_only else "simplified"


def in_script(text: str, script: str) -> str:
    """``text`` written in ``script`` ("simplified" or "traditional")."""
    return to_traditional(text) if script == "traditional" else to_simplified(text)
