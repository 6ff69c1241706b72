// The documents page: the list, uploads (drag and drop or the file picker), replace, disable,
// enable, delete, one document's text, outline and chunks, and the re-index jobs' progress.
// Every text from a document or a user goes into the page as text (textContent), never as HTML.
(function () {
  "use strict";

  var CFG = JSON.parse(document.getElementById("ad-config").textContent);
  var API = CFG.api;
  var STATUS = { indexed: "已索引", pending: "待索引", skipped: "已跳过", disabled: "已停用" };
  var KIND = { upload: "上传", replace: "替换", disable: "停用", enable: "启用", delete: "删除", reindex: "重建索引" };
  var JOB_STATUS = { queued: "排队中", running: "进行中", done: "已完成", failed: "失败" };
  var STAGE = {
    queued: "排队中", waiting: "等待其他索引任务完成", parse: "解析文档", embed: "向量化与建索引",
    calibrate: "校准拒答阈值", faq: "核对常见问题", reload: "切换到新索引", done: "完成", failed: "失败"
  };
  var STEPS = ["parse", "embed", "calibrate", "faq", "reload"];
  var FILE_STATE = { queued: "待解析", parsed: "已解析", skipped: "跳过", excluded: "已停用，不索引" };

  var docs = [];
  var filter = "all";
  var sortKey = "title";
  var sortDesc = false;
  var jobs = {};  // id -> job
  var polling = null;
  var replaceTarget = null;

  function $(id) { return document.getElementById(id); }

  function el(tag, attrs, children) {
    var e = document.createElement(tag);
    if (attrs) {
      Object.keys(attrs).forEach(function (k) {
        if (k === "text") e.textContent = attrs[k];
        else if (k === "cls") e.className = attrs[k];
        else if (k === "on") Object.keys(attrs.on).forEach(function (ev) { e.addEventListener(ev, attrs.on[ev]); });
        else e.setAttribute(k, attrs[k]);
      });
    }
    (children || []).forEach(function (c) {
      if (c === null || c === undefined) return;
      e.appendChild(typeof c === "string" ? document.createTextNode(c) : c);
    });
    return e;
  }

  function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); }

  function toast(msg, bad) {
    var t = $("ad-toast");
    t.textContent = msg;
    t.className = "fq-toast" + (bad ? " bad" : "");
    t.hidden = false;
    clearTimeout(toast.timer);
    toast.timer = setTimeout(function () { t.hidden = true; }, 4000);
  }

  function size(n) {
    if (!n) return "—";
    if (n < 1024) return n + " B";
    if (n < 1024 * 1024) return (n / 1024).toFixed(1) + " KB";
    return (n / 1024 / 1024).toFixed(2) + " MB";
  }

  function when(iso) {
    if (!iso) return "—";
    var d = new Date(iso);
    if (isNaN(d.getTime())) return String(iso);
    function p(x) { return (x < 10 ? "0" : "") + x; }
    return d.getFullYear() + "-" + p(d.getMonth() + 1) + "-" + p(d.getDate()) + " " + p(d.getHours()) + ":" + p(d.getMinutes());
  }

  function who(actor) {
    if (!actor) return "—";
    return actor.indexOf("key:") === 0 ? "密钥 " + actor.slice(4) : actor;
  }

  function request(method, path, body) {
    var opts = { method: method, headers: { "Accept": "application/json" }, credentials: "same-origin" };
    if (method !== "GET") opts.headers["X-CSRF-Token"] = CFG.csrf;
    if (body instanceof FormData) opts.body = body;
    else if (body !== undefined) { opts.body = JSON.stringify(body); opts.headers["Content-Type"] = "application/json"; }
    return fetch(API + path, opts).then(function (r) {
      return r.text().then(function (text) {
        var data = null;
        try { data = text ? JSON.parse(text) : null; } catch (e) { data = { detail: text }; }
        if (r.status === 401) { location.href = "/login?next=" + encodeURIComponent(location.pathname); }
        return { status: r.status, ok: r.ok, data: data || {} };
      });
    });
  }

  // -- the list -------------------------------------------------------------------------------
  function loadDocs() {
    return request("GET", "/documents").then(function (r) {
      if (!r.ok) { toast(r.data.detail || "文档列表读取失败", true); return; }
      docs = r.data;
      renderFilter();
      renderDocs();
    });
  }

  function renderFilter() {
    var box = $("ad-filter");
    clear(box);
    var counts = { all: docs.length };
    docs.forEach(function (d) { counts[d.status] = (counts[d.status] || 0) + 1; });
    [["all", "全部"], ["indexed", STATUS.indexed], ["pending", STATUS.pending], ["skipped", STATUS.skipped],
     ["disabled", STATUS.disabled]].forEach(function (f) {
      if (f[0] !== "all" && !counts[f[0]]) return;
      box.appendChild(el("button", {
        type: "button", cls: "fq-chip" + (filter === f[0] ? " on" : ""), "data-filter": f[0],
        on: { click: function () { filter = f[0]; renderFilter(); renderDocs(); } }
      }, [f[1], el("span", { cls: "fq-count", text: String(counts[f[0]] || 0) })]));
    });
  }

  function compare(a, b) {
    var x = a[sortKey], y = b[sortKey];
    if (typeof x === "number" || typeof y === "number") return (x || 0) - (y || 0);
    return String(x || "").localeCompare(String(y || ""), "zh-CN");
  }

  function renderDocs() {
    var q = $("ad-search").value.trim().toLowerCase();
    var rows = docs.filter(function (d) {
      if (filter !== "all" && d.status !== filter) return false;
      return !q || d.title.toLowerCase().indexOf(q) >= 0 || d.source.toLowerCase().indexOf(q) >= 0;
    });
    rows.sort(function (a, b) { var c = compare(a, b); return sortDesc ? -c : c; });
    var body = $("ad-table").querySelector("tbody");
    clear(body);
    rows.forEach(function (d) { body.appendChild(docRow(d)); });
    $("ad-count").textContent = String(docs.length);
    $("ad-empty").hidden = rows.length > 0;
    document.querySelectorAll("#ad-table th[data-sort]").forEach(function (th) {
      th.classList.toggle("on", th.getAttribute("data-sort") === sortKey);
      th.classList.toggle("desc", th.getAttribute("data-sort") === sortKey && sortDesc);
    });
    $("ad-sort").value = sortKey;
  }

  function docRow(d) {
    var status = el("td", null, [el("span", { cls: "fq-badge ad-" + d.status, text: STATUS[d.status] || d.status })]);
    if (d.reason) status.appendChild(el("span", { cls: "ad-reason", text: d.reason }));
    var ops = el("td", { cls: "ad-ops" });
    ops.appendChild(el("button", { type: "button", cls: "fq-small", "data-op": "open", text: "查看",
      on: { click: function () { openDoc(d.id); } } }));
    ops.appendChild(el("button", { type: "button", cls: "fq-small", "data-op": "replace", text: "替换",
      on: { click: function () { replaceTarget = d; $("ad-replace-file").click(); } } }));
    var disabled = d.status === "disabled";
    ops.appendChild(el("button", { type: "button", cls: "fq-small", "data-op": disabled ? "enable" : "disable",
      text: disabled ? "启用" : "停用", on: { click: function () { setEnabled(d, disabled); } } }));
    var del = el("button", { type: "button", cls: "fq-small fq-danger", "data-op": "delete", text: "删除" });
    del.addEventListener("click", function () {
      if (del.getAttribute("data-armed") === "1") { removeDoc(d); return; }
      del.setAttribute("data-armed", "1");
      del.textContent = "确认删除";
      setTimeout(function () { del.removeAttribute("data-armed"); del.textContent = "删除"; }, 4000);
    });
    ops.appendChild(del);
    var tr = el("tr", { "data-id": d.id, "data-source": d.source, cls: disabled ? "is-disabled" : "" }, [
      el("td", { cls: "ad-title" }, [el("button", { type: "button", text: d.title, on: { click: function () { openDoc(d.id); } } })]),
      el("td", { cls: "ad-file", text: d.source }),
      el("td", { text: d.format || "—" }),
      el("td", { cls: "ad-r", text: size(d.size) }),
      el("td", { cls: "ad-r", text: d.indexed ? String(d.chunks) : "—" }),
      status,
      el("td", { cls: "ad-when", text: when(d.indexed_at) }),
      el("td", { text: who(d.uploaded_by) }),
      ops
    ]);
    return tr;
  }

  // -- changes --------------------------------------------------------------------------------
  function setEnabled(d, enabled) {
    request("PATCH", "/documents/" + d.id, { enabled: enabled }).then(function (r) {
      if (!r.ok) { toast(r.data.detail || "操作失败", true); return; }
      toast((enabled ? "已启用：" : "已停用：") + d.title + "，正在后台更新索引");
      if (r.data.job) track(r.data.job);
      loadDocs();
    });
  }

  function removeDoc(d) {
    request("DELETE", "/documents/" + d.id).then(function (r) {
      if (!r.ok) { toast(r.data.detail || "删除失败", true); return; }
      toast("已删除：" + d.title + "，正在后台更新索引");
      if (r.data.job) track(r.data.job);
      if ($("ad-detail").getAttribute("data-id") === d.id) $("ad-detail").hidden = true;
      loadDocs();
    });
  }

  function result(cls, text) {
    var li = el("li", { cls: cls, text: text });
    $("ad-results").appendChild(li);
    return li;
  }

  // files in requests of at most the server's upload body size; a file over the size limit is
  // refused here, as the server would
  function batches(files) {
    var out = [], cur = [], curSize = 0, budget = CFG.uploadBodyLimit - 200000;
    files.forEach(function (f) {
      if (cur.length && (curSize + f.size > budget || cur.length >= CFG.maxFiles)) { out.push(cur); cur = []; curSize = 0; }
      cur.push(f); curSize += f.size;
    });
    if (cur.length) out.push(cur);
    return out;
  }

  function upload(fileList) {
    var files = Array.prototype.slice.call(fileList || []);
    if (!files.length) return;
    clear($("ad-results"));
    var ok = files.filter(function (f) {
      if (f.size > CFG.maxFileBytes) {
        result("bad", f.name + "：文件过大（" + size(f.size) + "，上限 " + size(CFG.maxFileBytes) + "）");
        return false;
      }
      return true;
    });
    var chain = Promise.resolve();
    batches(ok).forEach(function (batch) {
      chain = chain.then(function () {
        var busy = result("busy", "正在上传 " + batch.map(function (f) { return f.name; }).join("、") + " …");
        var form = new FormData();
        batch.forEach(function (f) { form.append("files", f, f.name); });
        return request("POST", "/documents", form).then(function (r) {
          busy.remove();
          (r.data.accepted || []).forEach(function (a) { result("ok", a.source + "：已上传，正在建立索引"); });
          (r.data.refused || []).forEach(function (x) { result("bad", x.file + "：未接受（" + x.reason + "）"); });
          if (!r.data.accepted && !r.data.refused) result("bad", "上传失败：" + (r.data.detail || r.status));
          if (r.data.job) track(r.data.job);
        });
      });
    });
    chain.then(loadDocs);
  }

  function replaceWith(file) {
    var d = replaceTarget;
    replaceTarget = null;
    if (!d || !file) return;
    var form = new FormData();
    form.append("file", file, file.name);
    request("PUT", "/documents/" + d.id, form).then(function (r) {
      if (!r.ok) { toast(d.title + "：未替换（" + (r.data.detail || r.status) + "）", true); return; }
      toast("已替换：" + d.title + "，正在后台更新索引");
      track(r.data.job);
      loadDocs();
    });
  }

  // -- jobs -----------------------------------------------------------------------------------
  function track(job) {
    jobs[job.id] = job;
    renderJobs();
    if (!polling) polling = setInterval(poll, 700);
  }

  function poll() {
    var open = Object.keys(jobs).filter(function (id) { return jobs[id].status === "queued" || jobs[id].status === "running"; });
    if (!open.length) { clearInterval(polling); polling = null; return; }
    Promise.all(open.map(function (id) {
      return request("GET", "/jobs/" + id).then(function (r) {
        if (!r.ok) return false;
        var was = jobs[id].status;
        jobs[id] = r.data;
        return (r.data.status === "done" || r.data.status === "failed") && was !== r.data.status;
      });
    })).then(function (changed) {
      renderJobs();
      if (changed.some(Boolean)) {
        loadDocs();
        var open = $("ad-detail").getAttribute("data-id");
        if (open && !$("ad-detail").hidden) openDoc(open, true);
      }
    });
  }

  function renderJobs() {
    var list = $("ad-jobs");
    clear(list);
    var ids = Object.keys(jobs).map(Number).sort(function (a, b) { return b - a; }).slice(0, 8);
    $("ad-jobs-card").hidden = ids.length === 0;
    ids.forEach(function (id) {
      var j = jobs[id];
      var p = j.progress || {};
      var stage = j.status === "running" ? (STAGE[p.stage] || j.stage) : JOB_STATUS[j.status];
      var head = el("div", { cls: "ad-job-head" }, [
        el("span", { cls: "ad-job-what", text: "#" + j.id + " " + (KIND[j.kind] || j.kind) + "：" + (j.documents || []).join("、") }),
        el("span", { cls: "fq-badge ad-" + j.status, "data-status": j.status, text: JOB_STATUS[j.status] || j.status }),
        el("span", { cls: "ad-job-stage", text: stage + (j.status === "queued" && j.ahead ? "（前面还有 " + j.ahead + " 个任务）" : "") }),
        el("span", { cls: "fq-muted", text: who(j.actor) + " · " + when(j.created_at) })
      ]);
      var li = el("li", { cls: "ad-job", "data-job": String(j.id) }, [head]);
      if (j.status === "running" || j.status === "done") {
        var seen = (p.stages || []).map(function (s) { return s.stage; });
        var steps = el("ul", { cls: "ad-steps" });
        STEPS.forEach(function (s) {
          if (s === "calibrate" && seen.indexOf(s) < 0 && j.status === "done") return;
          var cls = j.status === "done" || (seen.indexOf(s) >= 0 && p.stage !== s) ? "done" : (p.stage === s ? "now" : "");
          var label = STAGE[s] + (s === "embed" && p.embedded ? "（" + p.embedded + " 段文本）" : "");
          steps.appendChild(el("li", { cls: cls, text: label }));
        });
        li.appendChild(steps);
      }
      var files = Object.keys(p.files || {});
      if (files.length) {
        var ul = el("ul", { cls: "ad-job-files" });
        files.slice(0, 30).forEach(function (f) {
          var s = p.files[f];
          var text = f + "：" + (FILE_STATE[s.state] || s.state);
          if (s.state === "parsed") text += "（" + s.chunks + " 块）";
          if (s.reason && s.state !== "excluded") text += "：" + s.reason;
          ul.appendChild(el("li", { text: text }));
        });
        li.appendChild(ul);
      }
      if (j.status === "failed") li.appendChild(el("p", { cls: "ad-job-error", text: "原因：" + (j.error || "未知") + "。当前索引照常使用。" }));
      list.appendChild(li);
    });
  }

  function loadJobs() {
    request("GET", "/jobs").then(function (r) {
      if (!r.ok) return;
      r.data.slice(0, 5).forEach(function (j) { jobs[j.id] = j; });
      renderJobs();
      if (r.data.some(function (j) { return j.status === "queued" || j.status === "running"; }) && !polling) {
        polling = setInterval(poll, 700);
      }
    });
  }

  // -- one document ---------------------------------------------------------------------------
  function viewerHref(source, start, end) {
    return "/view/" + encodeURIComponent(source).replace(/%2F/g, "/") + "?start=" + start + "&end=" + end + "#kb-hit";
  }

  function openDoc(id, quiet) {
    request("GET", "/documents/" + id).then(function (r) {
      if (!r.ok) { if (!quiet) toast(r.data.detail || "文档读取失败", true); return; }
      var d = r.data;
      var box = $("ad-detail");
      box.setAttribute("data-id", d.id);
      $("ad-d-title").textContent = d.title;
      var meta = [d.source, d.format, size(d.size), STATUS[d.status] || d.status];
      if (d.indexed) meta.push(d.chars + " 字", d.chunk_count + " 块", "索引于 " + when(d.indexed_at));
      if (d.uploaded_by) meta.push(who(d.uploaded_by) + " 上传于 " + when(d.uploaded_at));
      $("ad-d-meta").textContent = meta.join(" · ");
      var note = $("ad-d-note");
      note.hidden = !d.reason && d.indexed;
      note.textContent = d.reason || (d.indexed ? "" : "这个文档还不在索引中，没有解析结果可看。");
      var view = $("ad-d-view");
      view.hidden = !d.viewer;
      if (d.viewer) view.setAttribute("href", d.viewer);
      $("ad-d-text").textContent = d.text || "";
      var outline = $("ad-d-outline");
      clear(outline);
      (d.outline || []).forEach(function (h) {
        var li = el("li", null,
          [el("a", { href: viewerHref(d.source, h.start, h.end), target: "_blank", rel: "noopener", text: h.label })]);
        li.style.paddingLeft = (h.level - 1) * 18 + "px";  // CSSOM: allowed by the page's CSP
        outline.appendChild(li);
      });
      if (!(d.outline || []).length) outline.appendChild(el("li", { cls: "fq-muted", text: "没有识别出标题。" }));
      var chunks = $("ad-d-chunks");
      clear(chunks);
      (d.chunks || []).forEach(function (c, i) {
        var headBits = [el("span", { cls: "ad-chunk-sec", text: "#" + (i + 1) + " " + (c.section || "（无标题）") }),
          el("span", { text: "第 " + (c.start + 1) + "–" + c.end + " 字" })];
        if (c.duplicate_of) headBits.push(el("span", { text: "近似重复，不参与检索" }));
        headBits.push(el("a", { href: viewerHref(d.source, c.start, c.end), target: "_blank", rel: "noopener", text: "在原文中查看" }));
        chunks.appendChild(el("li", { cls: "ad-chunk" + (c.duplicate_of ? " dup" : "") }, [
          el("div", { cls: "ad-chunk-head" }, headBits), el("p", { cls: "ad-chunk-text", text: c.text })]));
      });
      box.hidden = false;
      if (!quiet) box.scrollIntoView({ behavior: "smooth", block: "start" });
    });
  }

  function showTab(name) {
    document.querySelectorAll("#ad-detail .fq-tabs button").forEach(function (b) {
      b.classList.toggle("on", b.getAttribute("data-tab") === name);
    });
    $("ad-d-text").hidden = name !== "text";
    $("ad-d-outline").hidden = name !== "outline";
    $("ad-d-chunks").hidden = name !== "chunks";
  }

  // -- wiring ---------------------------------------------------------------------------------
  $("ad-app-title").textContent = CFG.title;
  $("ad-who").textContent = CFG.me ? "管理员：" + CFG.me : "";
  $("ad-limit").textContent = "每个文件不超过 " + size(CFG.maxFileBytes) + "；同名文件请用“替换”上传新版本";
  $("ad-files").addEventListener("change", function (e) { upload(e.target.files); e.target.value = ""; });
  var drop = $("ad-drop");
  ["dragenter", "dragover"].forEach(function (ev) {
    drop.addEventListener(ev, function (e) { e.preventDefault(); drop.classList.add("over"); });
  });
  ["dragleave", "drop"].forEach(function (ev) {
    drop.addEventListener(ev, function (e) { e.preventDefault(); drop.classList.remove("over"); });
  });
  drop.addEventListener("drop", function (e) { upload(e.dataTransfer && e.dataTransfer.files); });
  $("ad-replace-file").addEventListener("change", function (e) { replaceWith(e.target.files[0]); e.target.value = ""; });
  $("ad-search").addEventListener("input", renderDocs);
  $("ad-sort").addEventListener("change", function () { sortKey = $("ad-sort").value; sortDesc = false; renderDocs(); });
  document.querySelectorAll("#ad-table th[data-sort]").forEach(function (th) {
    th.addEventListener("click", function () {
      var k = th.getAttribute("data-sort");
      if (k === sortKey) sortDesc = !sortDesc; else { sortKey = k; sortDesc = false; }
      renderDocs();
    });
  });
  $("ad-refresh").addEventListener("click", function () { loadDocs(); loadJobs(); });
  $("ad-d-close").addEventListener("click", function () { $("ad-detail").hidden = true; });
  document.querySelectorAll("#ad-detail .fq-tabs button").forEach(function (b) {
    b.addEventListener("click", function () { showTab(b.getAttribute("data-tab")); });
  });
  loadDocs();
  loadJobs();
})();
