"""The domain folder (kb/domain.py, domains/README.md): what the chat says and knows about a
corpus comes from it, never from code. The bundled corpus's folder gives today's texts; another
corpus without one gets generic texts and starters made from its own headings, on the chat page
(Gradio ``/config``) and on ``/embed``; follow-up entities come from ``domain.toml``."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from conftest import hashing_config
from conftest_app import LiveServer, write_corpus

from kb.config import (
    BUNDLED_DOMAIN,
    GENERIC_TITLE,
    GENERIC_WELCOME,
    PACKAGE_DATA,
    ROOT,
    ConfigError,
    load_config,
)
from kb.domain import load_calibration
from kb.service import KnowledgeService

BUNDLED_STARTERS = (
    "市场部和销售部为什么会发生冲突？",
    "市场部经理的职责有哪些？",
    "市场部和销售部的冲突怎么解决？",
    "銷售管理與營銷管理有什麼區別？",
)
DOMAIN_WORDS = re.compile(r"市场|销售|市場|銷售|营销|營銷")
# questions made from the headings of tests/conftest_app.py's corpus (员工手册, 报销制度, 网页安全)
HEADING_QUESTIONS = {"差旅报销制度是怎样的？", "报销范围是怎样的？", "报销流程是怎样的？",
                     "请假流程是怎样的？", "审批权限是怎样的？"}


def write_domain(folder: Path, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "domain.toml").write_text(text, encoding="utf-8")
    return folder


# -- settings ----------------------------------------------------------------------------------
def test_the_bundled_domain_gives_todays_texts_and_dictionaries():
    cfg = load_config(None)
    assert cfg.domain_dir == BUNDLED_DOMAIN == ROOT / "domains" / "bundled"
    assert cfg.app.title == "市场与销售管理知识助手"
    assert cfg.app.welcome == "你好！我可以回答关于市场部与销售部职责分工、协作与冲突的问题，每条回答都附有原文出处。"
    assert cfg.app.starters == BUNDLED_STARTERS
    assert cfg.glossary == BUNDLED_DOMAIN / "glossary.tsv"
    assert cfg.userdict == BUNDLED_DOMAIN / "userdict.txt"
    assert "市场部经理助理" in cfg.domain.entities and "经销商" in cfg.domain.entities


def test_without_a_domain_everything_is_generic(tmp_path: Path):
    for cfg in (load_config(None, domain_dir=""), load_config(None, domain_dir=tmp_path)):  # none / empty folder
        assert (cfg.app.title, cfg.app.welcome) == (GENERIC_TITLE, GENERIC_WELCOME)
        assert cfg.app.starters is None  # the service takes the corpus's heading questions
        assert cfg.glossary is None and cfg.domain.entities == () and cfg.domain.calibration is None
        assert cfg.userdict == PACKAGE_DATA / "userdict.txt" and cfg.userdict.read_text(encoding="utf-8") == ""
    assert not DOMAIN_WORDS.search(GENERIC_TITLE + GENERIC_WELCOME)
    assert load_config(None, domain_dir="").domain_dir is None


def test_domain_dir_in_a_config_file(tmp_path: Path):
    write_domain(tmp_path / "acme", 'title = "艾奇知识助手"\nwelcome = "欢迎"\nstarters = ["年假怎么请？"]\n')
    (tmp_path / "acme" / "glossary.tsv").write_text("年假\t带薪假\n", encoding="utf-8")
    toml = tmp_path / "kb.toml"
    toml.write_text('domain_dir = "acme"\n', encoding="utf-8")
    cfg = load_config(toml)
    assert cfg.domain_dir == (tmp_path / "acme").resolve()
    assert (cfg.app.title, cfg.app.welcome, cfg.app.starters) == ("艾奇知识助手", "欢迎", ("年假怎么请？",))
    assert cfg.glossary == cfg.domain_dir / "glossary.tsv"
    assert cfg.userdict == PACKAGE_DATA / "userdict.txt"  # the folder has none
    toml.write_text('domain_dir = ""\n', encoding="utf-8")
    assert load_config(toml).app.title == GENERIC_TITLE


def test_explicit_settings_override_the_domain(tmp_path: Path):
    toml = tmp_path / "kb.toml"
    toml.write_text('[app]\ntitle = "我的助手"\nstarters = []\n', encoding="utf-8")
    cfg = load_config(toml)
    assert cfg.app.title == "我的助手"
    assert cfg.app.starters == ()  # none wanted: not the domain's, not the headings'
    assert cfg.app.welcome.startswith("你好！我可以回答关于市场部")  # still the domain's
    glossary = tmp_path / "g.tsv"
    glossary.write_text("甲\t乙\n", encoding="utf-8")
    assert load_config(None, glossary=glossary, domain_dir="").glossary == glossary


def test_replace_reads_the_new_domain_and_keeps_what_was_set():
    cfg = load_config(None, app__title="我的助手")
    other = cfg.replace(domain_dir=None)
    assert other.app.title == "我的助手"  # set explicitly: kept
    assert other.app.welcome == GENERIC_WELCOME and other.app.starters is None and other.glossary is None
    assert other.replace(domain_dir=BUNDLED_DOMAIN) == cfg


def test_a_missing_or_broken_domain_is_named(tmp_path: Path):
    with pytest.raises(ConfigError, match="domain folder not found"):
        load_config(None, domain_dir=tmp_path / "nowhere")
    folder = write_domain(tmp_path / "bad", 'title = "x"\nstarter = ["typo"]\n')
    with pytest.raises(ConfigError, match=r"domain\.toml: starter: unknown key"):
        load_config(None, domain_dir=folder)
    write_domain(folder, "[followup]\nentities = 3\n")
    with pytest.raises(ConfigError, match=r"followup\.entities"):
        load_config(None, domain_dir=folder)


def test_the_calibration_cases_moved_whole():
    cases = load_calibration(load_config(None).domain.calibration)
    # the counts kb/config.py's faq.match_threshold comment was measured on
    assert len(cases) == 6
    assert sum(len(pos) for pos, _ in cases.values()) == 35
    assert sum(len(neg) for _, neg in cases.values()) == 34


def test_calibrate_without_cases_says_where_they_go(tmp_path: Path):
    toml = tmp_path / "kb.toml"
    toml.write_text('domain_dir = ""\n', encoding="utf-8")
    env = {**os.environ, "KB_CONFIG": str(toml)}
    r = subprocess.run([str(Path(sys.executable).parent / "kb"), "faq", "calibrate"], env=env, cwd=tmp_path,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2
    assert "calibration.toml" in r.stderr and "domain_dir" in r.stderr


# -- follow-ups ----------------------------------------------------------------------------------
def test_followup_entities_come_from_the_domain_file(tmp_path: Path):
    """Entities the noun-phrase fallback could not pair (different head characters) are swapped
    and joined because the domain lists them."""
    folder = write_domain(tmp_path / "domain", '[followup]\nentities = ["请假制度", "报销流程"]\n')
    corpus = write_corpus(tmp_path / "corpus")
    svc = KnowledgeService(hashing_config(tmp_path / "data", corpus, domain_dir=folder), progress=False)
    assert set(svc.followup.entities) == {"请假制度", "报销流程"}
    history = [{"question": "请假制度有哪些规定？", "answer": "……"}]
    assert svc.ask("那报销流程呢？", history=history, log=False).resolved_question == "报销流程有哪些规定？"
    history = [{"question": "请假制度和报销流程有哪些规定？", "answer": "……"}]
    assert svc.followup.resolve("它们有什么不同？", history) == "请假制度和报销流程有什么不同？"
    bare = KnowledgeService(hashing_config(tmp_path / "data2", corpus, domain_dir=""), progress=False)
    assert bare.followup.entities == ()
    assert bare.followup.resolve("那报销流程呢？", [{"question": "请假制度有哪些规定？"}]) == "报销流程 请假制度有哪些规定？"


# -- the web pages of another corpus without a domain ----------------------------------------------
@pytest.fixture(scope="module")
def bare_server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("bare")
    cfg = load_config(None, data_dir=tmp / "data", corpus_dir=write_corpus(tmp / "corpus"),
                      embedder__backend="hashing", answer__min_confidence=0.05, domain_dir="")
    with LiveServer(cfg) as live:
        yield live


def test_chat_page_of_another_corpus_mentions_nothing_of_the_bundled_domain(bare_server):
    r = httpx.get(bare_server.url + "/config", timeout=30)
    assert r.status_code == 200
    assert not DOMAIN_WORDS.search(r.text), DOMAIN_WORDS.search(r.text)
    config = r.json()
    texts = json.dumps(config, ensure_ascii=False)
    assert GENERIC_TITLE in texts and GENERIC_WELCOME in texts
    starters = [c["props"]["value"] for c in config["components"]
                if "kb-starter" in (c.get("props", {}).get("elem_classes") or [])]
    assert len(starters) == 4 and set(starters) <= HEADING_QUESTIONS
    # documents in turn: the first starters come from different documents
    assert {"差旅报销制度是怎样的？", "请假流程是怎样的？"} <= set(starters[:2])


def test_embed_page_of_another_corpus_uses_its_headings(bare_server):
    page = httpx.get(bare_server.url + "/embed", timeout=30).text
    assert not DOMAIN_WORDS.search(page)
    settings = json.loads(re.search(r'<script id="kb-config" type="application/json">(.*?)</script>', page).group(1))
    assert (settings["title"], settings["welcome"]) == (GENERIC_TITLE, GENERIC_WELCOME)
    assert len(settings["starters"]) == 4 and set(settings["starters"]) <= HEADING_QUESTIONS
    assert httpx.get(bare_server.url + "/openapi.json", timeout=30).json()["info"]["title"] == GENERIC_TITLE


def test_a_heading_starter_is_answered_from_its_corpus(bare_server):
    settings = json.loads(re.search(r'<script id="kb-config" type="application/json">(.*?)</script>',
                                    httpx.get(bare_server.url + "/embed", timeout=30).text).group(1))
    question = next(q for q in settings["starters"] if q.startswith("请假流程"))
    a = httpx.post(bare_server.url + "/api/ask", json={"question": question}, timeout=30).json()
    assert a["answered"] and a["citations"][0]["source"] == "员工手册.txt"


# -- parts, not the service -------------------------------------------------------------------------
def test_answerer_and_faq_do_not_import_the_service():
    code = ("import sys, kb.answer.extractive, kb.answer.followup, kb.faq.service, kb.faq.calibrate; "
            "print('kb.service' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"
