"""The refusal threshold, fitted for each index when it is built.

How similar a question's best passages must be before the knowledge base answers depends on the
corpus (its length, its style, its script, the embedder): one number carried over from the
bundled corpus refuses too little elsewhere. So each index is probed with

- *in-scope probes* made from the corpus itself: questions made from its headings, and questions
  made from its sentences (their rarest words as a keyword query, the same words in a question
  template, some in Traditional script);
- *out-of-scope probes*: the shipped bank ``kb/data/out_of_scope.txt`` (pay at named companies,
  local rules, events, products, tax, the future, other countries' law, chit-chat…), leaving
  out every bank question the corpus names everything of (it may well answer it);

and the threshold is the one below which ``answer.probe_refusal_target`` (80%) of the
out-of-scope probes the scope guard lets through fall, lowered where it would refuse more than
``answer.max_probe_refusals`` (20%) of the in-scope probes. The out-of-scope side sets it
because the in-scope probes, made mechanically, sit lower than real questions on some corpora
(a noisy web copy's sentences) and higher on others; the in-scope side is a safety valve. The
share was chosen on two corpora of different shapes (eval/README.md, "Refusal"): 90% refused
too many answerable questions on the statutes corpus (threshold .929: 9 of 63 of a question set
refused), 80% gives .880 on the bundled corpus and .909 on the statutes one. Probes the scope guard
refuses whatever their evidence (``kb.answer.scope``) do not move the threshold; they count in
the measured rates. The threshold and its rates go into the manifest (``calibration``) and the
``kb ingest`` summary."""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ingest.normalize import in_script
from kb.answer.scope import ORGANISATIONS_FILE, PLACES_FILE
from kb.question import question_parts

log = logging.getLogger(__name__)

BANK_FILE = Path(__file__).resolve().parent / "data" / "out_of_scope.txt"
MAX_IN_PROBES = 120  # in-scope probes per index: headings first, then sentences evenly spread
MAX_OUT_PROBES = 300  # bank questions per index, evenly spread over its topics
_TEMPLATES = ("{}和{}有什么规定？", "{}{}是怎么要求的？", "关于{}，{}怎么处理？", "{}的{}是什么？")


def load_bank(path: Path = BANK_FILE) -> list[str]:
    """The bank's questions (``#`` lines name topic groups)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    return [q.strip() for q in lines if q.strip() and not q.startswith("#")]


# bumped whenever the probes, the fit or the scope guard change what a fit would give
SCHEME = 3


# the modules whose rules decide which probes the scope checks refuse, and those that make a
# probe's evidence (retrieval, and the answerer's confidence): a change to any of them moves what
# a fit would give
FIT_CODE = tuple(Path(__file__).resolve().parent / p
                   for p in ("answer/scope.py", "question.py", "calibrate.py", "retriever.py", "answer/extractive.py"))


def bank_fingerprint(path: Path = BANK_FILE) -> str:
    """The bank, the place and organisation lists, the scheme, the code of the scope checks
    (which probes they refuse decides the threshold) and the code that makes each probe's
    evidence: what the fitted figures depend on here."""
    h = hashlib.sha256(f"scheme {SCHEME}".encode())
    h.update(path.read_bytes())
    h.update(PLACES_FILE.read_bytes())
    h.update(ORGANISATIONS_FILE.read_bytes())
    for code in FIT_CODE:
        h.update(code.read_bytes())
    return h.hexdigest()[:16]


def _spread(items: Sequence, n: int) -> list:
    """``n`` items taken evenly across ``items`` (all when there are fewer)."""
    if len(items) <= n:
        return list(items)
    step = len(items) / n
    return [items[int(i * step)] for i in range(n)]


def in_scope_probes(answerer, heading_questions: Sequence[str], words: Callable[[str], list[str]],
                    n: int = MAX_IN_PROBES) -> list[str]:
    """Questions the corpus answers, made from it: its heading questions, then, from sentences
    spread over the corpus, their three rarest words as keywords or in a question template
    (every third in Traditional script)."""
    idx = answerer.parts.index
    out = list(dict.fromkeys(heading_questions))[: n // 3]
    sentences = [i for i, u in enumerate(idx.units) if u.kind in ("sentence", "item") and 12 <= u.end - u.start <= 160]
    for k, i in enumerate(_spread(sentences, n - len(out))):
        ws = [w for w in dict.fromkeys(words(idx.unit_text(i))) if len(w) >= 2 and not w.isdigit()]
        rare = sorted(ws, key=answerer._idf, reverse=True)[:3]
        if len(rare) < 2:
            continue
        if k % 2 == 0:
            q = " ".join(rare)
        else:
            q = _TEMPLATES[(k // 2) % len(_TEMPLATES)].format(rare[0], rare[1])
        out.append(in_script(q, "traditional") if k % 3 == 2 else q)
    return list(dict.fromkeys(out))


def out_of_scope_probes(scope, bank: Sequence[str], n: int = MAX_OUT_PROBES) -> tuple[list[str], int]:
    """Bank questions for this corpus, and how many were left out because the corpus names
    everything they ask about."""
    kept = [q for q in bank if not scope.names_everything(q)]
    return _spread(kept, n), len(bank) - len(kept)


@dataclass(frozen=True)
class Fit:
    threshold: float
    in_refused: float  # share of in-scope probes refused at the threshold (guards included)
    out_refused: float  # share of out-of-scope probes refused (guards included)


def fit_threshold(in_conf: Sequence[float], out_conf: Sequence[float], in_guarded: Sequence[bool],
                  out_guarded: Sequence[bool], out_share: float, max_in_refused: float, default: float) -> Fit:
    """The threshold below which ``out_share`` of the out-of-scope probes the scope guard lets
    through fall, lowered where needed so that it refuses at most ``max_in_refused`` of the
    in-scope probes the guard lets through. ``default`` when there are no probes to fit on."""
    free_in = np.array([c for c, g in zip(in_conf, in_guarded, strict=True) if not g], dtype=float)
    free_out = np.array([c for c, g in zip(out_conf, out_guarded, strict=True) if not g], dtype=float)
    if not len(free_out):
        t = default
    else:
        t = float(np.quantile(free_out, out_share))
        if len(free_in):
            t = min(t, float(np.quantile(free_in, max_in_refused)))
    n_in, n_out = max(len(in_conf), 1), max(len(out_conf), 1)
    return Fit(
        threshold=round(t, 4),
        in_refused=round((sum(in_guarded) + int((free_in < t).sum())) / n_in, 4),
        out_refused=round((sum(out_guarded) + int((free_out < t).sum())) / n_out, 4),
    )


def calibrate(answerer, heading_questions: Sequence[str], words: Callable[[str], list[str]],
              out_share: float, max_in_refused: float, default: float, bank: Sequence[str] | None = None) -> dict:
    """Fit ``answerer``'s evidence threshold on its index; the manifest's ``calibration``."""
    t0 = time.perf_counter()
    bank = load_bank() if bank is None else bank
    ins = in_scope_probes(answerer, heading_questions, words)
    outs, left_out = out_of_scope_probes(answerer.scope, bank)

    def measure(qs: list[str]) -> tuple[list[float], list[bool]]:
        conf, guarded = [], []
        for q in qs:
            ev = answerer.evidence(q)
            conf.append(ev.conf)
            guarded.append(not ev.retrieval.rows or all(answerer.not_addressed(question_parts(q), ev)))
        return conf, guarded

    in_conf, in_guarded = measure(ins)
    out_conf, out_guarded = measure(outs)
    fit = fit_threshold(in_conf, out_conf, in_guarded, out_guarded, out_share, max_in_refused, default)
    result = {
        "threshold": fit.threshold,
        "in_scope_probes": len(ins),
        "out_of_scope_probes": len(outs),
        "bank_left_out": left_out,
        "in_scope_refused": fit.in_refused,
        "out_of_scope_refused": fit.out_refused,
        "probe_refusal_target": out_share,
        "max_probe_refusals": max_in_refused,
        "bank": bank_fingerprint(),
        "seconds": round(time.perf_counter() - t0, 2),
    }
    log.info("refusal threshold %.4f fitted on %d in-scope and %d out-of-scope probes: %.0f%% / %.0f%% refused",
             fit.threshold, len(ins), len(outs), 100 * fit.in_refused, 100 * fit.out_refused)
    return result
