"""Ingest a hostile corpus with the real ``kb ingest`` and measure what became of every file.

What it measures (for the closing note of the hardening issue):

* the corpus: the 5 good documents of ``corpus/`` (which must all be indexed), the ~300
  seeded hostile files of ``tests/test_loader_fuzz.py`` (random bytes, wrong formats,
  garbled docx/pdf/html/txt, malformed docx XML, broken PDFs), the big cases of
  ``tests/test_loaders.py`` (a docx zip bomb unpacking to 300 MiB, a docx with 40,000
  paragraphs, HTML with 20,000 ``<p>`` and with 200,000 nested ``<div>``) and filesystem
  hostiles (symlinks to /etc/passwd, to a secret outside the corpus, dangling and to a folder
  outside; a FIFO; an ANSI escape in a file name; an empty file; UTF-8 with 4 bad bytes; a
  40 MB text file);
* one ``kb ingest -q`` over it (hashing embedder, no model) in a subprocess: every hostile
  entry must be named in the summary as skipped (with its reason) or be in the index's
  manifest (perhaps with a note); none may be neither; no good file may be lost; neither
  /etc/passwd nor the secret may reach the index; no reason may hold a traceback;
* the skip reasons by kind, the wall time and the peak memory: ``ru_maxrss`` of the children,
  GNU time's "Maximum resident set size" when /usr/bin/time exists, and the process tree
  (``kb`` and its parser workers) sampled from /proc. The first two only see processes that
  were waited for; the parser workers are children of the forkserver, which ``kb`` does not
  wait for, so the /proc sample is the one that covers them.

Run it from the repository root::

    .venv/bin/python eval/hostile.py [--out DIR] [--seed N]

It prints a Markdown block and writes the figures, with each entry's outcome, to
``reports/hostile.json``. Without ``--out`` the corpus and index are built in a temporary
folder that is removed afterwards; ``--out DIR`` (a new or empty folder) keeps them there, with
the command's stdout and stderr.
"""

from __future__ import annotations

import argparse
import hashlib
import inspect
import itertools
import json
import os
import random
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests"), str(ROOT)]

import test_loader_fuzz as fuzz  # noqa: E402  (the test's generators, from tests/)
import test_loaders as loader_tests  # noqa: E402

from ingest.pipeline import printable  # noqa: E402

KB = ROOT / ".venv" / "bin" / "kb"
GNU_TIME = Path("/usr/bin/time")
TIMEOUT_S = 1800
SECRET = "KB-HOSTILE-SECRET-5e0c2a"
PASSWD_MARK = "root:x:0:0"
CONFIG_TOML = 'data_dir = "data"\n\n[embedder]\nbackend = "hashing"\n'
MB = 1024 * 1024


@dataclass
class Entry:
    """One hostile entry of the corpus (its path relative to the corpus) and what became of it."""

    source: str
    family: str
    outcome: str = ""  # "skipped", "read" or "unaccounted"
    reason: str = ""  # the skip reason
    notes: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------- the corpus


def fuzz_samples() -> dict[str, bytes]:
    """The valid samples the fuzz test garbles (its ``samples`` fixture, called directly)."""
    try:
        return inspect.unwrap(fuzz.samples)()
    except Exception:  # noqa: BLE001 - a pytest that hides the function: build them the same way
        return {
            "docx": fuzz.make_docx(),
            "pdf": fuzz.make_pdf(compress=False),
            "pdfz": fuzz.make_pdf(compress=True),
            "html": fuzz.HTML_PAGE.encode("utf-8"),
            "txt": (fuzz.CHINESE * 20 + "\n" + fuzz.TRADITIONAL * 20).encode("utf-8"),
        }


def add_fuzz_files(corpus: Path, seed: int) -> list[Entry]:
    """The generated files of tests/test_loader_fuzz.py, one folder per family."""
    samples = fuzz_samples()
    entries = []
    for family, generate in fuzz.FAMILIES.items():
        folder = corpus / "fuzz" / family
        folder.mkdir(parents=True)
        for index, (name, data) in enumerate(generate(random.Random(f"{seed}-{family}"), samples)):
            path = folder / f"{index:03d}-{name}"
            path.write_bytes(data)
            entries.append(Entry(path.relative_to(corpus).as_posix(), f"fuzz/{family}"))
    return entries


def zip_bomb_docx(path: Path, scratch: Path, unpacked_mib: int = 300) -> None:
    """A real docx whose document.xml holds one paragraph of ``unpacked_mib`` MiB of 炸 (the
    test's builder with 3 MB; written here in a stream, so the bomb is never in memory)."""
    mark = "BOMB-PAYLOAD"
    template = loader_tests.docx_with_body(scratch / "bomb-template.docx",
                                           loader_tests.w_paragraph(mark))
    block = "炸".encode() * (MB // 3)  # 3 bytes each: 1 MiB minus a byte
    with (zipfile.ZipFile(template) as source,
          zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as target):
        for info in source.infolist():
            data = source.read(info.filename)
            if info.filename != "word/document.xml":
                target.writestr(info.filename, data)
                continue
            head, tail = data.split(mark.encode())
            with target.open(info.filename, "w", force_zip64=True) as out:
                out.write(head)
                for _ in range(unpacked_mib):
                    out.write(block)
                out.write(tail)


def add_big_files(corpus: Path, scratch: Path) -> list[Entry]:
    """The big hostile cases of tests/test_loaders.py, at the sizes the tests describe."""
    folder = corpus / "big"
    folder.mkdir()
    zip_bomb_docx(folder / "zip-bomb.docx", scratch)
    paragraphs = [loader_tests.w_paragraph(f"第{i}段内容") for i in range(40_000)]
    paragraphs[20_000] = loader_tests.w_paragraph("中间的文档标题", "Title")
    paragraphs[30_000] = loader_tests.w_paragraph("后面的一级标题", "Heading1")
    loader_tests.docx_with_body(folder / "40000-paragraphs.docx", "".join(paragraphs))
    body = "".join(f"<p>第{i}段</p>" for i in range(20_000))
    (folder / "20000-paragraphs.html").write_text(f"<html><body>{body}</body></html>", "utf-8")
    depth = 200_000
    deep = "<div>" * depth + "深层文本" + "</div>" * depth
    page = f"<title>深层页面</title><p>前文</p>{deep}<p>后文</p>"
    (folder / "200000-nested-divs.html").write_text(page, "utf-8")
    return [Entry(p.relative_to(corpus).as_posix(), "big") for p in sorted(folder.iterdir())]


def big_text(path: Path, size: int = 40 * MB) -> None:
    """About ``size`` bytes of numbered Chinese lines (UTF-8)."""
    sentences = [loader_tests.LONG_SIMPLIFIED, loader_tests.LONG_TRADITIONAL, fuzz.CHINESE + "\n"]
    written = 0
    with open(path, "wb") as fh:
        for i in itertools.count():
            line = f"第{i}行：{sentences[i % len(sentences)]}".encode()
            if written + len(line) > size:
                break
            fh.write(line)
            written += len(line)


def add_filesystem_hostiles(corpus: Path, outside: Path) -> list[Entry]:
    """Symlinks out of the corpus, a FIFO, odd names and contents (under ``fs/``)."""
    folder = corpus / "fs"
    folder.mkdir()
    outside.mkdir()
    (outside / "secret.txt").write_text(f"admin_token = {SECRET}\n保密内容：{SECRET}\n", "utf-8")
    os.symlink("/etc/passwd", folder / "passwd.txt")
    os.symlink(outside / "secret.txt", folder / "secret-link.txt")
    os.symlink(folder / "nowhere.txt", folder / "dangling.txt")
    os.symlink(outside, folder / "outside-folder")
    os.mkfifo(folder / "pipe.txt")
    (folder / "\x1b[31mred.txt").write_text("红色文件名\n" + fuzz.CHINESE * 5, "utf-8")
    (folder / "empty.txt").write_bytes(b"")
    parts = [loader_tests.LONG_SIMPLIFIED, loader_tests.LONG_TRADITIONAL] * 2
    bad = [b"\xff", b"\xfe", b"\x80", b"\xc3"]  # as in test_loaders: stray, stray, lone, cut
    (folder / "4-bad-utf8-bytes.txt").write_bytes(
        b"".join(p.encode() + junk for p, junk in zip(parts, bad, strict=True)))
    big_text(folder / "40mb.txt")
    names = ["passwd.txt", "secret-link.txt", "dangling.txt", "outside-folder", "pipe.txt",
             "\x1b[31mred.txt", "empty.txt", "4-bad-utf8-bytes.txt", "40mb.txt"]
    return [Entry(f"fs/{name}", "filesystem") for name in names]


def build_corpus(work: Path, seed: int) -> tuple[Path, list[str], list[Entry]]:
    """The hostile corpus under ``work/corpus``: good file names and hostile entries."""
    corpus = work / "corpus"
    corpus.mkdir()
    scratch = work / "scratch"
    scratch.mkdir()
    good = []
    for path in sorted((ROOT / "corpus").iterdir()):
        if path.is_file():
            shutil.copy2(path, corpus / path.name)
            good.append(path.name)
    entries = add_fuzz_files(corpus, seed)
    entries += add_big_files(corpus, scratch)
    entries += add_filesystem_hostiles(corpus, work / "outside")
    shutil.rmtree(scratch)
    return corpus, good, entries


# --------------------------------------------------------------------------- the run


def tree_rss(root: int) -> tuple[int, int]:
    """Resident memory (bytes) of ``root`` and all its descendants: total and largest one."""
    children: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                stat = Path(f"/proc/{name}/stat").read_text()
            except OSError:
                continue
            parent = int(stat.rpartition(")")[2].split()[1])  # after "(comm)": state, ppid
            children.setdefault(parent, []).append(int(name))
    tree, frontier = {root}, [root]
    while frontier:
        kids = children.get(frontier.pop(), [])
        tree.update(kids)
        frontier.extend(kids)
    page = os.sysconf("SC_PAGE_SIZE")
    sizes = []
    for pid in tree:
        try:
            sizes.append(int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * page)
        except (OSError, IndexError, ValueError):
            pass
    return sum(sizes), max(sizes, default=0)


class TreeSampler(threading.Thread):
    """Samples :func:`tree_rss` of a process every ``interval`` seconds, keeping the peaks."""

    def __init__(self, pid: int, interval: float = 0.2):
        super().__init__(daemon=True)
        self.pid, self.interval = pid, interval
        self.peak_total = self.peak_single = 0
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            total, single = tree_rss(self.pid)
            self.peak_total = max(self.peak_total, total)
            self.peak_single = max(self.peak_single, single)
            self.stop.wait(self.interval)


def run_ingest(work: Path, corpus: Path) -> dict:
    """``kb ingest -q`` over ``corpus`` in a subprocess, timed and measured."""
    config = work / "kb.toml"
    config.write_text(CONFIG_TOML, encoding="utf-8")
    index = work / "index"
    command = [str(KB), "ingest", "-q", "--corpus", str(corpus), "--index", str(index),
               "--config", str(config)]
    time_file = work / "gnu-time.txt"
    if GNU_TIME.exists():
        command = [str(GNU_TIME), "-v", "-o", str(time_file), *command]
    env = {k: v for k, v in os.environ.items() if k not in ("KB_CONFIG", "KB_DATA_DIR")}
    with open(work / "ingest.stdout", "w+b") as out, open(work / "ingest.stderr", "w+b") as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(command, stdout=out, stderr=err, cwd=work, env=env,
                                start_new_session=True)
        sampler = TreeSampler(proc.pid)
        sampler.start()
        timed_out = False
        try:
            code = proc.wait(timeout=TIMEOUT_S)
        except subprocess.TimeoutExpired:
            timed_out = True
            os.killpg(proc.pid, signal.SIGKILL)  # its own session: only what this run started
            code = proc.wait()
        wall = time.perf_counter() - t0
        sampler.stop.set()
        sampler.join()
        out.seek(0)
        err.seek(0)
        stdout = out.read().decode("utf-8", "replace")
        stderr = err.read().decode("utf-8", "replace")
    gnu_kb = None
    if time_file.exists():
        found = re.search(r"Maximum resident set size \(kbytes\): (\d+)", time_file.read_text())
        gnu_kb = int(found.group(1)) if found else None
    return {
        "command": command, "exit_code": code, "timed_out": timed_out, "wall_s": round(wall, 1),
        "stdout": stdout, "stderr": stderr, "index": index,
        "peak_rss_mb": {
            "ru_maxrss_children": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
                                        / 1024, 1),
            "gnu_time_max_rss": round(gnu_kb / 1024, 1) if gnu_kb is not None else None,
            "process_tree_total_sampled": round(sampler.peak_total / MB, 1),
            "largest_process_sampled": round(sampler.peak_single / MB, 1),
        },
    }


# --------------------------------------------------------------------------- the findings


def parse_summary(stdout: str, known: list[str]) -> tuple[dict[str, str], dict[str, list[str]]]:
    """Skipped files (``  - NAME: REASON``) and notes (``  note: NAME: REASON``) of the summary,
    by printed name. A known name followed by ": " is preferred, so a name holding ": " parses."""
    shown = sorted({printable(name) for name in known}, key=len, reverse=True)

    def split(body: str) -> tuple[str, str]:
        for name in shown:
            if body.startswith(name + ": "):
                return name, body[len(name) + 2:]
        name, _, reason = body.partition(": ")
        return name, reason

    skipped: dict[str, str] = {}
    notes: dict[str, list[str]] = {}
    for line in stdout.splitlines():
        if line.startswith("  - "):
            name, reason = split(line[4:])
            skipped[name] = reason
        elif line.startswith("  note: "):
            name, reason = split(line[8:])
            notes.setdefault(name, []).append(reason)
    return skipped, notes


def reason_kind(reason: str) -> str:
    """A reason without its particulars: up to its first ": " or " (", numbers as N."""
    head = re.split(r": | \(", reason, maxsplit=1)[0].strip()
    head = re.sub(r"\b(byte|surrogate)s?\b", r"\1(s)", head)  # "1 byte" and "4 bytes" alike
    return re.sub(r"\d+(?:\.\d+)?", "N", head)


def kinds_table(reasons: list[str]) -> list[dict]:
    counts = Counter(reason_kind(r) for r in reasons)
    examples: dict[str, str] = {}
    for r in reasons:
        examples.setdefault(reason_kind(r), r)
    return [{"kind": k, "count": n, "example": examples[k]} for k, n in counts.most_common()]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def findings(run: dict, good: list[str], entries: list[Entry], seed: int) -> dict:
    index = Path(os.path.realpath(run["index"]))
    try:
        manifest = json.loads((index / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        manifest = {"documents": {}, "counts": {}, "build": {}}
    documents = manifest["documents"]
    skipped, notes = parse_summary(run["stdout"], [e.source for e in entries] + good)
    for e in entries:
        shown = printable(e.source)
        e.notes = notes.get(shown, [])
        if shown in skipped:
            e.outcome, e.reason = "skipped", skipped[shown]
        elif e.source in documents:
            e.outcome = "read"
        else:
            e.outcome = "unaccounted"
    ours = {printable(e.source) for e in entries} | {printable(g) for g in good}
    lost = []
    for name in good:
        if name not in documents:
            lost.append({"source": name, "why": skipped.get(name, "not in the manifest")})
        elif documents[name]["sha256"] != sha256(ROOT / "corpus" / name):
            lost.append({"source": name, "why": "indexed with other bytes"})
    indexed_text = ""
    if (index / "documents.jsonl").exists():
        indexed_text = (index / "documents.jsonl").read_text(encoding="utf-8", errors="replace")
    reasons = [e.reason for e in entries if e.outcome == "skipped"]
    note_reasons = [n for e in entries for n in e.notes]
    traceback_in = [e.source for e in entries if "Traceback" in e.reason + "".join(e.notes)]
    families = Counter(e.family.split("/")[0] for e in entries)
    return {
        "seed": seed,
        "hostile_tried": len(entries),
        "hostile_by_family": dict(families),
        "skipped_named": len(reasons),
        "read": sum(e.outcome == "read" for e in entries),
        "read_with_note": sum(e.outcome == "read" and bool(e.notes) for e in entries),
        "unaccounted": [e.source for e in entries if e.outcome == "unaccounted"],
        "unexpected_names_in_summary": sorted(set(skipped) - ours),
        "good_files": len(good),
        "good_files_lost": lost,
        "passwd_in_index": PASSWD_MARK in indexed_text,
        "secret_in_index": SECRET in indexed_text,
        "traceback_in_reasons": traceback_in,
        "traceback_in_stderr": "Traceback" in run["stderr"],
        "skip_reasons": kinds_table(reasons),
        "note_reasons": kinds_table(note_reasons),
        "exit_code": run["exit_code"],
        "timed_out": run["timed_out"],
        "wall_s": run["wall_s"],
        "peak_rss_mb": run["peak_rss_mb"],
        "index_counts": manifest.get("counts", {}),
        "build_timings_s": manifest.get("build", {}),
        "stderr_tail": run["stderr"][-2000:] if run["exit_code"] or run["timed_out"] else "",
        "entries": [{"source": printable(e.source), "family": e.family, "outcome": e.outcome,
                     "reason": e.reason, "notes": e.notes} for e in entries],
    }


def cell(text: str) -> str:
    """Text safe in a Markdown table cell."""
    return text.replace("|", "\\|").replace("\n", " ")


def markdown(f: dict) -> str:
    fam = ", ".join(f"{k} {v}" for k, v in f["hostile_by_family"].items())
    mem = f["peak_rss_mb"]
    gnu = f"{mem['gnu_time_max_rss']} MB" if mem["gnu_time_max_rss"] is not None else "n/a"
    leaks = [what for what, hit in (("/etc/passwd", f["passwd_in_index"]),
                                    ("the secret", f["secret_in_index"])) if hit]
    tracebacks = f["traceback_in_reasons"] + (["stderr"] if f["traceback_in_stderr"] else [])
    names = {"parse_wall": "parse (wall)", "dedup": "near-duplicates", "embed": "embed",
             "segment": "segment", "index": "index"}
    stages = ", ".join(f"{label} {f['build_timings_s'][key]:.1f}" for key, label in names.items()
                       if key in f["build_timings_s"]) or "n/a"
    counts = f["index_counts"]
    lines = [
        f"### Hostile corpus through `kb ingest` (seed {f['seed']})",
        "",
        "| measure | value |",
        "|---|---|",
        f"| hostile entries tried | {f['hostile_tried']} ({fam}) |",
        f"| named in the summary as skipped, with a reason | {f['skipped_named']} |",
        f"| read into the index | {f['read']} ({f['read_with_note']} with a note) |",
        f"| neither named nor indexed | {len(f['unaccounted'])} |",
        f"| index: documents / chunks / near-duplicates folded | {counts.get('documents')} / "
        f"{counts.get('chunks')} / {counts.get('duplicates')} |",
        f"| good files lost | {len(f['good_files_lost'])} of {f['good_files']} |",
        f"| /etc/passwd or the secret in documents.jsonl | {', '.join(leaks) or 'no'} |",
        f"| \"Traceback\" in a reason or on stderr | {', '.join(tracebacks) or 'no'} |",
        f"| `kb ingest` exit code | {f['exit_code']}{' (timed out)' if f['timed_out'] else ''} |",
        f"| wall time | {f['wall_s']} s |",
        f"| stages (manifest, s) | {stages} |",
        f"| peak RSS: ru_maxrss of children / GNU time | {mem['ru_maxrss_children']} MB / {gnu} |",
        f"| peak RSS sampled: process tree / largest process | "
        f"{mem['process_tree_total_sampled']} MB / {mem['largest_process_sampled']} MB |",
        "",
        "| skip reason | files | example |",
        "|---|---:|---|",
        *(f"| {cell(r['kind'])} | {r['count']} | {cell(r['example'])} |" for r in f["skip_reasons"]),
    ]
    if f["note_reasons"]:
        lines += ["", "| note (file read) | files | example |", "|---|---:|---|",
                  *(f"| {cell(r['kind'])} | {r['count']} | {cell(r['example'])} |"
                    for r in f["note_reasons"])]
    lines += ["", "| named case | outcome |", "|---|---|"]
    for e in f["entries"]:
        if e["family"] in ("big", "filesystem"):
            what = e["reason"] if e["outcome"] == "skipped" else e["outcome"]
            if e["notes"]:
                what += " (note: " + "; ".join(e["notes"]) + ")"
            lines.append(f"| `{e['source']}` | {cell(what)} |")
    if f["unaccounted"] or f["unexpected_names_in_summary"] or f["good_files_lost"]:
        lines += ["", f"Unaccounted: {[printable(s) for s in f['unaccounted']]}; "
                      f"unexpected names: {f['unexpected_names_in_summary']}; "
                      f"good files lost: {f['good_files_lost']}"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, help="build here (a new or empty folder) and keep it")
    parser.add_argument("--seed", type=int, default=fuzz.SEED, help="seed of the fuzz files")
    args = parser.parse_args(argv)
    if args.out:
        if args.out.exists() and any(args.out.iterdir()):
            parser.error(f"--out {args.out} is not empty")
        args.out.mkdir(parents=True, exist_ok=True)
        work = args.out.resolve()
    else:
        work = Path(tempfile.mkdtemp(prefix="kb-hostile-"))
    try:
        t0 = time.perf_counter()
        corpus, good, entries = build_corpus(work, args.seed)
        print(f"corpus built in {time.perf_counter() - t0:.0f} s: {len(good)} good files, "
              f"{len(entries)} hostile entries; running kb ingest …", file=sys.stderr)
        result = findings(run_ingest(work, corpus), good, entries, args.seed)
    finally:
        if not args.out:
            shutil.rmtree(work, ignore_errors=True)
    print(markdown(result))
    reports = ROOT / "reports"
    reports.mkdir(exist_ok=True)
    (reports / "hostile.json").write_text(json.dumps(result, ensure_ascii=False, indent=2) + "\n",
                                          encoding="utf-8")
    print(f"\nwritten: {reports / 'hostile.json'}", file=sys.stderr)
    bad = (result["unaccounted"] or result["good_files_lost"] or result["passwd_in_index"]
           or result["secret_in_index"] or result["traceback_in_reasons"])
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
