"""Chinese segmentation: an explicit jieba.Tokenizer with the domain dictionary and stop words,
applied to normalised text (Simplified, half-width, lower case)."""

from __future__ import annotations

import hashlib
import logging
import re
from pathlib import Path

import jieba

from ingest.normalize import normalize

_WORD = re.compile(r"[\w\u4e00-\u9fff]")
jieba.setLogLevel(logging.WARNING)


class Segmenter:
    """Turns text into BM25 tokens. One instance per index; never the module-wide jieba default,
    whose user dictionary would leak between indexes and tests."""

    def __init__(self, userdict: Path, stopwords: Path):
        self.userdict = Path(userdict)
        self.stopwords_path = Path(stopwords)
        self._tk = jieba.Tokenizer()
        self._tk.load_userdict(str(self.userdict))
        self.stopwords = frozenset(
            w.strip() for w in self.stopwords_path.read_text(encoding="utf-8").splitlines() if w.strip()
        )

    @property
    def fingerprint(self) -> str:
        """Hash of the dictionary and stop words: an index built with other ones is stale."""
        h = hashlib.sha256()
        h.update(f"jieba-{jieba.__version__}".encode())
        h.update(self.userdict.read_bytes())
        h.update(self.stopwords_path.read_bytes())
        return h.hexdigest()[:16]

    def words(self, text: str) -> list[str]:
        """jieba words of the normalised text, punctuation dropped, stop words kept."""
        return [w for w in self._tk.lcut(normalize(text)) if _WORD.search(w)]

    def tokens(self, text: str) -> list[str]:
        """Search-mode tokens for BM25: words plus their dictionary sub-words, no stop words."""
        out = []
        for w in self._tk.lcut_for_search(normalize(text)):
            w = w.strip()
            if w and _WORD.search(w) and w not in self.stopwords:
                out.append(w)
        return out

    def add_word(self, word: str) -> None:
        self._tk.add_word(word)
