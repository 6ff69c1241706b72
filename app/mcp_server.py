"""The knowledge base as an MCP server (the official SDK, ``mcp`` 2.x ``MCPServer``) over
streamable HTTP at ``/mcp``, in the web application's process, over the same
``KnowledgeService``.

Tools:

- ``search(query, k=5)``: the best passages, each with ``source, title, section, start, end,
  quote, score`` (the document's text ``[start:end]`` is ``quote``);
- ``ask(question)``: the cited answer; its text content is the answer Markdown followed by the
  numbered sources, its structured content the answer object (``answer, answered,
  citations[n, source, title, section, start, end, quote, score], related, source_kind``);
- ``get_document(source, start?, end?)``: a document's text, whole or the slice
  ``[start:end]`` (so a citation can be checked or widened).

The transport is **stateless** (each POST is answered on its own, no session is kept): the
tools need no state between calls, the API key is checked on every request (``app.keys``), and
a restart loses nothing. The session manager runs in the application's lifespan
(``lifespan()``), which Gradio's mount keeps.

**Host checks.** The SDK's DNS-rebinding guard is on: the ``Host`` header must be a loopback
name (``127.0.0.1``, ``localhost``, ``[::1]``, any port) or one of ``app.mcp_allowed_hosts``
(e.g. ``"kb.intranet.example:7860"``), and a browser's ``Origin``, when sent, must be a
loopback origin or one of ``app.cors_origins``; otherwise 421 / 403. A server reached by
another name needs that name in ``app.mcp_allowed_hosts``.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Annotated

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.transport_security import TransportSecuritySettings
from mcp_types import CallToolResult, TextContent
from pydantic import BaseModel, Field

from app.api import MAX_K
from app.openai_api import CitationOut
from kb.cli import render_markdown
from kb.config import Config
from kb.service import BadQuestion, KnowledgeService, UnknownDocument

PATH = "/mcp"
LOOPBACK_HOSTS = ["127.0.0.1:*", "localhost:*", "[::1]:*", "127.0.0.1", "localhost", "[::1]"]
LOOPBACK_ORIGINS = ["http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*",
                    "http://127.0.0.1", "http://localhost", "http://[::1]"]
INSTRUCTIONS = (
    "A knowledge base of company documents (Chinese). Use `ask` for a cited answer to a question, "
    "`search` for the best passages, `get_document` to read a document or a cited passage "
    "(citations give source, start and end: the document's text[start:end] is the quote)."
)


class Passage(BaseModel):
    source: str = Field(description="the document (get_document's source)")
    title: str
    section: str
    start: int = Field(description="offset in the document's text: text[start:end] == quote")
    end: int
    quote: str
    score: float


class SearchResult(BaseModel):
    query: str
    hits: list[Passage]


class AskResult(BaseModel):
    question: str
    answered: bool = Field(description="false when the documents do not answer it (the answer says so)")
    answer: str = Field(description="Markdown with [n] markers, one per citation")
    citations: list[CitationOut]
    related: list[str] = Field(description="questions the knowledge base can answer")
    source_kind: str = Field(description='"documents", "faq" or "none"')


class DocumentText(BaseModel):
    source: str
    title: str
    kind: str
    length: int = Field(description="characters in the whole document")
    start: int
    end: int
    text: str = Field(description="the document's text[start:end]")


def transport_security(config: Config) -> TransportSecuritySettings:
    return TransportSecuritySettings(
        enable_dns_rebinding_protection=True,
        allowed_hosts=[*LOOPBACK_HOSTS, *config.app.mcp_allowed_hosts],
        allowed_origins=[*LOOPBACK_ORIGINS, *config.app.cors_origins],
    )


def build_mcp(service: KnowledgeService) -> MCPServer:
    """The MCP server object with its three tools (no transport yet)."""
    # log_level: MCPServer calls logging.basicConfig, a no-op once the application configured
    # logging (kb serve does); WARNING keeps it from turning INFO on for everything otherwise.
    mcp = MCPServer(name="kb", title=service.config.app.title, instructions=INSTRUCTIONS, version="1",
                    log_level="WARNING")

    @mcp.tool(description="Hybrid search of the knowledge base: the k best passages for a query, "
                          "each with its exact place in its document.")
    def search(
        query: Annotated[str, Field(description="what to look for (Chinese)", min_length=1)],
        k: Annotated[int, Field(description="number of passages", ge=1, le=MAX_K)] = 5,
    ) -> SearchResult:
        try:
            hits = service.search(query, k=k)
        except BadQuestion as e:
            raise ToolError(str(e)) from None
        return SearchResult(query=query, hits=[
            Passage(source=h.source, title=h.title, section=h.section, start=h.start, end=h.end,
                    quote=h.quote, score=h.score) for h in hits])

    @mcp.tool(description="Answer a question from the documents, with citations: every point of the "
                          "answer carries an [n] marker whose citation quotes the exact passage.")
    def ask(
        question: Annotated[str, Field(description="the question (Chinese, Simplified or Traditional)",
                                       min_length=1)],
    ) -> Annotated[CallToolResult, AskResult]:
        try:
            a = service.ask(question).to_dict()
        except BadQuestion as e:
            raise ToolError(str(e)) from None
        result = AskResult(question=a["question"], answered=a["answered"], answer=a["answer"],
                           citations=[CitationOut(**c) for c in a["citations"]], related=a["related"],
                           source_kind=a["source_kind"])
        return CallToolResult(content=[TextContent(type="text", text=render_markdown(a))],
                              structured_content=result.model_dump(mode="json"))

    @mcp.tool(description="A document's text, whole or the slice [start:end] (character offsets, as "
                          "citations and search hits give them).")
    def get_document(
        source: Annotated[str, Field(description="the document, as citations name it", min_length=1)],
        start: Annotated[int | None, Field(description="first character (default 0)", ge=0)] = None,
        end: Annotated[int | None, Field(description="end, exclusive (default: the document's end)", ge=0)] = None,
    ) -> DocumentText:
        try:
            doc = service.document(source)
        except UnknownDocument:
            raise ToolError(f"unknown document: {source}") from None
        n = len(doc.text)
        a = 0 if start is None else start
        b = n if end is None else end
        if a > n or b > n or a > b:
            raise ToolError(f"start/end out of range: the document has {n} characters and start <= end is needed "
                            f"(got start={a}, end={b})")
        return DocumentText(source=doc.source, title=doc.title, kind=doc.kind, length=n, start=a, end=b,
                            text=doc.text[a:b])

    return mcp


class McpEndpoint:
    """The ASGI endpoint at ``/mcp``: the SDK's streamable HTTP transport, whose session manager
    ``lifespan()`` runs."""

    def __init__(self, service: KnowledgeService, max_body: int):
        self.mcp = build_mcp(service)
        # builds the session manager; the Starlette app it returns is not used: the route is ours
        self.mcp.streamable_http_app(
            streamable_http_path=PATH, stateless_http=True, json_response=False,
            transport_security=transport_security(service.config), max_request_body_size=max_body,
        )
        self.manager = self.mcp.session_manager

    async def __call__(self, scope, receive, send) -> None:
        await self.manager.handle_request(scope, receive, send)

    @contextlib.asynccontextmanager
    async def lifespan(self) -> AsyncIterator[None]:
        async with self.manager.run():
            yield
