"""How the passages of a document hang together, for the answerer: the items of a list (also
where the chunker split it, or explanations sit between its items), where a list starts, what
a line announces ("主要包括以下五个方面:") or a question in the document ("请问…?") is answered
by, the heading that names a list, and the sentences a chosen sentence needs around it.

Everything here works on the index's units (sentences, items, headings and lead lines with exact
offsets); nothing is scored against the question.
"""

from __future__ import annotations

import re

from ingest.chunk import HEADING_STYLES, HEADING_STYLES_BY_NAME
from ingest.normalize import normalize
from kb.index import KnowledgeIndex
from kb.question import ASKS
from kb.units import follows, item_number, marker_style, strip_marker

ANNOUNCER = re.compile(
    r"([:：]\s*$|以下|如下|下列|[一二三四五六七八九十两几\d]+\s*(个|大|项|条)?\s*"
    r"(方面|阶段|原则|要点|部分|类|种|点|步|职能|任务)[^，,]{0,6}[:：。]?\s*$)"
)
_ENDS_IN_COLON = re.compile(r"[:：]\s*$")
_BACK_REFERENCE = re.compile(r"(于是|因此|所以|因而|从而|这样|这种|这也|这就|此外|同时|但是|然而|总之|可见|其中)")
# ("第二，…" goes on; "第二十一条 …", the next article of a statute, does not)
_GOES_ON = re.compile(r"(其次|再次|再者|另外|此外|最后|第[二三四五](?![一二三四五六七八九十百零〇\d]*[条章节编])"
                      r"|其(?![他它中次实])|这(?![样里些])|此(?![外时])|一个是)")
# a sentence right after a list that picks one of its items or sums them up ("多数公司采用第二种
#做法…", "以上几点…"): it completes a list answer
_LIST_SEQUEL = re.compile(r"^.{0,30}?(?:第[一二三四五六七八九十\d]+(?:种|个|项|点|类)|以上|上述)")
_TITLE_ONLY = 12  # an item this short is a title; its explanation follows
_ARTICLE = HEADING_STYLES_BY_NAME["article"]  # 第X条
ARTICLE_MAX_CHARS = 300  # an article this short is cited whole


def heading_style(text: str) -> str:
    for style, pattern in HEADING_STYLES:
        if pattern.match(text):
            return style
    return ""


class DocumentStructure:
    def __init__(self, index: KnowledgeIndex):
        self.index = index

    def list_units(self, list_id: int, row: int) -> list[int]:
        """All items of a list in text order, following it into the next chunks of the same
        section while the numbering (or the same bullet) continues, past the sentences that
        explain an item."""
        idx = self.index
        items = self._items(row, list_id)
        if not items:
            return []
        last = item_number(idx.unit_text(items[-1]))
        style = marker_style(idx.unit_text(items[0]))
        glyph = idx.unit_text(items[0])[:1] if style == "bullet" else ""
        nxt = row + 1
        while (last is not None or glyph) and nxt < len(idx.chunks) and len(items) < 14:
            a, b = idx.chunks[row], idx.chunks[nxt]
            if b.source != a.source:  # a heading in between ends the list, numbering decides the rest
                break
            added = False
            for u in idx.units_of_chunk.get(nxt, []):
                unit = idx.units[u]
                if unit.kind in ("heading", "lead"):
                    return items
                if unit.kind != "item" or marker_style(idx.unit_text(u)) != style:
                    continue  # the explanation under the previous item, or a nested list
                number = item_number(idx.unit_text(u))
                if (glyph and idx.unit_text(u)[:1] != glyph) or (not glyph and not follows(last, number)):
                    return items
                items.append(u)
                last = number
                added = True
            if not added:
                break
            nxt += 1
        return items

    def _items(self, row: int, list_id: int) -> list[int]:
        """The items of list ``list_id`` in chunk ``row``, in text order."""
        idx = self.index
        return [u for u in idx.units_of_chunk.get(row, [])
                if idx.units[u].list_id == list_id and idx.units[u].kind == "item"]

    def list_start(self, row: int, list_id: int) -> tuple[int, int]:
        """Where a list really begins: a list whose first item is "4." continues one that
        started in the previous chunk of the same section."""
        idx = self.index
        for _ in range(3):
            items = self._items(row, list_id)
            if not items or row == 0:
                break
            first = idx.unit_text(items[0])
            number = item_number(first)
            prev, this = idx.chunks[row - 1], idx.chunks[row]
            if not number or number == 1 or prev.source != this.source:
                break
            earlier = [u for u in idx.units_of_chunk.get(row - 1, [])
                       if idx.units[u].kind == "item" and marker_style(idx.unit_text(u)) == marker_style(first)]
            if not earlier or not follows(item_number(idx.unit_text(earlier[-1])), number):
                break
            row, list_id = row - 1, idx.units[earlier[-1]].list_id
        return row, list_id

    def announced(self, unit_cos: dict[int, float]) -> tuple[list[int], str] | None:
        """When one of the best-matching units announces what follows ("可以划分为四个阶段:",
        "以下是…的控制要点。", "主要是两项:", "通常解决以下问题:"), the answer is what it
        announces: the list that follows it, the run of sub-headings of one style that follows
        it (possibly in the next chunks of the same document), or else the sentence(s) right
        after it on the same topic line."""
        if not unit_cos:
            return None
        idx = self.index
        best = max(unit_cos, key=lambda u: unit_cos[u])
        text = idx.unit_text(best).strip()
        if ASKS.search(text) and idx.units[best].kind == "sentence":
            # a question in the document (an interview, an FAQ) that matches the user's: the
            # answer is what follows it
            after = self.following(best, prose_limit=4)
            if after and ANNOUNCER.search(idx.unit_text(after[0])):
                listed = self.following(after[0])
                after = [after[0]] + listed if listed else after
            return (after[:15], "") if after else None
        if not ANNOUNCER.search(text):
            return None
        if idx.units[best].kind == "item" and not _ENDS_IN_COLON.search(text):
            return None  # an item announces only when it ends in a colon
        picked = self.following(best)
        return ([best] + picked[:14], "") if picked else None

    def following(self, announcer: int, prose_limit: int = 4) -> list[int]:
        idx = self.index
        ann = idx.units[announcer]
        following: list[int] = []
        row = ann.chunk
        source = idx.chunks[row].source
        for r in range(row, min(row + 8, len(idx.chunks))):
            if idx.chunks[r].source != source:
                break
            following.extend(u for u in idx.units_of_chunk.get(r, []) if idx.units[u].start >= ann.end)
        if not following:
            return []
        first = following[0]
        kind = idx.units[first].kind
        picked: list[int] = []
        if kind == "item" and idx.units[first].list_id >= 0 and idx.units[first].list_id != ann.list_id:
            picked = self.list_units(idx.units[first].list_id, idx.units[first].chunk)
        elif kind == "item" and marker_style(idx.unit_text(first)) != marker_style(idx.unit_text(announcer)):
            # an item announcing its own sub-list ("4.费用管理主要是两项:一是…二是…")
            style = marker_style(idx.unit_text(first))
            for u in following:
                unit_style = marker_style(idx.unit_text(u)) if idx.units[u].kind == "item" else ""
                if idx.units[u].kind in ("heading", "lead") or (unit_style and unit_style != style):
                    break
                if unit_style == style:
                    picked.append(u)
        elif kind == "heading":
            style = heading_style(idx.unit_text(first))
            if not style:
                return []
            for u in following:
                if idx.units[u].kind == "heading":
                    if heading_style(idx.unit_text(u)) != style:
                        break
                    picked.append(u)
        elif kind == "sentence" and ASKS.search(idx.unit_text(announcer)):
            # a question followed by its answer: the sentences up to the next question or heading
            for u in following[:prose_limit]:
                if idx.units[u].kind != "sentence" or ASKS.search(idx.unit_text(u)):
                    break
                picked.append(u)
            return picked
        elif kind == "sentence" and _ENDS_IN_COLON.search(idx.unit_text(announcer)):
            # "通常解决以下问题:" followed by prose: the sentence(s) up to the first full stop
            doc = idx.documents[source].text
            for u in following[:prose_limit]:
                if idx.units[u].kind != "sentence" or "\n\n" in doc[ann.end : idx.units[u].start]:
                    break
                picked.append(u)
                if idx.unit_text(u).rstrip()[-1:] in "。！？!?":
                    break
            return picked
        return picked if len(picked) >= 2 else []

    def above(self, row: int, first_item: int) -> list[int]:
        """The (at most three) non-list units right above a list in its chunk, after any
        earlier list: its heading, lead line or introducing sentence."""
        idx = self.index
        parent = self.parent_item(first_item)
        if parent is not None:
            return [parent]  # a nested list is named by the item it hangs under
        out: list[int] = []
        for u in idx.units_of_chunk.get(row, []):
            if idx.units[u].end > idx.units[first_item].start:
                break
            if idx.units[u].list_id >= 0:
                out = []  # an earlier list: what stood above it is not this list's topic
            else:
                out.append(u)
        if not out and row > 0 and idx.units_of_chunk.get(row, [None])[0] == first_item:
            # the list opens its chunk: its announcing line ends the previous chunk
            prev, this = idx.chunks[row - 1], idx.chunks[row]
            if prev.source == this.source and prev.section == this.section:
                tail = idx.units_of_chunk.get(row - 1, [])[-1:]
                if tail and idx.units[tail[0]].list_id < 0 and self.names_list(tail[0]):
                    out = tail
        return out[-3:]

    def _indent(self, u: int) -> int:
        """How far the line of unit ``u`` is indented."""
        idx = self.index
        unit = idx.units[u]
        text = idx.documents[idx.chunks[unit.chunk].source].text
        line = text.rfind("\n", 0, unit.start) + 1
        return len(text[line : unit.start]) - len(text[line : unit.start].lstrip(" \t\u3000"))

    def parent_item(self, first_item: int) -> int | None:
        """The item a nested list hangs under ("1. **反馈原则**" above "   - 及时性…"): the
        nearest item before the list's first item, in its chunk and another list, on a line
        indented less, with at most two explaining sentences between them."""
        idx = self.index
        unit = idx.units[first_item]
        prev = first_item - 1
        while prev >= 0 and first_item - prev <= 3 and idx.units[prev].chunk == unit.chunk:
            p = idx.units[prev]
            if p.kind == "item" and p.list_id >= 0 and p.list_id != unit.list_id:
                return prev if self._indent(first_item) > self._indent(prev) else None
            if p.kind != "sentence":
                return None
            prev -= 1
        return None

    def nested_under(self, u: int) -> int | None:
        """The item the list of item ``u`` is nested under, if it is a nested list."""
        idx = self.index
        unit = idx.units[u]
        if unit.kind != "item" or unit.list_id < 0:
            return None
        first = next(i for i in idx.units_of_chunk[unit.chunk] if idx.units[i].list_id == unit.list_id)
        return self.parent_item(first)

    def sublist(self, u: int) -> list[int]:
        """The items of the list nested under item ``u`` (in its chunk), if any."""
        idx = self.index
        nxt = u + 1
        while nxt < len(idx.units) and idx.units[nxt].chunk == idx.units[u].chunk:
            if idx.units[nxt].kind == "item":
                if self.nested_under(nxt) != u:
                    return []
                return self._items(idx.units[nxt].chunk, idx.units[nxt].list_id)
            if idx.units[nxt].kind != "sentence":
                return []
            nxt += 1
        return []

    def names_list(self, u: int) -> bool:
        """A heading, a lead line or an announcing sentence: what names the list below it."""
        return self.index.units[u].kind in ("heading", "lead") or bool(ANNOUNCER.search(self.index.unit_text(u)))

    def list_topic(self, row: int, first_item: int) -> str:
        """The lead line or heading right above a list, as a topic for the lead sentence."""
        idx = self.index
        parent = self.parent_item(first_item)
        if parent is not None:
            return strip_marker(idx.unit_text(parent)).replace("**", "").replace("__", "").strip().rstrip(":： ")
        above = [u for u in self.above(row, first_item) if len(idx.unit_text(u)) <= 30 and self.names_list(u)]
        if above:
            # the shortest heading above the list names it best ("(一)市场部经理的职责")
            u = min(above[-2:], key=lambda u: len(idx.unit_text(u)))
            topic = strip_marker(idx.unit_text(u)).rstrip(":： ")
            # "這時,公司的總經理有三種選擇" is about its last clause
            last = re.split(r"[,，]", topic)[-1].strip()
            return last if len(last) >= 4 else topic
        chunk = idx.chunks[row]
        section = chunk.section.split(" > ")[-1] if chunk.section else ""
        if section == chunk.title:
            return ""  # the document's title names the whole document, not this list
        return strip_marker(section).rstrip(":： ")

    def complete(self, chosen: list[int]) -> list[int]:
        """Extend a sentence that ends in ；or ： with the rest of its enumeration on the same
        line ("313原则,即:A;B;C。"), so a point never stops half-way..."""
        idx = self.index

        def same_line(a: int, b: int) -> bool:  # unit b right after unit a, on its line and chunk
            ua, ub = idx.units[a], idx.units[b]
            return ua.chunk == ub.chunk and "\n" not in idx.documents[idx.chunks[ua.chunk].source].text[ua.end : ub.start]

        def ends_in(u: int, marks: str) -> bool:  # (a tuple: an empty text ends in none of them)
            return idx.units[u].kind == "sentence" and idx.unit_text(u).rstrip()[-1:] in tuple(marks)

        out: list[int] = []
        for u in chosen:
            if u in out:
                continue
            # ...and a fragment after a ；starts where its sentence starts ("…相互指责:市场部抱怨
            # 销售部执行能力低下;" before "销售部投诉市场部方案愚蠢。")
            head: list[int] = []
            k = u
            for _ in range(3):
                prev = k - 1
                if (prev < 0 or idx.units[k].kind != "sentence" or prev in out or prev in chosen
                        or not ends_in(prev, "；;") or not same_line(prev, k)):
                    break
                head.insert(0, prev)
                k = prev
            out.extend(head)
            out.append(u)
            k = u
            for _ in range(4):
                nxt = k + 1
                if not ends_in(k, "；;：:") or nxt >= len(idx.units) or not same_line(k, nxt) or nxt in out:
                    break
                out.append(nxt)
                k = nxt
        return out

    def context(self, chosen: list[int], structured: bool) -> list[int]:
        """Sentences around the chosen ones that they need: the sentence before one that opens
        by referring back ("于是,…", "因此…"), the sentences after one that go on with it
        ("其次…", "最后…", "其优点是…", "这…") or pick one of what it enumerates ("…采用第二种
        做法": ``_LIST_SEQUEL``; after a list answer too), and, when the answer is thin (one or two points of prose), the
        sentences before and after the best one, which usually explain it."""
        idx = self.index

        def same_paragraph(a: int, b: int) -> bool:
            return idx.units[a].kind == idx.units[b].kind == "sentence" and self.adjacent(min(a, b), max(a, b))

        out = list(chosen)
        for u in chosen:
            prev = u - 1
            if (_BACK_REFERENCE.match(idx.unit_text(u)) and prev >= 0 and prev not in out
                    and same_paragraph(prev, u)):
                out.insert(out.index(u), prev)
        for u in chosen:  # prose that goes on: "其次…", "最后…", "其优点是…", "这…"
            k = u
            for _ in range(3):
                nxt = k + 1
                if nxt >= len(idx.units) or nxt in out or not same_paragraph(k, nxt):
                    break
                if not (_GOES_ON.match(idx.unit_text(nxt)) or _LIST_SEQUEL.match(normalize(idx.unit_text(nxt)))):
                    break
                out.insert(out.index(k) + 1, nxt)
                k = nxt
        items = [u for u in out if idx.units[u].list_id >= 0 and idx.units[u].kind == "item"]
        if structured and items:  # the sentence after the list that picks or sums up its items
            last = max(items, key=lambda u: (idx.units[u].chunk, idx.units[u].start))
            last = self._items(idx.units[last].chunk, idx.units[last].list_id)[-1]  # its list's last item
            nxt = last + 1
            if (nxt < len(idx.units) and nxt not in out and idx.units[nxt].kind == "sentence"
                    and idx.chunks[idx.units[nxt].chunk].source == idx.chunks[idx.units[last].chunk].source
                    and _LIST_SEQUEL.match(normalize(idx.unit_text(nxt)))):
                out.append(nxt)
        if not structured and chosen and len(chosen) <= 2:
            nxt = chosen[0] + 1
            if nxt < len(idx.units) and nxt not in out and same_paragraph(chosen[0], nxt):
                out.insert(out.index(chosen[0]) + 1, nxt)
            prev = chosen[0] - 1
            if prev >= 0 and prev not in out and same_paragraph(prev, chosen[0]):
                out.insert(out.index(chosen[0]), prev)
        return out

    def with_bodies(self, chosen: list[int]) -> list[int]:
        """A list item that is only a title ("1.信息沟通方面。") brings the first sentence that
        explains it, or the list nested under it, so the point says something."""
        idx = self.index
        out: list[int] = []
        for u in chosen:
            if u in out:
                continue
            out.append(u)
            nxt = u + 1
            if (self.title_only(u) and self.adjacent(u, nxt) and nxt not in chosen
                    and idx.units[nxt].kind == "sentence"):
                out.append(nxt)
            elif self.title_only(u):
                # a title over a nested list ("1. **反馈原则**" / "- 及时性…"): its items
                out += [i for i in self.sublist(u) if i not in out]
        return out

    def whole_articles(self, chosen: list[int]) -> list[int]:
        """A sentence of a short statute article (a section of its own, 第X条, no items, in one
        chunk of at most ``ARTICLE_MAX_CHARS``) brings the article's other paragraphs (款): the
        article is the unit a rule is cited by, and its other paragraphs carry the conditions and
        exceptions of the same rule (what applies when a condition is met, and what when it is
        not)."""
        idx = self.index
        out = list(chosen)
        for u in chosen:
            unit = idx.units[u]
            chunk = idx.chunks[unit.chunk]
            if unit.kind != "sentence" or not _ARTICLE.match(chunk.section.rsplit(" > ", 1)[-1]):
                continue
            if chunk.end - chunk.start > ARTICLE_MAX_CHARS or not _ARTICLE.match(chunk.text.lstrip()):
                continue  # a long article, or one the chunker split: its paragraphs stand alone
            nxt = unit.chunk + 1
            if nxt < len(idx.chunks) and idx.chunks[nxt].source == chunk.source and idx.chunks[nxt].section == chunk.section:
                continue  # the article goes on in the next chunk
            members = idx.units_of_chunk.get(unit.chunk, [])
            if any(idx.units[m].kind != "sentence" for m in members):
                continue  # an article with items: the list rules decide
            out += [m for m in members if m not in out]
        return out

    def adjacent(self, a: int, b: int) -> bool:
        """Unit ``b`` follows unit ``a`` in the same paragraph of the same document, whatever
        chunk each ended up in: nothing but spaces and at most one line break between them."""
        idx = self.index
        if not (0 <= a < len(idx.units) and 0 <= b < len(idx.units)):
            return False
        ua, ub = idx.units[a], idx.units[b]
        source = idx.chunks[ua.chunk].source
        if idx.chunks[ub.chunk].source != source or ub.start < ua.end:
            return False
        gap = idx.documents[source].text[ua.end : ub.start]
        return not gap.strip() and gap.count("\n") <= 1

    def title_only(self, u: int) -> bool:
        unit = self.index.units[u]
        return unit.kind == "item" and len(strip_marker(self.index.unit_text(u))) <= _TITLE_ONLY
