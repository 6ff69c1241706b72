// The embeddable chat: plain JS over /api/ask, /api/documents and /api/feedback.
// Every piece of text from the server is put into the page with textContent, never as HTML.
// The URL's options arrive validated by the server in kb-config (app/embed.py): title,
// question (sent on load), user (sent with every ask and feedback), accent (#rgb/#rrggbb).
(function () {
  "use strict";

  const cfg = JSON.parse(document.getElementById("kb-config").textContent);
  const CONTEXT = 120; // characters shown each side of a cited span
  const HISTORY_TURNS = 6;

  const $ = (id) => document.getElementById(id);
  const logEl = $("kb-log");
  const form = $("kb-form");
  const input = $("kb-input");
  const sendBtn = $("kb-send");
  const docEl = $("kb-doc");

  let turns = []; // {question, answer, citations} for follow-up questions
  let busy = false;
  const docs = new Map(); // source -> Promise of {source, title, text}

  // the portal's user id travels with asks and feedback when the page was opened with one
  function withUser() {
    return cfg.user ? { user: cfg.user } : {};
  }

  function el(tag, cls, text) {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function scrollDown() {
    logEl.scrollTop = logEl.scrollHeight;
  }

  // ---- documents ------------------------------------------------------------------
  function docUrl(source) {
    return "/api/documents/" + source.split("/").map(encodeURIComponent).join("/");
  }

  function getDoc(source) {
    if (!docs.has(source)) {
      const p = fetch(docUrl(source)).then(async (r) => {
        if (!r.ok) throw new Error(await errorText(r));
        return r.json();
      });
      p.catch(() => docs.delete(source));
      docs.set(source, p);
    }
    return docs.get(source);
  }

  // The span with up to CONTEXT characters each side, trimmed to whole lines where the
  // window holds a line break (the same rule as app/render.py).
  function contextRange(text, start, end) {
    let lo = Math.max(0, start - CONTEXT);
    let hi = Math.min(text.length, end + CONTEXT);
    if (lo > 0) {
      const nl = text.indexOf("\n", lo);
      if (nl !== -1 && nl < start) lo = nl + 1;
    }
    if (hi < text.length) {
      const nl = text.lastIndexOf("\n", hi - 1);
      if (nl >= end) hi = nl;
    }
    return [lo, hi];
  }

  function highlighted(text, start, end, lo, hi) {
    const frag = document.createDocumentFragment();
    if (lo > 0) frag.append("…");
    frag.append(text.slice(lo, start));
    frag.append(el("mark", "kb-hl", text.slice(start, end)));
    frag.append(text.slice(end, hi));
    if (hi < text.length) frag.append("…");
    return frag;
  }

  function openDocument(c) {
    getDoc(c.source).then((doc) => {
      $("kb-doc-title").textContent = doc.title || doc.source;
      const ok = doc.text.slice(c.start, c.end) === c.quote;
      $("kb-doc-meta").textContent = doc.source + " · " + doc.text.length.toLocaleString() + " 字" +
        (ok ? " · 高亮：第 " + (c.start + 1).toLocaleString() + "–" + c.end.toLocaleString() + " 字" : "");
      const pre = $("kb-doc-text");
      pre.replaceChildren(ok ? highlighted(doc.text, c.start, c.end, 0, doc.text.length)
        : document.createTextNode(doc.text));
      docEl.hidden = false;
      const mark = pre.querySelector("mark");
      if (mark) mark.scrollIntoView({ block: "center" });
      $("kb-doc-close").focus();
    }).catch((e) => addError("无法打开文档：" + e.message));
  }

  function closeDocument() {
    docEl.hidden = true;
  }

  // Escape closes the document viewer; with none open, a page framing this one (the widget,
  // app/static/widget.js) is told, so that it can close its panel. The message carries nothing.
  function onEscape() {
    if (!docEl.hidden) {
      closeDocument();
    } else if (window.parent !== window) {
      window.parent.postMessage({ kb: "escape" }, "*");
    }
  }

  // ---- rendering ------------------------------------------------------------------
  // Inline Markdown: **bold** and [n] citation markers; the rest is text.
  function inline(parent, text, onRef) {
    const re = /\*\*([^*\n]+)\*\*|\[(\d{1,3})\]/g;
    let last = 0;
    let m;
    while ((m = re.exec(text)) !== null) {
      parent.append(text.slice(last, m.index));
      if (m[1] !== undefined) {
        parent.append(el("strong", null, m[1]));
      } else {
        const n = Number(m[2]);
        const ref = el("button", "kb-ref", "[" + n + "]");
        ref.type = "button";
        ref.title = "查看出处 " + n;
        ref.addEventListener("click", () => onRef(n));
        parent.append(ref);
      }
      last = re.lastIndex;
    }
    parent.append(text.slice(last));
  }

  // Block Markdown: paragraphs, "- " / "1. " lists, "> " quotes, "#" headings.
  function markdown(md, onRef) {
    const frag = document.createDocumentFragment();
    let list = null;
    let listTag = "";
    for (const raw of md.split("\n")) {
      const line = raw.trimEnd();
      let m;
      if ((m = line.match(/^\s*[-*+]\s+(.*)$/)) || (m = line.match(/^\s*\d+[.)]\s+(.*)$/))) {
        const tag = /^\s*\d/.test(line) ? "ol" : "ul";
        if (!list || listTag !== tag) {
          list = el(tag);
          listTag = tag;
          frag.append(list);
        }
        const li = el("li");
        inline(li, m[1], onRef);
        list.append(li);
        continue;
      }
      list = null;
      if (!line.trim()) continue;
      let node;
      if ((m = line.match(/^#{1,6}\s+(.*)$/))) {
        node = el("p", "kb-h");
        inline(node, m[1], onRef);
      } else if ((m = line.match(/^>\s?(.*)$/))) {
        node = el("blockquote");
        inline(node, m[1], onRef);
      } else {
        node = el("p");
        inline(node, line, onRef);
      }
      frag.append(node);
    }
    return frag;
  }

  // the start of a quote, on one line: it tells apart citations of one section
  function snippet(quote) {
    const text = quote.split(/\s+/).filter(Boolean).join(" ");
    return text.length > 28 ? "“" + text.slice(0, 28) + "…”" : "“" + text + "”";
  }

  function citationCard(c) {
    const card = el("details", "kb-cite");
    card.dataset.n = c.n;
    const summary = el("summary");
    summary.append(el("span", "kb-n", c.n), el("span", "kb-doc-name", c.title || c.source));
    if (c.section && c.section !== c.title) summary.append(el("span", "kb-sec", c.section));
    summary.append(el("span", "kb-snip", snippet(c.quote)));
    const body = el("div", "kb-passage");
    body.append(el("mark", "kb-hl", c.quote)); // until the document arrives
    const where = el("div", "kb-where");
    const src = el("span", "kb-src", c.source);
    const open = el("button", "kb-link", "查看全文");
    open.type = "button";
    open.addEventListener("click", () => openDocument(c));
    where.append(src, open);
    card.append(summary, body, where);
    let loaded = false;
    card.addEventListener("toggle", () => {
      if (!card.open || loaded) return;
      loaded = true;
      getDoc(c.source).then((doc) => {
        if (doc.text.slice(c.start, c.end) !== c.quote) return; // keep the bare quote
        const [lo, hi] = contextRange(doc.text, c.start, c.end);
        body.replaceChildren(highlighted(doc.text, c.start, c.end, lo, hi));
        const pct = Math.round((100 * c.start) / Math.max(1, doc.text.length));
        src.textContent = c.source + " · 第 " + (c.start + 1).toLocaleString() + "–" +
          c.end.toLocaleString() + " 字（约 " + pct + "% 处）";
      }).catch(() => { loaded = false; });
    });
    return card;
  }

  function chips(questions, label) {
    const box = el("div", "kb-chips");
    if (label) box.append(el("div", "kb-chips-label", label));
    for (const q of questions) {
      const chip = el("button", "kb-chip", q);
      chip.type = "button";
      chip.addEventListener("click", () => ask(q));
      box.append(chip);
    }
    return box;
  }

  // A thumb icon as inline SVG (no emoji font needed); flipped for thumbs-down.
  function thumbIcon(down) {
    const NS = "http://www.w3.org/2000/svg";
    const svg = document.createElementNS(NS, "svg");
    svg.setAttribute("viewBox", "0 0 24 24");
    svg.setAttribute("width", "16");
    svg.setAttribute("height", "16");
    svg.setAttribute("aria-hidden", "true");
    if (down) svg.setAttribute("transform", "scale(1,-1)");
    const path = document.createElementNS(NS, "path");
    path.setAttribute("d", "M7 10v11H3V10h4zm2 11h8.3a2 2 0 0 0 2-1.6l1.4-7A2 2 0 0 0 18.7 10H14l.9-4.4" +
      "a1.5 1.5 0 0 0-.4-1.4L13.6 3 8.6 8.6A2 2 0 0 0 9 10v11z");
    path.setAttribute("fill", "currentColor");
    svg.append(path);
    return svg;
  }

  function feedbackRow(answer) {
    const row = el("div", "kb-feedback");
    const up = el("button", "kb-thumb");
    const down = el("button", "kb-thumb");
    up.append(thumbIcon(false));
    down.append(thumbIcon(true));
    up.type = down.type = "button";
    up.title = "有帮助";
    down.title = "没帮助";
    up.setAttribute("aria-label", "有帮助");
    down.setAttribute("aria-label", "没帮助");
    const extra = el("form", "kb-comment");
    extra.hidden = true;
    const comment = el("input");
    comment.type = "text";
    comment.maxLength = 2000;
    comment.placeholder = "补充说明（可选）";
    const submit = el("button", "kb-link", "提交反馈");
    submit.type = "submit";
    extra.append(comment, submit);
    let rating = "";
    const choose = (r) => {
      rating = r;
      up.classList.toggle("on", r === "up");
      down.classList.toggle("on", r === "down");
      extra.hidden = false;
      comment.focus();
    };
    up.addEventListener("click", () => choose("up"));
    down.addEventListener("click", () => choose("down"));
    extra.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      submit.disabled = true;
      try {
        const r = await fetch("/api/feedback", {
          method: "POST",
          headers: { "Content-Type": "application/json" },
          body: JSON.stringify({
            question: answer.question, answer: answer.answer, citations: answer.citations,
            rating, comment: comment.value.trim(), ...withUser(),
          }),
        });
        if (!r.ok) throw new Error(await errorText(r));
        row.replaceChildren(el("span", "kb-thanks", "已收到反馈，谢谢！"));
      } catch (e) {
        submit.disabled = false;
        addError("反馈提交失败：" + e.message);
      }
    });
    row.append(el("span", "kb-feedback-label", "这个回答有帮助吗？"), up, down, extra);
    return row;
  }

  function bubble(role) {
    const wrap = el("div", "kb-msg kb-" + role);
    const b = el("div", "kb-bubble");
    wrap.append(b);
    logEl.append(wrap);
    return b;
  }

  function addUser(text) {
    bubble("user").append(el("p", null, text));
    scrollDown();
  }

  function addError(text) {
    bubble("error").append(el("p", null, text));
    scrollDown();
  }

  function addAnswer(answer) {
    const b = bubble("bot");
    const cards = new Map();
    const onRef = (n) => {
      const card = cards.get(n);
      if (!card) return;
      card.open = true;
      card.scrollIntoView({ block: "nearest", behavior: "smooth" });
    };
    const body = el("div", "kb-answer");
    body.append(markdown(answer.answer, onRef));
    b.append(body);
    if (answer.citations && answer.citations.length) {
      const sources = el("div", "kb-sources");
      sources.append(el("div", "kb-sources-title", "出处"));
      for (const c of answer.citations) {
        const card = citationCard(c);
        cards.set(c.n, card);
        sources.append(card);
      }
      b.append(sources);
    }
    if (answer.related && answer.related.length) {
      b.append(chips(answer.related, answer.answered ? "你还可以问" : "试试这些问题"));
    }
    b.append(feedbackRow(answer));
    scrollDown();
  }

  function welcome() {
    const b = bubble("bot");
    b.append(el("p", null, cfg.welcome));
    if (cfg.starters && cfg.starters.length) b.append(chips(cfg.starters, "常见问题"));
  }

  async function errorText(r) {
    try {
      const j = await r.json();
      if (j && typeof j.detail === "string") return j.detail;
    } catch (e) { /* not JSON */ }
    return "HTTP " + r.status;
  }

  // ---- asking ---------------------------------------------------------------------
  async function ask(question) {
    const q = (question || "").trim();
    if (!q || busy) return;
    if (q.length > cfg.maxQuestionChars) {
      addError("问题太长了（最多 " + cfg.maxQuestionChars + " 字）。");
      return;
    }
    busy = true;
    sendBtn.disabled = true;
    input.value = "";
    autosize();
    addUser(q);
    const pending = bubble("bot");
    pending.classList.add("kb-pending");
    pending.append(el("span", "kb-dots", "正在查找资料"));
    scrollDown();
    try {
      const r = await fetch("/api/ask", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ question: q, history: turns.slice(-HISTORY_TURNS), ...withUser() }),
      });
      if (!r.ok) throw new Error(await errorText(r));
      const answer = await r.json();
      pending.parentElement.remove();
      addAnswer(answer);
      turns.push({ question: q, answer: answer.answer, citations: answer.citations });
    } catch (e) {
      pending.parentElement.remove();
      addError("出错了：" + e.message);
    } finally {
      busy = false;
      sendBtn.disabled = false;
      input.focus();
    }
  }

  function autosize() {
    input.style.height = "auto";
    input.style.height = Math.min(input.scrollHeight, 120) + "px";
  }

  // ---- wiring ---------------------------------------------------------------------
  if (cfg.accent && /^#(?:[0-9a-f]{3}|[0-9a-f]{6})$/i.test(cfg.accent)) {
    // CSSOM, not markup: allowed by the page's style-src 'self'
    document.documentElement.style.setProperty("--kb-accent", cfg.accent);
    document.documentElement.style.setProperty("--kb-head-bg", cfg.accent);
  }
  document.title = cfg.title;
  $("kb-title").textContent = cfg.title;
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    ask(input.value);
  });
  input.addEventListener("keydown", (ev) => {
    if (ev.key === "Enter" && !ev.shiftKey && !ev.isComposing) {
      ev.preventDefault();
      ask(input.value);
    }
  });
  input.addEventListener("input", autosize);
  $("kb-clear").addEventListener("click", () => {
    turns = [];
    logEl.replaceChildren();
    welcome();
  });
  $("kb-doc-close").addEventListener("click", closeDocument);
  docEl.addEventListener("click", (ev) => { if (ev.target === docEl) closeDocument(); });
  document.addEventListener("keydown", (ev) => { if (ev.key === "Escape") onEscape(); });

  welcome();
  if (cfg.question) ask(cfg.question);
})();
