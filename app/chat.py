"""The Gradio chat: event wiring over ``KnowledgeService`` and ``FeedbackStore``.

Layout lives in ``app.chat_layout``; HTML rendering (with escaping) in ``app.render``. The
handlers here only call the service, render its answer and keep per-session state."""

from __future__ import annotations

import html
import logging
from collections.abc import Iterator

import gradio as gr

from app.chat_layout import ChatUI, build_layout
from app.feedback import FeedbackStore
from app.render import escape_markdown_html, message_markdown
from kb.service import BadQuestion, KnowledgeService, UnknownDocument

log = logging.getLogger(__name__)

RATING_LABEL = {"up": "有帮助", "down": "没帮助"}


class ChatHandlers:
    """The functions Gradio calls; kept apart from the layout so each can be read alone."""

    def __init__(self, service: KnowledgeService, feedback: FeedbackStore):
        self.service = service
        self.feedback = feedback

    # -- asking ---------------------------------------------------------------------------
    def _documents(self, citations: list[dict]) -> dict[str, str | None]:
        docs: dict[str, str | None] = {}
        for c in citations:
            if c["source"] not in docs:
                try:
                    docs[c["source"]] = self.service.document(c["source"]).text
                except UnknownDocument:
                    docs[c["source"]] = None
        return docs

    def respond(self, question: str, messages: list, turns: list) -> Iterator[tuple]:
        """Yields (textbox, chatbot, messages, turns, feedback box): first the question shown,
        then the answer with its sources (or the refusal with related questions as options).

        ``messages`` and ``turns`` are server-side session state: the conversation is never
        taken from the client, whose chatbot value could name files on the server."""
        q = question.strip() if isinstance(question, str) else ""
        if not q:
            yield gr.skip(), gr.skip(), gr.skip(), gr.skip(), gr.skip()
            return
        messages = list(messages or []) + [{"role": "user", "content": escape_markdown_html(q)}]
        turns = list(turns or [])
        yield "", messages, messages, turns, gr.update(visible=False)
        history = [
            {"question": t["answer"]["question"], "answer": t["answer"]["answer"],
             "citations": t["answer"]["citations"]}
            for t in turns[-6:]
        ]
        try:
            answer = self.service.ask(q, history=history).to_dict()
        except BadQuestion as e:
            messages.append({"role": "assistant", "content": f"这个问题无法处理：{html.escape(str(e))}"})
            yield "", messages, messages, turns, gr.skip()
            return
        except Exception:  # logged in full; the user sees a short message, not a traceback
            log.exception("answering %r failed", q)
            messages.append({"role": "assistant", "content": "抱歉，回答时出错了，请稍后再试。"})
            yield "", messages, messages, turns, gr.skip()
            return
        msg: dict = {
            "role": "assistant",
            "content": message_markdown(answer, self._documents(answer["citations"])),
        }
        if answer.get("related"):
            msg["options"] = [{"value": r, "label": r} for r in answer["related"]]
        turns.append({"index": len(messages), "answer": answer, "feedback_id": None})
        messages.append(msg)
        yield "", messages, messages, turns, gr.skip()

    def respond_option(self, messages: list, turns: list, evt: gr.SelectData) -> Iterator[tuple]:
        value = evt.value
        if isinstance(value, dict):
            value = value.get("value") or value.get("text") or ""
        yield from self.respond(str(value), messages, turns)

    @staticmethod
    def clear() -> tuple:
        return [], [], [], None, gr.update(visible=False), ""

    # -- feedback -------------------------------------------------------------------------
    def rate(self, turns: list, evt: gr.LikeData) -> tuple:
        """A thumb on an answer: store (or change) its rating, then offer a comment box."""
        index = evt.index[0] if isinstance(evt.index, list | tuple) else evt.index
        if evt.liked is True:
            rating = "up"
        elif evt.liked is False:
            rating = "down"
        else:  # un-clicked or a custom option: nothing to store
            return turns, gr.skip(), gr.skip(), gr.skip()
        turns = list(turns or [])
        i = next((k for k, t in enumerate(turns) if t["index"] == index), None)
        if i is None:  # a thumb on a message that is not an answer
            return turns, gr.skip(), gr.skip(), gr.skip()
        t = dict(turns[i])
        a = t["answer"]
        if t["feedback_id"] is None:
            t["feedback_id"] = self.feedback.add(
                a["question"], a["answer"], rating, citations=a["citations"], channel="chat"
            )
        else:
            self.feedback.update(t["feedback_id"], rating=rating)
        turns[i] = t
        note = f"已记录你的评价：**{RATING_LABEL[rating]}**。愿意的话，再说说原因："
        return turns, t["feedback_id"], gr.update(visible=True), note

    def comment(self, feedback_id: int | None, text: str) -> tuple:
        text = (text or "").strip()
        if feedback_id is None or not text:
            return gr.skip(), gr.skip()
        self.feedback.update(int(feedback_id), comment=text)
        gr.Info("谢谢！你的说明已保存。")
        return gr.update(visible=False), ""


def wire_events(ui: ChatUI, handlers: ChatHandlers) -> None:
    ask_outputs = [ui.textbox, ui.chatbot, ui.messages, ui.turns, ui.feedback_box]
    ask_inputs = [ui.messages, ui.turns]
    with ui.blocks:
        ui.textbox.submit(handlers.respond, [ui.textbox, *ask_inputs], ask_outputs)
        for button in ui.starters:
            button.click(handlers.respond, [button, *ask_inputs], ask_outputs)
        ui.chatbot.option_select(handlers.respond_option, ask_inputs, ask_outputs)
        clear_outputs = [ui.chatbot, ui.messages, ui.turns, ui.feedback_target, ui.feedback_box, ui.textbox]
        ui.clear.click(handlers.clear, None, clear_outputs)
        ui.chatbot.clear(handlers.clear, None, clear_outputs)  # its own trash icon
        ui.chatbot.like(
            handlers.rate, [ui.turns],
            [ui.turns, ui.feedback_target, ui.feedback_box, ui.feedback_note],
        )
        submit_comment = (handlers.comment, [ui.feedback_target, ui.feedback_comment],
                          [ui.feedback_box, ui.feedback_comment])
        ui.feedback_submit.click(*submit_comment)
        ui.feedback_comment.submit(*submit_comment)


def build_chat(service: KnowledgeService, feedback: FeedbackStore) -> gr.Blocks:
    app = service.config.app
    ui = build_layout(app.title, app.welcome, list(service.starters), service.documents())
    wire_events(ui, ChatHandlers(service, feedback))
    return ui.blocks
