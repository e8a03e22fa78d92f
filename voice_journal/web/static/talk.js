// Talking to the companion from the page: the microphone to /api/talk, the companion's voice back.
// The session is the terminal's own (see voice_journal/web/talk.py for the messages); this file
// only captures, plays and shows. It uses el() and show() from app.js, at call time.
"use strict";

const STATES = {
  loading: "Loading the models…", starting: "Starting…", listening: "Listening", hearing: "Hearing you",
  thinking: "Thinking…", speaking: "Speaking", closing: "Saying goodbye", ended: "Ended",
};

const talk = {
  panel: null, ws: null, mic: null, player: null, next: 0, playing: [], rate: 22050,
  voiceSamples: 0, running: false,
};

function talkPanel() {
  if (talk.panel) return talk.panel;
  const bargeIn = el("input", { type: "checkbox", id: "barge-in" });
  const start = el("button", { type: "button", id: "talk-start" }, "Start a session");
  const end = el("button", { type: "button", id: "talk-end", disabled: "" }, "End the session");
  const state = el("p", { id: "talk-state", class: "quiet", "data-state": "idle" },
    "Press start, then talk. Pause when you have said what you want to say; the companion answers.");
  const log = el("div", { id: "talk-log" });
  talk.panel = el("section", { id: "talk", "data-voice-samples": "0" },
    el("h2", {}, "Talk"),
    el("p", {}, start, " ", end),
    el("p", {}, el("label", {}, bargeIn, " Let me interrupt the companion (use headphones)")),
    state, log);
  start.addEventListener("click", () => startTalk(bargeIn.checked).catch((e) => talkError(e.message)));
  end.addEventListener("click", () => {
    if (talk.ws && talk.ws.readyState === WebSocket.OPEN) talk.ws.send(JSON.stringify({ type: "end" }));
    end.disabled = true;
  });
  return talk.panel;
}

function showTalk() {
  show(talkPanel()); // the same panel each time: a session goes on while other pages are read
}

function setState(name, text) {
  const node = document.getElementById("talk-state");
  node.dataset.state = name;
  node.className = name === "error" ? "flag" : "quiet";
  node.textContent = text || STATES[name] || name;
}

function talkError(message) {
  setState("error", message);
}

function addTurn(role, text, extra = "") {
  const log = document.getElementById("talk-log");
  log.append(el("div", { class: `turn ${role}` },
    el("div", { class: "meta" }, role === "user" ? "You" : "Companion", extra), el("div", {}, text)));
}

async function startTalk(bargeIn) {
  if (talk.running) return;
  talk.running = true;
  document.getElementById("talk-start").disabled = true;
  document.getElementById("talk-end").disabled = false;
  document.getElementById("talk-log").replaceChildren();
  // Made in the click, so the browser lets it play.
  talk.player = new AudioContext();
  talk.next = 0;
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const ws = new WebSocket(`${scheme}://${location.host}/api/talk?barge_in=${bargeIn ? 1 : 0}`);
  ws.binaryType = "arraybuffer";
  talk.ws = ws;
  // With barge-in the microphone listens from the start (over the greeting); half-duplex it opens
  // when the companion first listens: nothing said over the greeting would be heard anyway.
  if (bargeIn) ws.addEventListener("open", () => openMic(ws).catch((e) => talkError(e.message)));
  ws.addEventListener("message", (ev) => {
    if (typeof ev.data === "string") onTalkMessage(JSON.parse(ev.data), ws);
    else playVoice(new Int16Array(ev.data));
  });
  ws.addEventListener("close", () => stopTalk());
}

function onTalkMessage(m, ws) {
  if (m.type === "state") {
    setState(m.state);
    if (m.state === "listening" && !talk.mic) openMic(ws).catch((e) => talkError(e.message));
  } else if (m.type === "voice") {
    talk.rate = m.rate;
  } else if (m.type === "stop") {
    for (const s of talk.playing) { try { s.stop(); } catch (e) { /* already ended */ } }
    talk.playing = [];
    talk.next = 0;
  } else if (m.type === "UserSpoke") {
    addTurn("user", m.text);
  } else if (m.type === "CompanionReplied") {
    addTurn("assistant", m.text, m.partial ? " · cut short" : "");
  } else if (m.type === "SafetyAlert" && m.message) {
    document.getElementById("talk-log").append(el("div", { class: "card flag", role: "alert" }, m.message));
  } else if (m.type === "ended") {
    const log = document.getElementById("talk-log");
    log.append(el("p", { id: "talk-saved" }, "Saved as ",
      el("a", { href: `#/session/${m.session}` }, `session ${m.session}`),
      ` (${m.turns} turn${m.turns === 1 ? "" : "s"}).`));
  } else if (m.type === "error") {
    talkError(m.message);
  }
}

async function openMic(ws) {
  if (talk.mic) return;
  talk.mic = { closing: false };
  const stream = await navigator.mediaDevices.getUserMedia({
    audio: { channelCount: 1, echoCancellation: true, noiseSuppression: true, autoGainControl: true },
  });
  let ctx;
  try {
    ctx = new AudioContext({ sampleRate: 16000 });
  } catch (e) {
    ctx = new AudioContext(); // the worklet resamples
  }
  await ctx.audioWorklet.addModule("/static/mic-worklet.js");
  const node = new AudioWorkletNode(ctx, "pcm16");
  node.port.onmessage = (ev) => { if (ws.readyState === WebSocket.OPEN) ws.send(ev.data); };
  const silent = ctx.createGain();
  silent.gain.value = 0; // the worklet is pulled by the graph; nothing is heard
  ctx.createMediaStreamSource(stream).connect(node);
  node.connect(silent).connect(ctx.destination);
  Object.assign(talk.mic, { stream, ctx, node });
  if (talk.mic.closing) closeMic();
}

function closeMic() {
  if (!talk.mic) return;
  talk.mic.closing = true;
  if (talk.mic.stream) talk.mic.stream.getTracks().forEach((t) => t.stop());
  if (talk.mic.ctx) talk.mic.ctx.close();
  if (talk.mic.stream) talk.mic = null;
}

function playVoice(samples) {
  const p = talk.player;
  if (!p || !samples.length) return;
  const buffer = p.createBuffer(1, samples.length, talk.rate);
  const data = buffer.getChannelData(0);
  for (let i = 0; i < samples.length; i++) data[i] = samples[i] / 32768;
  const source = p.createBufferSource();
  source.buffer = buffer;
  source.connect(p.destination);
  const at = Math.max(p.currentTime + 0.02, talk.next); // one piece after the other, no gaps, no overlaps
  source.start(at);
  talk.next = at + buffer.duration;
  talk.playing.push(source);
  source.addEventListener("ended", () => { talk.playing = talk.playing.filter((s) => s !== source); });
  talk.voiceSamples += samples.length;
  talk.panel.dataset.voiceSamples = String(talk.voiceSamples);
}

function stopTalk() {
  closeMic();
  talk.running = false;
  talk.ws = null;
  document.getElementById("talk-start").disabled = false;
  document.getElementById("talk-end").disabled = true;
  if (document.getElementById("talk-state").dataset.state !== "error") setState("ended");
}
