// The knowledge assistant as a floating button on any page (served at /widget.js):
//
//   <script src="http://KB-HOST:7860/widget.js" data-title="人事问答" async></script>
//
// Each <script> tag makes one widget: its own button and panel inside its own shadow root,
// its state in this closure; nothing global, no ids in the page. The panel is the KB server's
// /embed page in an iframe; the server's origin is taken from this script's own src, so the
// page only needs the one tag. /embed refuses to be framed by sites outside the server's
// app.embed_origins, so the panel only works there.
//
// Options, all optional, as data-* attributes on the script tag; each is validated here and a
// value that fails its rule falls back to the default (and the server checks them again):
//   data-position   bottom-right (default) | bottom-left | top-right | top-left
//   data-offset-x   distance from the left/right edge in px, 0-1000 (default 20)
//   data-offset-y   distance from the top/bottom edge in px, 0-1000 (default 20)
//   data-z-index    integer 0-2147483647 (default 2147483000)
//   data-color      #rgb or #rrggbb: the button's and the panel's accent (default #3056d3)
//   data-title      the panel's title, plain text, at most 60 characters
//   data-open       open on load ("", "true", "1", "yes"; absent or "false", "0", "no": closed)
//   data-question   a question asked when the panel first opens
//   data-user       the portal's user id (at most 128 characters), recorded with asks and feedback
//
// No eval, no HTML strings: every node is made with createElement, every text set as text,
// every style set through the CSSOM (so a strict Content-Security-Policy on the page is fine).
(function () {
  "use strict";

  const script = document.currentScript || unclaimedScript();
  if (!script || !script.src) return;
  script.setAttribute("data-kb-widget", "on");

  const DEFAULT_COLOR = "#3056d3";
  const SIZE = 56; // the button, px
  const GAP = 12; // between the button and the panel, px
  const POSITIONS = ["bottom-right", "bottom-left", "top-right", "top-left"];

  let origin;
  try {
    origin = new URL(script.src, document.baseURI).origin;
  } catch (e) {
    return;
  }
  if (!/^https?:\/\//.test(origin)) return;

  // ---- options ------------------------------------------------------------------------
  const data = (name) => {
    const v = script.getAttribute("data-" + name);
    return v === null ? null : String(v);
  };

  function int(name, lo, hi, dflt) {
    const v = (data(name) || "").trim();
    if (!/^\d{1,10}$/.test(v)) return dflt;
    const n = Number(v);
    return n >= lo && n <= hi ? n : dflt;
  }

  // one plain line: control, format and separator characters become spaces, runs of spaces one
  function plain(value, max) {
    if (!value) return "";
    const text = value.replace(/[\p{C}\p{Z}]+/gu, " ").trim();
    return Array.from(text).slice(0, max).join("");
  }

  function bool(name) {
    const v = data(name);
    if (v === null) return false;
    return !/^(false|0|no|off)$/i.test(v.trim());
  }

  const position = POSITIONS.includes((data("position") || "").trim()) ? data("position").trim() : POSITIONS[0];
  const offsetX = int("offset-x", 0, 1000, 20);
  const offsetY = int("offset-y", 0, 1000, 20);
  const zIndex = int("z-index", 0, 2147483647, 2147483000);
  const rawColor = (data("color") || "").trim();
  const color = /^#(?:[0-9a-f]{3}|[0-9a-f]{6})$/i.test(rawColor) ? rawColor.toLowerCase() : null;
  const title = plain(data("title"), 60);
  const question = (data("question") || "").trim().slice(0, 2000);
  const rawUser = (data("user") || "").trim();
  const user = rawUser.length <= 128 && !/[\p{Cc}\p{Cf}\p{Zl}\p{Zp}]/u.test(rawUser) ? rawUser : "";
  const openOnLoad = bool("open");

  const openLabel = "打开问答助手" + (title ? "：" + title : "");
  const closeLabel = "关闭" + (title ? "：" + title : "问答助手");

  function embedUrl() {
    const url = new URL("/embed", origin);
    if (title) url.searchParams.set("title", title);
    if (question) url.searchParams.set("q", question);
    if (user) url.searchParams.set("user", user);
    if (color) url.searchParams.set("color", color);
    return url.href;
  }

  // ---- the nodes ----------------------------------------------------------------------
  const [vertical, horizontal] = position.split("-");
  const host = document.createElement("kb-assistant-widget");
  host.style.all = "initial";
  const root = host.attachShadow({ mode: "open" });

  const button = document.createElement("button");
  button.type = "button";
  button.className = "kbw-button";
  button.setAttribute("aria-expanded", "false");
  button.setAttribute("aria-controls", "kbw-panel"); // ids are scoped to this shadow root
  Object.assign(button.style, {
    position: "fixed",
    [vertical]: offsetY + "px",
    [horizontal]: offsetX + "px",
    zIndex: String(zIndex),
    width: SIZE + "px",
    height: SIZE + "px",
    padding: "0",
    margin: "0",
    border: "none",
    borderRadius: "50%",
    background: color || DEFAULT_COLOR,
    color: "#fff",
    cursor: "pointer",
    display: "grid",
    placeItems: "center",
    boxShadow: "0 6px 20px rgba(0, 0, 0, 0.22)",
  });

  const panel = document.createElement("div");
  panel.id = "kbw-panel";
  panel.className = "kbw-panel";
  panel.setAttribute("role", "region");
  panel.setAttribute("aria-label", title || "问答助手");
  panel.hidden = true;
  Object.assign(panel.style, {
    position: "fixed",
    [vertical]: offsetY + SIZE + GAP + "px",
    [horizontal]: offsetX + "px",
    zIndex: String(zIndex),
    width: "min(400px, calc(100vw - " + 2 * offsetX + "px))",
    height: "min(640px, calc(100vh - " + (offsetY + SIZE + GAP + 16) + "px))",
    display: "none",
    overflow: "hidden",
    background: "#fff",
    borderRadius: "12px",
    boxShadow: "0 12px 40px rgba(0, 0, 0, 0.22)",
  });

  const NS = "http://www.w3.org/2000/svg";
  function icon(d) {
    const svg = document.createElementNS(NS, "svg");
    svg.setAttribute("viewBox", "0 0 24 24");
    svg.setAttribute("width", "26");
    svg.setAttribute("height", "26");
    svg.setAttribute("aria-hidden", "true");
    svg.setAttribute("focusable", "false");
    const path = document.createElementNS(NS, "path");
    path.setAttribute("d", d);
    path.setAttribute("fill", "currentColor");
    svg.append(path);
    return svg;
  }
  const chatIcon = icon("M4 3h16a2 2 0 0 1 2 2v11a2 2 0 0 1-2 2H9l-5 4v-4a2 2 0 0 1-2-2V5a2 2 0 0 1 2-2z" +
    "m3 6v2h2V9H7zm4 0v2h2V9h-2zm4 0v2h2V9h-2z");
  const closeIcon = icon("M6.4 5 12 10.6 17.6 5 19 6.4 13.4 12l5.6 5.6-1.4 1.4L12 13.4 6.4 19 5 17.6 10.6 12 5 6.4z");

  let iframe = null;

  function show(open) {
    panel.hidden = !open;
    panel.style.display = open ? "block" : "none";
    button.setAttribute("aria-expanded", String(open));
    button.setAttribute("aria-label", open ? closeLabel : openLabel);
    button.title = open ? closeLabel : openLabel;
    button.replaceChildren(open ? closeIcon : chatIcon);
  }

  function open() {
    if (!iframe) {
      iframe = document.createElement("iframe");
      iframe.title = title || "问答助手";
      iframe.setAttribute("sandbox", "allow-scripts allow-same-origin allow-forms");
      iframe.referrerPolicy = "no-referrer";
      Object.assign(iframe.style, { display: "block", width: "100%", height: "100%", border: "0" });
      iframe.src = embedUrl();
      panel.append(iframe);
    }
    show(true);
  }

  function close(refocus) {
    show(false);
    if (refocus) button.focus();
  }

  const isOpen = () => !panel.hidden;

  button.addEventListener("click", () => (isOpen() ? close(false) : open()));
  // Escape with the focus on this widget's button closes its panel ...
  root.addEventListener("keydown", (ev) => {
    if (ev.key === "Escape" && isOpen()) {
      ev.stopPropagation();
      close(true);
    }
  });
  // ... and inside its panel, the embed page tells it (the document viewer closes first)
  window.addEventListener("message", (ev) => {
    if (!iframe || ev.source !== iframe.contentWindow || ev.origin !== origin) return;
    if (ev.data && ev.data.kb === "escape" && isOpen()) close(true);
  });

  show(false);
  root.append(button, panel);

  function mount() {
    document.body.append(host);
    if (openOnLoad) open();
  }
  if (document.body) {
    mount();
  } else {
    document.addEventListener("DOMContentLoaded", mount, { once: true });
  }

  // Without document.currentScript (a loader that evaluates scripts itself): the first
  // widget script on the page not yet taken by an earlier widget.
  function unclaimedScript() {
    for (const s of document.querySelectorAll("script[src]")) {
      if (s.hasAttribute("data-kb-widget")) continue;
      try {
        if (new URL(s.src, document.baseURI).pathname.endsWith("/widget.js")) return s;
      } catch (e) { /* not a URL */ }
    }
    return null;
  }
})();
