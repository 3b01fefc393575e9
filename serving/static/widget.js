/*
 * Kefu web widget: a chat bubble any page can embed.
 *
 *   <script src="https://kefu.example.com/widget.js" data-kefu-token="ks1.…" data-kefu-lang="zh" async></script>
 *
 * or, once the script is loaded, Kefu.init({token, lang, base, conversationId, title}).
 *
 * Everything lives in an open shadow root under one host element (#kefu-widget), so the host page's
 * CSS cannot reach in and ours cannot leak out. Protocol: docs/channels.md (history over HTTP, the
 * conversation over one WebSocket, retries reuse the client's message id so nothing is sent twice).
 */
(function () {
  "use strict";

  if (window.Kefu && window.Kefu.version) return; // loaded twice: keep the first

  var SCRIPT = document.currentScript;
  var SCRIPT_SRC = SCRIPT && SCRIPT.src ? SCRIPT.src : "";
  var BACKOFF_MS = [1000, 2000, 4000, 8000, 15000];
  var POST_FALLBACK_AFTER = 3; // failed socket attempts in a row before queued messages go over HTTP

  var STRINGS = {
    en: {
      title: "Customer service",
      open: "Open customer service chat",
      close: "Close chat",
      log: "Conversation",
      placeholder: "Type a message…",
      input: "Message",
      send: "Send",
      connecting: "Connecting…",
      online: "Online",
      reconnecting: "Reconnecting…",
      typing: "Typing…",
      you: "You",
      bot: "Assistant",
      agent: "Agent",
      human: function (name) { return name + " (human)"; },
      joined: function (name) { return "Agent " + name + " has joined"; },
      left: "The agent has left; the assistant is back",
      closed: "The conversation has been closed",
      queued: "waiting for connection…",
      error: function (detail) { return "Not sent: " + detail; },
      historyError: function (status) { return "Could not load the conversation (" + status + ")"; },
      rate: "How did we do?",
      rateStar: function (n) { return n === 1 ? "1 star" : n + " stars"; },
      rated: "Thanks for your rating!",
      rateError: function (detail) { return "Your rating was not sent: " + detail; },
    },
    zh: {
      title: "在线客服",
      open: "打开在线客服",
      close: "关闭",
      log: "会话",
      placeholder: "请输入消息…",
      input: "消息",
      send: "发送",
      connecting: "连接中…",
      online: "在线",
      reconnecting: "正在重新连接…",
      typing: "正在输入…",
      you: "我",
      bot: "智能助手",
      agent: "客服",
      human: function (name) { return name + "（人工客服）"; },
      joined: function (name) { return "人工客服 " + name + " 已加入"; },
      left: "人工客服已离开，智能助手继续为您服务",
      closed: "会话已结束",
      queued: "等待连接…",
      error: function (detail) { return "发送失败：" + detail; },
      historyError: function (status) { return "无法加载会话记录（" + status + "）"; },
      rate: "请为本次服务评分",
      rateStar: function (n) { return n + " 星"; },
      rated: "感谢您的评价！",
      rateError: function (detail) { return "评分未能提交：" + detail; },
    },
  };

  // -- small helpers ----------------------------------------------------------------------------

  function pickLang(lang) {
    var value = String(lang || navigator.language || "en").toLowerCase();
    return value.indexOf("zh") === 0 ? "zh" : "en";
  }

  function tokenCustomer(token) {
    // ks1.<base64url JSON {"c": customer, "e": expiry}>.<signature>; read only to key local storage.
    try {
      var part = String(token).split(".")[1] || "";
      var b64 = part.replace(/-/g, "+").replace(/_/g, "/");
      while (b64.length % 4) b64 += "=";
      var payload = JSON.parse(atob(b64));
      return payload && payload.c ? String(payload.c) : null;
    } catch (_err) {
      return null;
    }
  }

  function hash(text) {
    // FNV-1a, 32 bits: a short stable tag, not a secret.
    var h = 0x811c9dc5;
    for (var i = 0; i < text.length; i++) {
      h ^= text.charCodeAt(i);
      h = Math.imul(h, 0x01000193) >>> 0;
    }
    return ("0000000" + h.toString(16)).slice(-8);
  }

  function randomId(prefix) {
    if (window.crypto && crypto.randomUUID) return prefix + crypto.randomUUID().replace(/-/g, "");
    var bytes = new Uint8Array(16);
    if (window.crypto && crypto.getRandomValues) crypto.getRandomValues(bytes);
    else for (var i = 0; i < 16; i++) bytes[i] = Math.floor(Math.random() * 256);
    return prefix + Array.prototype.map.call(bytes, function (b) { return ("0" + b.toString(16)).slice(-2); }).join("");
  }

  function storage() {
    try {
      var probe = "kefu-probe";
      localStorage.setItem(probe, probe);
      localStorage.removeItem(probe);
      return localStorage;
    } catch (_err) {
      var memory = {};
      return {
        getItem: function (k) { return Object.prototype.hasOwnProperty.call(memory, k) ? memory[k] : null; },
        setItem: function (k, v) { memory[k] = String(v); },
        removeItem: function (k) { delete memory[k]; },
      };
    }
  }

  function agentName(value, fallback) {
    if (!value) return fallback;
    if (typeof value === "string") return value;
    return value.name || value.agent_name || value.id || fallback;
  }

  function detailOf(body, status) {
    if (body && typeof body.detail === "string") return body.detail;
    if (body && body.detail) return JSON.stringify(body.detail);
    return "HTTP " + status;
  }

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  // -- the widget -------------------------------------------------------------------------------

  function Widget(options) {
    if (!options || !options.token) throw new Error("Kefu.init: a session token is required");
    var scriptOrigin = SCRIPT_SRC ? new URL(SCRIPT_SRC).origin : location.origin;
    this.base = String(options.base || scriptOrigin).replace(/\/+$/, "");
    this.cssUrl = options.css || (SCRIPT_SRC && new URL(SCRIPT_SRC).origin === new URL(this.base).origin
      ? new URL("widget.css", SCRIPT_SRC).href
      : this.base + "/widget.css");
    this.token = options.token;
    this.lang = pickLang(options.lang);
    this.t = STRINGS[this.lang];
    this.title = options.title || this.t.title;
    this.store = storage();
    this.tag = hash(tokenCustomer(this.token) || this.token);
    var convKey = "kefu-widget." + this.tag + ".conversation";
    this.conversationId = options.conversationId || this.store.getItem(convKey);
    if (!this.conversationId) {
      this.conversationId = randomId("w-");
      this.store.setItem(convKey, this.conversationId);
    }
    this.outboxKey = "kefu-widget." + this.tag + ".outbox." + this.conversationId;
    this.ratedKey = "kefu-widget." + this.tag + ".rated." + this.conversationId;
    this.outbox = this.loadOutbox();
    this.socket = null;
    this.failures = 0; // socket attempts in a row that never opened
    this.attempt = 0;
    this.connectedOnce = false;
    this.retryTimer = null;
    this.destroyed = false;
    this.streams = {}; // reply id -> bot bubble being streamed
    this.human = null; // the human agent's name while one has the conversation
    this.isOpen = false;
    this.build();
    var self = this;
    this.loadHistory().then(function () { self.connect(); });
  }

  Widget.prototype.build = function () {
    var t = this.t;
    var host = el("div");
    host.id = "kefu-widget";
    host.setAttribute("data-kefu", "");
    host.style.cssText = "all: initial; position: static; display: none;";
    var root = host.attachShadow ? host.attachShadow({ mode: "open" }) : host;
    var css = el("link");
    css.rel = "stylesheet";
    css.href = this.cssUrl;
    // Shown once styled, so the panel never flashes unstyled into the host page.
    css.onload = css.onerror = function () { host.style.display = "block"; };
    root.appendChild(css);

    var wrap = el("div", "kefu-root");
    wrap.lang = this.lang === "zh" ? "zh-CN" : "en";

    var launcher = el("button", "kefu-launcher");
    launcher.id = "kefu-launcher";
    launcher.type = "button";
    launcher.setAttribute("aria-label", t.open);
    launcher.setAttribute("aria-expanded", "false");
    launcher.setAttribute("aria-controls", "kefu-panel");
    launcher.innerHTML =
      '<svg viewBox="0 0 24 24" width="28" height="28" aria-hidden="true" focusable="false">' +
      '<path fill="currentColor" d="M12 3C6.5 3 2 6.8 2 11.5c0 2.4 1.2 4.6 3.1 6.1L4.5 21l3.9-2.1c1.1.3 2.3.5 ' +
      '3.6.5 5.5 0 10-3.8 10-8.5S17.5 3 12 3zm-4 9.8a1.3 1.3 0 110-2.6 1.3 1.3 0 010 2.6zm4 0a1.3 1.3 0 110-2.6 ' +
      '1.3 1.3 0 010 2.6zm4 0a1.3 1.3 0 110-2.6 1.3 1.3 0 010 2.6z"/></svg>';
    var badge = el("span", "kefu-badge");
    badge.setAttribute("aria-hidden", "true");
    launcher.appendChild(badge);

    var panel = el("section", "kefu-panel");
    panel.id = "kefu-panel";
    panel.hidden = true;
    panel.setAttribute("role", "dialog");
    panel.setAttribute("aria-label", this.title);

    var header = el("header", "kefu-header");
    var heading = el("div", "kefu-heading");
    heading.appendChild(el("h2", "kefu-title", this.title));
    var status = el("div", "kefu-status", t.connecting);
    status.id = "kefu-status";
    status.setAttribute("role", "status");
    status.setAttribute("aria-live", "polite");
    heading.appendChild(status);
    var closeBtn = el("button", "kefu-close", "×");
    closeBtn.type = "button";
    closeBtn.setAttribute("aria-label", t.close);
    header.appendChild(heading);
    header.appendChild(closeBtn);

    var log = el("div", "kefu-log");
    log.id = "kefu-log";
    log.setAttribute("role", "log");
    log.setAttribute("aria-live", "polite");
    log.setAttribute("aria-label", t.log);
    log.tabIndex = 0;

    var form = el("form", "kefu-form");
    form.noValidate = true;
    var input = el("textarea", "kefu-input");
    input.id = "kefu-input";
    input.rows = 1;
    input.maxLength = 4000;
    input.placeholder = t.placeholder;
    input.setAttribute("aria-label", t.input);
    input.setAttribute("enterkeyhint", "send");
    var send = el("button", "kefu-send", t.send);
    send.id = "kefu-send";
    send.type = "submit";
    send.setAttribute("aria-label", t.send);
    form.appendChild(input);
    form.appendChild(send);

    panel.appendChild(header);
    panel.appendChild(log);
    panel.appendChild(form);
    wrap.appendChild(panel);
    wrap.appendChild(launcher);
    root.appendChild(wrap);
    (document.body || document.documentElement).appendChild(host);

    this.host = host;
    this.root = root;
    this.launcher = launcher;
    this.panel = panel;
    this.statusEl = status;
    this.log = log;
    this.input = input;
    this.sendBtn = send;

    var self = this;
    launcher.addEventListener("click", function () { self.toggle(); });
    closeBtn.addEventListener("click", function () { self.close(); launcher.focus(); });
    panel.addEventListener("keydown", function (event) {
      if (event.key === "Escape") { self.close(); launcher.focus(); }
    });
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      self.submit();
    });
    input.addEventListener("keydown", function (event) {
      // Enter sends, Shift+Enter is a newline; never while an IME is composing (Chinese input).
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing && event.keyCode !== 229) {
        event.preventDefault();
        self.submit();
      }
    });
    input.addEventListener("input", function () { self.autosize(); });
    this.onOnline = function () { if (!self.socket) self.connectNow(); };
    window.addEventListener("online", this.onOnline);
  };

  // -- panel ------------------------------------------------------------------------------------

  Widget.prototype.open = function () {
    this.isOpen = true;
    this.panel.hidden = false;
    this.launcher.setAttribute("aria-expanded", "true");
    this.launcher.classList.add("kefu-active");
    this.launcher.classList.remove("kefu-unread");
    this.scroll();
    this.input.focus();
  };

  Widget.prototype.close = function () {
    this.isOpen = false;
    this.panel.hidden = true;
    this.launcher.setAttribute("aria-expanded", "false");
    this.launcher.classList.remove("kefu-active");
  };

  Widget.prototype.toggle = function () {
    if (this.isOpen) this.close();
    else this.open();
  };

  Widget.prototype.autosize = function () {
    this.input.style.height = "auto";
    this.input.style.height = Math.min(this.input.scrollHeight, 120) + "px";
  };

  Widget.prototype.scroll = function () {
    this.log.scrollTop = this.log.scrollHeight;
  };

  Widget.prototype.setStatus = function () {
    var connected = this.socket && this.socket.readyState === WebSocket.OPEN;
    var text;
    if (!connected) text = this.connectedOnce ? this.t.reconnecting : this.t.connecting;
    else if (this.human) text = this.t.human(this.human);
    else text = this.t.online;
    this.statusEl.textContent = text;
    this.statusEl.classList.toggle("kefu-offline", !connected);
    this.statusEl.classList.toggle("kefu-human-mode", Boolean(this.human));
  };

  // -- rendering --------------------------------------------------------------------------------

  Widget.prototype.add = function (role, text, name) {
    var typing = this.log.querySelector(".kefu-typing");
    var msg = el("div", "kefu-msg kefu-" + role);
    if (role === "human") msg.appendChild(el("div", "kefu-name", name || this.t.agent));
    var body = el("div", "kefu-text", text);
    msg.appendChild(body);
    if (role === "notice") msg.setAttribute("role", "note");
    // Messages go above the typing indicator, which always stays last.
    this.log.insertBefore(msg, typing);
    if (!this.isOpen && role !== "customer") this.launcher.classList.add("kefu-unread");
    this.scroll();
    return msg;
  };

  Widget.prototype.setTyping = function (on) {
    var typing = this.log.querySelector(".kefu-typing");
    if (on && !typing) {
      typing = el("div", "kefu-typing");
      typing.setAttribute("aria-label", this.t.typing);
      typing.setAttribute("role", "status");
      for (var i = 0; i < 3; i++) typing.appendChild(el("span", "kefu-dot"));
      this.log.appendChild(typing);
      this.scroll();
    } else if (!on && typing) {
      typing.remove();
    }
  };

  Widget.prototype.renderHistory = function (messages) {
    this.log.textContent = "";
    this.streams = {};
    for (var i = 0; i < messages.length; i++) {
      var m = messages[i];
      var role = m.role === "customer" || m.role === "human" || m.role === "notice" ? m.role : "agent";
      this.add(role, m.text || "", role === "human" ? agentName(m.agent || m.agent_name || m.name, null) : null);
    }
    this.launcher.classList.remove("kefu-unread");
  };

  // -- history ----------------------------------------------------------------------------------

  Widget.prototype.api = function (path, init) {
    init = init || {};
    var headers = init.headers || {};
    headers.Authorization = "Bearer " + this.token;
    init.headers = headers;
    return fetch(this.base + "/v1/conversations/" + encodeURIComponent(this.conversationId) + path, init);
  };

  Widget.prototype.loadHistory = function () {
    var self = this;
    return this.api("", { headers: { Accept: "application/json" } })
      .then(function (res) {
        if (res.status === 404) return { messages: [] }; // a new conversation
        return res.json().then(function (body) {
          if (!res.ok) throw new Error(self.t.historyError(detailOf(body, res.status)));
          return body;
        });
      })
      .then(function (data) {
        var messages = Array.isArray(data.messages) ? data.messages : [];
        self.renderHistory(messages);
        self.applyHandoff(data);
        self.reconcileOutbox(messages);
        if (data.state === "end" && messages.length) self.askRating();
      })
      .catch(function (err) {
        if (!self.log.querySelector(".kefu-msg")) self.log.textContent = "";
        self.add("notice", String(err && err.message ? err.message : err)).classList.add("kefu-error");
        self.reconcileOutbox([]);
      });
  };

  Widget.prototype.applyHandoff = function (data) {
    // The history carries the handoff's status; accept the shapes a server may reasonably use.
    // The history says who is on the conversation: {"handoff": {"status", "agent"}} or null.
    var handoff = data.handoff || {};
    if (handoff.status === "active") this.human = agentName(handoff.agent || handoff.agent_name, this.t.agent);
    else if ("handoff" in data) this.human = null;
    this.setStatus();
  };

  // -- outbox: every message stays here, under its id, until the server has answered it ---------

  Widget.prototype.loadOutbox = function () {
    try {
      var list = JSON.parse(this.store.getItem(this.outboxKey) || "[]");
      return Array.isArray(list) ? list.filter(function (m) { return m && m.id && m.text; }) : [];
    } catch (_err) {
      return [];
    }
  };

  Widget.prototype.saveOutbox = function () {
    var keep = this.outbox.map(function (m) { return { id: m.id, text: m.text, lang: m.lang, acked: m.acked }; });
    if (keep.length) this.store.setItem(this.outboxKey, JSON.stringify(keep));
    else this.store.removeItem(this.outboxKey);
  };

  Widget.prototype.settle = function (id) {
    var entry = this.find(id);
    this.outbox = this.outbox.filter(function (m) { return m.id !== id; });
    this.saveOutbox();
    if (entry && entry.bubble) entry.bubble.classList.remove("kefu-queued");
    return entry;
  };

  Widget.prototype.find = function (id) {
    for (var i = 0; i < this.outbox.length; i++) if (this.outbox[i].id === id) return this.outbox[i];
    return null;
  };

  Widget.prototype.reconcileOutbox = function (messages) {
    // After a (re)load: a message the history already shows answered is done; one the history shows
    // unanswered keeps its bubble from the history; one the server never got gets its bubble back.
    var kept = [];
    for (var i = 0; i < this.outbox.length; i++) {
      var entry = this.outbox[i];
      var at = -1;
      for (var j = messages.length - 1; j >= 0; j--) {
        if (messages[j].role === "customer" && messages[j].text === entry.text) { at = j; break; }
      }
      var answered = at >= 0 && messages.slice(at + 1).some(function (m) { return m.role !== "customer"; });
      if (answered) continue;
      entry.resendOnly = at >= 0;
      entry.bubble = at >= 0 ? null : this.add("customer", entry.text);
      if (entry.bubble) entry.bubble.classList.add("kefu-queued");
      entry.inflight = false;
      kept.push(entry);
    }
    this.outbox = kept;
    this.saveOutbox();
  };

  Widget.prototype.submit = function () {
    var text = this.input.value.replace(/\s+$/, "");
    if (!text.trim()) return;
    this.input.value = "";
    this.autosize();
    var entry = { id: randomId("m-"), text: text, lang: this.lang, acked: false, inflight: false };
    entry.bubble = this.add("customer", text);
    this.outbox.push(entry);
    this.saveOutbox();
    if (!this.trySend(entry)) {
      entry.bubble.classList.add("kefu-queued");
      entry.bubble.setAttribute("title", this.t.queued);
      if (this.failures >= POST_FALLBACK_AFTER) this.postQueued();
    }
    this.input.focus();
  };

  Widget.prototype.trySend = function (entry) {
    if (!this.socket || this.socket.readyState !== WebSocket.OPEN || entry.inflight === "post") return false;
    this.socket.send(JSON.stringify({ type: "message", id: entry.id, text: entry.text, lang: entry.lang }));
    entry.inflight = "ws";
    if (entry.bubble) entry.bubble.classList.remove("kefu-queued");
    return true;
  };

  Widget.prototype.flush = function () {
    for (var i = 0; i < this.outbox.length; i++) this.trySend(this.outbox[i]);
  };

  Widget.prototype.postQueued = function () {
    // The socket keeps failing (a proxy without WebSocket, say): send over HTTP with the same ids.
    var self = this;
    this.outbox.forEach(function (entry) {
      if (entry.inflight) return;
      entry.inflight = "post";
      self.setTyping(true);
      self.api("/messages", {
        method: "POST",
        headers: { "Content-Type": "application/json", Accept: "application/json" },
        body: JSON.stringify({ text: entry.text, lang: entry.lang, message_id: entry.id, channel: "web" }),
      })
        .then(function (res) {
          return res.json().then(function (body) {
            if (!res.ok) {
              if (res.status >= 500 || res.status === 429) { entry.inflight = false; return; }
              self.onEvent({ type: "error", id: entry.id, status: res.status, detail: detailOf(body, res.status) });
              return;
            }
            self.onEvent(Object.assign({}, body, { type: "reply", id: entry.id }));
          });
        })
        .catch(function () { entry.inflight = false; })
        .then(function () { self.setTyping(Object.keys(self.streams).length > 0); });
    });
  };

  // -- the socket -------------------------------------------------------------------------------

  Widget.prototype.socketUrl = function () {
    var url = new URL(this.base + "/v1/conversations/" + encodeURIComponent(this.conversationId) + "/ws");
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    url.searchParams.set("token", this.token);
    return url.href;
  };

  Widget.prototype.connect = function () {
    if (this.destroyed || this.socket) return;
    var self = this;
    var opened = false;
    var socket;
    try {
      socket = new WebSocket(this.socketUrl());
    } catch (_err) {
      this.scheduleReconnect();
      return;
    }
    this.socket = socket;
    this.setStatus();
    socket.onopen = function () {
      opened = true;
      self.failures = 0;
      self.attempt = 0;
      var reconnect = self.connectedOnce;
      self.connectedOnce = true;
      self.setStatus();
      // After a drop, fetch the history first so nothing said meanwhile is missed, then resend.
      var ready = reconnect ? self.loadHistory() : Promise.resolve();
      ready.then(function () {
        self.outbox.forEach(function (m) { if (m.inflight === "ws") m.inflight = false; });
        self.flush();
      });
    };
    socket.onmessage = function (event) {
      var data;
      try { data = JSON.parse(event.data); } catch (_err) { return; }
      self.onEvent(data);
    };
    socket.onclose = function () {
      if (self.socket !== socket) return;
      self.socket = null;
      if (!opened) self.failures += 1;
      self.outbox.forEach(function (m) { if (m.inflight === "ws") m.inflight = false; });
      self.setTyping(false);
      self.setStatus();
      if (self.failures >= POST_FALLBACK_AFTER && self.outbox.length) self.postQueued();
      self.scheduleReconnect();
    };
    socket.onerror = function () { /* onclose follows and reconnects */ };
  };

  Widget.prototype.scheduleReconnect = function () {
    if (this.destroyed || this.retryTimer) return;
    var delay = BACKOFF_MS[Math.min(this.attempt, BACKOFF_MS.length - 1)];
    this.attempt += 1;
    var self = this;
    this.retryTimer = setTimeout(function () { self.retryTimer = null; self.connect(); }, delay);
  };

  Widget.prototype.connectNow = function () {
    clearTimeout(this.retryTimer);
    this.retryTimer = null;
    this.connect();
  };

  Widget.prototype.onEvent = function (data) {
    var t = this.t;
    var entry;
    switch (data.type) {
      case "ack":
        entry = this.find(data.id);
        if (entry) {
          entry.acked = true;
          // While a human has the conversation the bot stays silent: the ack is the last word.
          if (this.human) this.settle(data.id);
          else this.saveOutbox();
        }
        break;
      case "typing":
        if (!this.human) this.setTyping(true);
        break;
      case "token": {
        var bubble = this.streams[data.id];
        if (!bubble) {
          bubble = this.add("agent", "");
          bubble.classList.add("kefu-streaming");
          this.streams[data.id] = bubble;
        }
        this.setTyping(false);
        bubble.querySelector(".kefu-text").textContent += data.text || "";
        this.scroll();
        break;
      }
      case "reply": {
        var text = typeof data.reply === "string" ? data.reply : data.text || "";
        var streamed = this.streams[data.id];
        delete this.streams[data.id];
        if (streamed) {
          streamed.classList.remove("kefu-streaming");
          if (text) streamed.querySelector(".kefu-text").textContent = text;
          else streamed.remove();
        } else if (text) {
          this.add("agent", text);
        }
        this.settle(data.id);
        this.setTyping(Object.keys(this.streams).length > 0);
        if (data.state === "end") this.askRating(); // the customer said goodbye
        break;
      }
      case "human_joined":
        this.human = agentName(data.agent || data.agent_name, t.agent);
        this.setTyping(false);
        this.add("notice", t.joined(this.human));
        this.setStatus();
        break;
      case "human_message":
        this.add("human", data.text || "", agentName(data.agent || data.agent_name, this.human || t.agent));
        break;
      case "human_left":
        this.human = null;
        this.add("notice", t.left);
        this.setStatus();
        break;
      case "closed":
        this.human = null;
        this.add("notice", t.closed);
        this.setStatus();
        this.askRating();
        break;
      case "error": {
        var detail = typeof data.detail === "string" ? data.detail : JSON.stringify(data.detail || data.status);
        entry = data.id ? this.settle(data.id) : null;
        delete this.streams[data.id];
        this.setTyping(false);
        var note = this.add("notice", t.error(detail));
        note.classList.add("kefu-error");
        if (entry && entry.bubble) entry.bubble.classList.add("kefu-failed");
        break;
      }
      default:
        break; // newer servers may send more; ignore what we do not know
    }
  };

  // -- rating: 1-5 once the dialogue has ended, stored in the service log ------------------------

  Widget.prototype.askRating = function () {
    if (this.store.getItem(this.ratedKey)) return; // rated already (rating again would replace it)
    var old = this.log.querySelector(".kefu-rating");
    if (old) old.remove();
    var self = this;
    var card = el("div", "kefu-msg kefu-rating");
    card.setAttribute("role", "group");
    card.setAttribute("aria-label", this.t.rate);
    card.appendChild(el("div", "kefu-rating-prompt", this.t.rate));
    var stars = el("div", "kefu-stars");
    for (var n = 1; n <= 5; n++) {
      var star = el("button", "kefu-star", "★");
      star.type = "button";
      star.setAttribute("data-rating", String(n));
      star.setAttribute("aria-label", this.t.rateStar(n));
      star.addEventListener("click", (function (value) { return function () { self.rate(value, card); }; })(n));
      stars.appendChild(star);
    }
    card.appendChild(stars);
    this.log.insertBefore(card, this.log.querySelector(".kefu-typing"));
    this.scroll();
  };

  Widget.prototype.rate = function (value, card) {
    var self = this;
    var buttons = card.querySelectorAll("button");
    var i;
    for (i = 0; i < buttons.length; i++) buttons[i].disabled = true;
    return this.api("/feedback", {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      body: JSON.stringify({ rating: value }),
    })
      .then(function (res) {
        return res.json().catch(function () { return {}; }).then(function (body) {
          if (!res.ok) throw new Error(detailOf(body, res.status));
        });
      })
      .then(function () {
        self.store.setItem(self.ratedKey, String(value));
        card.textContent = "";
        card.classList.add("kefu-rated");
        card.setAttribute("data-rated", String(value));
        card.appendChild(el("div", "kefu-rating-prompt", self.t.rated));
      })
      .catch(function (err) {
        for (i = 0; i < buttons.length; i++) buttons[i].disabled = false;
        self.add("notice", self.t.rateError(String(err && err.message ? err.message : err))).classList.add("kefu-error");
      });
  };

  Widget.prototype.destroy = function () {
    this.destroyed = true;
    clearTimeout(this.retryTimer);
    window.removeEventListener("online", this.onOnline);
    if (this.socket) {
      var socket = this.socket;
      this.socket = null;
      socket.close();
    }
    this.host.remove();
  };

  // -- public API -------------------------------------------------------------------------------

  var current = null;

  var Kefu = {
    version: "1",
    init: function (options) {
      if (current) current.destroy();
      current = new Widget(options || {});
      return current;
    },
    open: function () { if (current) current.open(); },
    setToken: function (token) {
      // A fresh session token (the old one expired): reconnect with it at once.
      if (!current) return;
      current.token = token;
      if (current.socket) current.socket.close();
      else current.connectNow();
    },
    close: function () { if (current) current.close(); },
    destroy: function () {
      if (current) current.destroy();
      current = null;
    },
    get widget() { return current; },
  };
  window.Kefu = Kefu;

  var token = SCRIPT && SCRIPT.getAttribute("data-kefu-token");
  if (token) {
    var start = function () {
      Kefu.init({
        token: token,
        lang: SCRIPT.getAttribute("data-kefu-lang") || undefined,
        base: SCRIPT.getAttribute("data-kefu-base") || undefined,
        conversationId: SCRIPT.getAttribute("data-kefu-conversation") || undefined,
        title: SCRIPT.getAttribute("data-kefu-title") || undefined,
      });
    };
    if (document.body) start();
    else document.addEventListener("DOMContentLoaded", start);
  }
})();
