// The admins' users and keys page: plain JS over /api/admin/users, /api/admin/keys and
// /api/admin/audit. Served only to a logged-in admin; the session cookie goes by itself and
// every change carries the session's CSRF token (from the page's config). Text from the server
// goes into the page with textContent, never as HTML.
(function () {
  "use strict";

  const cfg = JSON.parse(document.getElementById("us-config").textContent);
  const ROLE = cfg.roleNames || {};
  const ACTION = {
    "user.add": "添加账户", "user.disable": "停用账户", "user.enable": "启用账户", "user.passwd": "重置密码",
    "user.role": "修改角色", "key.add": "创建密钥", "key.revoke": "吊销密钥",
    "document.upload": "上传文档", "document.replace": "替换文档", "document.disable": "停用文档",
    "document.enable": "启用文档", "document.delete": "删除文档",
  };
  const $ = (id) => document.getElementById(id);

  function el(tag, cls, text) {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function when(iso) {
    if (!iso) return "—";
    const d = new Date(iso);
    return Number.isNaN(d.getTime()) ? iso : d.toLocaleString("zh-CN", { hour12: false });
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

  async function call(method, path, json) {
    const headers = {};
    if (method !== "GET") headers["X-CSRF-Token"] = cfg.csrf;
    let body;
    if (json !== undefined) {
      headers["Content-Type"] = "application/json";
      body = JSON.stringify(json);
    }
    const r = await fetch(path, { method, headers, body, cache: "no-store", credentials: "same-origin" });
    if (r.status === 401) {
      window.location.assign("/login?next=" + encodeURIComponent("/admin/users"));
      throw new Error("登录已失效");
    }
    let data = null;
    try { data = await r.json(); } catch (e) { /* no body */ }
    if (!r.ok) throw new Error(data && typeof data.detail === "string" ? data.detail : "HTTP " + r.status);
    return data;
  }

  async function run(fn) {
    try {
      return await fn();
    } catch (e) {
      toast("出错了：" + e.message, true);
      return undefined;
    }
  }

  function cell(text, cls) {
    return el("td", cls, text);
  }

  // ---- users --------------------------------------------------------------------------
  function userRow(u) {
    const tr = el("tr");
    tr.dataset.name = u.name;
    tr.append(cell(u.name), cell(ROLE[u.role] || u.role), cell(when(u.created_at)), cell(when(u.last_login_at)),
      cell(u.disabled ? "已停用" : "正常", u.disabled ? "us-off" : "us-on"));
    const actions = el("td");
    const box = el("div", "us-actions");
    const toggle = el("button", null, u.disabled ? "启用" : "停用");
    toggle.type = "button";
    toggle.className = u.disabled ? "" : "fq-danger";
    toggle.dataset.action = u.disabled ? "enable" : "disable";
    toggle.addEventListener("click", () => run(async () => {
      await call("PATCH", "/api/admin/users/" + encodeURIComponent(u.name), { disabled: !u.disabled });
      toast(u.disabled ? "已启用 " + u.name : "已停用 " + u.name + "，其登录已失效");
      await refresh();
    }));
    const pw = el("input", "us-pw");
    pw.type = "password";
    pw.placeholder = "新密码";
    pw.autocomplete = "new-password";
    pw.minLength = 8;
    const reset = el("button", null, "重置密码");
    reset.type = "button";
    reset.dataset.action = "passwd";
    reset.addEventListener("click", () => run(async () => {
      if (pw.value.length < 8) { toast("新密码至少 8 位", true); return; }
      await call("PATCH", "/api/admin/users/" + encodeURIComponent(u.name), { password: pw.value });
      pw.value = "";
      toast("已重置 " + u.name + " 的密码，其登录已失效");
      await refresh();
    }));
    box.append(toggle, pw, reset);
    actions.append(box);
    tr.append(actions);
    return tr;
  }

  // ---- keys ---------------------------------------------------------------------------
  function keyRow(k) {
    const tr = el("tr");
    tr.dataset.name = k.name;
    tr.append(cell(k.name), cell(k.scope), cell(k.prefix + "…"), cell(when(k.created_at)), cell(when(k.last_used_at)),
      cell(k.revoked ? "已吊销" : "有效", k.revoked ? "us-off" : "us-on"));
    const actions = el("td");
    if (!k.revoked) {
      const b = el("button", "fq-danger", "吊销");
      b.type = "button";
      b.addEventListener("click", () => run(async () => {
        await call("POST", "/api/admin/keys/" + encodeURIComponent(k.name) + "/revoke");
        toast("已吊销密钥 " + k.name);
        await refresh();
      }));
      actions.append(b);
    }
    tr.append(actions);
    return tr;
  }

  function auditRow(a) {
    const tr = el("tr");
    const detail = a.detail && typeof a.detail === "object" ? JSON.stringify(a.detail) : String(a.detail || "");
    tr.append(cell(when(a.at)), cell(a.actor), cell(ACTION[a.action] || a.action), cell(a.target),
      cell(detail === "{}" ? "" : detail, "us-detail"));
    return tr;
  }

  async function refresh() {
    const [users, keys, audit] = await Promise.all([
      call("GET", "/api/admin/users"), call("GET", "/api/admin/keys"), call("GET", "/api/admin/audit?limit=200"),
    ]);
    $("us-users").tBodies[0].replaceChildren(...users.map(userRow));
    $("us-keys").tBodies[0].replaceChildren(...keys.map(keyRow));
    $("us-audit").tBodies[0].replaceChildren(...audit.map(auditRow));
  }

  // ---- wiring -------------------------------------------------------------------------
  $("us-app-title").textContent = cfg.title;
  $("us-who").textContent = "已登录：" + cfg.me;
  for (const r of cfg.roles) {
    const o = el("option", null, (ROLE[r] || r) + "（" + r + "）");
    o.value = r;
    $("us-role").append(o);
  }
  $("us-role").value = "trainer";

  $("us-add").addEventListener("submit", (ev) => {
    ev.preventDefault();
    run(async () => {
      const name = $("us-name").value.trim();
      await call("POST", "/api/admin/users", { name, role: $("us-role").value, password: $("us-password").value });
      $("us-name").value = "";
      $("us-password").value = "";
      toast("已添加账户 " + name);
      await refresh();
    });
  });

  $("us-key-add").addEventListener("submit", (ev) => {
    ev.preventDefault();
    run(async () => {
      const k = await call("POST", "/api/admin/keys", { name: $("us-key-name").value.trim(), scope: $("us-key-scope").value });
      $("us-key-name").value = "";
      $("us-key-value").textContent = k.key;
      $("us-key-new").hidden = false;
      await refresh();
    });
  });

  $("us-signout").addEventListener("click", async () => {
    try {
      await fetch("/api/auth/logout", { method: "POST", headers: { "X-CSRF-Token": cfg.csrf }, credentials: "same-origin" });
    } catch (e) { /* the login page says the rest */ }
    window.location.assign("/login?out=1");
  });

  run(refresh);
})();
