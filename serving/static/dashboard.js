// The lead's dashboard: reads /v1/dashboard/summary and draws it with inline SVG (no outside URLs).
(() => {
  "use strict";
  const STRINGS = {
    en: {
      title: "Kefu Dashboard", console: "Console", logout: "Log out", loading: "Loading…", toggle: "中文",
      leadsOnlyTitle: "Leads only", leadsOnly: "This dashboard is for team leads. Ask an admin for the lead role (kefu agents add --role lead).",
      backToConsole: "Back to the console", since: "From", until: "To (exclusive)", channel: "Channel", allChannels: "All channels",
      apply: "Apply", driftTitle: "Drift alert", seeDrift: "See the drift watch", volume: "Volume per day",
      rates: "Containment and fallback rate per day", latency: "Response latency per day (ms)", emotions: "Emotions per day",
      intents: "Intent mix", handoffReasons: "Handoff reasons", fallbacks: "Fallbacks by kind", satisfaction: "Satisfaction (1-5)",
      segments: "Per segment", questions: "Top unanswered questions", drift: "Drift watch", alerts: "Alerts",
      proposals: "Proposed training examples (for review)", downloadProposals: "Download proposals (JSONL)",
      reviewHint: "Review before training: fix or delete lines, rename every \"new topic: …\" label to an intent or out_of_scope, then run kefu intents train --extra FILE (the shipped data plus this file). Nothing retrains automatically.",
      exports: "Exports (CSV)", exportDaily: "Daily", exportIntents: "Intents", exportHandoffs: "Handoff reasons",
      exportSegments: "Segments", exportQuestions: "Questions", exportDrift: "Drift",
      noData: "No data in this range.", none: "—", failed: (d) => `Could not load the dashboard: ${d}`,
      range: (s) => `${s.since} … ${s.until} (exclusive, UTC)${s.channel ? " · " + s.channel : ""}`,
      kpi: {
        conversations: "Conversations", containment: "Containment", handoffRate: "Handoff rate", fallbackRate: "Fallback rate",
        conversion: "Conversion", satisfaction: "Satisfaction", latency: "Latency (median)", pickup: "Pickup wait (median)",
      },
      sub: {
        customers: (n) => `${n} customers`, handoffs: (n) => `${n} handed off`, turns: (n, f) => `${f} of ${n} bot turns`,
        conversions: (n) => `${n} reached a deal`, ratings: (n) => `${n} ratings`, tail: (p90, p99) => `p90 ${p90} · p99 ${p99} ms`,
        taken: (t, w) => `${t} taken, ${w} waiting`,
      },
      series: {
        conversations: "Conversations", turns: "Bot turns", containment: "Containment", fallback: "Fallback rate",
        conversion: "Conversion", p50: "p50", p90: "p90", p99: "p99", low: "Low confidence", unknown: "Unknown intent",
        lowMax: "Low-confidence threshold", unknownMax: "Unknown threshold",
      },
      emotion: { calm: "calm", confused: "confused", dissatisfied: "dissatisfied", angry: "angry" },
      kinds: {
        unsure: "unsure (clarifying question)", knowledge_miss: "knowledge miss", llm_down: "LLM down", llm_template: "LLM reply unusable (template)",
        loop_breaker: "loop-breaker (offered a human)", handoff: "handoff", human_owned: "human agent owned", other: "other",
      },
      pickup: (p) => p.handoffs ? `Picked up by a human: ${p.taken} of ${p.handoffs}; median wait ${secs(p.median_wait_s)}, p90 ${secs(p.p90_wait_s)}; ${p.waiting} still waiting.` : "",
      segCols: ["Segment", "Customers", "Conversations", "Containment", "Handoff rate", "Satisfaction", "Conversion"],
      qCols: ["#", "Count", "Question (representative)", "Why unanswered", "Classifier guessed", "Last asked"],
      aCols: ["Day", "Metric", "Value", "Threshold", "Bot turns"],
      pCols: ["Proposed label", "Basis", "Count", "Wordings (lang)"],
      metric: { low_confidence: "low-confidence share", unknown_intent: "unknown-intent share" },
      basis: { classifier: "classifier's guess", new_topic: "new topic", out_of_scope: "out of scope" },
      reasons: { out_of_scope: "out of scope", unsure: "unsure", knowledge_miss: "knowledge miss" },
      driftText: (days) => `the share of low-confidence or unknown-intent turns crossed its threshold on ${days.length} day(s): ${days.join(", ")}.`,
      thresholds: (d) => `A day alerts when its low-confidence share (confidence < ${d.unsure_below}) is above ${pct(d.low_confidence_threshold)} or its unknown-intent share is above ${pct(d.unknown_threshold)}, with at least ${d.min_turns} bot turns.`,
      noAlerts: "No alerts in this range.", noProposals: "No proposals: no alert day had questions to label.",
      bySegment: "by insight segment", byTier: "by tier: segments not computed",
    },
    zh: {
      title: "客服看板", console: "工作台", logout: "退出", loading: "加载中…", toggle: "English",
      leadsOnlyTitle: "仅限组长", leadsOnly: "此看板仅供客服组长使用。请管理员授予组长角色（kefu agents add --role lead）。",
      backToConsole: "返回工作台", since: "开始日期", until: "结束日期（不含）", channel: "渠道", allChannels: "全部渠道",
      apply: "查询", driftTitle: "漂移告警", seeDrift: "查看漂移监控", volume: "每日会话量",
      rates: "每日自助解决率与兜底率", latency: "每日响应延迟（毫秒）", emotions: "每日情绪分布",
      intents: "意图分布", handoffReasons: "转人工原因", fallbacks: "兜底类型", satisfaction: "满意度（1-5）",
      segments: "客群对比", questions: "未解决问题 Top", drift: "漂移监控", alerts: "告警",
      proposals: "建议的训练样本（待人工审核）", downloadProposals: "下载建议样本（JSONL）",
      reviewHint: "训练前请人工审核：修改或删除行，把每个 \"new topic: …\" 标签改成已有意图或 out_of_scope，再运行 kefu intents train --extra 文件（内置数据加上此文件）。系统不会自动重新训练。",
      exports: "导出（CSV）", exportDaily: "每日", exportIntents: "意图", exportHandoffs: "转人工原因",
      exportSegments: "客群", exportQuestions: "问题", exportDrift: "漂移",
      noData: "该时间段没有数据。", none: "—", failed: (d) => `看板加载失败：${d}`,
      range: (s) => `${s.since} … ${s.until}（不含，UTC）${s.channel ? " · " + s.channel : ""}`,
      kpi: {
        conversations: "会话数", containment: "自助解决率", handoffRate: "转人工率", fallbackRate: "兜底率",
        conversion: "转化率", satisfaction: "满意度", latency: "延迟（中位数）", pickup: "人工接起等待（中位数）",
      },
      sub: {
        customers: (n) => `${n} 位顾客`, handoffs: (n) => `${n} 次转人工`, turns: (n, f) => `${n} 轮机器人回复中 ${f} 轮`,
        conversions: (n) => `${n} 次达成购买`, ratings: (n) => `${n} 条评分`, tail: (p90, p99) => `p90 ${p90} · p99 ${p99} 毫秒`,
        taken: (t, w) => `已接起 ${t}，等待中 ${w}`,
      },
      series: {
        conversations: "会话", turns: "机器人轮次", containment: "自助解决率", fallback: "兜底率",
        conversion: "转化率", p50: "p50", p90: "p90", p99: "p99", low: "低置信度", unknown: "未知意图",
        lowMax: "低置信度阈值", unknownMax: "未知意图阈值",
      },
      emotion: { calm: "平静", confused: "困惑", dissatisfied: "不满", angry: "愤怒" },
      kinds: {
        unsure: "不确定（澄清提问）", knowledge_miss: "知识库未命中", llm_down: "大模型不可用", llm_template: "大模型回复不可用（模板）",
        loop_breaker: "防循环（提议转人工）", handoff: "转人工", human_owned: "人工接管中", other: "其他",
      },
      pickup: (p) => p.handoffs ? `人工接起：${p.taken}/${p.handoffs}；等待中位数 ${secs(p.median_wait_s)}，p90 ${secs(p.p90_wait_s)}；仍在等待 ${p.waiting}。` : "",
      segCols: ["客群", "顾客数", "会话数", "自助解决率", "转人工率", "满意度", "转化率"],
      qCols: ["#", "次数", "问题（代表）", "未解决原因", "分类器猜测", "最近一次"],
      aCols: ["日期", "指标", "数值", "阈值", "机器人轮次"],
      pCols: ["建议标签", "依据", "次数", "说法（语言）"],
      metric: { low_confidence: "低置信度占比", unknown_intent: "未知意图占比" },
      basis: { classifier: "分类器猜测", new_topic: "新话题", out_of_scope: "超出范围" },
      reasons: { out_of_scope: "超出范围", unsure: "不确定", knowledge_miss: "知识库未命中" },
      driftText: (days) => `低置信度或未知意图的占比在 ${days.length} 天超过阈值：${days.join("、")}。`,
      thresholds: (d) => `当某天低置信度（置信度 < ${d.unsure_below}）占比高于 ${pct(d.low_confidence_threshold)}，或未知意图占比高于 ${pct(d.unknown_threshold)}，且机器人轮次不少于 ${d.min_turns} 时告警。`,
      noAlerts: "该时间段没有告警。", noProposals: "没有建议：告警日没有可标注的问题。",
      bySegment: "按洞察客群", byTier: "按会员等级：客群尚未计算",
    },
  };
  const COLORS = ["#0f766e", "#4f46e5", "#d97706", "#dc2626", "#0891b2", "#7c3aed", "#65a30d"];
  const EMOTION_COLORS = { calm: "#10b981", confused: "#f59e0b", dissatisfied: "#f97316", angry: "#dc2626" };
  const SVG = "http://www.w3.org/2000/svg";
  const $ = (id) => document.getElementById(id);

  let lang = localStorage.getItem("kefu-console.lang") || ((navigator.language || "en").toLowerCase().startsWith("zh") ? "zh" : "en");
  let t = STRINGS[lang];
  let me = null;
  let data = null;

  // -- helpers ----------------------------------------------------------------------------------
  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = text;
    return node;
  }

  function svg(tag, attrs, text) {
    const node = document.createElementNS(SVG, tag);
    for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, String(value));
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function pct(x) { return typeof x === "number" ? `${(x * 100).toFixed(1)}%` : t.none; }
  function num(x, digits = 0) { return typeof x === "number" ? x.toFixed(digits) : t.none; }
  function secs(x) {
    if (typeof x !== "number") return "—";
    return x < 90 ? `${Math.round(x)}s` : x < 5400 ? `${Math.round(x / 60)}m` : `${(x / 3600).toFixed(1)}h`;
  }
  function short(day) { return day.slice(5); }

  function niceMax(value) {
    if (!(value > 0)) return 1;
    const step = Math.pow(10, Math.floor(Math.log10(value)));
    for (const m of [1, 2, 2.5, 5, 10]) if (m * step >= value) return m * step;
    return 10 * step;
  }

  function query(extra) {
    const params = new URLSearchParams(extra || {});
    if (data) {
      params.set("since", data.since);
      params.set("until", data.until);
      if (data.channel) params.set("channel", data.channel);
    }
    return params.toString();
  }

  function legend(box, items) {
    const row = el("div", "legend");
    for (const item of items) {
      const span = el("span");
      const swatch = el("i");
      swatch.style.background = item.color;
      span.append(swatch, item.name);
      row.appendChild(span);
    }
    box.appendChild(row);
  }

  function empty(box) {
    box.textContent = "";
    box.appendChild(el("div", "empty", t.noData));
  }

  // -- charts -----------------------------------------------------------------------------------
  // series: [{name, color, values: [number|null], dashed?}], one value per day; opts: {percent, max}
  function lineChart(box, days, series, opts = {}) {
    const drawn = series.filter((s) => s.values.some((v) => typeof v === "number"));
    if (!days.length || !drawn.filter((s) => !s.threshold).length) return empty(box);
    box.textContent = "";
    const W = 640, H = 200, L = 46, R = 10, T = 10, B = 24;
    const all = drawn.flatMap((s) => s.values.filter((v) => typeof v === "number"));
    const top = opts.max !== undefined ? opts.max : niceMax(Math.max(...all));
    const x = (i) => L + (days.length === 1 ? (W - L - R) / 2 : (i * (W - L - R)) / (days.length - 1));
    const y = (v) => T + (H - T - B) * (1 - v / top);
    const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, role: "img" });
    for (let k = 0; k <= 4; k += 1) {
      const v = (top * k) / 4;
      root.appendChild(svg("line", { class: "grid-line", x1: L, x2: W - R, y1: y(v), y2: y(v) }));
      root.appendChild(svg("text", { class: "tick", x: L - 6, y: y(v) + 3, "text-anchor": "end" }, opts.percent ? `${Math.round(v * 100)}%` : `${+v.toFixed(1)}`));
    }
    root.appendChild(svg("line", { class: "axis", x1: L, x2: W - R, y1: H - B, y2: H - B }));
    const every = Math.max(1, Math.ceil(days.length / 8));
    days.forEach((day, i) => {
      // Counted from the last day, so the newest day is always labelled and labels never collide.
      if ((days.length - 1 - i) % every === 0) root.appendChild(svg("text", { class: "tick", x: x(i), y: H - 8, "text-anchor": "middle" }, short(day)));
    });
    for (const s of drawn) {
      const group = svg("g", { "data-series": s.key || s.name });
      let d = "";
      let pen = false;
      s.values.forEach((v, i) => {
        if (typeof v !== "number") { pen = false; return; }
        d += `${pen ? "L" : "M"}${x(i).toFixed(1)},${y(v).toFixed(1)}`;
        pen = true;
      });
      group.appendChild(svg("path", { class: s.threshold ? "series threshold" : "series", d, stroke: s.color }));
      if (!s.threshold) {
        s.values.forEach((v, i) => {
          if (typeof v !== "number") return;
          const dot = svg("circle", { class: "point", cx: x(i).toFixed(1), cy: y(v).toFixed(1), r: 2.5, fill: s.color });
          dot.appendChild(svg("title", {}, `${days[i]} · ${s.name}: ${opts.percent ? pct(v) : num(v, 1)}`));
          group.appendChild(dot);
        });
      }
      root.appendChild(group);
    }
    box.appendChild(root);
    legend(box, drawn);
  }

  function stackedBars(box, rows) {
    const days = rows.filter((r) => r.turns > 0);
    if (!days.length) return empty(box);
    box.textContent = "";
    const W = 640, H = 200, L = 46, R = 10, T = 10, B = 24;
    const slot = (W - L - R) / rows.length;
    const y = (v) => T + (H - T - B) * (1 - v);
    const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, role: "img" });
    for (let k = 0; k <= 4; k += 1) {
      root.appendChild(svg("line", { class: "grid-line", x1: L, x2: W - R, y1: y(k / 4), y2: y(k / 4) }));
      root.appendChild(svg("text", { class: "tick", x: L - 6, y: y(k / 4) + 3, "text-anchor": "end" }, `${k * 25}%`));
    }
    const every = Math.max(1, Math.ceil(rows.length / 8));
    const names = Object.keys(EMOTION_COLORS);
    rows.forEach((row, i) => {
      let base = 0;
      const shares = row.emotions || {};
      const keys = names.concat(Object.keys(shares).filter((k) => !names.includes(k)));
      for (const key of keys) {
        const share = shares[key] || 0;
        if (!share) continue;
        const rect = svg("rect", {
          class: "bar", x: (L + i * slot + slot * 0.15).toFixed(1), width: Math.max(1, slot * 0.7).toFixed(1),
          y: y(base + share).toFixed(1), height: ((H - T - B) * share).toFixed(1), fill: EMOTION_COLORS[key] || "#94a3b8",
          "data-emotion": key,
        });
        rect.appendChild(svg("title", {}, `${row.day} · ${t.emotion[key] || key}: ${pct(share)}`));
        root.appendChild(rect);
        base += share;
      }
      if ((rows.length - 1 - i) % every === 0) root.appendChild(svg("text", { class: "tick", x: L + i * slot + slot / 2, y: H - 8, "text-anchor": "middle" }, short(row.day)));
    });
    root.appendChild(svg("line", { class: "axis", x1: L, x2: W - R, y1: H - B, y2: H - B }));
    box.appendChild(root);
    legend(box, names.map((key) => ({ name: t.emotion[key], color: EMOTION_COLORS[key] })));
  }

  // items: [{label, count, share}]
  function hbars(box, items, color, limit = 12) {
    const shown = items.filter((item) => item.count > 0).slice(0, limit);
    if (!shown.length) return empty(box);
    box.textContent = "";
    const W = 480, row = 22, labelW = 190, valueW = 80;
    const H = shown.length * row + 4;
    const max = Math.max(...shown.map((item) => item.count));
    const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, role: "img" });
    shown.forEach((item, i) => {
      const yTop = i * row + 2;
      const label = item.label.length > 30 ? item.label.slice(0, 29) + "…" : item.label;
      root.appendChild(svg("text", { class: "hbar-label", x: labelW - 6, y: yTop + 14, "text-anchor": "end" }, label));
      const width = ((W - labelW - valueW) * item.count) / max;
      const bar = svg("rect", { class: "hbar", x: labelW, y: yTop + 3, width: Math.max(1, width).toFixed(1), height: row - 8, rx: 3, fill: color });
      bar.appendChild(svg("title", {}, `${item.label}: ${item.count}${item.share !== undefined ? " (" + pct(item.share) + ")" : ""}`));
      root.appendChild(bar);
      root.appendChild(svg("text", { class: "hbar-value", x: labelW + width + 6, y: yTop + 14 }, `${item.count}${item.share !== undefined ? " · " + pct(item.share) : ""}`));
    });
    box.appendChild(root);
  }

  // -- tables -----------------------------------------------------------------------------------
  function fillTable(id, columns, rows, emptyText) {
    const tableNode = $(id);
    tableNode.textContent = "";
    const head = el("tr");
    for (const column of columns) head.appendChild(el("th", null, column));
    tableNode.appendChild(el("thead")).appendChild(head);
    const body = tableNode.appendChild(el("tbody"));
    if (!rows.length) {
      const cell = el("td", "muted", emptyText || t.noData);
      cell.colSpan = columns.length;
      body.appendChild(el("tr")).appendChild(cell);
      return;
    }
    for (const cells of rows) {
      const tr = body.appendChild(el("tr"));
      if (cells.className) tr.className = cells.className;
      for (const cell of cells) {
        if (cell instanceof Node) { const td = el("td"); td.appendChild(cell); tr.appendChild(td); }
        else tr.appendChild(el("td", typeof cell === "number" ? "num" : null, cell === null || cell === undefined ? t.none : String(cell)));
      }
    }
  }

  function counts(obj, names) {
    return Object.entries(obj || {}).map(([k, v]) => `${(names && names[k]) || k} ${v}`).join(", ");
  }

  // -- rendering --------------------------------------------------------------------------------
  function kpi(label, value, sub) {
    const box = el("div", "kpi");
    box.append(el("div", "label", label), el("div", "value", value), el("div", "sub", sub || ""));
    return box;
  }

  function render() {
    if (!data) return;
    const s = data;
    const k = t.kpi, sub = t.sub, tot = s.totals;
    $("range-label").textContent = t.range(s);
    $("f-since").value = s.since;
    $("f-until").value = s.until;
    $("f-channel").value = s.channel || "";
    const kpis = $("kpis");
    kpis.textContent = "";
    kpis.append(
      kpi(k.conversations, String(tot.conversations), sub.customers(tot.customers)),
      kpi(k.containment, pct(tot.containment), sub.handoffs(tot.handoffs)),
      kpi(k.handoffRate, pct(tot.handoff_rate), counts(Object.fromEntries(s.handoff_reasons.slice(0, 2).map((r) => [r.key, r.count])))),
      kpi(k.fallbackRate, pct(tot.fallback_rate), sub.turns(tot.turns, tot.fallback_turns)),
      kpi(k.conversion, pct(tot.conversion_rate), sub.conversions(tot.conversions)),
      kpi(k.satisfaction, num(s.satisfaction.mean, 2), sub.ratings(s.satisfaction.count)),
      kpi(k.latency, tot.latency_p50 === null ? t.none : `${num(tot.latency_p50)} ms`, tot.latency_p50 === null ? "" : sub.tail(num(tot.latency_p90), num(tot.latency_p99))),
      kpi(k.pickup, secs(s.pickup.median_wait_s), sub.taken(s.pickup.taken, s.pickup.waiting)),
    );
    kpis.children[0].id = "kpi-conversations";
    kpis.children[1].id = "kpi-containment";

    const days = s.daily.map((d) => d.day);
    const ser = t.series;
    lineChart($("chart-volume"), days, [
      { key: "conversations", name: ser.conversations, color: COLORS[0], values: s.daily.map((d) => d.conversations) },
      { key: "turns", name: ser.turns, color: COLORS[1], values: s.daily.map((d) => d.turns) },
    ]);
    lineChart($("chart-rates"), days, [
      { key: "containment", name: ser.containment, color: COLORS[0], values: s.daily.map((d) => d.containment) },
      { key: "fallback", name: ser.fallback, color: COLORS[3], values: s.daily.map((d) => d.fallback_rate) },
      { key: "conversion", name: ser.conversion, color: COLORS[2], values: s.daily.map((d) => (d.conversations ? d.conversions / d.conversations : null)) },
    ], { percent: true, max: 1 });
    lineChart($("chart-latency"), days, [
      { key: "p50", name: ser.p50, color: COLORS[0], values: s.daily.map((d) => d.latency_p50) },
      { key: "p90", name: ser.p90, color: COLORS[2], values: s.daily.map((d) => d.latency_p90) },
      { key: "p99", name: ser.p99, color: COLORS[3], values: s.daily.map((d) => d.latency_p99) },
    ]);
    stackedBars($("chart-emotions"), s.daily);
    hbars($("chart-intents"), s.intents.map((i) => ({ label: i.key, count: i.count, share: i.share })), COLORS[1]);
    hbars($("chart-handoffs"), s.handoff_reasons.map((r) => ({ label: r.key, count: r.count, share: r.share })), COLORS[3]);
    $("pickup").textContent = t.pickup(s.pickup);
    hbars($("chart-fallbacks"), s.fallback_kinds.map((f) => ({ label: t.kinds[f.key] || f.key, count: f.count, share: f.share })), COLORS[2]);
    const dist = s.satisfaction.distribution || {};
    hbars($("chart-satisfaction"), ["5", "4", "3", "2", "1"].map((score) => ({ label: `${score} ★`, count: dist[score] || 0 })), COLORS[0]);

    const seg = s.segments;
    $("segments-note").textContent = seg.basis === "tier" ? t.byTier : t.bySegment;
    fillTable("segments-table", t.segCols, seg.rows.map((r) => [
      lang === "zh" ? r.label_zh : r.label_en, r.customers, r.conversations, pct(r.containment), pct(r.handoff_rate),
      r.satisfaction_mean === null ? t.none : `${num(r.satisfaction_mean, 2)} (${r.satisfaction_count})`, pct(r.conversion_rate),
    ]));

    fillTable("questions-table", t.qCols, s.questions.map((q, i) => {
      const cell = el("div", null, q.representative);
      for (const example of q.examples) cell.appendChild(el("span", "ex", example));
      return [i + 1, q.count, cell, counts(q.reasons, t.reasons), counts(q.intents), q.last_at.slice(0, 16).replace("T", " ")];
    }));

    renderDrift(s.drift, days);
    for (const link of document.querySelectorAll("a.csv")) link.href = `/v1/dashboard/export.csv?${query({ table: link.dataset.table })}`;
    $("proposals-link").href = `/v1/dashboard/drift/proposals.jsonl?${query()}`;
  }

  function renderDrift(drift, days) {
    const alertDays = [...new Set(drift.alerts.map((a) => a.day))].sort();
    $("drift-banner").hidden = alertDays.length === 0;
    $("drift-text").textContent = alertDays.length ? t.driftText(alertDays) : "";
    $("drift-thresholds").textContent = t.thresholds(drift);
    const ser = t.series;
    lineChart($("chart-drift"), days, [
      { key: "low_confidence", name: ser.low, color: COLORS[2], values: drift.days.map((d) => d.low_confidence_share) },
      { key: "unknown", name: ser.unknown, color: COLORS[3], values: drift.days.map((d) => d.unknown_share) },
      { key: "low_max", name: ser.lowMax, color: COLORS[2], threshold: true, values: days.map(() => drift.low_confidence_threshold) },
      { key: "unknown_max", name: ser.unknownMax, color: COLORS[3], threshold: true, values: days.map(() => drift.unknown_threshold) },
    ], { percent: true, max: 1 });
    fillTable("alerts-table", t.aCols, drift.alerts.map((a) => {
      const row = [a.day, t.metric[a.metric] || a.metric, pct(a.value), pct(a.threshold), a.turns];
      row.className = "alert";
      return row;
    }), t.noAlerts);
    fillTable("proposals-table", t.pCols, drift.proposals.map((p) => {
      const chip = el("span", `chip ${p.basis}`, t.basis[p.basis] || p.basis);
      const wordings = el("div");
      for (const ex of p.examples.slice(0, 6)) wordings.appendChild(el("span", "ex", `${ex.text} (${ex.lang})`));
      if (p.examples.length > 6) wordings.appendChild(el("span", "ex", `+${p.examples.length - 6}`));
      return [p.label, chip, p.count, wordings];
    }), t.noProposals);
    $("proposals-link").hidden = drift.proposals.length === 0;
  }

  // -- language ---------------------------------------------------------------------------------
  function applyLang() {
    t = STRINGS[lang];
    document.documentElement.lang = lang === "zh" ? "zh-CN" : "en";
    document.title = `${t.title} · Kefu`;
    for (const node of document.querySelectorAll("[data-i18n]")) node.textContent = t[node.dataset.i18n];
    $("lang-toggle").textContent = t.toggle;
    if (me) $("whoami").textContent = `${me.name || me.id} · ${me.role}`;
    render();
  }

  $("lang-toggle").addEventListener("click", () => {
    lang = lang === "zh" ? "en" : "zh";
    localStorage.setItem("kefu-console.lang", lang);
    applyLang();
  });

  // -- session and loading ----------------------------------------------------------------------
  function toLogin() { location.assign("/console?next=/dashboard"); }

  function leadsOnly() {
    $("loading").hidden = true;
    $("dash").hidden = true;
    $("leads-only").hidden = false;
  }

  async function getJson(path) {
    const res = await fetch(path, { credentials: "same-origin", headers: { Accept: "application/json" } });
    const body = await res.json().catch(() => ({}));
    if (res.status === 401) { toLogin(); throw new Error("not logged in"); }
    if (res.status === 403) { leadsOnly(); throw new Error("leads only"); }
    if (!res.ok) {
      const detail = typeof body.detail === "string" ? body.detail : Array.isArray(body.detail) ? body.detail.map((e) => e.msg).join("; ") : `HTTP ${res.status}`;
      throw new Error(detail);
    }
    return body;
  }

  async function load(params) {
    $("error").textContent = "";
    $("f-apply").disabled = true;
    try {
      data = await getJson(`/v1/dashboard/summary?${new URLSearchParams(params).toString()}`);
      $("loading").hidden = true;
      $("dash").hidden = false;
      render();
      document.body.dataset.loaded = "true";
    } catch (err) {
      if (err.message !== "not logged in" && err.message !== "leads only") {
        $("loading").hidden = true;
        $("dash").hidden = false;
        $("error").textContent = t.failed(err.message);
      }
    } finally {
      $("f-apply").disabled = false;
    }
  }

  $("filters").addEventListener("submit", (event) => {
    event.preventDefault();
    const params = {};
    if ($("f-since").value) params.since = $("f-since").value;
    if ($("f-until").value) params.until = $("f-until").value;
    if ($("f-channel").value) params.channel = $("f-channel").value;
    load(params);
  });

  $("logout").addEventListener("click", async () => {
    try { await fetch("/v1/console/logout", { method: "POST", credentials: "same-origin" }); } catch (_err) { /* gone either way */ }
    toLogin();
  });

  applyLang();
  fetch("/v1/console/me", { credentials: "same-origin", headers: { Accept: "application/json" } })
    .then(async (res) => {
      if (!res.ok) return toLogin();
      me = await res.json();
      $("whoami").textContent = `${me.name || me.id} · ${me.role}`;
      $("logout").hidden = false;
      if (me.role !== "lead") return leadsOnly();
      const initial = Object.fromEntries(new URLSearchParams(location.search));
      return load(initial);
    })
    .catch(toLogin);
})();
