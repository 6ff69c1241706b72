"""``kb faq …``: suggest, list, show, add, edit, approve, reject, merge, export, import, usage,
clear-log, check, calibrate. Commands that only read or edit the store run without loading a model;
suggest, usage and calibrate load the service; approve and check load the index's documents."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

from kb.faq.store import STATUSES, FaqStore, faq_store


def _store(cfg) -> FaqStore:
    return faq_store(cfg)


def _documents(cfg) -> dict:
    from kb.index import load_index

    return load_index(cfg.index_path).documents


def _service(cfg):
    from kb.service import KnowledgeService

    return KnowledgeService(cfg, progress=False)


def _line(e: dict) -> str:
    extra = []
    if e["alt_questions"]:
        extra.append(f"+{len(e['alt_questions'])} alt")
    if e["ask_count"]:
        extra.append(f"asked {e['ask_count']}×")
    if e["hits"]:
        extra.append(f"answered {e['hits']}×")
    if e["citations"]:
        extra.append(f"{len(e['citations'])} cit.")
    tail = f"  ({', '.join(extra)})" if extra else ""
    topic = f"[{e['topic']}] " if e["topic"] else ""
    s = f"#{e['id']:<4} {e['status']:<9} {topic}{e['question']}{tail}"
    if e["status"] == "flagged" and e["flag_reason"]:
        s += f"\n       flagged: {e['flag_reason']}"
    return s


def _print(entries: list[dict], as_json: bool) -> None:
    if as_json:
        print(json.dumps(entries, ensure_ascii=False, indent=2))
        return
    for e in entries:
        print(_line(e))


def cmd_suggest(args, config_fn) -> int:
    svc = _service(config_fn(args))
    sources = ("usage", "documents") if args.source == "all" else (args.source,)
    added = svc.faq.suggest(limit=args.limit, sources=sources)
    if args.json:
        _print(added, True)
        return 0
    print(f"{len(added)} new candidate{'s' if len(added) != 1 else ''} (review: kb faq list --status candidate)")
    _print(added, False)
    return 0


def cmd_list(args, config_fn) -> int:
    store = _store(config_fn(args))
    if not store.exists:
        print("no FAQ entries yet: run `kb faq suggest`", file=sys.stderr)
        return 0
    status = args.status if args.status != "all" else None
    if status is None and not args.all:
        status = [s for s in STATUSES if s != "merged"]
    entries = [e.to_dict() for e in store.list(status, args.topic, order=args.sort)]
    _print(entries, args.json)
    if not args.json:
        print(f"{len(entries)} entr{'y' if len(entries) == 1 else 'ies'}", file=sys.stderr)
    return 0


def cmd_show(args, config_fn) -> int:
    store = _store(config_fn(args))
    e = store.require(args.id).to_dict()
    e["history"] = store.history(args.id)
    if args.json:
        print(json.dumps(e, ensure_ascii=False, indent=2))
        return 0
    print(_line(e))
    for q in e["alt_questions"]:
        print(f"       also: {q}")
    print()
    print(e["answer"] or "(no answer yet)")
    for c in e["citations"]:
        flag = "  [MISSING]" if c.get("missing") else ""
        print(f"[{c['n']}] {c['source']} {c['start']}-{c['end']} · {c.get('section', '')}{flag}")
        print(f"    \"{c['quote'][:200]}\"")
    print("\nhistory:")
    for h in e["history"]:
        print(f"  {h['at']}  {h['action']:<8} {h['field'] or ''} {('by ' + h['actor']) if h['actor'] else ''}")
    return 0


def cmd_add(args, config_fn) -> int:
    from kb.faq.citations import topic_of
    from kb.faq.store import FaqEntry

    store = _store(config_fn(args))
    e = store.add(FaqEntry(None, args.question, args.answer or "", [], args.topic or topic_of([]),
                           "candidate", list(args.alt or []), "manual"), actor=args.actor)
    print(_line(e.to_dict()))
    return 0


def cmd_edit(args, config_fn) -> int:
    from kb.faq import curate

    store = _store(config_fn(args))
    entry = store.require(args.id)
    alts = None
    if args.alt or args.remove_alt:
        alts = [q for q in entry.alt_questions if q not in (args.remove_alt or [])]
        alts += [q for q in args.alt or [] if q not in alts]
    if args.answer_file:
        args.answer = Path(args.answer_file).read_text(encoding="utf-8").strip()
    e = curate.edit(store, args.id, question=args.question, answer=args.answer, topic=args.topic,
                    alt_questions=alts, actor=args.actor)
    print(_line(e.to_dict()))
    return 0


def cmd_approve(args, config_fn) -> int:
    from kb.faq import curate

    cfg = config_fn(args)
    store, docs = _store(cfg), _documents(cfg)
    for i in args.ids:
        print(_line(curate.approve(store, i, docs, actor=args.actor).to_dict()))
    return 0


def cmd_reject(args, config_fn) -> int:
    from kb.faq import curate

    store = _store(config_fn(args))
    for i in args.ids:
        print(_line(curate.reject(store, i, actor=args.actor).to_dict()))
    return 0


def cmd_merge(args, config_fn) -> int:
    from kb.faq import curate

    store = _store(config_fn(args))
    print(_line(curate.merge(store, args.keep, args.other, actor=args.actor).to_dict()))
    return 0


def cmd_export(args, config_fn) -> int:
    from kb.faq.exchange import export_entries

    store = _store(config_fn(args))
    text = export_entries(store, args.format, args.status)
    if args.out:
        Path(args.out).write_text(text, encoding="utf-8-sig" if args.format == "csv" else "utf-8")
        print(f"wrote {args.out}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


def cmd_import(args, config_fn) -> int:
    from kb.faq.exchange import import_file

    store = _store(config_fn(args))
    r = import_file(store, args.file, actor=args.actor)
    print(f"imported {args.file}: {r['added']} added, {r['updated']} updated")
    return 0


def cmd_usage(args, config_fn) -> int:
    svc = _service(config_fn(args))
    report = svc.faq.usage(limit=args.limit)
    if args.json:
        print(json.dumps(report, ensure_ascii=False, indent=2))
        return 0
    print("most asked:")
    for c in report["clusters"]:
        print(f"  {c['count']:>4}×  {c['question']}  (answered {c['answered']}, faq {c['from_faq']}, refused {c['refused']})")
    print("gaps (refused or thumbs-down):")
    for g in report["gaps"]:
        print(f"  {g['count']:>4}×  {g['question']}  (refused {g['refused']}, thumbs-down {g['thumbs_down']})")
    return 0


def cmd_clear_log(args, config_fn) -> int:
    store = _store(config_fn(args))
    n = store.clear_log(args.before) if store.exists else 0
    print(f"deleted {n} logged question{'s' if n != 1 else ''}")
    return 0


def cmd_check(args, config_fn) -> int:
    from kb.faq import curate

    cfg = config_fn(args)
    store = _store(cfg)
    if not store.exists:
        print("no FAQ database", file=sys.stderr)
        return 0
    flagged = curate.check_entries(store, _documents(cfg))
    print(f"{len(flagged)} entr{'y' if len(flagged) == 1 else 'ies'} flagged now")
    _print([e.to_dict() for e in flagged], False)
    return 0


def cmd_calibrate(args, config_fn) -> int:
    from kb.domain import load_calibration
    from kb.faq.calibrate import calibrate

    cfg = config_fn(args)
    if cfg.domain.calibration is None:
        where = cfg.domain.folder or "none configured: set domain_dir"
        print(f"kb faq calibrate: no calibration cases: write calibration.toml in the domain folder "
              f"({where}; format in domains/README.md)", file=sys.stderr)
        return 2
    report = calibrate(_service(cfg).faq, load_calibration(cfg.domain.calibration))
    if args.json:
        print(json.dumps(report, ensure_ascii=False, indent=2))
        return 0
    r = report
    print(f"embedder {r['embedder']}; {r['entries']} entries, {r['paraphrases']} paraphrases, "
          f"{r['negative_pairs']} non-matching pairs; configured threshold {r['threshold']}")
    print(f"guard passes {r['guard_pass_paraphrases']}/{r['paraphrases']} paraphrases and "
          f"{r['guard_pass_negatives']}/{r['negative_pairs']} non-matching pairs")
    print(f"lowest cosine of a paraphrase passing the guard: {r['min_cosine_guarded_paraphrase']}")
    print(f"highest cosine of a non-matching pair: {r['max_cosine_negative']} "
          f"(passing the guard: {r['max_cosine_guarded_negative']})")
    print("threshold  paraphrases matched  false matches  (without guard)")
    for t in r["table"]:
        print(f"  {t['threshold']:<8} {t['paraphrases_matched']:>3}/{t['paraphrases']:<14} "
              f"{t['false_matches']:>3}/{t['non_matching_pairs']:<10} {t['false_matches_without_guard']:>3}")
    print("paraphrases the guard misses:")
    for m in r["guard_misses"]:
        print(f"  {m['question']}  →  {m['entry']}  ({m['reason']})")
    print("closest non-matching pairs:")
    for m in r["hard_negatives"]:
        print(f"  {m['cosine']:.4f}  {m['question']}  ≠  {m['entry']}  ({m['guard'] or 'guard passes'})")
    return 0


def _wrap(fn: Callable, config_fn: Callable) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        try:
            return fn(args, config_fn)
        except KeyError as e:  # an unknown entry id: one clear line, like other expected errors
            print(f"kb faq {args.faq_command}: {e.args[0] if e.args else e}", file=sys.stderr)
            return 2
    return run


def add_faq_commands(subparsers, common_fn: Callable, config_fn: Callable) -> None:
    """Register ``kb faq`` and its subcommands. ``common_fn(parser, corpus=False)`` adds the
    shared --config/--index options; ``config_fn(args)`` returns the Config."""
    faq = subparsers.add_parser("faq", help="curated FAQ: suggest, review, export, import")
    sub = faq.add_subparsers(dest="faq_command", required=True)

    def cmd(name: str, fn: Callable, help_: str, corpus: bool = False) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_)
        common_fn(p, corpus=corpus)
        p.set_defaults(func=_wrap(fn, config_fn))
        return p

    def actor(p: argparse.ArgumentParser) -> None:
        p.add_argument("--actor", default="cli", help="who made the change (recorded in the history)")

    p = cmd("suggest", cmd_suggest, "add candidate entries from usage and the documents", corpus=True)
    p.add_argument("--limit", type=int, default=None, help="at most N new candidates")
    p.add_argument("--from", dest="source", choices=["all", "usage", "documents"], default="all")
    p.add_argument("--json", action="store_true")

    p = cmd("list", cmd_list, "list entries")
    p.add_argument("--status", choices=[*STATUSES, "all"], help="only entries with this status")
    p.add_argument("--topic", help="only entries of this topic")
    p.add_argument("--sort", choices=["asked", "id", "topic", "hits"], default="asked")
    p.add_argument("--all", action="store_true", help="include merged entries")
    p.add_argument("--json", action="store_true")

    p = cmd("show", cmd_show, "one entry with its answer, citations and history")
    p.add_argument("id", type=int)
    p.add_argument("--json", action="store_true")

    p = cmd("add", cmd_add, "add a candidate by hand")
    p.add_argument("--question", required=True)
    p.add_argument("--answer")
    p.add_argument("--topic")
    p.add_argument("--alt", action="append", help="an alternative wording (repeatable)")
    actor(p)

    p = cmd("edit", cmd_edit, "edit an entry's question, answer, topic or alt questions")
    p.add_argument("id", type=int)
    p.add_argument("--question")
    p.add_argument("--answer")
    p.add_argument("--answer-file", help="read the answer (Markdown) from a file")
    p.add_argument("--topic")
    p.add_argument("--alt", action="append", help="add an alternative wording (repeatable)")
    p.add_argument("--remove-alt", action="append", help="remove an alternative wording")
    actor(p)

    p = cmd("approve", cmd_approve, "approve entries (citations are checked against the index)")
    p.add_argument("ids", type=int, nargs="+")
    actor(p)

    p = cmd("reject", cmd_reject, "reject entries")
    p.add_argument("ids", type=int, nargs="+")
    actor(p)

    p = cmd("merge", cmd_merge, "merge OTHER into KEEP (citations of both kept)")
    p.add_argument("keep", type=int)
    p.add_argument("other", type=int)
    actor(p)

    p = cmd("export", cmd_export, "export entries as CSV, JSON or a Markdown handbook")
    p.add_argument("--format", choices=["csv", "json", "md"], required=True)
    p.add_argument("--out", help="file to write (default: stdout)")
    p.add_argument("--status", choices=STATUSES, help="only this status (md: default approved)")

    p = cmd("import", cmd_import, "import entries from a .csv or .json export")
    p.add_argument("file")
    actor(p)

    p = cmd("usage", cmd_usage, "most-asked questions and gaps, clustered by meaning", corpus=True)
    p.add_argument("--limit", type=int, default=30)
    p.add_argument("--json", action="store_true")

    p = cmd("clear-log", cmd_clear_log, "delete logged questions (e.g. after an evaluation run)")
    p.add_argument("--before", help="only those asked before this ISO time (2025-01-31T00:00:00)")

    cmd("check", cmd_check, "re-check approved entries' citations against the index")

    p = cmd("calibrate", cmd_calibrate, "measure the match threshold on built-in paraphrases", corpus=True)
    p.add_argument("--json", action="store_true")
