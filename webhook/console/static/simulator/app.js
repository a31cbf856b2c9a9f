// parley simulator: a WhatsApp-like chat over the real pipeline (see webhook/console/simulator.py).
// Plain JS, no build step, nothing loaded from elsewhere.
"use strict";

const POLL_MS = 500;         // replies
const STATE_MS = 1000;       // conversation row
const WAITING_AFTER_MS = 5000;

const $ = (id) => document.getElementById(id);
const el = (tag, cls, text) => {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (text !== undefined) node.textContent = text;
  return node;
};

const sim = {
  config: null,
  token: sessionStorage.getItem("parley.token") || "",
  user: "",
  name: "Test User",
  afterId: 0,
  generation: 0,          // bumps on every user switch: stale answers are dropped
  sent: new Map(),        // wamid → the customer's bubble
  read: new Set(),        // wamids the bot marked read (may come before the bubble)
  waitingSince: null,     // when the oldest unanswered message was sent
  state: null,
  diagramKey: "",
  funnelTemplate: "",
};

// --- HTTP ---------------------------------------------------------------------------

async function api(path, options = {}) {
  const headers = Object.assign({}, options.headers || {});
  if (sim.token) headers.Authorization = "Bearer " + sim.token;
  const response = await fetch(path, Object.assign({}, options, { headers }));
  if (response.status === 401 && path.startsWith("api/")) askToken("This simulator is protected.");
  return response;
}

async function apiJson(path, options) {
  const response = await api(path, options);
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw Object.assign(new Error(body.error || response.statusText), { status: response.status, body });
  return body;
}

function askToken(why) {
  $("token-why").textContent = why;
  $("token-bar").hidden = false;
}

// --- WhatsApp text formatting (*bold* _italic_ ~strike~ ```mono```) -----------------

function escapeHtml(text) {
  return String(text).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
}

function formatted(text) {
  // Escape first: everything after only adds our own tags around escaped text.
  let html = escapeHtml(text);
  html = html.replace(/```([\s\S]+?)```/g, "<code>$1</code>");
  html = html.replace(/(^|[\s(])\*([^*\n]+)\*(?=$|[\s).,!?:;])/g, "$1<strong>$2</strong>");
  html = html.replace(/(^|[\s(])_([^_\n]+)_(?=$|[\s).,!?:;])/g, "$1<em>$2</em>");
  html = html.replace(/(^|[\s(])~([^~\n]+)~(?=$|[\s).,!?:;])/g, "$1<del>$2</del>");
  return html.replace(/\n/g, "<br>");
}

function clock(iso) {
  const d = iso ? new Date(iso) : new Date();
  return d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}

// --- the thread ---------------------------------------------------------------------

function scrollDown() {
  const thread = $("thread");
  thread.scrollTop = thread.scrollHeight;
}

function meta(bubble, at, ticks) {
  const m = el("span", "meta");
  m.append(el("span", "time", clock(at)));
  if (ticks) m.append(el("span", "ticks"));
  bubble.append(m);
}

function setTicks(bubble, state, title) {
  bubble.dataset.state = state;
  const ticks = bubble.querySelector(".ticks");
  if (!ticks) return;
  ticks.textContent = { posting: "🕓", queued: "✓", read: "✓✓", error: "!" }[state] || "";
  ticks.title = title || { posting: "posting the webhook", queued: "webhook accepted (200), in the queue", read: "handled by a worker: marked read" }[state] || "";
}

function customerBubble(text, at, wamid, state) {
  const bubble = el("div", "bubble out");
  bubble.append(el("div", "text", text));
  meta(bubble, at, true);
  setTicks(bubble, state);
  if (wamid) {
    bubble.dataset.wamid = wamid;
    sim.sent.set(wamid, bubble);
    if (sim.read.has(wamid)) setTicks(bubble, "read");
  }
  $("thread").append(bubble);
  scrollDown();
  return bubble;
}

function botBubble(reply) {
  const content = reply.content || {};
  const wrap = el("div", "msg in");
  wrap.dataset.id = reply.id;
  const bubble = el("div", "bubble in");
  wrap.append(bubble);
  if (content.type === "text") {
    const text = el("div", "text");
    text.innerHTML = formatted((content.text || {}).body || "");
    bubble.append(text);
  } else if (content.type === "interactive") {
    renderInteractive(wrap, bubble, content.interactive || {}, reply.wamid);
  } else if (content.type === "template" && typeof renderTemplate === "function") {
    renderTemplate(bubble, reply); // notify.js
  } else {
    bubble.append(el("div", "text muted", `[${content.type || reply.kind}]`));
  }
  // Live mode only: the outbox row's delivery state when it is not plainly delivered.
  if (reply.status && !["accepted", "sent", "delivered", "read"].includes(reply.status)) {
    bubble.append(el("div", "delivery " + reply.status, reply.status + (reply.error ? ": " + reply.error : "")));
  }
  meta(bubble, reply.at, false);
  $("thread").append(wrap);
  scrollDown();
}

function renderInteractive(wrap, bubble, message, wamid) {
  wrap.classList.add("interactive", message.type);
  if (message.header && message.header.text) bubble.append(el("div", "header", message.header.text));
  const body = el("div", "text");
  body.innerHTML = formatted((message.body || {}).text || "");
  bubble.append(body);
  if (message.footer && message.footer.text) bubble.append(el("div", "footer", message.footer.text));
  const action = message.action || {};
  const actions = el("div", "actions");
  if (message.type === "button") {
    for (const b of action.buttons || []) {
      const reply = b.reply || {};
      const button = el("button", "reply-btn", reply.title);
      button.type = "button";
      button.addEventListener("click", () => sendTap({ id: reply.id, title: reply.title, kind: "button", context: wamid }));
      actions.append(button);
    }
  } else if (message.type === "list") {
    const open = el("button", "reply-btn list-open", "☰ " + (action.button || "Options"));
    open.type = "button";
    open.addEventListener("click", () => openSheet(action, wamid));
    actions.append(open);
  }
  wrap.append(actions);
}

function openSheet(action, wamid) {
  $("sheet-title").textContent = action.button || "Options";
  const body = $("sheet-body");
  body.replaceChildren();
  for (const section of action.sections || []) {
    if (section.title) body.append(el("div", "section-title", section.title));
    for (const row of section.rows || []) {
      const item = el("button", "row");
      item.type = "button";
      const words = el("span", "row-words");
      words.append(el("span", "row-title", row.title));
      if (row.description) words.append(el("span", "row-desc", row.description));
      item.append(words, el("span", "radio"));
      item.addEventListener("click", () => {
        item.classList.add("chosen");
        closeSheet();
        sendTap({ id: row.id, title: row.title, description: row.description, kind: "list", context: wamid });
      });
      body.append(item);
    }
  }
  $("sheet").hidden = false;
}

function closeSheet() {
  $("sheet").hidden = true;
}

function applyReply(reply) {
  if (reply.kind === "mark_read") {
    sim.read.add(reply.read);
    const bubble = sim.sent.get(reply.read);
    if (bubble) setTicks(bubble, "read");
    if (sim.waitingSince !== null && [...sim.sent.values()].every((b) => b.dataset.state !== "queued")) {
      sim.waitingSince = null; // handled; a flow may legitimately answer nothing
    }
    return;
  }
  sim.waitingSince = null;
  botBubble(reply);
}

// --- sending --------------------------------------------------------------------------

async function post(payload, shown) {
  if (!sim.user) return;
  const bubble = customerBubble(shown, null, null, "posting");
  if (sim.waitingSince === null) sim.waitingSince = Date.now();
  try {
    const answer = await apiJson("api/send", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(Object.assign({ user: sim.user, name: sim.name }, payload)),
    });
    bubble.dataset.wamid = answer.wamid;
    sim.sent.set(answer.wamid, bubble);
    if (answer.webhook_status !== 200) {
      setTicks(bubble, "error", `webhook answered ${answer.webhook_status}: ${answer.webhook_answer}`);
    } else {
      setTicks(bubble, sim.read.has(answer.wamid) ? "read" : "queued");
    }
  } catch (err) {
    setTicks(bubble, "error", err.message);
    sim.waitingSince = null;
    showBanner("Not sent: " + err.message);
  }
}

function sendText(text) {
  post({ text }, text);
}

function sendTap(tap) {
  post({ tap }, tap.title);
}

// --- polling --------------------------------------------------------------------------

async function pollReplies() {
  const generation = sim.generation;
  if (sim.user) {
    try {
      const body = await apiJson(`api/replies?user=${encodeURIComponent(sim.user)}&after_id=${sim.afterId}`);
      if (generation === sim.generation) {
        for (const reply of body.messages) {
          sim.afterId = Math.max(sim.afterId, reply.id);
          applyReply(reply);
        }
      }
    } catch (err) {
      if (err.status !== 401) showBanner("Polling replies failed: " + err.message);
    }
  }
  renderWaiting();
  setTimeout(pollReplies, POLL_MS);
}

function renderWaiting() {
  const waiting = $("waiting");
  const since = sim.waitingSince;
  if (since === null || Date.now() - since < WAITING_AFTER_MS) {
    waiting.hidden = true;
    return;
  }
  const seconds = Math.round((Date.now() - since) / 1000);
  waiting.textContent = `waiting for reply… ${seconds} s (is a worker running?)`;
  waiting.hidden = false;
}

async function pollState() {
  const generation = sim.generation;
  if (sim.user) {
    try {
      const body = await apiJson(`api/state?user=${encodeURIComponent(sim.user)}`);
      if (generation === sim.generation) renderState(body.conversation);
    } catch (err) {
      /* shown by the reply poll */
    }
  }
  setTimeout(pollState, STATE_MS);
}

function until(iso) {
  const ms = new Date(iso) - Date.now();
  if (ms <= 0) return "expired";
  const minutes = Math.floor(ms / 60000);
  return minutes >= 60 ? `in ${Math.floor(minutes / 60)} h ${minutes % 60} min` : `in ${minutes} min ${Math.floor(ms / 1000) % 60} s`;
}

// The customer's language, switched from the page; a keyword of another language switches it too.
async function switchLanguage(language) {
  if (!sim.user) return;
  try {
    await apiJson("api/language", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ user: sim.user, language }),
    });
    showBanner(`From the next message on, parley speaks ${language} to this customer.`);
  } catch (err) {
    showBanner("Language not switched: " + err.message);
  }
}

function renderState(conversation) {
  if (conversation && conversation.language && document.activeElement !== $("language")) $("language").value = conversation.language;
  const box = $("state");
  const previous = sim.state;
  sim.state = conversation;
  box.replaceChildren();
  if (!conversation) {
    const last = previous ? ` Last seen at ${previous.template} › ${previous.step}.` : "";
    box.append(el("p", "muted", "No live conversation." + last));
    if (previous) {
      showDiagram(previous.template, null);
      showFunnel(previous.template); // the run that just ended now counts
    }
    return;
  }
  const table = el("dl", "facts");
  const fact = (name, value, id) => {
    table.append(el("dt", "", name));
    const dd = el("dd", "", value);
    if (id) dd.id = id;
    table.append(dd);
  };
  fact("template", conversation.template, "state-template");
  fact("step", conversation.step, "state-step");
  fact("expires", `${new Date(conversation.expires_at).toLocaleString()} (${until(conversation.expires_at)})`);
  box.append(table);
  const context = el("table", "context");
  // Keys starting with "_" are the engine's own bookkeeping (which message answered which
  // step), not the customer's answers; the admin API still returns them.
  const entries = Object.entries(conversation.context || {}).filter(([key]) => !key.startsWith("_"));
  for (const [key, value] of entries) {
    const tr = el("tr");
    tr.append(el("th", "", key), el("td", "", typeof value === "string" ? value : JSON.stringify(value)));
    context.append(tr);
  }
  box.append(el("h3", "", "context"), entries.length ? context : el("p", "muted", "(empty)"));
  showDiagram(conversation.template, conversation.step);
  if (!previous || previous.template !== conversation.template || previous.step !== conversation.step) {
    showFunnel(conversation.template);
  }
}

// --- diagram and funnel ------------------------------------------------------------------

// Graphviz compiled to WebAssembly (vendor/viz, loaded by index.html) lays out the DOT the
// server builds: nothing to install on the server, and the same picture everywhere.
let vizReady = null;

async function showDiagram(template, step) {
  const key = `${template}|${step || ""}`;
  if (key === sim.diagramKey) return;
  sim.diagramKey = key;
  $("diagram-name").textContent = template;
  const box = $("diagram");
  const query = step ? `&highlight=${encodeURIComponent(step)}` : "";
  const response = await api(`api/diagram/${encodeURIComponent(template)}?format=dot${query}`);
  if (key !== sim.diagramKey) return;
  if (!response.ok) {
    const body = await response.json().catch(() => ({}));
    box.replaceChildren(el("p", "muted", body.error || `diagram unavailable (${response.status})`));
    return;
  }
  const dot = await response.text();
  let svg;
  try {
    vizReady = vizReady || Viz.instance();
    svg = (await vizReady).renderSVGElement(dot);
  } catch (err) {
    vizReady = null; // a renderer that failed to start is tried afresh next time
    if (key === sim.diagramKey) box.replaceChildren(el("p", "muted", "could not draw the diagram: " + err.message));
    return;
  }
  if (key !== sim.diagramKey) return;
  box.replaceChildren(svg);
  const current = step ? box.querySelector(`g.node#step_${CSS.escape(step)}`) : null;
  if (current) current.scrollIntoView({ block: "nearest", inline: "nearest" });
}

function adminToken() {
  return (sim.config && sim.config.admin_token) || sim.token;
}

async function showFunnel(template) {
  if (!template) return;
  sim.funnelTemplate = template;
  $("funnel-template").value = template;
  const box = $("funnel");
  const headers = adminToken() ? { Authorization: "Bearer " + adminToken() } : {};
  let response;
  try {
    response = await fetch(`/admin/api/stats/${encodeURIComponent(template)}`, { headers });
  } catch (err) {
    box.replaceChildren(el("p", "muted", "funnel unavailable: " + err.message));
    return;
  }
  if (template !== sim.funnelTemplate) return;
  if (response.status === 401 || response.status === 403) {
    box.replaceChildren(el("p", "muted", "The funnel comes from the admin API: enter the admin token above."));
    askToken("The funnel needs the admin token.");
    return;
  }
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    box.replaceChildren(el("p", "muted", response.status === 404 ? "No conversations recorded for this template yet." : (body.error && body.error.message) || response.statusText));
    return;
  }
  renderFunnel(box, body);
}

// The answers of completed flows, as the admin API exports them (CSV download).
async function exportAnswers() {
  const template = sim.funnelTemplate;
  if (!template) return;
  const headers = adminToken() ? { Authorization: "Bearer " + adminToken() } : {};
  const response = await fetch(`/admin/api/submissions.csv?template=${encodeURIComponent(template)}`, { headers });
  if (response.status === 401 || response.status === 403) {
    askToken("Exporting answers needs the admin token.");
    return;
  }
  if (!response.ok) {
    $("funnel").append(el("p", "muted", `export failed (${response.status})`));
    return;
  }
  const link = document.createElement("a");
  link.href = URL.createObjectURL(await response.blob());
  link.download = `${template}-answers.csv`;
  document.body.append(link);
  link.click();
  link.remove();
}

function renderFunnel(box, funnel) {
  box.replaceChildren();
  const started = funnel.started || 0;
  const rate = started ? Math.round((100 * (funnel.completed || 0)) / started) : 0;
  box.append(el("p", "small", `${started} started · ${funnel.completed || 0} completed (${rate}%) · ${funnel.cancelled || 0} cancelled · ${funnel.expired || 0} expired · ${funnel.switched || 0} switched · ${funnel.handed_off || 0} handed off`));
  const top = Math.max(started, ...funnel.steps.map((s) => s.reached), 1);
  for (const step of funnel.steps) {
    const row = el("div", "funnel-row");
    row.dataset.step = step.step;
    const bar = el("div", "bar");
    bar.style.width = `${Math.max(2, (100 * step.reached) / top)}%`;
    const left = ["cancelled", "expired", "switched", "restarted", "template_gone", "handed_off"].filter((k) => step[k]).map((k) => `${step[k]} ${k}`);
    row.append(el("span", "funnel-step", step.step), el("span", "track"), el("span", "funnel-count", String(step.reached)));
    row.querySelector(".track").append(bar);
    if (sim.state && sim.state.template === funnel.template && sim.state.step === step.step) row.classList.add("current");
    row.title = left.length ? `left here: ${left.join(", ")}` : "nobody left here";
    box.append(row);
  }
}

// --- customers --------------------------------------------------------------------------

function randomDigits(n) {
  let out = "";
  for (let i = 0; i < n; i++) out += Math.floor(Math.random() * 10);
  return out;
}

function setComposer(open) {
  $("message").disabled = !open;
  $("send").disabled = !open;
}

async function openUser(user, name) {
  // Closed until the chat is loaded: a message typed sooner would have no customer, or
  // land above the history that is still coming.
  setComposer(false);
  sim.generation += 1;
  sim.user = user.replace(/[\s()+-]/g, "");
  sim.name = name || $("name").value || "Test User";
  sim.afterId = 0;
  sim.sent = new Map();
  sim.read = new Set();
  sim.waitingSince = null;
  sim.state = null;
  sim.diagramKey = "";
  $("user").value = sim.user;
  $("name").value = sim.name;
  $("chat-sub").textContent = `chatting as ${sim.name} · ${sim.user}`;
  localStorage.setItem("parley.user", sim.user);
  localStorage.setItem("parley.name", sim.name);
  $("thread").replaceChildren(el("div", "day", "today"));
  $("state").replaceChildren(el("p", "muted", "No live conversation."));
  const generation = sim.generation;
  try {
    const body = await apiJson(`api/history?user=${encodeURIComponent(sim.user)}`);
    if (generation !== sim.generation) return;
    for (const item of body.items) {
      if (item.dir === "in") customerBubble(item.text, item.at, item.wamid, "queued");
      else applyReply(item);
    }
    sim.afterId = Math.max(sim.afterId, body.last_id || 0);
  } catch (err) {
    showBanner("Could not load the chat: " + err.message);
  }
  if (generation === sim.generation) setComposer(true);
}

function showBanner(text) {
  const banner = $("banner");
  banner.textContent = text;
  banner.hidden = false;
  clearTimeout(showBanner.timer);
  showBanner.timer = setTimeout(() => (banner.hidden = true), 8000);
}

// --- replay ------------------------------------------------------------------------------

async function playReplay(event) {
  event.preventDefault();
  const results = $("replay-results");
  const file = $("replay-file").files[0];
  const body = { fresh: $("replay-fresh").checked };
  try {
    if (file) body.payloads = JSON.parse(await file.text());
    else body.example = $("replay-example").value;
  } catch (err) {
    showBanner("That file is not JSON: " + err.message);
    return;
  }
  if (body.payloads && !Array.isArray(body.payloads)) body.payloads = body.payloads.payloads;
  $("replay-play").disabled = true;
  results.replaceChildren(el("li", "muted", "playing…"));
  try {
    const answer = await apiJson("api/replay", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
    results.replaceChildren();
    for (const r of answer.results) {
      const what = r.error ? `not posted: ${r.error}` : `webhook ${r.webhook_status}` + (r.handled === false ? " · not handled in time" : "");
      results.append(el("li", r.error || r.webhook_status !== 200 ? "bad" : "", `${what}${r.users.length ? " · " + r.users.join(", ") : " · statuses"}`));
    }
    if (!answer.complete) results.append(el("li", "bad", "stopped early: the replay ran out of time"));
    const users = $("replay-users");
    users.replaceChildren();
    for (const user of answer.users) {
      const button = el("button", "", user);
      button.type = "button";
      button.addEventListener("click", () => openUser(user, "Replayed customer"));
      users.append(button);
    }
    if (answer.users.length) openUser(answer.users[0], "Replayed customer");
  } catch (err) {
    results.replaceChildren(el("li", "bad", err.message));
  } finally {
    $("replay-play").disabled = false;
  }
}

// --- start ---------------------------------------------------------------------------------

async function loadConfig() {
  try {
    sim.config = await apiJson("api/config");
  } catch (err) {
    if (err.status === 401) return false;
    showBanner("The simulator API is not answering: " + err.message);
    return false;
  }
  $("token-bar").hidden = true;
  const mode = $("mode");
  mode.textContent = sim.config.sandbox ? "sandbox" : "LIVE";
  mode.className = "mode " + (sim.config.sandbox ? "sandbox" : "live");
  if (!sim.config.sandbox) {
    $("banner").textContent = "Live mode: replies really go out through the WhatsApp Cloud API to the number you chat as.";
    $("banner").hidden = false;
  }
  $("recent-users").replaceChildren(...sim.config.users.map((u) => Object.assign(el("option"), { value: u.user, label: u.name || "" })));
  $("funnel-template").replaceChildren(...sim.config.templates.map((t) => Object.assign(el("option", "", t), { value: t })));
  $("replay-example").replaceChildren(...sim.config.replays.map((r) => Object.assign(el("option", "", `${r.name} (${r.payloads})`), { value: r.name, title: r.description })));
  $("language").replaceChildren(...(sim.config.languages || []).map((l) => Object.assign(el("option", "", l), { value: l })));
  describeReplay();
  if (sim.config.templates.length) {
    const first = sim.config.templates.includes("main_menu") ? "main_menu" : sim.config.templates[0];
    showFunnel(first);
    if (!sim.state) showDiagram(first, null);
  }
  return true;
}

function describeReplay() {
  const chosen = (sim.config ? sim.config.replays : []).find((r) => r.name === $("replay-example").value);
  $("replay-about").textContent = chosen ? chosen.description : "";
}

function wire() {
  $("composer").addEventListener("submit", (event) => {
    event.preventDefault();
    const input = $("message");
    const text = input.value.trim();
    if (!text) return;
    input.value = "";
    sendText(text);
  });
  $("who").addEventListener("submit", (event) => {
    event.preventDefault();
    if ($("user").value.trim()) openUser($("user").value.trim(), $("name").value.trim());
  });
  $("new-phone").addEventListener("click", () => openUser("1555010" + randomDigits(4), $("name").value.trim()));
  $("new-username").addEventListener("click", () => openUser("US." + randomDigits(19), $("name").value.trim()));
  $("token-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    sim.token = $("token").value.trim();
    sessionStorage.setItem("parley.token", sim.token);
    if (await loadConfig()) {
      if (!sim.user) openUser(localStorage.getItem("parley.user") || "1555010" + randomDigits(4), localStorage.getItem("parley.name"));
      if (sim.funnelTemplate) showFunnel(sim.funnelTemplate);
    }
  });
  $("sheet").addEventListener("click", (event) => {
    if (event.target.closest("[data-close]")) closeSheet();
  });
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape") closeSheet();
  });
  $("export-csv").addEventListener("click", exportAnswers);
  $("funnel-template").addEventListener("change", (event) => {
    showFunnel(event.target.value);
    if (!sim.state) showDiagram(event.target.value, null); // nothing live to follow: draw the chosen flow
  });
  $("replay-example").addEventListener("change", describeReplay);
  $("language").addEventListener("change", (event) => switchLanguage(event.target.value));
  $("replay-form").addEventListener("submit", playReplay);
}

async function start() {
  wire();
  const params = new URLSearchParams(location.search);
  if (await loadConfig()) {
    const user = params.get("user") || localStorage.getItem("parley.user") || "1555010" + randomDigits(4);
    await openUser(user, params.get("name") || localStorage.getItem("parley.name") || "Test User");
  }
  pollReplies();
  pollState();
}

start();
