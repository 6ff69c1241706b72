"""Sanity checks for the evaluation sets: the dev set (eval/dev.jsonl) and the held-out set
(eval/holdout.jsonl, written later without looking at the system's answers)."""

import json
from collections import Counter
from pathlib import Path

import opencc
import pytest

ROOT = Path(__file__).resolve().parents[1]
DEV = ROOT / "eval" / "dev.jsonl"
HOLDOUT = ROOT / "eval" / "holdout.jsonl"
# per set: at least this many questions, out-of-scope ones, questions per document, and
# questions citing two documents or more
MINIMA = {
    "dev": {"size": 80, "out_of_scope": 9, "per_document": 8, "cross_document": 6},
    "holdout": {"size": 40, "out_of_scope": 6, "per_document": 5, "cross_document": 0},
}
CORPUS = ROOT / "corpus"

KINDS = {"list", "why", "how", "difference", "definition", "fact"}
STYLES = {"paraphrase", "colloquial", "keyword", "near_exact"}
SCRIPTS = {"simplified", "traditional"}

T2S = opencc.OpenCC("t2s")


@pytest.fixture(scope="module", params=[DEV, HOLDOUT], ids=["dev", "holdout"])
def which(request):
    return request.param


@pytest.fixture(scope="module")
def minima(which):
    return MINIMA[which.stem]


@pytest.fixture(scope="module")
def rows(which):
    out = []
    with which.open(encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if line.strip():
                try:
                    out.append(json.loads(line))
                except json.JSONDecodeError as e:  # pragma: no cover - message only
                    pytest.fail(f"line {n}: invalid JSON: {e}")
    return out


@pytest.fixture(scope="module")
def corpus():
    return {p.name: p.read_bytes().decode("utf-8") for p in sorted(CORPUS.glob("*.txt"))}


def test_size(rows, minima):
    assert len(rows) >= minima["size"]


def test_unique_ids_and_questions(rows):
    ids = [r["id"] for r in rows]
    qs = [r["question"].strip() for r in rows]
    assert len(set(ids)) == len(ids), [k for k, v in Counter(ids).items() if v > 1]
    assert len(set(qs)) == len(qs), [k for k, v in Counter(qs).items() if v > 1]


def test_schema(rows):
    for r in rows:
        assert {"id", "question", "in_scope", "kind", "style", "script", "gold", "key_points"} <= set(r), r["id"]
        assert isinstance(r["in_scope"], bool), r["id"]
        assert r["kind"] in KINDS, r["id"]
        assert r["style"] in STYLES, r["id"]
        assert r["script"] in SCRIPTS, r["id"]
        assert r["question"].strip(), r["id"]
        assert isinstance(r["gold"], list) and isinstance(r["key_points"], list), r["id"]


def test_gold_quotes_are_exact_substrings(rows, corpus):
    for r in rows:
        for g in r["gold"]:
            assert g["source"] in corpus, (r["id"], g["source"])
            assert g["quote"] in corpus[g["source"]], (r["id"], g["quote"])


def test_gold_quote_length(rows):
    for r in rows:
        for g in r["gold"]:
            assert 10 <= len(g["quote"]) <= 150, (r["id"], len(g["quote"]), g["quote"])


def test_in_scope_has_gold_and_key_points(rows):
    for r in rows:
        if r["in_scope"]:
            assert len(r["gold"]) >= 1, r["id"]
            assert 2 <= len(r["key_points"]) <= 5, r["id"]
        else:
            assert r["gold"] == [] and r["key_points"] == [], r["id"]


def test_key_points_literal_in_gold(rows):
    for r in rows:
        if not r["in_scope"]:
            continue
        gold_s = T2S.convert("\n".join(g["quote"] for g in r["gold"]))
        for kp in r["key_points"]:
            assert kp.strip() == kp and kp, (r["id"], kp)
            assert T2S.convert(kp) in gold_s, (r["id"], kp)


def test_out_of_scope_count(rows, minima):
    assert sum(not r["in_scope"] for r in rows) >= minima["out_of_scope"]


def test_traditional_share(rows):
    trad = sum(r["script"] == "traditional" for r in rows)
    assert trad * 8 >= len(rows), f"{trad}/{len(rows)} traditional"


def test_every_corpus_file_covered(rows, corpus, minima):
    cov = Counter()
    for r in rows:
        for src in {g["source"] for g in r["gold"]}:
            cov[src] += 1
    for name in corpus:
        assert cov[name] >= minima["per_document"], (name, cov[name])


def test_cross_document_questions(rows, minima):
    multi = [r["id"] for r in rows if len({g["source"] for g in r["gold"]}) >= 2]
    assert len(multi) >= minima["cross_document"], multi


def test_holdout_does_not_repeat_dev_questions():
    def questions(path):
        return {json.loads(line)["question"].strip() for line in path.open(encoding="utf-8") if line.strip()}

    assert not questions(DEV) & questions(HOLDOUT)
