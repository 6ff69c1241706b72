"""The ``kb`` command: ingest, search, ask, serve, eval, bench, faq, key, user, db.

Expected failures (missing index, bad input, unknown options) print one clear line and exit
non-zero; they never print a traceback."""

from __future__ import annotations

import argparse
import errno
import json
import logging
import os
import sys
import time
from pathlib import Path

from kb.config import Config, load_config


def _common(p: argparse.ArgumentParser, corpus: bool = False) -> None:
    p.add_argument("--config", help="TOML config file (default: $KB_CONFIG or built-in defaults)")
    p.add_argument("--index", help="index folder (default: data/index)")
    if corpus:
        p.add_argument("--corpus", help="corpus folder (default: corpus/)")
    p.add_argument("-v", "--verbose", action="store_true", help="log more")


def _config(args: argparse.Namespace) -> Config:
    return load_config(
        args.config,
        index_dir=Path(args.index) if getattr(args, "index", None) else None,
        corpus_dir=Path(args.corpus) if getattr(args, "corpus", None) else None,
    )


def _service(cfg: Config, progress: bool = True):
    from kb.service import KnowledgeService

    return KnowledgeService(cfg, progress=progress)


def cmd_ingest(args: argparse.Namespace) -> int:
    from ingest.pipeline import printable
    from kb.executors import make_executor, with_executor
    from kb.service import run_ingest

    cfg = with_executor(_config(args), args.executor, args.ray_address)
    t0 = time.perf_counter()
    with make_executor(cfg, progress=not args.quiet) as executor:
        result, manifest = run_ingest(cfg, progress=not args.quiet, executor=executor)
    dt = time.perf_counter() - t0
    c = manifest["counts"]
    print(f"corpus:     {cfg.corpus_dir}")
    print(f"index:      {cfg.index_path}")
    print(
        f"documents:  {c['documents']} ({len(result.processed)} new or changed, "
        f"{len(result.reused)} unchanged, {len(result.removed)} removed)"
    )
    print(f"chunks:     {c['chunks']} ({c['duplicates']} near-duplicates folded, {c['retrievable_chunks']} retrievable)")
    print(f"embedded:   {c['embedded']} texts now, {c['reused_vectors']} reused from cache")
    print(f"skipped:    {c['skipped']}")
    cal = manifest.get("calibration")
    if cal:
        print(f"refusal:    threshold {cal['threshold']:.4f}, fitted on {cal['in_scope_probes']} in-scope probes "
              f"({100 * cal['in_scope_refused']:.0f}% refused) and {cal['out_of_scope_probes']} out-of-scope "
              f"({100 * cal['out_of_scope_refused']:.0f}% refused; {cal['bank_left_out']} bank questions left out "
              f"as this corpus names what they ask)")
    for s in result.skipped:
        print(f"  - {printable(s.source)}: {s.reason}")
    for s in result.notes:
        print(f"  note: {printable(s.source)}: {s.reason}")
    for s in result.removed:
        print(f"  removed: {printable(s)}")
    if executor.name != "local":
        print(f"executor:   {executor.describe()}")
    print(f"time:       {dt:.1f}s")
    return 0


def _print_hits(hits, as_json: bool) -> None:
    if as_json:
        print(json.dumps([h.to_dict() for h in hits], ensure_ascii=False))
        return
    for i, h in enumerate(hits, 1):
        ranks = f"bm25 #{h.bm25_rank or '-'}, dense #{h.dense_rank or '-'}"
        print(f"[{i}] {h.score:.4f}  {h.source}  ({ranks})")
        if h.section:
            print(f"    {h.section}")
        print(f"    {h.quote[:160].replace(chr(10), ' ')}{'…' if len(h.quote) > 160 else ''}")


def cmd_search(args: argparse.Namespace) -> int:
    svc = _service(_config(args), progress=False)
    if args.jsonl:
        for line in sys.stdin:
            q = line.strip()
            if not q:
                continue
            print(json.dumps([h.to_dict() for h in svc.search(q, k=args.k, mode=args.mode)], ensure_ascii=False), flush=True)
        return 0
    if not args.question:
        print("kb search: give a question, or --jsonl to read questions from stdin", file=sys.stderr)
        return 2
    _print_hits(svc.search(args.question, k=args.k, mode=args.mode), args.json)
    return 0


def render_markdown(answer: dict) -> str:
    """An answer object as readable Markdown: the answer, then its numbered sources."""
    lines = [answer["answer"], ""]
    for c in answer["citations"]:
        where = f"{c['source']} · {c['section']}" if c["section"] else c["source"]
        quote = c["quote"].replace("\n", " ")
        lines.append(f"[{c['n']}] {where} · \"{quote}\"")
    if answer.get("related"):
        lines.append("")
        lines.append("相关问题：" if not answer["answered"] else "你还可以问：")
        lines.extend(f"- {q}" for q in answer["related"])
    return "\n".join(lines).rstrip()


def cmd_ask(args: argparse.Namespace) -> int:
    svc = _service(_config(args), progress=False)
    if args.jsonl:
        for line in sys.stdin:
            q = line.strip()
            if q:
                print(json.dumps(svc.ask(q).to_dict(), ensure_ascii=False), flush=True)
        return 0
    if not args.question:
        print("kb ask: give a question, or --jsonl to read questions from stdin", file=sys.stderr)
        return 2
    answer = svc.ask(args.question).to_dict()
    print(json.dumps(answer, ensure_ascii=False, indent=2) if args.json else render_markdown(answer))
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from app.server import serve

    serve(_config(args), host=args.host, port=args.port)
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from kb.evaluate import main as eval_main

    return eval_main(_config(args), args)


def cmd_bench(args: argparse.Namespace) -> int:
    from kb.bench import main as bench_main

    return bench_main(_config(args), args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kb", description="Chinese management-guidance knowledge base with cited answers")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("ingest", help="ingest the corpus into the index (incremental)")
    _common(p, corpus=True)
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    p.add_argument("--executor", choices=["local", "ray"], default=None,
                   help="where files are parsed and texts embedded (default: [ingest] executor, local)")
    p.add_argument("--ray-address", default=None,
                   help="the Ray cluster for --executor ray: auto, HOST:PORT or ray://HOST:10001 "
                        "(default: [ingest] ray_address; empty starts one on this machine)")
    p.set_defaults(func=cmd_ingest)

    p = sub.add_parser("search", help="hybrid search")
    _common(p, corpus=True)
    p.add_argument("question", nargs="?")
    p.add_argument("-k", type=int, default=5)
    p.add_argument("--mode", choices=["hybrid", "bm25", "dense"], default="hybrid")
    p.add_argument("--json", action="store_true")
    p.add_argument("--jsonl", action="store_true", help="one question per stdin line, one JSON array per output line")
    p.set_defaults(func=cmd_search)

    p = sub.add_parser("ask", help="answer a question with citations")
    _common(p, corpus=True)
    p.add_argument("question", nargs="?")
    p.add_argument("--json", action="store_true")
    p.add_argument("--jsonl", action="store_true", help="one question per stdin line, one answer object per output line")
    p.set_defaults(func=cmd_ask)

    p = sub.add_parser("serve", help="web chat, embeddable page and HTTP API")
    _common(p, corpus=True)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=7860)
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("eval", help="evaluate retrieval and answers on the dev set or a public benchmark")
    _common(p, corpus=True)
    p.add_argument("--bench", choices=["drcd", "cmrc2018"], help="run a public benchmark instead of the dev set")
    p.add_argument("--limit", type=int, default=None, help="at most N benchmark queries")
    p.add_argument("--setups", default="", help="comma-separated setup names (default: all)")
    p.add_argument("--questions", default=None,
                   help="question file in the dev set's format (default: eval/dev.jsonl; eval/holdout.jsonl is "
                        "the held-out set)")
    p.add_argument("--corpora", nargs="?", const="all", default=None,
                   help="every corpus of eval/corpora.toml (or a comma-separated few) with each of its "
                        "question sets, side by side, with a breakdown by document format")
    p.add_argument("--reports", default="reports", help="folder for the Markdown report and chart")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("bench", help="speed benchmarks (ingest throughput, latency, scale)")
    _common(p, corpus=True)
    p.add_argument("--queries", type=int, default=50)
    p.add_argument("--no-scale", action="store_true", help="skip the 20k-distractor scale run")
    p.add_argument("--no-ray", action="store_true", help="skip the Ray ingest against the local one")
    p.add_argument("--http-requests", type=int, default=200,
                   help="requests each to /api/ask and /v1/chat/completions over HTTP (0: skip)")
    p.add_argument("--reports", default="reports")
    p.set_defaults(func=cmd_bench)

    try:
        from kb.faq.cli import add_faq_commands
    except ImportError:
        pass
    else:
        add_faq_commands(sub, _common, _config)
    from kb.store.cli import add_db_commands, add_key_commands, add_user_commands

    add_key_commands(sub, _common, _config)
    add_user_commands(sub, _common, _config)
    add_db_commands(sub, _common, _config)
    return parser


def _os_error(command: str, e: OSError) -> str:
    where = f" {e.filename}" if e.filename else ""
    if e.errno == errno.ENOSPC:
        return (f"kb {command}: no space left on the disk writing{where}; free some space and run it "
                "again (the previous index is untouched and still serves)")
    if e.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"kb {command}: cannot write{where}: {e.strerror}; check the folder's permissions"
    return f"kb {command}: {e.strerror or e}{where}"


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if getattr(args, "verbose", False) else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    from kb.executors import ExecutorError
    from kb.index import IndexError_
    from kb.service import BadQuestion, UnknownDocument

    try:
        return int(args.func(args) or 0)
    except BrokenPipeError:
        # the reader went away (`kb search --jsonl … | head`): stop quietly, no traceback
        try:
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - so the exit flush cannot fail
        except OSError:
            pass
        print(f"kb {args.command}: output closed by the reader; stopped", file=sys.stderr)
        return 2
    except UnknownDocument as e:
        print(f"kb {args.command}: unknown document {e}", file=sys.stderr)
        return 2
    except (IndexError_, BadQuestion, ValueError, ExecutorError) as e:
        print(f"kb {args.command}: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        print(_os_error(args.command, e), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
