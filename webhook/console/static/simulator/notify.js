// parley simulator, notifications: send one to the customer the page chats as, show their
// 24-hour window and opt-out, and draw template messages as WhatsApp does (header, body,
// footer, buttons). Uses app.js's helpers ($, el, sim, apiJson, formatted).
"use strict";

const NOTIFY_MS = 2000;

// A template message's bubble: what the customer reads, plus which template it was.
function renderTemplate(bubble, reply) {
  const shown = reply.rendered;
  const template = (reply.content || {}).template || {};
  if (!shown) {
    bubble.append(el("div", "text muted", `[template ${template.name || "?"}: not in the catalogue]`));
    return;
  }
  if (shown.header) bubble.append(el("div", "tpl-header", shown.header));
  const body = el("div", "text");
  body.innerHTML = formatted(shown.body);
  bubble.append(body);
  if (shown.footer) bubble.append(el("div", "tpl-footer muted", shown.footer));
  for (const title of shown.buttons) bubble.append(el("div", "tpl-button", title));
  bubble.append(el("div", "tpl-name muted", `template ${shown.name} · ${shown.language}`));
}

function windowText(info) {
  if (info.opted_out_at) return `Opted out of notifications since ${new Date(info.opted_out_at).toLocaleString()}.`;
  const open = info.windows.find((w) => w.open);
  if (open) return `24-hour window open until ${new Date(open.closes_at).toLocaleString()}: texts and templates may go.`;
  return "24-hour window closed: only a template may go.";
}

// The option of the first template in the customer's language (pt_BR, else any pt_*); -1: none.
function optionInLanguage(select, language) {
  const options = [...select.options].map((o) => JSON.parse(o.value).language);
  const exact = options.indexOf(language);
  if (exact >= 0 || !language) return exact;
  const base = language.split("_")[0];
  return options.findIndex((l) => l.split("_")[0] === base);
}

// Which customer the person last picked a template for by hand (their choice then stays).
let pickedFor = null;

function renderNotify(info) {
  $("notify-window").textContent = windowText(info);
  const select = $("notify-template");
  if (select.options.length === 0) {
    for (const t of info.templates) {
      const option = el("option", "", `${t.name} (${t.language})`);
      option.value = JSON.stringify(t);
      select.append(option);
    }
  }
  // Offer the template in the customer's language, so a Portuguese customer is not sent
  // the English one by a quick click; a person who chose another keeps it.
  if (pickedFor !== sim.user) {
    const index = optionInLanguage(select, $("language").value);
    if (index >= 0) select.selectedIndex = index;
  }
  describeTemplate();
}

function describeTemplate() {
  const chosen = $("notify-template").value;
  const count = chosen ? JSON.parse(chosen).parameters : 0;
  $("notify-params").placeholder = count ? `${count} value(s), separated by |` : "no parameters";
  $("notify-params").disabled = !count;
}

async function pollNotify() {
  const generation = sim.generation;
  if (sim.user) {
    try {
      const info = await apiJson(`api/notifications?user=${encodeURIComponent(sim.user)}`);
      if (generation === sim.generation) renderNotify(info);
    } catch (err) {
      /* shown by the reply poll */
    }
  }
  setTimeout(pollNotify, NOTIFY_MS);
}

async function sendNotification(body) {
  $("notify-result").textContent = "…";
  try {
    const answer = await apiJson("api/notify", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(Object.assign({ user: sim.user }, body)),
    });
    $("notify-result").textContent = `queued as notification ${answer.id}`;
  } catch (err) {
    $("notify-result").textContent = `refused: ${err.message}`;
  }
}

function wireNotify() {
  $("notify-template").addEventListener("change", () => {
    pickedFor = sim.user;
    describeTemplate();
  });
  $("notify-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const chosen = JSON.parse($("notify-template").value || "null");
    if (!chosen) return;
    const raw = $("notify-params").value;
    const parameters = chosen.parameters ? raw.split("|").map((v) => v.trim()) : [];
    sendNotification({ template: { name: chosen.name, language: chosen.language, parameters } });
  });
  $("notify-text-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const text = $("notify-text").value.trim();
    if (text) sendNotification({ text });
  });
  pollNotify();
}

wireNotify();
