"""What the documents do not say: reasons to refuse that retrieval evidence alone cannot give.

"艾奇公司的股价是多少?" shares most of its words with real passages, so a similarity threshold
cannot refuse it; but a question that asks for a value (多少, 几个月, 百分之几, 哪个城市, 网址…:
``kb.question.VALUE_QUESTION``) of something the knowledge base never mentions (股价, 年终奖)
cannot be answered from it, whatever else matches. Likewise

- a product or technology the corpus never names ("怎么配置公司VPN?");
- a question anchored to a time ("今年的年会在哪开", "2027年…": ``TIME_ANCHOR``) or asking for a
  prediction ("明年年假会调整吗": ``FUTURE_QUESTION``), unless the chosen evidence names that
  time: rules state what holds, not what will happen;
- another organisation, platform or product the corpus never names (腾讯, 华为, 钉钉: a name
  jieba's dictionary tags as one, or one listed in ``kb/data/organisations.txt``);
- a question about one's own records ("我还剩几天年假": ``PERSONAL_QUESTION``), which no document
  holds; chit-chat and tasks that are no question ("写首打油诗", "陪我聊聊天": ``CHITCHAT``).

Words are matched *as words*: a question's noun is in the corpus when the corpus has it as a
jieba word or a run of consecutive words (``Segmenter.phrases``), not when its characters happen
to occur ("会费" is not in "工会费用…", segmented 工会|费用). Glossary terms count as known (KPI
is a synonym of 考核)."""

from __future__ import annotations

import functools
import re
from collections.abc import Container, Iterable
from pathlib import Path

import jieba.posseg

from ingest.normalize import normalize
from kb.question import (
    AMOUNT_ASK,
    AMOUNT_VALUE,
    ARTIFACT_ASK,
    CHITCHAT,
    COUNT_ASK,
    COUNT_VALUE,
    DATE_ASK,
    DATE_VALUE,
    DURATION_ASK,
    DURATION_VALUE,
    FUTURE_QUESTION,
    FUTURE_TIME,
    HOW_MUCH_RE,
    PERCENT_ASK,
    PERCENT_NUMBER,
    PERCENT_NUMBER_ASK,
    PERCENT_VALUE,
    PERSONAL_QUESTION,
    REALTIME_QUESTION,
    TIME_ANCHOR,
    TITLE,
    UNIT_ASK,
    VALUE_ATTRIBUTES,
    VALUE_QUESTION,
    WHO_ASK,
    YEAR_ASK,
    YEAR_VALUE,
    artifact_asked,
    duration_value,
    unit_value,
)

_NOUN_FLAGS = ("n", "vn")  # n, nr, ns, nt, nz, vn …
# a dictionary frequency from which a noun is a word people use as such (年终奖 58, 会费 60,
# 股价 951), not a compound jieba happens to list (生小孩 3, 起征点 5)
COMMON_WORD_FREQ = 10
_PLACE_SUFFIX = re.compile(r"[\u4e00-\u9fff]{1,6}(?:国|省|市|县|州)$")
PLACES_FILE = Path(__file__).resolve().parents[1] / "data" / "places.txt"
ORGANISATIONS_FILE = Path(__file__).resolve().parents[1] / "data" / "organisations.txt"


def load_names(path: Path) -> frozenset[str]:
    """The names listed in a word-list file (``#`` lines are comments), normalised."""
    lines = path.read_text(encoding="utf-8").splitlines()
    return frozenset(normalize(w) for line in lines if not line.startswith("#") for w in line.split())

_CJK = re.compile(r"[\u4e00-\u9fff]+")
# a "noun" holding a personal pronoun, or opening with a question word or (when jieba made the
# word up) a modal verb ("能领" of 能领取), is a mis-cut
_NOT_A_SUBJECT = re.compile(r"[我你您他她咱]|^(?:哪|什么|怎么|多少|多长|多久|多大|几)")
_MODAL_START = re.compile(r"^[能会要可该得想需]")
# "方可", "即可", "均可": a modal adverb of written rules, which jieba's dictionary tags as a noun
_MODAL_ADVERB = re.compile(r"^[方才即均亦皆便]可$")
_LATIN = re.compile(r"[a-z][a-z0-9+#.-]*[a-z0-9+#]")  # normalised text is lower case


class ScopeGuard:
    """``words``: the corpus's words and short runs of words (``KnowledgeIndex.words``);
    ``bigrams``: its character pairs (the BM25 vocabulary)."""

    def __init__(self, tokenizer: jieba.Tokenizer, words: Container[str], known_terms: Iterable[str] = (),
                 places: Iterable[str] | None = None, bigrams: Container[str] | None = None,
                 organisations: Iterable[str] | None = None):
        self._tk = tokenizer
        self._pos = jieba.posseg.POSTokenizer(tokenizer)
        self._words = words
        self._bigrams = bigrams  # the corpus's character pairs (the BM25 vocabulary has them)
        self._known = {normalize(t) for t in known_terms}
        self._places = frozenset(places) if places is not None else load_names(PLACES_FILE)
        self._organisations = (frozenset(organisations) if organisations is not None
                               else load_names(ORGANISATIONS_FILE))
        # (word, flag) pairs of a normalised question; several checks read one question
        self._cut = functools.lru_cache(maxsize=512)(lambda q: tuple((p.word, p.flag) for p in self._pos.cut(q)))

    def in_corpus(self, word: str) -> bool:
        """``word`` (normalised) occurs in the corpus as a word, a run of words, or a glossary
        term; or its dictionary sub-words ("请病假" → 病假) occur and together cover it."""
        if word in self._known or word in self._words:
            return True
        if not _CJK.fullmatch(word) or len(word) < 3:
            return False
        covered = [False] * len(word)
        for sub in self._tk.cut_for_search(word):
            if len(sub) >= 2 and sub != word and (sub in self._words or sub in self._known):
                at = word.find(sub)
                while at >= 0:
                    covered[at : at + len(sub)] = [True] * len(sub)
                    at = word.find(sub, at + 1)
        return all(covered)

    def _nouns(self, q: str) -> list[tuple[str, str]]:
        """(word, flag) of the (normalised) question's nouns of two characters or more; not the
        pieces jieba cuts wrongly around a verb, a pronoun or a question word and tags as nouns
        ("给我发", "哪些地方"): no subject of the question."""
        return [(w, f) for w, f in self._compounds(q)
                if len(w) >= 2 and f.startswith(_NOUN_FLAGS) and not HOW_MUCH_RE.fullmatch(w)
                and w not in VALUE_ATTRIBUTES and not _NOT_A_SUBJECT.search(w) and not _MODAL_ADVERB.match(w)
                and not (_MODAL_START.match(w) and not self._in_dictionary(w))]

    def _compounds(self, q: str) -> list[tuple[str, str]]:
        """The question's (word, flag) pairs with a one-character noun joined to the noun after
        it: jieba cuts a compound it does not know into them ("陪|产假", "餐|补贴"), and the
        compound is what is asked about."""
        cut = list(self._cut(q))
        out: list[tuple[str, str]] = []
        i = 0
        while i < len(cut):
            w, f = cut[i]
            if (len(w) == 1 and f == "n" and _CJK.fullmatch(w) and i + 1 < len(cut)
                    and cut[i + 1][1].startswith("n") and _CJK.fullmatch(cut[i + 1][0])):
                out.append((w + cut[i + 1][0], "n"))
                i += 2
                continue
            out.append((w, f))
            i += 1
        return out

    def _missing_subjects(self, q: str) -> list[str]:
        """Nouns of the (normalised) question found nowhere in the corpus: as words when jieba's
        dictionary knows them as common words; by their characters when it made the word up
        ("产假费") or lists it as a rare compound (陪产假): too unsure a segmentation to require
        as a word."""
        # a noun inside a known term of the question ("孩子" of 生孩子, a synonym of 生育) is
        # that term's, which is known
        inside = [t for t in self._known if len(t) >= 2 and t in q]
        return [w for w, _ in self._nouns(q)
                if not (self.in_corpus(w) if self._common(w) else self._characters_in_corpus(w))
                and not any(w in t for t in inside)]

    def _characters_in_corpus(self, word: str) -> bool:
        """The looser test for a word jieba is unsure of: each of its character pairs occurs."""
        if self._bigrams is None or not _CJK.fullmatch(word):
            return self.in_corpus(word)
        return word in self._known or all(word[i : i + 2] in self._bigrams for i in range(len(word) - 1))

    def _frequency(self, word: str) -> int:
        """How often jieba's dictionary has ``word`` (0: not a dictionary word)."""
        self._tk.check_initialized()
        return self._tk.FREQ.get(word, 0)

    def _in_dictionary(self, word: str) -> bool:
        return self._frequency(word) > 0

    def _common(self, word: str) -> bool:
        return self._frequency(word) >= COMMON_WORD_FREQ

    def _missing_places(self, q: str) -> list[str]:
        """Places the question names (a known place name, or a place-tagged word ending in
        国/省/市/县/州) that the corpus never mentions: another jurisdiction's rules. A name
        the corpus has without its suffix (广东 for 广东省) is mentioned; a one-character stem
        is no name (法 of 法国, 英 of 英国: words of any text)."""
        out = []
        for w, flag in self._cut(q):
            place = w in self._places or (flag.startswith("ns") and _PLACE_SUFFIX.fullmatch(w))
            stem = w[:-1] if w[-1] in "国省市县州" and len(w) > 2 else ""
            if place and not self.in_corpus(w) and not (stem and self.in_corpus(stem)):
                out.append(w)
        return out

    def _missing_organisations(self, q: str) -> list[str]:
        """Organisations the question names that the corpus never does: a dictionary word
        tagged as one (nt) or as a proper name (nz: 腾讯, 华为). (A name found by its kind,
        "…公司", was tried and dropped: "能给公司", "关联公司" are no names.)"""
        tagged = [w for w, f in self._cut(q) if f in ("nt", "nz") and len(w) >= 2 and self._common(w)
                  and not self.in_corpus(w)]
        # and the well-known ones of kb/data/organisations.txt, which jieba tags as anything
        # (华为 nr, 京东 ns) or cuts apart (字节|跳动)
        listed = [n for n in self._organisations if n in q and not self.in_corpus(n)
                  and not any(n in t for t in tagged)]
        return tagged + sorted(listed, key=q.find)

    def _missing_titles(self, q: str) -> list[str]:
        """Titles in book-title marks (《营销管理》: a book, a law, a form) the corpus never
        has: as one of its words or runs of words, or (a longer title) as every pair of its
        consecutive words."""
        out = []
        for title in dict.fromkeys(TITLE.findall(q)):
            words = [w for w in self._tk.lcut(title) if w.strip()]
            pairs = ["".join(words[i : i + 2]) for i in range(len(words) - 1)] or words
            if title not in self._known and title not in self._words and not all(p in self._words for p in pairs):
                out.append(f"《{title}》")
        return out

    def _missing_foreign_terms(self, q: str) -> list[str]:
        """Latin-script names in the (normalised) question (VPN, Excel, iPhone) found nowhere in
        the corpus."""
        return [w for w in dict.fromkeys(_LATIN.findall(q)) if not self.in_corpus(w)]

    def unanswerable(self, question: str) -> list[str]:
        """Why ``question`` cannot be answered from this corpus, whatever is retrieved: the
        missing subjects when it asks for a value, a product or technology name the corpus
        never uses, or a personal record. Empty when it may be answerable."""
        q = normalize(question)
        missing = self._missing_foreign_terms(q) + self._missing_places(q) + self._missing_titles(q)
        missing += [w for w in self._missing_organisations(q) if w not in missing]
        nouns = self._nouns(q)
        if VALUE_QUESTION.search(q):
            missing += [w for w in self._missing_subjects(q) if w not in missing]
        elif len(nouns) >= 2 and all(not self.in_corpus(w) for w, _ in nouns):
            missing += [w for w, _ in nouns if w not in missing]  # about nothing the corpus names
        m = PERSONAL_QUESTION.search(q) or CHITCHAT.search(q)
        if m:
            missing.append(m.group(0))
        return missing

    def names_everything(self, question: str) -> bool:
        """Whether the corpus names every noun, place and product ``question`` asks about (so it
        may answer it): an out-of-scope probe that does is left out of calibration."""
        q = normalize(question)
        terms = [w for w, _ in self._nouns(q)] + _LATIN.findall(q)
        return bool(terms) and all(self.in_corpus(w) for w in terms) and not self._missing_places(q)

    def unaddressed(self, question: str, evidence: str) -> list[str]:
        """The times ``question`` is anchored to, or the future it asks about, that the
        ``evidence`` text (the passages an answer would come from) never names."""
        q = normalize(question)
        ev = normalize(evidence)
        out = [t for t in dict.fromkeys(TIME_ANCHOR.findall(q)) if t not in ev]
        m = REALTIME_QUESTION.search(q)
        if m and m.group(0)[:2] not in ev:  # a figure of the moment no passage dates
            out.append(m.group(0))
        for ask, value in ((PERCENT_ASK, PERCENT_VALUE), (DURATION_ASK, DURATION_VALUE),
                           (COUNT_ASK, COUNT_VALUE), (DATE_ASK, DATE_VALUE), (AMOUNT_ASK, AMOUNT_VALUE),
                           (YEAR_ASK, YEAR_VALUE), (UNIT_ASK, None)):
            m = ask.search(q)
            if m and ask is DURATION_ASK:
                value = duration_value(m.group(0))  # in the unit asked
            if m and ask is UNIT_ASK:
                value = unit_value(m.group(1))  # a count of the unit asked (多少字, 几楼)
            if m and ask is PERCENT_ASK and PERCENT_NUMBER_ASK.search(q):
                value = PERCENT_NUMBER  # as a number
            if m and not value.search(ev):  # asks for a value the passages never give in its terms
                out.append(m.group(0))
        for m in ARTIFACT_ASK.finditer(q):  # a template, software… that no passage names
            if artifact_asked(m) not in ev and m.group(0) not in out:
                out.append(m.group(0))
        m = WHO_ASK.search(q)
        if m and not any(f == "nr" and len(w) >= 2 for w, f in self._pos.cut(ev)):  # names nobody
            out.append(m.group(0))
        if FUTURE_QUESTION.search(q):
            out += [t for t in dict.fromkeys(FUTURE_TIME.findall(q)) if t not in ev and t not in out]
        return out
