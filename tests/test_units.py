"""Answer units: numbered lists stay whole across the sentences that explain their items, and
inline enumerations ("一是…;二是…") become items."""

from __future__ import annotations

from ingest.models import Chunk
from kb.units import follows, item_number, split_units


def units_of(text: str) -> list[tuple[str, int, str]]:
    chunk = Chunk(id="c", source="d.txt", title="t", section="", start=10, end=10 + len(text), text=text)
    out = []
    for u in split_units(chunk, 0):
        assert text[u.start - 10 : u.end - 10] == text[u.start - 10 : u.end - 10].strip()
        out.append((u.kind, u.list_id, text[u.start - 10 : u.end - 10]))
    return out


def test_numbered_list_stays_open_across_explanations():
    text = ("以下是控制要点。\n1.沟通和协作的重要性:要意识到合作是基础。\n通过有效的沟通,可以共享资源。\n"
            "2.共同制定目标和指标:应明确共同的目标。\n3.协调资源:需要协调资源的分配。")
    units = units_of(text)
    items = [(lid, t) for kind, lid, t in units if kind == "item"]
    assert [t[:2] for _, t in items] == ["1.", "2.", "3."]
    assert len({lid for lid, _ in items}) == 1  # one list
    body = [u for u in units if u[2].startswith("通过有效的沟通")]
    assert body == [("sentence", -1, "通过有效的沟通,可以共享资源。")]  # not an item of the list


def test_one_missing_number_is_tolerated_but_a_restart_is_a_new_list():
    text = "1.甲项内容。\n说明。\n3.丙项内容。\n1.另一个列表。"
    items = [(lid, t) for kind, lid, t in units_of(text) if kind == "item"]
    assert items[0][0] == items[1][0] != items[2][0]


def test_heading_closes_a_numbered_list():
    text = "1.甲项内容。\n(二)新的小节\n2.乙项内容。"
    items = [lid for kind, lid, _ in units_of(text) if kind == "item"]
    assert items[0] != items[1]


def test_yi_shi_er_shi_enumeration_gives_items():
    text = ("這時,公司的總經理有三種選擇:\n一是將營銷部門重新納入銷售經理的管理之下;\n"
            "二是由常務副總經理來處理矛盾;三是將銷售部門納入營銷經理的管理之下。\n絕大部分的總經理都采取了第三種選擇。")
    units = units_of(text)
    items = [(lid, t) for kind, lid, t in units if kind == "item"]
    assert [t[:2] for _, t in items] == ["一是", "二是", "三是"]
    assert len({lid for lid, _ in items}) == 1
    assert units[0][0] == "lead" and units[-1][0] == "sentence"


def test_inline_numbers_after_an_announcement_continue_on_the_next_lines():
    text = "我认为表现为以下三个方面:1.信息沟通方面。\n销售部是最前沿的部门。\n2.方案制定方面。"
    items = [(lid, t) for kind, lid, t in units_of(text) if kind == "item"]
    assert [t for _, t in items] == ["1.信息沟通方面。", "2.方案制定方面。"]
    assert items[0][0] == items[1][0]


def test_item_numbers():
    assert item_number("3、考核") == 3
    assert item_number("(二)职责") == 2
    assert item_number("二是由公司") == 2
    assert item_number("第三,要") == 3
    assert item_number("考核") is None
    assert follows(2, 3) and follows(3, 5)
    assert not follows(3, 7) and not follows(None, 1) and not follows(3, 3)


def test_bullets_after_a_colon_and_across_explanations_form_one_list():
    text = ("需要把握四个原则:●业务不重叠。\n市场部与客户是项目合作关系;\n销售部与客户是事务合作关系。\n"
            "●辐射一个基调。\n无论是市场部声音,还是销售部声音,必须是一个基调。\n●共同参与方式。")
    units = units_of(text)
    assert units[0] == ("sentence", -1, "需要把握四个原则:")
    items = [(lid, t) for kind, lid, t in units if kind == "item"]
    assert [t for _, t in items] == ["●业务不重叠。", "●辐射一个基调。", "●共同参与方式。"]
    assert len({lid for lid, _ in items}) == 1


def test_a_different_bullet_starts_another_list():
    text = "●甲。\n说明。\n◆乙。"
    items = [lid for kind, lid, _ in units_of(text) if kind == "item"]
    assert items[0] != items[1]


def test_an_indented_list_under_an_item_is_a_list_of_its_own():
    text = ("### 及时反馈\n1. **反馈原则**\n   - 及时性：问题发现即反馈\n   - 具体性：针对具体行为\n"
            "2. **反馈方式**\n   - 一对一谈话\n   - 书面总结报告\n3. **反馈技巧**\n   - 注重语气")
    items = [(lid, t) for kind, lid, t in units_of(text) if kind == "item"]
    outer = [lid for lid, t in items if t[0].isdigit()]
    assert len(set(outer)) == 1  # 1. 2. 3. stay one list across the lists nested under them
    nested = [lid for lid, t in items if t.startswith("-")]
    assert nested[0] == nested[1] != nested[2] == nested[3] != nested[4]
    assert not set(nested) & set(outer)
    # a bullet at the items' own indentation is no nested list
    flat = [lid for kind, lid, _ in units_of("1. 甲\n- 乙\n- 丙") if kind == "item"]
    assert flat[1] == flat[2]
