// trio_wrapper dashboard: one page over the daemon's HTTP API (docs/api.md).
// Plain JavaScript, no build step, no library. Every URL is relative to the page, so the
// page works under server.root_path. Text from agents is only ever set as textContent.
"use strict";

(() => {
  const TOKEN_KEY = "trio_wrapper.token";
  const STATUSES = ["running", "starting", "stopping", "completed", "failed", "stopped", "interrupted"];
  const LIVE = new Set(["starting", "running", "stopping"]);
  const EVENT_TYPES = ["connected", "log", "extraction", "state", "complete", "gap", "ping", "shutdown"];
  const POLL_MS = 2000; // figures and table counts
  const SLOW_POLL_MS = 15000; // usage and tokens
  const MAX_LOG_LINES = 5000; // in the live log's DOM; the full log shows everything
  const MAX_RECORDS_SHOWN = 200; // per group
  const RATE_POINTS = 90;

  const $ = (id) => document.getElementById(id);

  const state = {
    token: sessionStorage.getItem(TOKEN_KEY) || "",
    agents: new Map(), // name -> summary (+ fetched: ms)
    counts: new Map(), // name -> {log_lines, extractions, errors} from /api/metrics
    usage: new Map(), // name -> {tokens, cost} of its newest ended run
    last: new Map(), // name -> text of its last tool call or state
    lastLooked: new Set(), // names whose last record was asked for once
    lastFromDaemon: new Set(), // names whose "last" is the daemon's status change
    rows: new Map(), // name -> <tr>
    rate: [], // events/s points
    prevTotal: null, // [total_events, ms]
    events: null, // Stream of /api/events
    agent: null, // the agent page's state
    tokenWaiters: [],
  };

  // ---- HTTP ------------------------------------------------------------------------

  class ApiError extends Error {
    constructor(status, code, message) {
      super(message);
      this.status = status;
      this.code = code;
    }
    toString() {
      return this.status ? `${this.code}: ${this.message}` : this.message;
    }
  }

  function apiUrl(path, params) {
    const url = new URL(path, document.baseURI);
    url.hash = "";
    for (const [key, value] of Object.entries(params || {})) {
      if (value !== undefined && value !== null && value !== "") url.searchParams.set(key, String(value));
    }
    return url.toString();
  }

  async function api(path, { method = "GET", params, body, text = false } = {}) {
    const headers = {};
    const token = state.token;
    if (token) headers.Authorization = "Bearer " + token;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    let response;
    try {
      response = await fetch(apiUrl(path, params), {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        cache: "no-store",
      });
    } catch (err) {
      setConnection("off", "daemon unreachable");
      throw new ApiError(0, "network", "the daemon does not answer");
    }
    if (!response.ok) {
      let code = "http_" + response.status;
      let message = response.statusText || "error";
      try {
        const answer = await response.json();
        if (answer && answer.error) ({ code, message } = answer.error);
      } catch (_) {
        /* not JSON */
      }
      // A request sent with a token since replaced says nothing about the new one.
      if (response.status === 401 && token === state.token) askToken(token ? "The token was refused." : "");
      throw new ApiError(response.status, code, message);
    }
    if (text) return response.text();
    if (response.status === 204) return null;
    return response.json();
  }

  const enc = encodeURIComponent;
  const agentPath = (name, rest = "") => `api/agents/${enc(name)}${rest}`;

  // ---- an EventSource that reconnects on its own -------------------------------------

  // EventSource itself retries after a network drop, sending Last-Event-ID; after an HTTP
  // error (a daemon restarting answers 503, a proxy 502) it gives up, so we open a new one
  // with ?last_event_id= ourselves. `done()` tells it the stream ended for good.
  class Stream {
    constructor(path, params, handlers) {
      this.path = path;
      this.params = params;
      this.handlers = handlers;
      this.lastId = null;
      this.finished = false;
      this.closed = false;
      this.retryMs = 1000;
      this.timer = null;
      this.open();
    }
    open() {
      if (this.closed) return;
      const params = { ...this.params };
      if (this.lastId !== null) {
        params.last_event_id = this.lastId;
        delete params.history;
      }
      if (state.token) params.access_token = state.token;
      const source = new EventSource(apiUrl(this.path, params));
      this.source = source;
      for (const type of EVENT_TYPES) {
        source.addEventListener(type, (event) => {
          if (source !== this.source) return;
          if (event.lastEventId) this.lastId = event.lastEventId;
          let envelope;
          try {
            envelope = JSON.parse(event.data);
          } catch (_) {
            return;
          }
          if (type === "connected") {
            this.retryMs = 1000;
            if (this.handlers.open) this.handlers.open();
          }
          const handler = this.handlers[type];
          if (handler) handler(envelope.data || {}, envelope, event.lastEventId ? Number(event.lastEventId) : null);
        });
      }
      source.onerror = () => {
        if (source !== this.source) return;
        if (this.handlers.error) this.handlers.error(source.readyState);
        if (source.readyState === EventSource.CLOSED && !this.finished && !this.closed) {
          this.timer = setTimeout(() => this.retry(), this.retryMs);
          this.retryMs = Math.min(this.retryMs * 2, 15000);
        }
      };
    }
    async retry() {
      this.timer = null;
      if (this.closed) return;
      // A stream refused for want of a token looks like any error to EventSource: ask a
      // guarded route what it was, so a 401 brings up the token dialog.
      try {
        await api("api/sse/stats");
      } catch (err) {
        if (err.status === 401) return; // reopened once a token is given
      }
      if (this.handlers.beforeRetry && !(await this.handlers.beforeRetry())) return;
      this.open();
    }
    done() {
      this.finished = true;
    }
    close() {
      this.closed = true;
      if (this.timer) clearTimeout(this.timer);
      if (this.source) this.source.close();
    }
    reopen() {
      if (this.source) this.source.close();
      this.closed = false;
      this.finished = false;
      this.open();
    }
  }

  // ---- formatting ------------------------------------------------------------------

  function goDuration(seconds) {
    if (seconds === null || seconds === undefined || !isFinite(seconds)) return "";
    let s = Math.max(0, Math.round(seconds));
    const h = Math.floor(s / 3600);
    s -= h * 3600;
    const m = Math.floor(s / 60);
    s -= m * 60;
    return (h ? h + "h" : "") + (h || m ? m + "m" : "") + s + "s";
  }

  // Input + output (+ tokens a CLI does not split): cache reads are left out, as Codex and
  // Gemini count them inside input already and Claude beside it (docs/api.md, /api/runs).
  function tokenTotal(tokens) {
    if (!tokens) return null;
    return (tokens.input || 0) + (tokens.output || 0) + (tokens.other || 0);
  }

  function tokenTitle(tokens) {
    if (!tokens) return "";
    return Object.entries(tokens).map(([k, v]) => `${k} ${number(v)}`).join(", ");
  }

  const number = (n) => (n === null || n === undefined ? "" : Number(n).toLocaleString("en-US"));
  const money = (usd) => (usd === null || usd === undefined ? "" : "$" + Number(usd).toFixed(usd < 1 ? 4 : 2));

  function localTime(text) {
    if (!text) return "";
    const date = new Date(text);
    return isNaN(date) ? text : date.toLocaleString();
  }

  function todayLocal() {
    const d = new Date();
    const pad = (n) => String(n).padStart(2, "0");
    return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
  }

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = value;
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? "" : value);
    }
    for (const child of children) {
      if (child === null || child === undefined || child === false) continue;
      node.append(typeof child === "string" ? document.createTextNode(child) : child);
    }
    return node;
  }

  function statusBadge(status) {
    return el("span", { class: `st st-${status}`, "data-status": status, text: status });
  }

  // ANSI: SGR colours rendered (classes a-*), every other escape and control character
  // dropped (cursor moves, OSC titles, \r of progress bars).
  const ANSI = /\x1b\[([0-9;?]*)([@-~])|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b[()#][0-9A-Za-z]|\x1b[@-Z\\-_]|[\x00-\x08\x0b-\x1f\x7f]/g;

  function appendAnsi(parent, text) {
    if (text.indexOf("\x1b") < 0 && !/[\x00-\x08\x0b-\x1f\x7f]/.test(text)) {
      parent.append(text);
      return;
    }
    let style = {};
    let last = 0;
    const push = (segment) => {
      if (!segment) return;
      const classes = [];
      if (style.b) classes.push("a-b");
      if (style.dim) classes.push("a-dim");
      if (style.i) classes.push("a-i");
      if (style.u) classes.push("a-u");
      if (style.fg) classes.push("a-" + style.fg);
      if (style.bg) classes.push("a-bg" + style.bg);
      parent.append(classes.length ? el("span", { class: classes.join(" ") }, segment) : segment);
    };
    ANSI.lastIndex = 0;
    let match;
    while ((match = ANSI.exec(text)) !== null) {
      push(text.slice(last, match.index));
      last = match.index + match[0].length;
      if (match[2] === "m") style = sgr(style, match[1]);
    }
    push(text.slice(last));
  }

  function sgr(style, params) {
    const next = { ...style };
    const codes = params === "" ? [0] : params.split(";").map(Number);
    for (let i = 0; i < codes.length; i++) {
      const c = codes[i];
      if (c === 0) Object.keys(next).forEach((k) => delete next[k]);
      else if (c === 1) next.b = true;
      else if (c === 2) next.dim = true;
      else if (c === 3) next.i = true;
      else if (c === 4) next.u = true;
      else if (c === 22) next.b = next.dim = false;
      else if (c === 23) next.i = false;
      else if (c === 24) next.u = false;
      else if ((c >= 30 && c <= 37) || (c >= 90 && c <= 97)) next.fg = c;
      else if (c === 39) delete next.fg;
      else if (c >= 41 && c <= 44) next.bg = c;
      else if (c === 49 || c === 40) delete next.bg;
      else if (c === 38 || c === 48) i += codes[i + 1] === 5 ? 2 : 4; // 256/true colour: skipped
    }
    return next;
  }

  // A command line as a shell would split it (quotes and backslashes), never run by one.
  function shellSplit(line) {
    const words = [];
    let word = null;
    let quote = null;
    for (let i = 0; i < line.length; i++) {
      const ch = line[i];
      if (quote === "'") {
        if (ch === "'") quote = null;
        else word += ch;
      } else if (quote === '"') {
        if (ch === '"') quote = null;
        else if (ch === "\\" && i + 1 < line.length && '"\\$`'.includes(line[i + 1])) word += line[++i];
        else word += ch;
      } else if (ch === "'" || ch === '"') {
        quote = ch;
        word = word === null ? "" : word;
      } else if (ch === "\\" && i + 1 < line.length) {
        word = (word === null ? "" : word) + line[++i];
      } else if (/\s/.test(ch)) {
        if (word !== null) words.push(word);
        word = null;
      } else {
        word = (word === null ? "" : word) + ch;
      }
    }
    if (quote) return null;
    if (word !== null) words.push(word);
    return words;
  }

  // ---- connection and token --------------------------------------------------------

  function setConnection(kind, text) {
    const node = $("conn");
    node.className = "conn " + (kind === "on" ? "conn-on" : "conn-off");
    node.textContent = text;
  }

  function askToken(message) {
    $("token-button").hidden = false;
    const dialog = $("token-dialog");
    if (dialog.open) {
      // Open already (many requests get the 401): keep what is being typed.
      if (message) $("token-error").textContent = message;
      return;
    }
    $("token-error").textContent = message || "";
    $("token-input").value = "";
    if (typeof dialog.showModal === "function") dialog.showModal();
    else dialog.setAttribute("open", "");
    $("token-input").focus();
  }

  function closeTokenDialog() {
    const dialog = $("token-dialog");
    if (dialog.open) dialog.close();
  }

  function useToken(token) {
    state.token = token;
    if (token) sessionStorage.setItem(TOKEN_KEY, token);
    else sessionStorage.removeItem(TOKEN_KEY);
    closeTokenDialog();
    // Everything again, with the new token.
    if (state.events) state.events.reopen();
    refreshAll();
    refreshSlow();
    closeAgent(); // an agent's page opens again with the token
    route();
  }

  // ---- overview: figures -----------------------------------------------------------

  async function refreshHealth() {
    try {
      const health = await api("api/health");
      state.health = { version: health.version, uptime: health.uptime_seconds, fetched: Date.now() };
      showVersion();
    } catch (err) {
      if (err.status === 503) $("version").textContent = "degraded";
    }
  }

  function showVersion() {
    const h = state.health;
    if (h) $("version").textContent = `v${h.version} · up ${goDuration(h.uptime + (Date.now() - h.fetched) / 1000)}`;
  }

  let refreshing = null;
  let refreshAgain = false;
  // /api/agents and /api/metrics: statuses, uptimes and the counts of every row.
  async function refreshAll() {
    if (refreshing) {
      refreshAgain = true;
      return refreshing;
    }
    refreshing = (async () => {
      try {
        const [list, metrics] = await Promise.all([api("api/agents"), api("api/metrics")]);
        const now = Date.now();
        const names = new Set();
        for (const agent of list.agents) {
          agent.fetched = now;
          state.agents.set(agent.name, agent);
          names.add(agent.name);
        }
        for (const name of [...state.agents.keys()]) if (!names.has(name)) state.agents.delete(name);
        state.counts.clear();
        for (const a of metrics.agents) state.counts.set(a.name, a);
        figures(metrics);
        renderTable();
        lookUpLast();
      } catch (err) {
        /* shown by the connection indicator, or the token dialog */
      } finally {
        refreshing = null;
      }
      if (refreshAgain) {
        refreshAgain = false;
        setTimeout(refreshAll, 300);
      }
    })();
    return refreshing;
  }

  let soon = null;
  function refreshSoon() {
    if (!soon) soon = setTimeout(() => ((soon = null), refreshAll()), 400);
  }

  function figures(metrics) {
    const sys = metrics.system;
    const now = Date.now();
    if (state.prevTotal) {
      const [total, at] = state.prevTotal;
      const seconds = (now - at) / 1000;
      if (seconds > 0.2) {
        state.rate.push(Math.max(0, (sys.total_events - total) / seconds));
        if (state.rate.length > RATE_POINTS) state.rate.shift();
        state.prevTotal = [sys.total_events, now];
      }
    } else {
      state.prevTotal = [sys.total_events, now];
    }
    const current = state.rate.length ? state.rate[state.rate.length - 1] : sys.events_per_second;
    $("rate-now").textContent = current.toFixed(current < 10 ? 1 : 0);
    $("rate-chart").title = `last ${state.rate.length} samples; ${sys.events_per_second.toFixed(2)}/s over the last 60 s`;
    drawRate();
    $("sse-clients").textContent = number(metrics.sse.total_clients);
    const watched = metrics.sse.total_agents;
    $("sse-detail").textContent = `${watched} agent${watched === 1 ? "" : "s"} watched · ${number(sys.total_events)} events since start`;
  }

  function drawRate() {
    const canvas = $("rate-chart");
    const ratio = window.devicePixelRatio || 1;
    const width = canvas.clientWidth || 300;
    const height = canvas.clientHeight || 70;
    if (canvas.width !== Math.round(width * ratio)) canvas.width = Math.round(width * ratio);
    if (canvas.height !== Math.round(height * ratio)) canvas.height = Math.round(height * ratio);
    const ctx = canvas.getContext("2d");
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, width, height);
    const styles = getComputedStyle(document.documentElement);
    const points = state.rate;
    const max = Math.max(1, ...points);
    ctx.strokeStyle = styles.getPropertyValue("--line").trim() || "#ccc";
    ctx.lineWidth = 1;
    ctx.beginPath();
    ctx.moveTo(0, height - 0.5);
    ctx.lineTo(width, height - 0.5);
    ctx.stroke();
    ctx.fillStyle = styles.getPropertyValue("--muted").trim() || "#888";
    ctx.font = "10px system-ui, sans-serif";
    ctx.fillText(`max ${max.toFixed(max < 10 ? 1 : 0)}/s`, 2, 10);
    if (points.length < 2) return;
    const step = width / (RATE_POINTS - 1);
    const x0 = width - step * (points.length - 1);
    const y = (v) => height - 2 - (v / max) * (height - 14);
    ctx.beginPath();
    points.forEach((v, i) => (i ? ctx.lineTo(x0 + i * step, y(v)) : ctx.moveTo(x0, y(v))));
    ctx.strokeStyle = styles.getPropertyValue("--accent").trim() || "#2156c9";
    ctx.lineWidth = 1.5;
    ctx.stroke();
    ctx.lineTo(x0 + (points.length - 1) * step, height);
    ctx.lineTo(x0, height);
    ctx.closePath();
    ctx.globalAlpha = 0.15;
    ctx.fillStyle = ctx.strokeStyle;
    ctx.fill();
    ctx.globalAlpha = 1;
  }

  // /api/runs (tokens and cost of each name's newest ended run) and /api/usage (today).
  async function refreshSlow() {
    try {
      const runs = await api("api/runs", { params: { limit: 1000 } });
      const seen = new Set();
      for (const run of runs.runs) {
        if (seen.has(run.name)) continue; // newest first
        seen.add(run.name);
        state.usage.set(run.name, { tokens: tokenTotal(run.tokens), title: tokenTitle(run.tokens), cost: run.cost_usd });
      }
      renderTable();
    } catch (_) {
      /* the index may be unavailable: the columns stay empty */
    }
    try {
      const usage = await api("api/usage", { params: { group_by: "model", since: todayLocal() } });
      $("usage-tokens").textContent = number(tokenTotal(usage.total.tokens));
      $("usage-cost").textContent = usage.total.cost_usd === null ? "no cost" : money(usage.total.cost_usd);
      $("usage-cost").title = usage.total.cost_usd === null ? "no CLI reported a cost" : "";
      $("usage-tokens").title = tokenTitle(usage.total.tokens);
      const body = $("usage-models");
      body.replaceChildren(
        ...usage.groups.map((g) =>
          el("tr", {}, el("td", { text: g.key === null ? "—" : g.key }),
            el("td", { class: "num", text: number(tokenTotal(g.tokens)) }),
            el("td", { class: "num", text: money(g.cost_usd) })),
        ),
      );
      if (!usage.groups.length) body.append(el("tr", {}, el("td", { colspan: "3", class: "muted", text: "no runs today" })));
    } catch (err) {
      $("usage-tokens").textContent = "–";
      $("usage-cost").textContent = err.code === "index_unavailable" ? "index unavailable" : "–";
    }
  }

  // ---- overview: the agents table ----------------------------------------------------

  function uptimeOf(agent) {
    let seconds = agent.duration_seconds;
    if (LIVE.has(agent.status) && agent.fetched) seconds += (Date.now() - agent.fetched) / 1000;
    return goDuration(seconds);
  }

  function describeRecord(record) {
    if (record.type === "tool_call") {
      const input = (record.input || "").replace(/\s+/g, " ").slice(0, 120);
      return `${record.tool}${record.status ? " (" + record.status + ")" : ""}: ${input}`;
    }
    if (record.type === "state") return `state: ${record.state}${record.detail ? " — " + record.detail.slice(0, 100) : ""}`;
    return null;
  }

  async function lookUpLast() {
    // The last tool call or state of agents listed before this page opened: asked once
    // each (the events keep it current afterwards), a few at a time.
    const todo = [...state.agents.keys()].filter((n) => !state.lastLooked.has(n)).slice(0, 20);
    for (const name of todo) state.lastLooked.add(name);
    await Promise.all(
      todo.map(async (name) => {
        try {
          const detail = await api(agentPath(name), { params: { include_matches: true, limit: 1 } });
          const candidates = [...detail.matches.tool_calls, ...detail.matches.state];
          candidates.sort((a, b) => a.line_num - b.line_num);
          if (candidates.length && (!state.last.has(name) || state.lastFromDaemon.has(name))) {
            state.last.set(name, describeRecord(candidates[candidates.length - 1]));
            state.lastFromDaemon.delete(name);
          }
        } catch (_) {
          /* gone meanwhile */
        }
      }),
    );
    if (todo.length) renderTable();
  }

  function renderTable() {
    const wanted = $("filter-status").value;
    const needle = $("filter-name").value.trim().toLowerCase();
    const body = $("agents-body");
    const agents = [...state.agents.values()].sort(
      (a, b) => (b.started_at || "").localeCompare(a.started_at || "") || a.name.localeCompare(b.name),
    );
    const byStatus = {};
    for (const a of agents) byStatus[a.status] = (byStatus[a.status] || 0) + 1;
    $("status-counts").replaceChildren(
      el("li", {}, el("b", { text: String(agents.length) }), " listed"),
      ...STATUSES.filter((s) => byStatus[s]).map((s) =>
        el("li", { class: `st-${s}`, "data-status": s }, el("b", { text: String(byStatus[s]) }), " " + s),
      ),
    );
    const shown = agents.filter(
      (a) => (!wanted || a.status === wanted) && (!needle || a.name.toLowerCase().includes(needle)),
    );
    $("agents-count").textContent = shown.length === agents.length ? `(${agents.length})` : `(${shown.length} of ${agents.length})`;
    $("agents-empty").hidden = agents.length > 0;
    const keep = new Set(shown.map((a) => a.name));
    for (const [name, row] of state.rows) {
      if (!keep.has(name)) {
        row.remove();
        state.rows.delete(name);
      }
    }
    let previous = null;
    for (const agent of shown) {
      let row = state.rows.get(agent.name);
      if (!row) {
        row = el("tr", { "data-name": agent.name });
        const link = el("a", { href: "#/agent/" + enc(agent.name), text: agent.name });
        row.append(el("td", {}, link));
        for (let i = 0; i < 8; i++) row.append(el("td"));
        for (const i of [3, 4, 5, 6, 7]) row.children[i].className = "num";
        row.children[8].className = "last";
        state.rows.set(agent.name, row);
      }
      const cells = row.children;
      const counts = state.counts.get(agent.name);
      const usage = state.usage.get(agent.name);
      if (cells[1].dataset.status !== agent.status) {
        cells[1].dataset.status = agent.status;
        cells[1].replaceChildren(statusBadge(agent.status));
      }
      row.dataset.status = agent.status;
      setText(cells[2], uptimeOf(agent));
      setText(cells[3], counts ? number(counts.log_lines) : "");
      setText(cells[4], counts ? number(counts.extractions) : "");
      setText(cells[5], counts ? number(counts.errors) : "");
      const usageKnown = usage && !LIVE.has(agent.status);
      setText(cells[6], usageKnown ? number(usage.tokens) : "");
      cells[6].title = usageKnown ? usage.title : "";
      setText(cells[7], usageKnown ? money(usage.cost) : "");
      const last = state.last.get(agent.name) || "";
      setText(cells[8], last);
      cells[8].title = last;
      const expected = previous ? previous.nextSibling : body.firstChild;
      if (expected !== row) body.insertBefore(row, expected);
      previous = row;
    }
  }

  function setText(node, text) {
    if (node.textContent !== text) node.textContent = text;
  }

  function bump(name, key, by = 1) {
    const counts = state.counts.get(name);
    if (counts) counts[key] = (counts[key] || 0) + by;
  }

  // ---- /api/events: every agent, one connection --------------------------------------

  let tableFrame = null;
  function renderTableSoon() {
    if (!tableFrame) tableFrame = requestAnimationFrame(() => ((tableFrame = null), renderTable()));
  }

  function openEvents() {
    state.events = new Stream("api/events", {}, {
      open() {
        setConnection("on", "live");
        refreshAll();
      },
      error(readyState) {
        setConnection("off", readyState === EventSource.CLOSED ? "disconnected, retrying…" : "reconnecting…");
      },
      log(data, envelope) {
        bump(envelope.agent_name, "log_lines");
        renderTableSoon();
      },
      extraction(record, envelope) {
        const name = envelope.agent_name;
        bump(name, "extractions");
        if (record.type === "error") bump(name, "errors");
        const text = describeRecord(record);
        if (text) {
          state.last.set(name, text);
          state.lastFromDaemon.delete(name);
        }
        renderTableSoon();
      },
      state(data, envelope) {
        // The daemon's own status change fills "Last" for agents whose output has no
        // tool call or state record (a plain command): "failed: exit code 3".
        const name = envelope.agent_name;
        if (!state.last.has(name) || state.lastFromDaemon.has(name)) {
          state.last.set(name, data.detail ? `${data.state}: ${data.detail}` : data.state);
          state.lastFromDaemon.add(name);
        }
        const agent = state.agents.get(envelope.agent_name);
        if (agent) {
          agent.status = data.state;
          renderTableSoon();
        }
        refreshSoon();
        if (state.agent && state.agent.name === envelope.agent_name) agentStateFromEvents(data);
      },
      complete(data, envelope) {
        const agent = state.agents.get(envelope.agent_name);
        if (agent) {
          agent.status = data.status;
          agent.duration_seconds = data.duration_seconds;
          agent.fetched = Date.now();
          renderTableSoon();
        }
        refreshSoon();
        // The run index takes its figures a moment after the end (longer on a busy host).
        for (const ms of [1000, 3000, 7000]) setTimeout(refreshSlow, ms);
      },
      gap() {
        refreshSoon();
      },
      shutdown() {
        setConnection("off", "daemon shutting down");
      },
    });
  }

  // ---- start form --------------------------------------------------------------------

  function startMode() {
    return document.querySelector('input[name="mode"]:checked').value;
  }

  function syncStartMode() {
    const argv = startMode() === "argv";
    $("start-profile").hidden = argv;
    $("start-argv").hidden = !argv;
  }

  function argvPreview() {
    const words = shellSplit($("start-argv-input").value);
    $("argv-preview").textContent =
      words === null ? "unbalanced quote" : words.length ? "argv: " + JSON.stringify(words) : "";
  }

  async function submitStart(event) {
    event.preventDefault();
    const result = $("start-result");
    result.className = "";
    const body = { name: $("start-name").value.trim() };
    if (startMode() === "argv") {
      const words = shellSplit($("start-argv-input").value);
      if (!words || !words.length) {
        result.className = "error";
        result.textContent = words === null ? "The command has an unbalanced quote." : "Give a command.";
        return;
      }
      body.command = words;
    } else {
      body.profile = $("start-profile-name").value.trim();
      const prompt = $("start-prompt").value;
      if (prompt) body.prompt = prompt;
    }
    const cwd = $("start-cwd").value.trim();
    if (cwd) body.cwd = cwd;
    if ($("start-format").value) body.format = $("start-format").value;
    const timeout = $("start-timeout").value;
    if (timeout) body.timeout_seconds = Number(timeout);
    if ($("start-stdin").checked) body.stdin = true;
    if ($("start-pty").checked) body.pty = true;
    $("start-submit").disabled = true;
    result.textContent = "starting…";
    try {
      const agent = await api("api/agents", { method: "POST", body });
      agent.fetched = Date.now();
      state.agents.set(agent.name, agent);
      renderTable();
      result.className = "ok";
      result.replaceChildren(
        `Started ${agent.name} (pid ${agent.pid}). `,
        el("a", { href: "#/agent/" + enc(agent.name), text: "Open it" }),
      );
      $("start-name").value = "";
      refreshSoon();
    } catch (err) {
      result.className = "error";
      result.textContent = String(err);
    } finally {
      $("start-submit").disabled = false;
    }
  }

  async function cleanFinished() {
    if (!confirm("Unlist every completed, failed, stopped and interrupted agent? Their files stay on disk.")) return;
    try {
      await api("api/agents", { method: "DELETE", params: { status: "completed,failed,stopped,interrupted" } });
    } catch (err) {
      alert(String(err));
    }
    refreshAll();
  }

  // ---- one agent's page --------------------------------------------------------------

  const GROUPS = [
    { key: "session", title: "Session and model", types: ["session"], matches: ["session"] },
    { key: "talk", title: "Prompts and responses", types: ["prompt", "response"], matches: ["prompts", "responses"] },
    { key: "tools", title: "Tool calls", types: ["tool_call"], matches: ["tool_calls"] },
    { key: "files", title: "Files touched", types: ["file_op"], matches: ["file_ops"] },
    { key: "code", title: "Code blocks", types: ["code_block"], matches: ["code_blocks"] },
    { key: "metrics", title: "Metrics", types: ["metric"], matches: ["metrics"] },
    { key: "errors", title: "Errors", types: ["error"], matches: ["errors"] },
    { key: "states", title: "States", types: ["state"], matches: ["state"] },
  ];
  const GROUP_OF = {};
  for (const g of GROUPS) for (const t of g.types) GROUP_OF[t] = g;

  function newAgentState(name) {
    return {
      name,
      detail: null,
      stream: null,
      lastId: 0,
      maxLine: 0,
      lines: 0,
      paused: false,
      pending: [],
      ended: false,
      records: new Map(GROUPS.map((g) => [g.key, new Map()])),
      dirty: new Set(),
      frame: null,
      fullStream: "stdout",
      fullSource: null,
    };
  }

  function closeAgent() {
    if (state.agent && state.agent.stream) state.agent.stream.close();
    state.agent = null;
  }

  function openAgent(name) {
    closeAgent();
    const cur = newAgentState(name);
    state.agent = cur;
    $("agent-title").textContent = name;
    document.title = `${name} · trio_wrapper`;
    $("agent-status").replaceChildren();
    $("agent-facts").replaceChildren();
    $("agent-message").textContent = "";
    $("log").replaceChildren();
    $("log-count").textContent = "";
    $("log-note").hidden = true;
    $("full-log").hidden = true;
    $("btn-pause").setAttribute("aria-pressed", "false");
    $("btn-pause").textContent = "Pause";
    $("records").replaceChildren(
      ...GROUPS.map((g) =>
        el("details", { id: "group-" + g.key, "data-group": g.key, open: true, hidden: true },
          el("summary", {}, g.title + " ", el("span", { class: "muted" })),
          el("div", { class: "group-body" })),
      ),
    );
    $("records-count").textContent = "";
    $("runs-body").replaceChildren();
    loadDetail(cur, true);
    openAgentStream(cur);
    loadRuns(cur);
  }

  function openAgentStream(cur) {
    cur.stream = new Stream(agentPath(cur.name, "/stream"), { history: "all" }, {
      log(data, envelope, id) {
        if (id !== null && id <= cur.lastId) return;
        if (id !== null) cur.lastId = id;
        addLine(cur, data);
      },
      extraction(record, envelope, id) {
        if (id !== null && id <= cur.lastId) return;
        if (id !== null) cur.lastId = id;
        addRecord(cur, record);
      },
      state(data, envelope, id) {
        if (id !== null && id <= cur.lastId) return;
        if (id !== null) cur.lastId = id;
        showStatus(cur, data.state);
        loadDetailSoon(cur);
      },
      complete(data, envelope, id) {
        if (id !== null) cur.lastId = Math.max(cur.lastId, id);
        cur.ended = true;
        cur.stream.done();
        showStatus(cur, data.status);
        loadDetail(cur, false).then(() => {
          // A run whose lines the stream cannot replay (a past run): show its files.
          const d = cur.detail;
          if (state.agent === cur && cur.lines === 0 && d && d.bytes_processed > 0 && $("full-log").hidden) {
            showFullLog(cur, "stdout", null, false);
          }
        });
        setTimeout(() => state.agent === cur && loadRuns(cur), 1500);
      },
      gap(data) {
        note(cur, `${number(data.missed)} events were not kept for this page (ids ${data.first_id}–${data.last_id}); "Full log" has every line.`);
      },
      async beforeRetry() {
        // Reconnect only while the agent is listed (404: it was removed).
        if (state.agent !== cur) return false;
        try {
          await api(agentPath(cur.name));
          return true;
        } catch (err) {
          if (err.status === 404) $("agent-message").textContent = "This agent is no longer listed.";
          return err.status !== 404 && err.status !== 401;
        }
      },
    });
  }

  function agentStateFromEvents(data) {
    // A new run started elsewhere (restart from another client): follow it.
    const cur = state.agent;
    if (data.state === "running" && cur.ended) openAgent(cur.name);
  }

  function showStatus(cur, status) {
    $("agent-status").replaceChildren(statusBadge(status));
    const live = LIVE.has(status);
    $("btn-stop").disabled = !live;
  }

  let detailTimer = null;
  function loadDetailSoon(cur) {
    if (!detailTimer) detailTimer = setTimeout(() => ((detailTimer = null), loadDetail(cur, false)), 300);
  }

  async function loadDetail(cur, withRecords) {
    let detail;
    try {
      detail = await api(agentPath(cur.name), withRecords ? { params: { include_matches: true, limit: MAX_RECORDS_SHOWN } } : {});
    } catch (err) {
      if (state.agent !== cur) return;
      $("agent-message").textContent =
        err.status === 404 ? "No agent with this name is listed; its past runs are below." : String(err);
      if (err.status === 404) {
        cur.stream.close();
        showStatus(cur, "gone");
        $("btn-restart").disabled = $("btn-remove").disabled = true;
      }
      return;
    }
    if (state.agent !== cur) return;
    cur.detail = detail;
    $("btn-restart").disabled = $("btn-remove").disabled = false;
    showStatus(cur, detail.status);
    if (withRecords && detail.matches) {
      for (const g of GROUPS) for (const key of g.matches) for (const r of detail.matches[key] || []) addRecord(cur, r);
    }
    const fact = (term, value) =>
      value === null || value === undefined || value === ""
        ? []
        : [el("div", { class: ["command", "error"].includes(term) ? "fact wide" : ["lines", "run", "cwd"].includes(term) ? "fact two" : "fact" },
            el("dt", { text: term }), el("dd", { text: String(value) }))];
    const ended = !LIVE.has(detail.status);
    $("agent-facts").replaceChildren(
      ...fact("command", detail.command.map((w) => (/^[\w@%+=:,./-]+$/.test(w) ? w : JSON.stringify(w))).join(" ")),
      ...fact("format", detail.format + (detail.profile ? ` (profile ${detail.profile})` : "")),
      ...fact("pid", detail.pid),
      ...fact("started", localTime(detail.started_at)),
      ...fact(ended ? "duration" : "uptime", detail.uptime),
      ...fact("exit", detail.exit_code !== null ? detail.exit_code : detail.signal),
      ...fact("stopped by", detail.stop_reason),
      ...fact("lines", `${number(detail.streams.stdout.lines)} stdout, ${number(detail.streams.stderr.lines)} stderr (${number(detail.bytes_processed)} bytes)`),
      ...fact("records", number(detail.extraction.total_matches)),
      ...fact("cwd", detail.cwd),
      ...fact("error", detail.error),
      ...fact("run", detail.run_id),
    );
    $("input-form").hidden = !detail.stdin_open;
  }

  function note(cur, text) {
    const box = $("log-note");
    box.hidden = false;
    box.textContent = text;
  }

  function addLine(cur, data) {
    if (data.line_num <= cur.maxLine) return; // seen already (a replay after a reconnect)
    if (cur.maxLine === 0 && data.line_num > 1) {
      note(cur, `Lines 1–${data.line_num - 1} are older than what the daemon keeps for streams; "Full log" has them.`);
    }
    cur.maxLine = data.line_num;
    cur.lines += 1;
    if (cur.paused) {
      cur.pending.push(data);
      $("btn-pause").textContent = `Resume (${number(cur.pending.length)} new)`;
      return;
    }
    renderLines(cur, [data]);
  }

  function renderLines(cur, items) {
    const box = $("log");
    const fragment = document.createDocumentFragment();
    for (const data of items) {
      const line = el("span", { class: data.stream === "stderr" ? "ln err" : "ln", "data-n": String(data.line_num) });
      appendAnsi(line, data.line);
      fragment.append(line);
    }
    box.append(fragment);
    while (box.childElementCount > MAX_LOG_LINES) box.firstElementChild.remove();
    $("log-count").textContent = `(${number(cur.lines)} lines)`;
    if ($("log-follow").checked) box.scrollTop = box.scrollHeight;
  }

  function togglePause() {
    const cur = state.agent;
    if (!cur) return;
    cur.paused = !cur.paused;
    $("btn-pause").setAttribute("aria-pressed", String(cur.paused));
    if (!cur.paused) {
      const items = cur.pending;
      cur.pending = [];
      renderLines(cur, items);
    }
    $("btn-pause").textContent = cur.paused ? "Resume" : "Pause";
  }

  function addRecord(cur, record) {
    const group = GROUP_OF[record.type];
    if (!group) return;
    const key = JSON.stringify(record);
    const records = cur.records.get(group.key);
    if (records.has(key)) return; // the detail's matches and the stream's replay overlap
    records.set(key, record);
    cur.dirty.add(group.key);
    if (!cur.frame) cur.frame = requestAnimationFrame(() => renderRecords(cur));
  }

  function renderRecords(cur) {
    cur.frame = null;
    if (state.agent !== cur) return;
    let total = 0;
    for (const records of cur.records.values()) total += records.size;
    $("records-count").textContent = total ? `(${number(total)})` : "";
    for (const key of cur.dirty) {
      const group = GROUPS.find((g) => g.key === key);
      const records = [...cur.records.get(key).values()].sort((a, b) => a.line_num - b.line_num);
      const box = $("group-" + key);
      box.hidden = records.length === 0;
      box.querySelector("summary .muted").textContent = `(${number(records.length)})`;
      box.querySelector(".group-body").replaceChildren(...renderGroup(group, records));
    }
    cur.dirty.clear();
  }

  function renderGroup(group, records) {
    const shown = records.slice(-MAX_RECORDS_SHOWN);
    const line = (r) => el("span", { class: "k", text: `line ${r.line_num} ` });
    switch (group.key) {
      case "session": {
        const latest = new Map();
        for (const r of shown) latest.set(r.key, r);
        return [...latest.values()].map((r) =>
          el("div", { class: "rec", "data-type": r.type }, el("span", { class: "k", text: r.key + ": " }), el("span", { class: "mono", text: r.value })));
      }
      case "metrics": {
        const latest = new Map();
        for (const r of shown) latest.set(r.key, r);
        return [...latest.values()].map((r) =>
          el("div", { class: "rec", "data-type": r.type }, el("span", { class: "k", text: r.key + ": " }),
            el("b", { text: number(r.value) }), r.unit ? " " + r.unit : ""));
      }
      case "files": {
        const byPath = new Map();
        for (const r of shown) {
          if (!byPath.has(r.path)) byPath.set(r.path, new Set());
          byPath.get(r.path).add(r.op);
        }
        return [...byPath].map(([path, ops]) =>
          el("div", { class: "rec", "data-type": "file_op" }, ...[...ops].map((op) => el("span", { class: "tag", text: op })), el("span", { class: "mono", text: path })));
      }
      case "talk":
        return shown.map((r) =>
          el("div", { class: "rec", "data-type": r.type }, line(r), el("span", { class: "tag", text: r.type }),
            el("pre", { class: "text", text: r.text })));
      case "tools":
        return shown.map((r) =>
          el("div", { class: "rec", "data-type": r.type }, line(r), el("span", { class: "tag", text: r.tool }),
            r.status ? el("span", { class: "tag", text: r.status }) : null,
            r.exit_code !== null && r.exit_code !== undefined ? el("span", { class: "tag", text: "exit " + r.exit_code }) : null,
            r.input ? el("pre", { text: r.input }) : null));
      case "code":
        return shown.map((r) =>
          el("div", { class: "rec", "data-type": r.type }, line(r), el("span", { class: "tag", text: r.language || "code" }),
            el("span", { class: "k", text: `${r.line_count} lines` }), el("pre", {}, el("code", { text: r.content }))));
      case "errors":
        return shown.map((r) =>
          el("div", { class: "rec error", "data-type": r.type }, line(r), el("span", { class: "tag", text: r.source }), r.message));
      default:
        return shown.map((r) =>
          el("div", { class: "rec", "data-type": r.type }, line(r), el("b", { text: r.state }), r.detail ? " " + r.detail : ""));
    }
  }

  async function loadRuns(cur) {
    let answer;
    try {
      answer = await api(agentPath(cur.name, "/runs"));
    } catch (err) {
      if (state.agent === cur) $("runs-body").replaceChildren(el("tr", {}, el("td", { colspan: "8", class: "muted", text: err.status === 404 ? "no runs on disk" : String(err) })));
      return;
    }
    if (state.agent !== cur) return;
    $("runs-body").replaceChildren(
      ...answer.runs.map((run) => {
        const usage = run.usage;
        const logButton = (stream) => el("button", { type: "button", class: "ghost", text: stream, onclick: () => showFullLog(cur, stream, run.stamp) });
        return el("tr", { "data-stamp": run.stamp },
          el("td", {}, el("span", { class: "mono", text: run.stamp }), run.listed ? el("span", { class: "muted", text: " (shown)" }) : null),
          el("td", {}, statusBadge(run.status)),
          el("td", { text: localTime(run.started_at) }),
          el("td", { class: "num", text: goDuration(run.duration_seconds) }),
          el("td", { class: "num", text: run.exit_code === null ? run.signal || "" : String(run.exit_code) }),
          el("td", { class: "num", text: usage ? number(tokenTotal(usage.tokens)) : "" }),
          el("td", { class: "num", text: usage ? money(usage.cost_usd) : "" }),
          el("td", {}, logButton("stdout"), " ", logButton("stderr")));
      }),
    );
  }

  async function showFullLog(cur, stream, stamp, scroll = true) {
    cur.fullStream = stream;
    cur.fullStamp = stamp || null;
    $("full-log").hidden = false;
    $("btn-full-stdout").setAttribute("aria-pressed", String(stream === "stdout"));
    $("btn-full-stderr").setAttribute("aria-pressed", String(stream === "stderr"));
    const pre = $("full-log-text");
    pre.textContent = "loading…";
    const path = stamp ? agentPath(cur.name, `/runs/${enc(stamp)}/logs`) : agentPath(cur.name, "/logs");
    try {
      let text = await api(path, { params: { stream }, text: true });
      if (state.agent !== cur) return;
      pre.replaceChildren();
      const limit = 4 * 1024 * 1024;
      if (text.length > limit) {
        pre.append(el("span", { class: "note", text: `(the first ${number(text.length - limit)} characters are left out here)` }));
        text = text.slice(-limit);
      }
      if (!text) pre.append(el("span", { class: "note", text: `(${stream} is empty)` }));
      appendAnsi(pre, text); // keeps \n and \t, drops \r and other controls
      if (scroll) $("full-log").scrollIntoView({ block: "nearest" });
    } catch (err) {
      if (state.agent === cur) pre.textContent = String(err);
    }
  }

  async function agentAction(kind) {
    const cur = state.agent;
    if (!cur) return;
    const message = $("agent-message");
    try {
      if (kind === "stop") {
        message.textContent = "stopping…";
        const answer = await api(agentPath(cur.name, "/stop"), { method: "POST" });
        message.textContent = `${answer.message} (${answer.status})`;
        loadDetail(cur, false);
      } else if (kind === "restart") {
        message.textContent = "restarting…";
        await api(agentPath(cur.name, "/restart"), { method: "POST" });
        openAgent(cur.name);
        $("agent-message").textContent = "restarted: a new run";
        setTimeout(() => state.agent && loadRuns(state.agent), 300);
      } else if (kind === "remove") {
        if (!confirm(`Stop and unlist ${cur.name}? Its files stay on disk.`)) return;
        message.textContent = "removing…";
        await api(agentPath(cur.name), { method: "DELETE" });
        state.agents.delete(cur.name);
        location.hash = "#/";
      }
    } catch (err) {
      message.textContent = String(err);
    }
  }

  async function sendInput(eof) {
    const cur = state.agent;
    if (!cur) return;
    const input = $("input-text");
    const body = eof ? { eof: true } : { data: input.value + "\n" };
    try {
      const answer = await api(agentPath(cur.name, "/input"), { method: "POST", body });
      $("agent-message").textContent = eof ? "stdin closed" : `sent ${answer.written} bytes`;
      if (!eof) input.value = "";
      if (eof) loadDetail(cur, false);
    } catch (err) {
      $("agent-message").textContent = String(err);
    }
  }

  // ---- routing -----------------------------------------------------------------------

  function route(event) {
    const match = /^#\/agent\/(.+)$/.exec(location.hash);
    if (match) {
      const name = decodeURIComponent(match[1]);
      $("overview-view").hidden = true;
      $("agent-view").hidden = false;
      if (!state.agent || state.agent.name !== name) openAgent(name);
      // After a click or Enter on a link, the keyboard goes on from the agent's name.
      if (event) $("agent-title").focus();
    } else {
      closeAgent();
      document.title = "trio_wrapper";
      $("agent-view").hidden = true;
      $("overview-view").hidden = false;
    }
  }

  // ---- wiring ------------------------------------------------------------------------

  function init() {
    $("token-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const token = $("token-input").value.trim();
      if (token) useToken(token);
    });
    $("token-forget").addEventListener("click", () => useToken(""));
    $("token-button").addEventListener("click", () => askToken(""));
    document.querySelectorAll('input[name="mode"]').forEach((r) => r.addEventListener("change", syncStartMode));
    $("start-argv-input").addEventListener("input", argvPreview);
    $("start-form").addEventListener("submit", submitStart);
    $("filter-status").addEventListener("change", renderTable);
    $("filter-name").addEventListener("input", renderTable);
    $("clean-button").addEventListener("click", cleanFinished);
    $("btn-stop").addEventListener("click", () => agentAction("stop"));
    $("btn-restart").addEventListener("click", () => agentAction("restart"));
    $("btn-remove").addEventListener("click", () => agentAction("remove"));
    $("btn-pause").addEventListener("click", togglePause);
    $("log-stderr-only").addEventListener("change", (e) => $("log").classList.toggle("stderr-only", e.target.checked));
    $("btn-full-log").addEventListener("click", () => state.agent && showFullLog(state.agent, "stdout"));
    $("btn-full-stdout").addEventListener("click", () => state.agent && showFullLog(state.agent, "stdout", state.agent.fullStamp));
    $("btn-full-stderr").addEventListener("click", () => state.agent && showFullLog(state.agent, "stderr", state.agent.fullStamp));
    $("btn-full-close").addEventListener("click", () => ($("full-log").hidden = true));
    $("input-form").addEventListener("submit", (e) => (e.preventDefault(), sendInput(false)));
    $("btn-eof").addEventListener("click", () => sendInput(true));
    $("agent-title").setAttribute("tabindex", "-1");
    window.addEventListener("hashchange", route);
    window.addEventListener("resize", drawRate);
    syncStartMode();
    refreshHealth();
    refreshAll();
    refreshSlow();
    openEvents();
    route();
    setInterval(() => {
      if (!document.hidden) refreshAll();
    }, POLL_MS);
    setInterval(() => {
      if (!document.hidden) {
        refreshSlow();
        refreshHealth();
      }
    }, SLOW_POLL_MS);
    // Uptimes of running agents tick between polls.
    setInterval(() => {
      if (document.hidden) return;
      showVersion();
      if (!$("overview-view").hidden) renderTable();
    }, 1000);
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
