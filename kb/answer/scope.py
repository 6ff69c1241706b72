"""Out-of-scope guard for value questions: "艾奇公司的股价是多少?" shares most of its words with
real passages, so retrieval evidence alone cannot refuse it. But a question that asks for a value
(多少, 几个月, 百分之几, 哪个城市, 网址…: ``kb.question.VALUE_QUESTION``) of something the
knowledge base never mentions (股价, 年终奖) cannot be answered from it, whatever else matches.
The subject is a noun of the question (jieba part-of-speech, the domain dictionary loaded) that
occurs nowhere in the corpus. Likewise a question naming a product or technology the corpus never
uses ("怎么配置公司VPN?"). Glossary terms count as known (KPI is a synonym of 考核)."""

from __future__ import annotations

import re
from collections.abc import Container, Iterable

import jieba.posseg

from ingest.normalize import normalize
from kb.question import HOW_MUCH_RE, VALUE_QUESTION

_NOUN_FLAGS = ("n", "vn")  # n, nr, ns, nt, nz, vn …
_CJK = re.compile(r"[\u4e00-\u9fff]+")
_LATIN = re.compile(r"[a-z][a-z0-9+#.-]*[a-z0-9+#]")  # normalised text is lower case


class ScopeGuard:
    """``vocabulary``: the BM25 index's tokens (jieba words and every CJK character bigram of the
    normalised corpus), so a lookup costs the same for five documents or fifty thousand. A
    two-character noun is in the corpus exactly when its bigram is; a longer one when it is a
    token or all its bigrams are (which may call a few absent words present, never the
    reverse: the guard errs towards answering)."""

    def __init__(self, tokenizer: jieba.Tokenizer, vocabulary: Container[str], known_terms: Iterable[str] = ()):
        self._pos = jieba.posseg.POSTokenizer(tokenizer)
        self._vocab = vocabulary
        self._known = {normalize(t) for t in known_terms}

    def in_corpus(self, word: str) -> bool:
        if word in self._known or word in self._vocab:
            return True
        if not _CJK.fullmatch(word):
            return False
        return len(word) > 2 and all(word[i : i + 2] in self._vocab for i in range(len(word) - 1))

    def _missing_subjects(self, q: str) -> list[str]:
        """Nouns of the (normalised) question, two characters or more, found nowhere in the corpus."""
        out = []
        for pair in self._pos.cut(q):
            word, flag = pair.word, pair.flag
            if (len(word) >= 2 and flag.startswith(_NOUN_FLAGS) and not HOW_MUCH_RE.fullmatch(word)
                    and not self.in_corpus(word)):
                out.append(word)
        return out

    def _missing_foreign_terms(self, q: str) -> list[str]:
        """Latin-script names in the (normalised) question (VPN, Excel, iPhone) found nowhere in
        the corpus."""
        return [w for w in dict.fromkeys(_LATIN.findall(q)) if not self.in_corpus(w)]

    def unanswerable(self, question: str) -> list[str]:
        """Why ``question`` cannot be answered from this corpus: the missing subjects when it asks
        for a value, or a product or technology name the corpus never uses. Empty when it may be
        answerable."""
        q = normalize(question)
        missing = self._missing_foreign_terms(q)
        if VALUE_QUESTION.search(q):
            missing += [w for w in self._missing_subjects(q) if w not in missing]
        return missing
