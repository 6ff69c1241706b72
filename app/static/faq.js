// The trainers' FAQ page: plain JS over /api/admin/faq/*. The page is served only to a
// logged-in trainer or admin (the HttpOnly session cookie goes with every call by itself); each
// change carries the session's CSRF token (given by the server in the page's config) in the
// X-CSRF-Token header. A 401 (the session ended) goes back to the login page.
// Every piece of text from the server is put into the page with textContent, never as HTML.
(function () {
  "use strict";

  const cfg = JSON.parse(document.getElementById("fq-config").textContent);
  const API = cfg.api;

  const STATUS = {
    candidate: "待审核", flagged: "需复核", approved: "已批准", rejected: "已拒绝", merged: "已合并",
  };
  const STATUS_TABS = ["candidate", "flagged", "approved", "rejected", "merged", "all"];
  const ORIGIN = {
    documents: "来自文档", usage: "来自提问", gap: "未答问题", manual: "手工添加", import: "导入",
  };
  const ACTION = {
    create: "创建", edit: "修改", approve: "批准", reject: "拒绝", merge: "合并",
    flag: "标记复核", import: "导入", recheck: "重新核对",
  };
  const FIELD = {
    question: "问题", answer: "回答", topic: "主题", alt_questions: "其他问法", citations: "出处",
    status: "状态", flag_reason: "复核原因", approved_at: "批准时间", merged_into: "并入",
    ask_count: "提问次数", hits: "回答次数",
  };
  const NO_TOPIC = "未分主题";

  const $ = (id) => document.getElementById(id);
  const state = {
    name: cfg.user || "",
    entries: [],
    status: "candidate",
    topic: "",
    search: "",
    selected: null, // entry id, "new" or null
    detail: null, // the selected entry as last loaded
    dirty: false,
    view: "entries",
  };

  function el(tag, cls, text) {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function show(node, visible) {
    node.hidden = !visible;
  }

  function when(iso) {
    if (!iso) return "";
    const d = new Date(iso);
    if (Number.isNaN(d.getTime())) return iso;
    return d.toLocaleString("zh-CN", { hour12: false });
  }

  let toastTimer = 0;
  function toast(text, bad) {
    const t = $("fq-toast");
    t.textContent = text;
    t.classList.toggle("bad", !!bad);
    t.hidden = false;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => { t.hidden = true; }, bad ? 6000 : 3000);
  }

  // ---- the API ----------------------------------------------------------------------
  class AuthError extends Error {}

  async function errorText(r) {
    try {
      const j = await r.json();
      if (j && typeof j.detail === "string") return j.detail;
    } catch (e) { /* not JSON */ }
    return "HTTP " + r.status;
  }

  // fetch with the session cookie; a change carries the CSRF token. A 401 means the session
  // ended (logout elsewhere, expiry, account disabled): back to the login page.
  async function call(method, path, opts) {
    opts = opts || {};
    const headers = {};
    if (method !== "GET") headers["X-CSRF-Token"] = cfg.csrf;
    let body;
    if (opts.json !== undefined) {
      headers["Content-Type"] = "application/json";
      body = JSON.stringify(opts.json);
    } else if (opts.body !== undefined) {
      headers["Content-Type"] = opts.type || "text/plain; charset=utf-8";
      body = opts.body;
    }
    let r;
    try {
      r = await fetch(API + path, { method, headers, body, cache: "no-store", credentials: "same-origin" });
    } catch (e) {
      throw new Error("无法连接服务器");
    }
    if (r.status === 401) throw new AuthError(await errorText(r));
    if (!r.ok) throw new Error(await errorText(r));
    return opts.raw ? r : r.json();
  }

  function toLogin() {
    window.location.assign("/login?next=" + encodeURIComponent("/trainers"));
  }

  // runs an action; an AuthError returns to the login page, other errors are reported
  async function guarded(fn, onError) {
    try {
      return await fn();
    } catch (e) {
      if (e instanceof AuthError) {
        toLogin();
      } else if (onError) {
        onError(e.message);
      } else {
        toast("出错了：" + e.message, true);
      }
      return undefined;
    }
  }

  // ---- the account ------------------------------------------------------------------
  const ROLE = { admin: "管理员", trainer: "培训师" };

  function showApp() {
    show($("fq-app"), true);
    $("fq-who").textContent = "已登录：" + state.name + (ROLE[cfg.role] ? "（" + ROLE[cfg.role] + "）" : "");
    show($("fq-who"), true);
    show($("fq-signout"), true);
  }

  async function signOut() {
    try {
      await fetch("/api/auth/logout", {
        method: "POST", headers: { "X-CSRF-Token": cfg.csrf }, credentials: "same-origin",
      });
    } catch (e) { /* the login page says the rest */ }
    window.location.assign("/login?out=1");
  }

  // ---- entries: list ----------------------------------------------------------------
  async function loadEntries() {
    const entries = await guarded(() => call("GET", "/entries"));
    if (entries === undefined) return false;
    state.entries = entries;
    renderEntries();
    return true;
  }

  function counts() {
    const n = { all: state.entries.length };
    for (const s of Object.keys(STATUS)) n[s] = 0;
    for (const e of state.entries) n[e.status] = (n[e.status] || 0) + 1;
    return n;
  }

  function renderStatus() {
    const n = counts();
    const box = $("fq-status");
    box.replaceChildren();
    for (const s of STATUS_TABS) {
      const b = el("button", "fq-chip" + (state.status === s ? " on" : ""));
      b.type = "button";
      b.dataset.status = s;
      b.append(el("span", null, s === "all" ? "全部" : STATUS[s]), el("span", "fq-count", n[s] || 0));
      b.addEventListener("click", () => {
        state.status = s;
        renderEntries();
      });
      box.append(b);
    }
    const banner = $("fq-flag-banner");
    banner.textContent = "有 " + n.flagged + " 条已批准的条目引用的文档发生了变化，暂停作答，需要复核 →";
    show(banner, n.flagged > 0 && state.status !== "flagged");
  }

  function topicsOf(entries) {
    const set = new Set(entries.map((e) => e.topic || ""));
    return [...set].sort((a, b) => {
      if (!a) return 1;
      if (!b) return -1;
      return a.localeCompare(b, "zh-CN");
    });
  }

  function renderTopicFilter() {
    const sel = $("fq-topic-filter");
    const topics = topicsOf(state.entries);
    if (state.topic && !topics.includes(state.topic)) state.topic = "";
    sel.replaceChildren();
    const all = el("option", null, "全部主题");
    all.value = "";
    sel.append(all);
    for (const t of topics) {
      const o = el("option", null, t || NO_TOPIC);
      o.value = t || "\u0000";
      sel.append(o);
    }
    sel.value = state.topic;
    const list = $("fq-topics");
    list.replaceChildren();
    for (const t of topics) if (t) { const o = el("option"); o.value = t; list.append(o); }
  }

  function visibleEntries() {
    const q = state.search.toLowerCase();
    return state.entries.filter((e) => {
      if (state.status !== "all" && e.status !== state.status) return false;
      if (state.topic && (e.topic || "\u0000") !== state.topic) return false;
      if (!q) return true;
      return [e.question, e.answer, ...(e.alt_questions || [])].some((s) => (s || "").toLowerCase().includes(q));
    });
  }

  function badge(status) {
    return el("span", "fq-badge fq-" + status, STATUS[status] || status);
  }

  function row(e) {
    const b = el("button", "fq-row" + (state.selected === e.id ? " on" : ""));
    b.type = "button";
    b.dataset.id = e.id;
    const top = el("div", "fq-row-top");
    top.append(el("span", "fq-row-q", e.question));
    if (state.status === "all" || e.status !== state.status) top.append(badge(e.status));
    b.append(top);
    const meta = el("div", "fq-row-meta");
    const bits = ["#" + e.id, ORIGIN[e.origin] || e.origin || ""];
    if (e.ask_count) bits.push("被问 " + e.ask_count + " 次");
    if (e.hits) bits.push("已作答 " + e.hits + " 次");
    if (e.citations && e.citations.length) bits.push(e.citations.length + " 处出处");
    meta.textContent = bits.filter(Boolean).join(" · ");
    if (!e.answer.trim()) meta.append(el("span", "fq-tag", "待写回答"));
    b.append(meta);
    if (e.status === "flagged" && e.flag_reason) b.append(el("div", "fq-row-flag", e.flag_reason));
    b.addEventListener("click", () => select(e.id));
    return b;
  }

  function renderList() {
    const list = $("fq-list");
    list.replaceChildren();
    const entries = visibleEntries();
    if (!entries.length) {
      const empty = el("div", "fq-list-empty");
      empty.append(el("p", null, state.entries.length ? "没有符合条件的条目。" : "还没有任何条目。"));
      if (state.status === "candidate" || !state.entries.length) {
        empty.append(el("p", "fq-muted", "点击“生成候选问题”，从提问记录和文档中整理候选问题。"));
      }
      list.append(empty);
      return;
    }
    const groups = new Map();
    for (const t of topicsOf(entries)) groups.set(t, []);
    for (const e of entries) groups.get(e.topic || "").push(e);
    for (const [topic, items] of groups) {
      const g = el("section", "fq-group");
      g.dataset.topic = topic;
      const h = el("h3", "fq-group-title");
      h.append(el("span", null, topic || NO_TOPIC), el("span", "fq-count", items.length));
      g.append(h);
      for (const e of items) g.append(row(e));
      list.append(g);
    }
  }

  function renderEntries() {
    renderStatus();
    renderTopicFilter();
    renderList();
    if (state.selected !== null && state.selected !== "new" &&
        !state.entries.some((e) => e.id === state.selected)) {
      closeEditor();
    }
  }

  // ---- entries: editor --------------------------------------------------------------
  function entryById(id) {
    return state.entries.find((e) => e.id === id);
  }

  function setError(text) {
    const p = $("fq-ed-error");
    p.textContent = text || "";
    show(p, !!text);
  }

  function closeEditor() {
    state.selected = null;
    state.detail = null;
    state.dirty = false;
    show($("fq-form"), false);
    show($("fq-editor-empty"), true);
    for (const r of document.querySelectorAll(".fq-row.on")) r.classList.remove("on");
  }

  async function select(id) {
    if (state.dirty && state.selected !== id) {
      toast("上一条的修改尚未保存，已放弃。");
    }
    const entry = await guarded(() => call("GET", "/entries/" + id));
    if (!entry) return;
    state.selected = id;
    fillForm(entry);
    for (const r of document.querySelectorAll(".fq-row")) {
      r.classList.toggle("on", Number(r.dataset.id) === id);
    }
  }

  function citationItem(c) {
    const li = el("li", "fq-cite" + (c.missing ? " missing" : ""));
    const head = el("div", "fq-cite-head");
    head.append(el("span", "fq-n", c.n), el("span", "fq-cite-doc", c.title || c.source));
    if (c.section) head.append(el("span", "fq-cite-sec", c.section));
    li.append(head);
    li.append(el("blockquote", "fq-quote", c.quote));
    const where = el("div", "fq-cite-where");
    where.append(el("span", null, c.source + " · 第 " + (c.start + 1) + "–" + c.end + " 字"));
    if (!c.missing) {
      const a = el("a", null, "在全文中查看");
      a.href = "/view/" + c.source.split("/").map(encodeURIComponent).join("/") +
        "?start=" + c.start + "&end=" + c.end + "#kb-hit";
      a.target = "_blank";
      a.rel = "noopener";
      where.append(a);
    } else {
      where.append(el("span", "fq-bad", "原文中已找不到这段引用"));
    }
    li.append(where);
    return li;
  }

  function fillForm(e) {
    state.detail = e;
    state.dirty = false;
    const isNew = e.id === null;
    setError("");
    $("fq-ed-id").textContent = isNew ? "新条目" : "#" + e.id;
    const st = $("fq-ed-status");
    st.className = "fq-badge fq-" + e.status;
    st.textContent = STATUS[e.status] || e.status;
    const meta = [];
    if (!isNew) {
      meta.push(ORIGIN[e.origin] || e.origin);
      if (e.ask_count) meta.push("被问 " + e.ask_count + " 次");
      if (e.hits) meta.push("已作答 " + e.hits + " 次");
      if (e.approved_at && e.status === "approved") meta.push("批准于 " + when(e.approved_at));
      if (e.merged_into) meta.push("已并入 #" + e.merged_into);
    }
    $("fq-ed-meta").textContent = meta.filter(Boolean).join(" · ");
    const flag = $("fq-ed-flag");
    flag.textContent = e.status === "flagged"
      ? "需复核：" + (e.flag_reason || "引用的文档有变化") + "。核对出处和回答后重新批准。" : "";
    show(flag, e.status === "flagged");

    $("fq-q").value = e.question;
    $("fq-alts").value = (e.alt_questions || []).join("\n");
    $("fq-topic").value = e.topic || "";
    $("fq-a").value = e.answer || "";

    const cites = $("fq-cite-list");
    cites.replaceChildren(...(e.citations || []).map(citationItem));
    show(cites, !!(e.citations && e.citations.length));
    show($("fq-no-cites"), !isNew && !(e.citations && e.citations.length));
    show(cites.parentElement, !isNew);

    const live = !isNew && e.status !== "merged";
    show($("fq-approve"), live && e.status !== "approved");
    show($("fq-reject"), live && e.status !== "rejected");
    show($("fq-cancel"), isNew);
    $("fq-save").textContent = isNew ? "保存为候选" : "保存修改";
    $("fq-save").disabled = e.status === "merged";

    const mergeBox = $("fq-merge-box");
    show(mergeBox, live);
    if (live) fillMergeOptions(e.id);

    const hist = e.history || [];
    show($("fq-history-box"), !isNew);
    $("fq-history-title").textContent = "修改记录（" + hist.length + "）";
    $("fq-history").replaceChildren(...hist.slice().reverse().map(historyItem));

    show($("fq-editor-empty"), false);
    show($("fq-form"), true);
  }

  function historyItem(h) {
    const li = el("li");
    li.append(el("span", "fq-h-when", when(h.at)));
    let what = ACTION[h.action] || h.action;
    if (h.field) what += " · " + (FIELD[h.field] || h.field);
    if (h.field === "status" && typeof h.new === "string") what += " → " + (STATUS[h.new] || h.new);
    li.append(el("span", "fq-h-what", what));
    if (h.actor) li.append(el("span", "fq-h-who", h.actor.replace(/^web:?/, "") || "网页"));
    return li;
  }

  function fillMergeOptions(keepId) {
    const sel = $("fq-merge-other");
    sel.replaceChildren();
    const first = el("option", null, "选择要并入的条目…");
    first.value = "";
    sel.append(first);
    for (const e of state.entries) {
      if (e.id === keepId || e.status === "merged") continue;
      const o = el("option", null, "#" + e.id + " " + e.question + "（" + (STATUS[e.status] || e.status) + "）");
      o.value = e.id;
      sel.append(o);
    }
  }

  function formValues() {
    return {
      question: $("fq-q").value.trim(),
      answer: $("fq-a").value,
      topic: $("fq-topic").value.trim(),
      alt_questions: $("fq-alts").value.split("\n").map((s) => s.trim()).filter(Boolean),
    };
  }

  function changes() {
    const v = formValues();
    const e = state.detail;
    const out = {};
    if (v.question !== e.question) out.question = v.question;
    if (v.answer !== e.answer) out.answer = v.answer;
    if (v.topic !== (e.topic || "")) out.topic = v.topic;
    if (JSON.stringify(v.alt_questions) !== JSON.stringify(e.alt_questions || [])) out.alt_questions = v.alt_questions;
    return out;
  }

  // saves pending edits; returns false when saving failed
  async function saveChanges() {
    const e = state.detail;
    if (e.id === null) {
      const v = formValues();
      if (!v.question) { setError("请填写问题。"); return false; }
      const created = await guarded(() => call("POST", "/entries", { json: v }), (m) => setError("保存失败：" + m));
      if (!created) return false;
      toast("已保存为候选条目 #" + created.id);
      state.status = "candidate";
      await loadEntries();
      await select(created.id);
      return true;
    }
    const diff = changes();
    if (!Object.keys(diff).length) return true;
    const saved = await guarded(() => call("PATCH", "/entries/" + e.id, { json: diff }), (m) => setError("保存失败：" + m));
    if (!saved) return false;
    state.detail = Object.assign({}, saved, { history: e.history });
    state.dirty = false;
    return true;
  }

  async function afterChange(id, message) {
    toast(message);
    await loadEntries();
    if (entryById(id)) await select(id);
  }

  async function onSave(ev) {
    ev.preventDefault();
    setError("");
    const isNew = state.detail.id === null;
    const had = Object.keys(isNew ? {} : changes()).length;
    if (!(await saveChanges())) return;
    if (!isNew) await afterChange(state.detail.id, had ? "已保存" : "没有需要保存的修改");
  }

  async function onApprove() {
    setError("");
    const id = state.detail.id;
    if (!(await saveChanges())) return;
    const ok = await guarded(() => call("POST", "/entries/" + id + "/approve"), (m) => setError("无法批准：" + m));
    if (!ok) { await loadEntries(); return; }
    await afterChange(id, "已批准 #" + id + "，之后同样的问题将直接用这条回答");
  }

  async function onReject() {
    setError("");
    const id = state.detail.id;
    if (!(await saveChanges())) return;
    const ok = await guarded(() => call("POST", "/entries/" + id + "/reject"), (m) => setError("无法拒绝：" + m));
    if (ok) await afterChange(id, "已拒绝 #" + id);
  }

  async function onMerge() {
    setError("");
    const keep = state.detail.id;
    const other = Number($("fq-merge-other").value);
    if (!other) { setError("请先选择要并入的条目。"); return; }
    if (!(await saveChanges())) return;
    const ok = await guarded(() => call("POST", "/merge", { json: { keep_id: keep, other_id: other } }),
      (m) => setError("无法合并：" + m));
    if (ok) await afterChange(keep, "已把 #" + other + " 并入 #" + keep);
  }

  function newEntry(question, alts) {
    state.selected = "new";
    for (const r of document.querySelectorAll(".fq-row.on")) r.classList.remove("on");
    fillForm({
      id: null, question: question || "", answer: "", topic: "", alt_questions: alts || [],
      citations: [], status: "candidate", origin: "manual", history: [],
    });
    $("fq-q").focus();
  }

  // ---- suggestions ------------------------------------------------------------------
  async function onSuggest() {
    const btn = $("fq-suggest");
    btn.disabled = true;
    btn.classList.add("busy");
    $("fq-busy-text").textContent = "正在根据提问记录和文档生成候选问题，可能需要十几秒…";
    show($("fq-busy"), true);
    try {
      const res = await guarded(() => call("POST", "/suggest", { json: {} }));
      if (!res) return;
      state.status = "candidate";
      await loadEntries();
      toast(res.added.length ? "新增 " + res.added.length + " 条候选问题" : "没有发现新的候选问题");
    } finally {
      btn.disabled = false;
      btn.classList.remove("busy");
      show($("fq-busy"), false);
    }
  }

  // ---- usage ------------------------------------------------------------------------
  function answeredText(c) {
    const parts = [];
    if (c.from_faq) parts.push("常见问题作答 " + c.from_faq);
    if (c.answered - c.from_faq > 0) parts.push("文档作答 " + (c.answered - c.from_faq));
    if (c.refused) parts.push("未答 " + c.refused);
    if (c.thumbs_down) parts.push("没帮助 " + c.thumbs_down);
    return parts.join(" · ");
  }

  function questionCell(c) {
    const td = el("td");
    td.append(el("div", "fq-u-q", c.question));
    const others = (c.variants || []).filter((v) => v[0] !== c.question);
    if (others.length) {
      td.append(el("div", "fq-u-var", "其他说法：" + others.map((v) => v[0] + "（" + v[1] + "）").join("；")));
    }
    for (const comment of (c.comments || []).slice(0, 3)) td.append(el("div", "fq-u-comment", "“" + comment + "”"));
    return td;
  }

  async function loadUsage() {
    const u = await guarded(() => call("GET", "/usage"));
    if (!u) return;
    const body = $("fq-clusters").tBodies[0];
    body.replaceChildren();
    for (const c of u.clusters) {
      const tr = el("tr");
      tr.append(questionCell(c), el("td", "fq-num", c.count), el("td", "fq-muted", answeredText(c)));
      body.append(tr);
    }
    show($("fq-clusters-empty"), !u.clusters.length);
    const gaps = $("fq-gaps").tBodies[0];
    gaps.replaceChildren();
    for (const g of u.gaps) {
      const tr = el("tr");
      const act = el("td", "fq-u-act");
      // a gap that already has an entry (e.g. suggested) opens it instead of adding another
      const known = state.entries.find((e) => e.question === g.question && e.status !== "merged");
      const b = el("button", "fq-small", known ? "查看条目" : "建为候选");
      b.type = "button";
      b.addEventListener("click", () => {
        switchView("entries");
        if (known) {
          state.status = known.status;
          renderEntries();
          select(known.id);
          return;
        }
        const alts = (g.variants || []).map((v) => v[0]).filter((q) => q !== g.question).slice(0, 5);
        newEntry(g.question, alts);
      });
      act.append(b);
      tr.append(questionCell(g), el("td", "fq-num", g.count), act);
      gaps.append(tr);
    }
    show($("fq-gaps-empty"), !u.gaps.length);
  }

  // ---- export / import / check ------------------------------------------------------
  async function onExport(fmt, btn) {
    btn.disabled = true;
    try {
      const r = await guarded(() => call("GET", "/export?format=" + fmt, { raw: true }));
      if (!r) return;
      const blob = await r.blob();
      const m = /filename="([^"]+)"/.exec(r.headers.get("Content-Disposition") || "");
      const a = el("a");
      a.href = URL.createObjectURL(blob);
      a.download = m ? m[1] : "faq." + fmt;
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(a.href), 10000);
    } finally {
      btn.disabled = false;
    }
  }

  async function onImport(ev) {
    ev.preventDefault();
    const file = $("fq-import-file").files[0];
    const out = $("fq-import-result");
    if (!file) {
      out.textContent = "请先选择要导入的文件。";
      out.className = "fq-error";
      show(out, true);
      return;
    }
    const fmt = file.name.toLowerCase().endsWith(".json") ? "json" : file.name.toLowerCase().endsWith(".csv") ? "csv" : "";
    const report = (text, bad) => {
      out.textContent = text;
      out.className = bad ? "fq-error" : "fq-okmsg";
      show(out, true);
    };
    if (!fmt) { report("请选择 .csv 或 .json 文件。", true); return; }
    $("fq-import-btn").disabled = true;
    try {
      const body = await file.arrayBuffer();
      const res = await guarded(
        () => call("POST", "/import?format=" + fmt, { body, type: fmt === "json" ? "application/json" : "text/csv" }),
        (m) => report("导入失败（没有写入任何条目）：" + m, true),
      );
      if (!res) return;
      report("导入完成：新增 " + res.added + " 条，更新 " + res.updated + " 条。");
      await loadEntries();
    } finally {
      $("fq-import-btn").disabled = false;
    }
  }

  async function onCheck() {
    const out = $("fq-check-result");
    const res = await guarded(() => call("POST", "/check"));
    if (!res) return;
    out.textContent = res.flagged.length
      ? "有 " + res.flagged.length + " 条被标记为需复核。" : "全部已批准条目的出处都与原文一致。";
    show(out, true);
    await loadEntries();
  }

  // ---- views ------------------------------------------------------------------------
  function switchView(view) {
    state.view = view;
    for (const b of document.querySelectorAll(".fq-tabs button")) {
      const on = b.dataset.view === view;
      b.classList.toggle("on", on);
      b.setAttribute("aria-selected", on ? "true" : "false");
    }
    for (const v of ["entries", "usage", "exchange"]) show($("fq-view-" + v), v === view);
    if (view === "usage") loadUsage();
  }

  // ---- wiring -----------------------------------------------------------------------
  $("fq-app-title").textContent = cfg.title;
  $("fq-signout").addEventListener("click", signOut);
  for (const b of document.querySelectorAll(".fq-tabs button")) {
    b.addEventListener("click", () => switchView(b.dataset.view));
  }
  $("fq-topic-filter").addEventListener("change", (ev) => {
    state.topic = ev.target.value;
    renderList();
  });
  $("fq-search").addEventListener("input", (ev) => {
    state.search = ev.target.value.trim();
    renderList();
  });
  $("fq-flag-banner").addEventListener("click", () => {
    state.status = "flagged";
    renderEntries();
  });
  $("fq-new").addEventListener("click", () => newEntry());
  $("fq-suggest").addEventListener("click", onSuggest);
  $("fq-form").addEventListener("submit", onSave);
  $("fq-form").addEventListener("input", () => { state.dirty = true; });
  $("fq-approve").addEventListener("click", onApprove);
  $("fq-reject").addEventListener("click", onReject);
  $("fq-merge").addEventListener("click", onMerge);
  $("fq-cancel").addEventListener("click", closeEditor);
  $("fq-usage-refresh").addEventListener("click", loadUsage);
  for (const b of document.querySelectorAll("[data-export]")) {
    b.addEventListener("click", () => onExport(b.dataset.export, b));
  }
  $("fq-import-form").addEventListener("submit", onImport);
  $("fq-import-file").addEventListener("change", (ev) => {
    const f = ev.target.files[0];
    $("fq-import-name").textContent = f ? f.name : "未选择文件";
    show($("fq-import-result"), false);
  });
  $("fq-check").addEventListener("click", onCheck);

  showApp();
  loadEntries();
})();
