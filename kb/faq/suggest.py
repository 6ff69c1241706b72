"""Candidate FAQ entries: questions the documents answer, each with a drafted, cited answer.

Questions come from section headings (``kb.answer.suggest.question_for``: "(一)市场部经理的
职责" -> "市场部经理的职责有哪些？") and from the lead lines of lists ("出现争吵原因:" under
"市场部与销售部的争吵" -> "市场部和销售部为什么会发生冲突？"). Each is answered by the normal
answerer (never from the FAQ, never logged); unanswered ones are dropped. Near-duplicates are
merged into one candidate (the others become its alt questions): same normalised text, the
same cited passages, or cosine >= ``faq.duplicate_threshold`` with the lexical guard passing
(e5 gives 0.976 to 市场部经理 vs 市场部经理助理, so the cosine alone would merge different
questions).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from ingest.normalize import normalize, to_simplified
from kb.answer.suggest import question_for
from kb.faq.match import Vocabulary, guard
from kb.units import strip_marker

_CN_NUM = "一二三四五六七八九十两几"
_PARTIES = re.compile(
    r"([\u4e00-\u9fff]{1,6}?部(?:门)?)(?:与|和|跟|同)([\u4e00-\u9fff]{1,6}?部(?:门)?)"
    r"(?:之间)?的?(?:争吵|冲突|矛盾|分歧|摩擦|吵架|不和)"
)
_OPENERS = re.compile(r"^(注意|这时|此时|另外|其中|同时|而且|而|但是|但|因此|所以)[,，:：\s]*")
_TAIL = re.compile(
    rf"(的是|是|为|如下|如下所示|有以下几?[点条项个种方面]*|包括以下几?[点条项个种方面]*|主要有|"
    rf"有[{_CN_NUM}\d]+个?大?(?:方面|点|条|项|类))$"
)
_VERB_LIST = re.compile(
    r"^(.{2,20}?)(通常|主要|一般|可能|还)?(解决|涉及|包括|包含|负责)(?:以下|如下|下列)?([\u4e00-\u9fff]{0,4})$"
)
_N_KINDS = re.compile(rf"^(.{{2,20}}?)有[{_CN_NUM}\d]+(?:种|个|大|项|条|点|类)([\u4e00-\u9fff]{{1,6}})$")
_THE_FOLLOWING = re.compile(r"^以下是(?:可能)?(?:包含在|包括在)?(.{2,24}?)中?的?(要点|内容|方面|措施|方法|问题|步骤)$")
_NEED_PROVIDE = re.compile(r"^需要(.{2,10}?)(日常|定期|每月|每周)?提供(的)?(.{1,6})$")


def list_question(lead: str, section: str) -> str | None:
    """A question for a list from its lead line (and, for causes, its section path)."""
    text = to_simplified(strip_marker(lead.strip())).strip(" :：。，,")
    if not text or text.startswith(("我", "从上述", "如上", "综上")) or text.endswith(("看出", "谈谈", "所示")):
        return None
    text = _OPENERS.sub("", text)
    if re.search(r"原因|因素", text):
        context = " > ".join([to_simplified(section), text])
        found = _PARTIES.findall(context)
        if found:
            a, b = found[-1]
            return f"{a}和{b}为什么会发生冲突？"
        return question_for(text)
    text = _TAIL.sub("", text).strip(" :：,，")
    if m := _THE_FOLLOWING.match(text):
        return f"{m.group(1)}有哪些{m.group(2)}？"
    if m := _NEED_PROVIDE.match(text):
        return f"{m.group(1)}{m.group(2) or ''}需要提供哪些{m.group(4)}？"
    if m := _N_KINDS.match(text):
        return f"{m.group(1)}有哪些{m.group(2)}？"
    if m := _VERB_LIST.match(text):
        return f"{m.group(1)}{m.group(2) or ''}{m.group(3)}哪些{m.group(4) or '内容'}？"
    text = re.sub(r"(?<=[部门员理])(职责|任务|职能)$", r"的\1", text)
    return question_for(text)


def document_questions(index) -> list[str]:
    """Questions from the section headings and list leads of ``index``, in document order."""
    out: list[str] = []

    def add(q: str | None) -> None:
        if q and 4 <= len(q) <= 40 and q not in out:
            out.append(q)

    leads = {
        i: index.unit_text(i).strip().rstrip(":：").strip()
        for i, u in enumerate(index.units) if u.kind == "lead"  # a line introducing a list
    }
    lead_labels = set(leads.values())
    for row, chunk in enumerate(index.chunks):
        # list leads first: with their section as context they make the better wording
        for u in index.units_of_chunk.get(row, []):
            if u in leads:
                add(list_question(index.unit_text(u), chunk.section))
        for label in chunk.section.split(" > ") if chunk.section else []:
            if label.strip().rstrip(":：").strip() not in lead_labels:
                add(question_for(label))
    return out


@dataclass
class Draft:
    question: str
    answer: str
    citations: list[dict]
    confidence: float
    alt_questions: list[str] = field(default_factory=list)
    origin: str = "documents"
    ask_count: int = 0

    @property
    def spans(self) -> frozenset:
        return frozenset((c["source"], c["start"], c["end"]) for c in self.citations)


def draft(parts, question: str) -> Draft | None:
    """The documents' answer to ``question`` (``parts``: the FAQ's ``FaqParts``; never from the
    FAQ, not logged), or None when it is refused."""
    a = parts.answerer.answer(question, question)
    if not a.answered:
        return None
    from kb.faq.citations import citation_from_answer

    docs = parts.index.documents
    cites = [citation_from_answer(c, docs) for c in a.to_dict()["citations"]]
    return Draft(question, a.answer, cites, a.confidence)


def same_question(a: str, b: str, va: np.ndarray, vb: np.ndarray, vocab: Vocabulary,
                  threshold: float) -> bool:
    if normalize(a) == normalize(b):
        return True
    if float(va @ vb) < threshold:
        return False
    return guard(vocab.terms(a), vocab.terms(b)).ok


def merge_duplicates(drafts: list[Draft], vectors: np.ndarray, vocab: Vocabulary,
                     threshold: float) -> list[Draft]:
    """Greedy, in order: a draft joins the first kept one it duplicates (same question by
    ``same_question``, or the same cited passages); its question becomes an alt question."""
    kept: list[int] = []
    for i, d in enumerate(drafts):
        home = next(
            (k for k in kept
             if (d.spans and d.spans == drafts[k].spans)
             or same_question(d.question, drafts[k].question, vectors[i], vectors[k], vocab, threshold)),
            None,
        )
        if home is None:
            kept.append(i)
        else:
            h = drafts[home]
            for q in [d.question, *d.alt_questions]:
                if q != h.question and q not in h.alt_questions:
                    h.alt_questions.append(q)
            h.ask_count += d.ask_count
    return [drafts[k] for k in kept]
