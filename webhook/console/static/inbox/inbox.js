// The agent inbox: customers waiting for a person, their transcript, a reply box, release.
// Everything goes through /admin/api/handoffs with the admin token the agent types in; the
// token stays in this tab's sessionStorage only. New messages arrive by polling.
"use strict";

const API = "/admin/api/handoffs";
const LIST_EVERY_MS = 3000;
const TRANSCRIPT_EVERY_MS = 2000;
const KEY = "parley.admin-token";
const $ = (id) => document.getElementById(id);

let selected = null;
let lastTranscript = "";
let timers = [];

function token() { return sessionStorage.getItem(KEY); }

async function api(method, path, body) {
  const headers = { Authorization: `Bearer ${token()}` };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(API + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  if (response.status === 401 || response.status === 403) {
    signOut(response.status === 403 ? "Wrong admin token." : "The admin token is needed.");
    throw new Error("unauthorized");
  }
  const data = await response.json().catch(() => null);
  return { status: response.status, data };
}

function userPath(user) { return `/${encodeURIComponent(user)}`; }

function waited(since) {
  const seconds = Math.max(0, Math.round((Date.now() - Date.parse(since)) / 1000));
  if (seconds < 60) return `${seconds} s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes} min`;
  const hours = Math.floor(minutes / 60);
  return `${hours} h ${minutes % 60} min`;
}

function status(text) { $("status").textContent = text || ""; }

async function refreshList() {
  let result;
  try { result = await api("GET", ""); } catch (e) { return; }
  if (result.status !== 200) { status(`Could not load the list (${result.status}).`); return; }
  status("");
  const rows = result.data;
  $("count").textContent = String(rows.length);
  $("empty").hidden = rows.length > 0;
  const list = $("customers");
  list.replaceChildren(...rows.map((row) => {
    const item = document.createElement("li");
    item.dataset.user = row.user;
    item.setAttribute("aria-selected", String(row.user === selected));
    const badge = document.createElement("span");
    badge.className = "badge";
    badge.textContent = String(row.waiting);
    badge.title = "messages since a person last wrote";
    badge.hidden = row.waiting === 0;
    const user = document.createElement("div");
    user.className = "user";
    user.textContent = row.user;
    const meta = document.createElement("div");
    meta.className = "meta";
    meta.textContent = row.last_message ? `waiting ${waited(row.since)} · ${row.last_message}` : `waiting ${waited(row.since)}`;
    item.append(badge, user, meta);
    item.addEventListener("click", () => open(row.user));
    return item;
  }));
  if (selected && !rows.some((row) => row.user === selected)) close();
}

async function refreshTranscript() {
  if (!selected) return;
  const user = selected;
  let result;
  try { result = await api("GET", `${userPath(user)}/messages`); } catch (e) { return; }
  if (user !== selected || result.status !== 200) return;
  const text = JSON.stringify(result.data);
  if (text === lastTranscript) return;  // nothing new: keep the agent's scroll position
  lastTranscript = text;
  const pane = $("transcript");
  pane.replaceChildren(...result.data.map((line) => {
    const item = document.createElement("li");
    item.className = line.direction;
    const when = document.createElement("time");
    when.dateTime = line.at;
    when.textContent = new Date(line.at).toLocaleString();
    item.append(document.createTextNode(line.text), when);
    return item;
  }));
  pane.scrollTop = pane.scrollHeight;
}

function open(user) {
  selected = user;
  lastTranscript = "";
  $("who").textContent = user;
  $("conversation").hidden = false;
  $("reply-error").textContent = "";
  for (const item of $("customers").children) item.setAttribute("aria-selected", String(item.dataset.user === user));
  refreshTranscript();
  $("text").focus();
}

function close() {
  selected = null;
  lastTranscript = "";
  $("conversation").hidden = true;
}

async function sendReply(event) {
  event.preventDefault();
  const box = $("text");
  const text = box.value.trim();
  if (!selected || !text) return;
  const result = await api("POST", `${userPath(selected)}/messages`, { text });
  if (result.status === 202) {
    box.value = "";
    $("reply-error").textContent = "";
    await refreshTranscript();
    await refreshList();
  } else {
    $("reply-error").textContent = (result.data && result.data.error && result.data.error.message) || `Not sent (${result.status}).`;
  }
}

async function release() {
  if (!selected) return;
  const result = await api("POST", `${userPath(selected)}/release`);
  if (result.status !== 200) $("reply-error").textContent = `Not released (${result.status}).`;
  close();
  await refreshList();
}

function start() {
  $("login").hidden = true;
  $("logout").hidden = false;
  $("inbox").hidden = false;
  refreshList();
  timers = [setInterval(refreshList, LIST_EVERY_MS), setInterval(refreshTranscript, TRANSCRIPT_EVERY_MS)];
}

function signOut(message) {
  sessionStorage.removeItem(KEY);
  timers.forEach(clearInterval);
  timers = [];
  close();
  $("inbox").hidden = true;
  $("login").hidden = false;
  $("logout").hidden = true;
  status(message || "");
}

document.addEventListener("DOMContentLoaded", () => {
  $("login").addEventListener("submit", (event) => {
    event.preventDefault();
    sessionStorage.setItem(KEY, $("token").value.trim());
    $("token").value = "";
    start();
  });
  $("logout").addEventListener("click", () => signOut());
  $("reply").addEventListener("submit", sendReply);
  $("release").addEventListener("click", release);
  if (token()) start();
});
