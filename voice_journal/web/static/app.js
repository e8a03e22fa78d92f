// voice-journal in the browser: reads the journal through /api and draws it. No third-party code.
"use strict";

const view = document.getElementById("view");

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") node.className = v; else node.setAttribute(k, v);
  }
  for (const c of children.flat()) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return node;
}

// Replace the view's content; arrays among the arguments are spread (a list of cards, a dialogue).
function show(...nodes) {
  view.replaceChildren(...nodes.flat().filter((n) => n !== ""));
}

// A page asked for and then left before its data came (a click elsewhere): it is not drawn over the new one.
class Stale extends Error {}
let routeId = 0;

async function api(path, options = {}) {
  const asked = routeId;
  const r = await fetch(path, { credentials: "same-origin", ...options });
  const body = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error(body.error || `${r.status} ${r.statusText}`);
  if (asked !== routeId && !options.method) throw new Stale();
  return body;
}

function when(iso) {
  return iso ? new Date(iso).toLocaleString([], { dateStyle: "medium", timeStyle: "short" }) : "";
}

function minutes(a, b) {
  if (!a || !b) return "";
  const m = Math.max(0, Math.round((new Date(b) - new Date(a)) / 60000));
  return m < 1 ? "under a minute" : `${m} min`;
}

// Words of the search marked where they occur (text nodes only: nothing from the journal is parsed as HTML).
function highlighted(text, query) {
  const words = query.toLowerCase().split(/\s+/).filter((w) => w.length > 2);
  if (!words.length) return [text];
  const pattern = new RegExp(`(${words.map((w) => w.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")).join("|")})`, "gi");
  return text.split(pattern).map((part, i) => (i % 2 ? el("mark", {}, part) : part));
}

async function showSessions() {
  const { sessions, summaries_due } = await api("/api/sessions");
  const list = sessions.map((s) => el("div", { class: "card" },
    el("h3", {}, el("a", { href: `#/session/${s.session}` }, `${when(s.started)} · ${s.mode}`),
      s.flags.includes("crisis") ? el("span", { class: "flag", title: "a turn was flagged" }, " ⚑") : ""),
    el("div", { class: "meta" }, `${s.turns} turn${s.turns === 1 ? "" : "s"}`,
      s.ended ? ` · ${minutes(s.started, s.ended)}` : "",
      s.mood_before != null || s.mood_after != null
        ? ` · mood ${s.mood_before ?? "?"} → ${s.mood_after ?? "?"}` : s.mood ? ` · mood about ${s.mood}/10` : "",
      s.status !== "complete" ? ` · ${s.status}` : ""),
    s.summary ? el("p", {}, s.summary) : "",
    el("div", {}, s.themes.map((t) => el("span", { class: "theme" }, t)))));
  show(el("h2", {}, "Sessions"),
    summaries_due ? el("p", { class: "quiet" }, `${summaries_due} ${summaries_due === 1 ? "summary" : "summaries"} still to write.`) : "",
    list.length ? list : el("p", { class: "quiet" }, "No sessions yet. Record one with `voice-journal session`."));
}

// How long the person waited for the companion's voice after their turn ended (a reply's timings).
function answeredIn(t) {
  const s = t.timings && t.timings.end_to_first_audio_s;
  return typeof s === "number" ? ` · answered in ${s.toFixed(1)} s` : "";
}

async function showSession(id) {
  const s = await api(`/api/sessions/${id}`);
  const turns = s.turns.map((t) => el("div", { class: `turn ${t.role}`, id: `turn-${t.turn}` },
    el("div", { class: "meta" }, t.role === "user" ? "You" : "Companion", " · ", when(t.at),
      t.partial ? " · cut short" : "", answeredIn(t), t.safety ? el("span", { class: "flag" }, ` ⚑ ${t.safety}`) : ""),
    el("div", {}, t.text),
    t.audio ? el("audio", { controls: "", preload: "none", src: t.audio }) : ""));
  const del = el("button", { class: "danger", type: "button" }, "Delete this session");
  del.addEventListener("click", async () => {
    const typed = prompt(`This deletes session ${id} for good: words, audio and summary. Type ${id} to confirm.`);
    if (typed !== String(id)) return;
    await api(`/api/sessions/${id}?confirm=${id}`, { method: "DELETE" });
    location.hash = "#/";
  });
  show(el("h2", {}, `${when(s.started)} · ${s.mode}`),
    s.summary ? el("div", { class: "card" }, el("p", {}, s.summary.text),
      s.summary.themes.map((t) => el("span", { class: "theme" }, t))) : "",
    s.answers.length ? el("div", { class: "card" }, s.answers.map((a) =>
      el("div", {}, el("strong", {}, a.field.replace(/_/g, " ")), ": ", a.value ?? a.text))) : "",
    turns, el("p", {}, del));
  const target = new URLSearchParams(location.hash.split("?")[1] || "").get("turn");
  if (target) {
    const node = document.getElementById(`turn-${target}`);
    if (node) { node.scrollIntoView({ block: "center" }); node.querySelector("audio")?.play().catch(() => {}); }
  }
}

async function showSearch(params) {
  const q = params.get("q") || "";
  const role = params.get("role") || "";
  const query = new URLSearchParams({ q, ...(role ? { role } : {}) });
  const { hits } = await api(`/api/search?${query}`);
  show(el("h2", {}, `Search: ${q}`),
    hits.length ? hits.map((h) => el("div", { class: "card" },
      el("div", { class: "meta" }, when(h.at), " · ", h.role),
      el("a", { href: h.turn === null ? `#/session/${h.session}` : `#/session/${h.session}?turn=${h.turn}` },
        highlighted(h.text, q))))
      : el("p", { class: "quiet" }, "Nothing found."));
}

async function showInsights() {
  const i = await api("/api/insights");
  show(el("h2", {}, "Insights"),
    el("p", {}, `${i.sessions} sessions on ${i.days} days · ${i.this_week} this week · streak ${i.streak} (longest ${i.longest_streak})`),
    el("img", { class: "chart", src: "/api/insights/mood.svg", alt: "Mood over time, sessions per week and top themes" }),
    el("h3", {}, "Themes"),
    i.themes.length ? el("div", {}, i.themes.map((t) => el("span", { class: "theme" }, `${t.name} (${t.sessions})`)))
      : el("p", { class: "quiet" }, "Themes appear once sessions are summarised."));
}

async function route() {
  routeId += 1;
  const [path, query] = location.hash.replace(/^#/, "").split("?");
  const params = new URLSearchParams(query || "");
  try {
    const m = path.match(/^\/session\/(\d+)$/);
    if (m) await showSession(Number(m[1]));
    else if (path === "/search") await showSearch(params);
    else if (path === "/insights") await showInsights();
    else if (path === "/talk") showTalk();
    else await showSessions();
  } catch (e) {
    if (e instanceof Stale) return;
    show(el("p", { class: "flag" }, e.message));
  }
}

document.getElementById("search").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const q = document.getElementById("q").value.trim();
  const role = document.getElementById("role").value;
  if (q) location.hash = `#/search?${new URLSearchParams({ q, ...(role ? { role } : {}) })}`;
});
window.addEventListener("hashchange", route);
route();
