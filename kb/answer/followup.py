"""Resolve a follow-up question ("那销售部呢?", "第二点具体说说", "它们的考核有什么不同") against
the previous turns of the conversation, before retrieval."""

from __future__ import annotations

import re

from ingest.normalize import to_simplified

# entities a follow-up can swap or refer to, longest first
ENTITIES = (
    "市场部经理助理", "市场部经理", "销售部经理", "销售经理", "营销总部", "市场部门", "销售部门",
    "市场部", "销售部", "营销部", "研发部", "财务部", "人力资源部", "生产部", "客服部",
    "销售管理", "营销管理", "销售人员", "业务员", "经销商",
)
_ENTITY = re.compile("|".join(map(re.escape, ENTITIES)))
_NUM = {"一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9, "十": 10}
_SWAP = re.compile(r"^(?:那么?|那个|还有|再说说|再问一下)?\s*(.{2,12}?)\s*(?:呢|怎么样|如何|又如何|的呢)[?？。!！]*$")
_POINT = re.compile(r"第\s*([一二两三四五六七八九十\d]+)\s*[点條条个個项項]")
_PRONOUN = re.compile(r"(它们|他们|她们|它|两者|二者|两个部门|这两个部门|这两者|双方|这个|那个|其)")


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


def resolve_followup(question: str, history: list) -> str:
    """The question to retrieve for: ``question`` itself unless it only makes sense with the
    previous turns, in which case those are folded in."""
    turns = _turns(history)
    prev_q = _last(turns, "user")
    if not prev_q:
        return question
    prev = to_simplified(prev_q[0]).strip()
    q = to_simplified(question).strip()

    m = _POINT.search(q)
    prev_a = _last(turns, "assistant")
    if m and prev_a and len(q) <= 20:
        raw = m.group(1)
        n = int(raw) if raw.isdigit() else _NUM.get(raw, 0)
        point = _point_text(prev_a[0], n)
        if point:
            return point

    m = _SWAP.match(q)
    if m and len(q) <= 14:
        new = m.group(1)
        old = _ENTITY.search(prev)
        if old and _ENTITY.fullmatch(new) or (old and len(new) <= 6):
            return prev[: old.start()] + new + prev[old.end():]
        return f"{new} {prev}"

    if _PRONOUN.search(q) and not _ENTITY.search(q):
        entities = list(dict.fromkeys(e.group(0) for e in _ENTITY.finditer(prev)))
        if entities:
            who = "和".join(entities[:2])
            return _PRONOUN.sub(who, q, count=1)
    return question
