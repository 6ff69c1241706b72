"""The chat page's layout: components only, no event handlers (those are in ``app.chat``)."""

from __future__ import annotations

import html
from dataclasses import dataclass

import gradio as gr

CJK_FONTS = (
    "Noto Sans CJK SC", "Noto Sans SC", "PingFang SC", "Hiragino Sans GB", "Microsoft YaHei",
    "Source Han Sans SC", "system-ui", "sans-serif",
)


def chat_theme() -> gr.themes.Base:
    """A calm theme using fonts already on the machine (nothing fetched from outside)."""
    return gr.themes.Soft(
        primary_hue="indigo",
        secondary_hue="blue",
        neutral_hue="slate",
        radius_size="lg",
        font=list(CJK_FONTS),
        font_mono=["Noto Sans Mono CJK SC", "ui-monospace", "monospace"],
    ).set(
        body_background_fill="#f6f7fb",
        block_shadow="0 1px 2px rgba(16,24,40,.05)",
    )


CHAT_CSS = """
.gradio-container { width: 100% !important; max-width: 1180px !important; margin: 0 auto !important; }
footer { opacity: .7; }
#kb-header { padding: 6px 4px 2px; }
#kb-header .kb-title { display: flex; align-items: center; gap: 12px; }
#kb-header .kb-logo {
  width: 42px; height: 42px; border-radius: 12px; flex: none;
  display: grid; place-items: center; color: #fff; font-weight: 700; font-size: 20px;
  background: linear-gradient(135deg, #3056d3, #5b7cfa);
}
#kb-header h1 { margin: 0; font-size: 22px; font-weight: 650; line-height: 1.3; }
#kb-header p { margin: 2px 0 0; color: #64748b; font-size: 14px; }
#kb-header .kb-badges { display: flex; gap: 6px; flex-wrap: wrap; margin-top: 6px; }
#kb-header .kb-badge {
  font-size: 12px; padding: 1px 9px; border-radius: 999px;
  background: #eef2ff; color: #3730a3; border: 1px solid #c7d2fe;
}
#kb-chatbot { border-radius: 14px; }
#kb-chatbot .message-wrap { font-size: 15px; line-height: 1.7; }
/* answers with sources use the full width of the conversation */
#kb-chatbot .message-row.bot-row:has(.kb-sources) { width: 100% !important; }
#kb-chatbot .bot-row:has(.kb-sources) .flex-wrap,
#kb-chatbot .bot-row:has(.kb-sources) .message { width: 100% !important; }
#kb-input textarea { font-size: 15px; }
.kb-side h3 { margin: 4px 0 8px; font-size: 14px; color: #475569; font-weight: 600; }
.kb-side button.kb-starter {
  justify-content: flex-start !important; text-align: left !important;
  white-space: normal !important; height: auto !important; line-height: 1.45 !important;
  padding: 8px 12px !important; font-weight: 400 !important;
}
.kb-doclist { list-style: none; margin: 0; padding: 0; font-size: 13px; }
.kb-doclist li { padding: 6px 2px; border-bottom: 1px dashed #e2e8f0; display: flex; gap: 8px; }
.kb-doclist li:last-child { border-bottom: none; }
.kb-doclist .kb-doc-title { flex: 1; min-width: 0; overflow-wrap: anywhere; }
.kb-doclist .kb-doc-size { color: #94a3b8; white-space: nowrap; }
.kb-side ul.kb-links { font-size: 13px; color: #64748b; margin: 0; padding: 0; list-style: none; }
.kb-side ul.kb-links li { margin: 4px 0; padding: 0; list-style: none; }
.kb-side ul.kb-links li::before { content: none; }
.kb-links a { color: #3056d3; }
#kb-clear { font-size: 14px !important; font-weight: 500 !important; color: #475569 !important; }
#kb-input button.submit-button {
  background: #3056d3 !important; color: #fff !important; font-weight: 600;
  border-radius: 10px !important; padding: 6px 18px !important; min-width: 64px;
}
#kb-input button.submit-button:hover { background: #2746b0 !important; }
#kb-input button.submit-button:disabled { opacity: .5; }
#kb-feedback { border: 1px solid #c7d2fe; background: #f5f7ff; }
#kb-feedback-note { padding: 8px 14px 0; font-size: 14px; color: #334155; }

/* answers: citation chips, sources, highlighted passages */
.kb-ref {
  font-size: 12px; font-weight: 600; color: #3056d3; background: #eef2ff;
  border-radius: 6px; padding: 0 4px; margin: 0 1px; white-space: nowrap;
}
.kb-sources { margin-top: 12px; padding-top: 8px; border-top: 1px dashed #cbd5e1; }
.kb-sources-title { font-size: 12px; color: #64748b; letter-spacing: .05em; margin-bottom: 4px; }
details.kb-cite {
  border: 1px solid #e2e8f0; border-radius: 10px; margin: 6px 0; background: #fcfcfd;
  overflow: hidden;
}
details.kb-cite[open] { border-color: #c7d2fe; background: #fff; }
details.kb-cite > summary {
  cursor: pointer; list-style: none; display: flex; flex-wrap: wrap; align-items: baseline;
  gap: 2px 8px; padding: 7px 10px; font-size: 13.5px;
}
details.kb-cite > summary::-webkit-details-marker { display: none; }
details.kb-cite > summary::after {
  content: "展开 ▾"; margin-left: auto; font-size: 12px; color: #94a3b8;
}
details.kb-cite[open] > summary::after { content: "收起 ▴"; }
.kb-n {
  flex: none; min-width: 20px; height: 20px; padding: 0 5px; border-radius: 6px;
  display: inline-grid; place-items: center; background: #3056d3; color: #fff;
  font-size: 12px; font-weight: 600;
}
.kb-doc { font-weight: 600; }
.kb-sec { color: #64748b; font-size: 12.5px; }
.kb-snip {
  order: 10; flex-basis: 100%; color: #64748b; font-size: 12.5px;
  white-space: nowrap; overflow: hidden; text-overflow: ellipsis;
}
.kb-passage {
  margin: 0 10px; padding: 8px 10px; background: #f8fafc; border-radius: 8px;
  font-size: 13.5px; line-height: 1.8; color: #334155;
}
mark.kb-hl {
  background: #fff3b0; color: inherit; border-bottom: 2px solid #f0b429;
  border-radius: 2px; padding: 0 1px;
}
.kb-where {
  display: flex; flex-wrap: wrap; gap: 4px 12px; padding: 6px 10px 8px;
  font-size: 12px; color: #64748b;
}
.kb-where .kb-open { margin-left: auto; color: #3056d3; }
"""


@dataclass
class ChatUI:
    """The components event wiring needs."""

    blocks: gr.Blocks
    chatbot: gr.Chatbot  # an output only: what it shows comes from ``messages``, never from the client
    messages: gr.State  # the conversation as shown, kept on the server
    textbox: gr.Textbox  # its submit button sends too
    clear: gr.Button
    starters: list[gr.Button]
    turns: gr.State  # [{"index": message index, "answer": answer dict, "feedback_id": int|None}]
    feedback_box: gr.Group
    feedback_note: gr.Markdown
    feedback_comment: gr.Textbox
    feedback_submit: gr.Button
    feedback_target: gr.State  # feedback row id the comment belongs to


def _header_html(title: str, welcome: str, n_docs: int) -> str:
    return (
        '<div class="kb-title"><div class="kb-logo" aria-hidden="true">问</div><div>'
        f"<h1>{html.escape(title)}</h1><p>{html.escape(welcome)}</p>"
        '<div class="kb-badges">'
        f'<span class="kb-badge">{n_docs} 篇文档</span>'
        '<span class="kb-badge">每条回答附原文出处</span>'
        '<span class="kb-badge">完全离线</span>'
        "</div></div></div>"
    )


def _documents_html(documents: list[dict]) -> str:
    items = "".join(
        f'<li><span class="kb-doc-title">{html.escape(d.get("title") or d["source"])}</span>'
        f'<span class="kb-doc-size">{int(d.get("chars", 0)):,} 字</span></li>'
        for d in documents
    )
    return f'<ul class="kb-doclist">{items}</ul>'


def build_layout(title: str, welcome: str, starters: list[str], documents: list[dict]) -> ChatUI:
    with gr.Blocks(title=title, fill_height=False, analytics_enabled=False) as blocks:
        gr.HTML(_header_html(title, welcome, len(documents)), elem_id="kb-header")
        with gr.Row(equal_height=False):
            with gr.Column(scale=7, min_width=360):
                chatbot = gr.Chatbot(
                    elem_id="kb-chatbot",
                    show_label=False,
                    height="calc(100vh - 290px)",
                    min_height=420,
                    placeholder=(
                        "#### 有什么想了解的？\n\n"
                        "每条回答都标有出处编号，如 [1]；点开出处，就能看到它在原文中的位置，"
                        "被引用的句子会高亮显示。\n\n"
                        "可以先点右侧的常见问题，或者直接在下面输入。"
                    ),
                    latex_delimiters=[],
                    feedback_options=("Like", "Dislike"),
                    buttons=[],  # "copy" would copy the sources' HTML
                    sanitize_html=True,
                    allow_tags=False,
                    layout="bubble",
                )
                with gr.Group(visible=False, elem_id="kb-feedback") as feedback_box:
                    feedback_note = gr.Markdown(elem_id="kb-feedback-note")
                    with gr.Row(equal_height=True):
                        feedback_comment = gr.Textbox(
                            show_label=False,
                            placeholder="补充说明（可选）：哪里有用，或者哪里不对？",
                            max_length=2000,
                            scale=8,
                            elem_id="kb-feedback-comment",
                        )
                        feedback_submit = gr.Button("提交说明", scale=1, min_width=96)
                with gr.Row(equal_height=True, elem_id="kb-input-row"):
                    textbox = gr.Textbox(
                        elem_id="kb-input",
                        show_label=False,
                        placeholder="输入你的问题，按回车发送",
                        lines=1,
                        max_lines=5,
                        scale=8,
                        autofocus=True,
                        submit_btn="发送",
                    )
                    clear = gr.Button(
                        "清空对话", variant="secondary", scale=0, min_width=100, elem_id="kb-clear"
                    )
            with gr.Column(scale=3, min_width=240, elem_classes=["kb-side"]):
                starter_buttons = []
                if starters:
                    gr.HTML("<h3>常见问题</h3>")
                    for q in starters:
                        starter_buttons.append(
                            gr.Button(q, size="sm", variant="secondary", elem_classes=["kb-starter"])
                        )
                gr.HTML("<h3>知识库文档</h3>" + _documents_html(documents))
                gr.HTML(
                    '<h3>更多入口</h3><ul class="kb-links">'
                    '<li><a href="/embed" target="_blank">嵌入版聊天窗口</a>（可放进内网页面）</li>'
                    '<li><a href="/docs" target="_blank">HTTP 接口文档</a></li>'
                    '<li><a href="/trainers" target="_blank">培训师入口</a>（常见问题维护，需登录）</li></ul>'
                )
        messages = gr.State([])
        turns = gr.State([])
        feedback_target = gr.State(None)
    return ChatUI(
        blocks=blocks, chatbot=chatbot, messages=messages, textbox=textbox, clear=clear,
        starters=starter_buttons, turns=turns, feedback_box=feedback_box,
        feedback_note=feedback_note, feedback_comment=feedback_comment,
        feedback_submit=feedback_submit, feedback_target=feedback_target,
    )
