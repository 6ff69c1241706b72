"""The knowledge base's domain: what the chat says about its documents and the words it knows,
kept in a folder beside them (``Config.domain_dir``), never in code.

A domain folder holds any of (format: ``domains/README.md``)::

    domain.toml       title, welcome, starters; [followup] entities
    glossary.tsv      synonym groups for query expansion and FAQ matching
    userdict.txt      jieba user dictionary (words the segmenter must keep whole)
    calibration.toml  FAQ match calibration cases (``kb faq calibrate``)

Every file is optional: what is missing falls back to generic behaviour (``kb.config`` holds
the generic title and welcome; starters then come from the corpus's headings).
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ConfigDict, TypeAdapter, ValidationError

DOMAIN_FILE = "domain.toml"
GLOSSARY_FILE = "glossary.tsv"
USERDICT_FILE = "userdict.txt"
CALIBRATION_FILE = "calibration.toml"

_STRICT = ConfigDict(extra="forbid")


class DomainError(ValueError):
    """A domain file cannot be used; the message names the file and the key."""


@dataclass(frozen=True)
class _Followup:
    __pydantic_config__ = _STRICT
    entities: tuple[str, ...] = ()


@dataclass(frozen=True)
class _DomainFile:
    """``domain.toml`` as written."""

    __pydantic_config__ = _STRICT
    title: str = ""
    welcome: str = ""
    starters: tuple[str, ...] | None = None
    followup: _Followup = field(default_factory=_Followup)


@dataclass(frozen=True)
class _CalibrationEntry:
    __pydantic_config__ = _STRICT
    question: str
    paraphrases: tuple[str, ...] = ()  # should be answered by the entry
    different: tuple[str, ...] = ()  # share its words, ask something else: must not match


@dataclass(frozen=True)
class _CalibrationFile:
    __pydantic_config__ = _STRICT
    entry: tuple[_CalibrationEntry, ...] = ()


@dataclass(frozen=True)
class Domain:
    """One domain folder, read. Empty strings, ``None`` and ``()`` mean "not given"."""

    folder: Path | None = None
    title: str = ""
    welcome: str = ""
    starters: tuple[str, ...] | None = None  # None: not given (``()``: no starters wanted)
    entities: tuple[str, ...] = ()  # what a follow-up question may swap or refer back to
    glossary: Path | None = None  # the files present in the folder
    userdict: Path | None = None
    calibration: Path | None = None


def _read_toml(path: Path, schema: type, what: str):
    try:
        with open(path, "rb") as fh:
            raw = tomllib.load(fh)
    except OSError as e:
        raise DomainError(f"cannot read the {what} {path}: {e.strerror or e}") from None
    except tomllib.TOMLDecodeError as e:
        raise DomainError(f"the {what} {path} is not valid TOML: {e}") from None
    try:
        return TypeAdapter(schema).validate_python(raw)
    except ValidationError as e:
        parts = []
        for err in e.errors()[:3]:
            key = ".".join(str(x) for x in err.get("loc", ()))
            msg = "unknown key" if err.get("type") == "unexpected_keyword_argument" else err.get("msg", "invalid")
            parts.append(f"{key}: {msg}")
        raise DomainError(f"the {what} {path}: " + "; ".join(parts)) from None


def load_domain(folder: Path | str | None) -> Domain:
    """The domain in ``folder`` (``None``: no domain). A folder that does not exist is an
    error (a mistyped path must not silently turn the domain off)."""
    if folder is None:
        return Domain()
    folder = Path(folder)
    if not folder.is_dir():
        raise DomainError(f'domain folder not found: {folder} (set domain_dir = "" for none)')

    def present(name: str) -> Path | None:
        path = folder / name
        return path if path.is_file() else None

    meta = _DomainFile()
    if (path := present(DOMAIN_FILE)) is not None:
        meta = _read_toml(path, _DomainFile, "domain file")
    return Domain(
        folder=folder, title=meta.title.strip(), welcome=meta.welcome.strip(),
        starters=None if meta.starters is None else tuple(s.strip() for s in meta.starters if s.strip()),
        entities=tuple(e.strip() for e in meta.followup.entities if e.strip()),
        glossary=present(GLOSSARY_FILE), userdict=present(USERDICT_FILE),
        calibration=present(CALIBRATION_FILE),
    )


def load_calibration(path: Path | str) -> dict[str, tuple[list[str], list[str]]]:
    """``calibration.toml``: entry question -> (paraphrases, questions that must not match)."""
    data = _read_toml(Path(path), _CalibrationFile, "calibration file")
    return {e.question: (list(e.paraphrases), list(e.different)) for e in data.entry}


def dictionary_words(path: Path | str | None) -> list[str]:
    """The words of a jieba user dictionary (first field of each line)."""
    if path is None or not Path(path).exists():
        return []
    return [
        line.split()[0] for line in Path(path).read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]


__all__ = ["Domain", "DomainError", "dictionary_words", "load_calibration", "load_domain"]
