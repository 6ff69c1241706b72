"""Resolve a follow-up question ("那销售部呢?", "第二点具体说说", "它们的考核有什么不同") against
the previous turns of the conversation, before retrieval.

What a follow-up may swap or refer back to are the domain's entities (``[followup] entities``
in the domain folder's ``domain.toml``). A domain that lists none gets the noun phrases jieba
finds in the previous question instead: "那年假呢?" after "病假须提前几天申请?" swaps the noun
with the same head character (假: Chinese compounds are head-final), and "它…" refers to the
previous question's noun phrase when it has exactly one."""

from __future__ import annotations

import re
from collections.abc import Iterable

import jieba

from ingest.normalize import to_simplified
from kb.question import FOLLOWUP_POINT, FOLLOWUP_PRONOUN, FOLLOWUP_SINGULAR, FOLLOWUP_SWAP

_NUM = {"一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9, "十": 10}
_NOUN = ("n",)  # jieba flags n, nr, ns, nt, nz, ng …


def _turns(history: list) -> list[tuple[str, str, list]]:
    """(role, text, citations) for each turn; accepts ``{"role","content"}`` messages (Gradio
    style) and ``{"question","answer"}`` pairs."""
    out = []
    for turn in history or []:
        if not isinstance(turn, dict):
            continue
        if "role" in turn:
            content = turn.get("content")
            if isinstance(content, list):  # multimodal message parts
                content = " ".join(p.get("text", "") for p in content if isinstance(p, dict))
            out.append((str(turn["role"]), str(content or ""), turn.get("citations") or []))
        else:
            if turn.get("question"):
                out.append(("user", str(turn["question"]), []))
            if turn.get("answer"):
                out.append(("assistant", str(turn["answer"]), turn.get("citations") or []))
    return out


def _last(turns: list, role: str) -> tuple[str, list] | None:
    for r, text, cites in reversed(turns):
        if r == role and text.strip():
            return text, cites
    return None


def _point_text(answer_md: str, n: int) -> str | None:
    points = [ln[2:] for ln in answer_md.splitlines() if ln.startswith(("- ", "* "))]
    if 1 <= n <= len(points):
        return re.sub(r"\s*(\[\d+\])+\s*$", "", points[n - 1]).strip()
    return None


class FollowupResolver:
    """``entities``: what a follow-up may swap or refer to (longest match first);
    ``tokenizer``: the segmenter's jieba tokenizer (its dictionary keeps domain words whole),
    for the noun phrases that stand in when there are no entities."""

    def __init__(self, entities: Iterable[str] = (), tokenizer: jieba.Tokenizer | None = None):
        names = dict.fromkeys(to_simplified(e).strip() for e in entities)
        self.entities = tuple(sorted((e for e in names if e), key=len, reverse=True))
        self._entity = re.compile("|".join(map(re.escape, self.entities))) if self.entities else None
        self._tokenizer = tokenizer
        self._pos = None  # jieba.posseg.POSTokenizer, made on first use (it reads jieba's dictionary)

    def noun_phrases(self, text: str) -> list[str]:
        """Runs of nouns in ``text``, two characters or more, in order, without repeats."""
        if self._tokenizer is None:
            return []
        if self._pos is None:
            import jieba.posseg

            self._pos = jieba.posseg.POSTokenizer(self._tokenizer)
        out: list[str] = []
        run = ""
        for pair in [*self._pos.cut(text), None]:
            if pair is not None and pair.flag.startswith(_NOUN):
                run += pair.word
                continue
            if len(run) >= 2 and run not in out:
                out.append(run)
            run = ""
        return out

    def _entities_in(self, text: str) -> list[re.Match]:
        return list(self._entity.finditer(text)) if self._entity else []

    def resolve(self, question: str, history: list) -> str:
        """The question to retrieve for: ``question`` itself unless it only makes sense with
        the previous turns, in which case those are folded in."""
        turns = _turns(history)
        prev_q = _last(turns, "user")
        if not prev_q:
            return question
        prev = to_simplified(prev_q[0]).strip()
        q = to_simplified(question).strip()

        m = FOLLOWUP_POINT.search(q)
        prev_a = _last(turns, "assistant")
        if m and prev_a and len(q) <= 20:
            raw = m.group(1)
            n = int(raw) if raw.isdigit() else _NUM.get(raw, 0)
            point = _point_text(prev_a[0], n)
            if point:
                return point

        named = self._entities_in(prev)
        m = FOLLOWUP_SWAP.match(q)
        if m and len(q) <= 14:
            new = m.group(1)
            old = named[0] if named else None
            if old and (len(new) <= 6 or self._entity.fullmatch(new)):
                return prev[: old.start()] + new + prev[old.end():]
            if not self.entities:  # a noun phrase of the same kind (the same head character)
                same = [p for p in self.noun_phrases(prev) if p[-1] == new[-1] and p != new]
                if same:
                    return prev.replace(same[0], new, 1)
            return f"{new} {prev}"

        if named and FOLLOWUP_PRONOUN.search(q) and not self._entities_in(q):
            who = "和".join(list(dict.fromkeys(e.group(0) for e in named))[:2])
            return FOLLOWUP_PRONOUN.sub(who, q, count=1)
        if not self.entities and FOLLOWUP_SINGULAR.search(q):
            nouns = self.noun_phrases(prev)
            if len(nouns) == 1:
                return FOLLOWUP_SINGULAR.sub(nouns[0], q, count=1)
        return question
