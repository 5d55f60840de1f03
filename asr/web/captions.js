"use strict";
// The live-captions page of `asr serve`: microphone -> AudioWorklet (16 kHz PCM16) -> the server's WebSocket
// protocol (one stream per connection) -> the partial line and a transcript of finals, downloadable as .txt/.srt.

const RATE = 16000; // what the page sends; the server would resample other rates, but the worklet already does
const MAX_QUEUED_SAMPLES = 10 * RATE; // audio held while (re)connecting, oldest dropped first: the server's backlog
const MAX_UNSENT_BYTES = 10 * RATE * 2; // a socket that cannot keep up with live audio is closed and reopened
const RETRY_FIRST_S = 0.5;
const RETRY_MAX_S = 10;
const FINISH_TIMEOUT_MS = 15000; // after Stop, how long the server gets to send its last finals
const MAX_CUE_CHARS = 42; // subtitle cues as `asr transcribe --format srt` cuts them (asr/writers.py)
const MAX_CUE_SECONDS = 6;

const $ = (id) => document.getElementById(id);

const page = {
  recording: false,
  audio: null, // {ctx, stream, node}
  conn: null, // the current connection: {ws, offset, opened, eof}
  captured: 0, // samples captured since Start: the clock of every time shown
  queue: [], // captured audio not sent yet: [{index, pcm}]
  queued: 0,
  retries: 0,
  retryTimer: null,
  finishTimer: null,
  finals: [], // {start, end, text, words}, in seconds since Start
  urls: {},
};

// ---- display ---------------------------------------------------------------------------------------------------
function setState(state, text) {
  const el = $("state");
  el.dataset.state = state;
  el.textContent = text;
}

function notice(text) {
  const el = $("notice");
  el.textContent = text || "";
  el.hidden = !text;
}

function clock(seconds) {
  const s = Math.max(0, seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const rest = (s % 60).toFixed(1).padStart(4, "0");
  return (h ? `${h}:${String(m).padStart(2, "0")}` : String(m).padStart(2, "0")) + ":" + rest;
}

function shifted(msg, offset) {
  const t = (x) => x + offset;
  return {
    start: t(msg.start), end: t(msg.end), text: msg.text,
    words: (msg.words || []).map((w) => ({ ...w, start: t(w.start), end: t(w.end) })),
  };
}

function showPartial(msg) {
  $("partial").textContent = msg.text;
}

const UNSURE = 0.5; // words the model is less sure of than this are marked

function transcriptLine(result) {
  const line = document.createElement("span");
  line.className = "text";
  if (!result.words.length) {
    line.textContent = result.text;
    return line;
  }
  result.words.forEach((w, i) => {
    if (i) line.append(" ");
    const word = document.createElement("span");
    word.className = w.confidence < UNSURE ? "word unsure" : "word";
    word.textContent = w.text;
    word.dataset.start = w.start;
    word.dataset.end = w.end;
    word.dataset.confidence = w.confidence;
    word.title = `${clock(w.start)} - ${clock(w.end)}, confidence ${Math.round(100 * w.confidence)} %`;
    line.append(word);
  });
  return line;
}

function addFinal(result) {
  $("partial").textContent = "";
  if (!result.text) return;
  page.finals.push(result);
  const list = $("finals");
  const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 40;
  const li = document.createElement("li");
  li.dataset.start = result.start;
  li.dataset.end = result.end;
  const time = document.createElement("time");
  time.textContent = `${clock(result.start)} - ${clock(result.end)}`;
  li.append(time, transcriptLine(result));
  list.append(li);
  if (atBottom) list.scrollTop = list.scrollHeight; // follow the transcript unless the reader scrolled back
  const audio = page.finals[page.finals.length - 1].end;
  $("count").textContent = `${page.finals.length} segment${page.finals.length === 1 ? "" : "s"}, ${clock(audio)}`;
  offerDownload("download-txt", txt(page.finals), "text/plain");
  offerDownload("download-srt", srt(page.finals), "application/x-subrip");
}

// ---- downloads: the formats of asr/writers.py ------------------------------------------------------------------
function txt(finals) {
  return finals.map((f) => f.text + "\n").join("");
}

function cues(finals) {
  const out = [];
  const cue = (words) => [words[0].start, words[words.length - 1].end, words.map((w) => w.text).join(" ")];
  for (const seg of finals) {
    if (!seg.words.length) {
      out.push([seg.start, seg.end, seg.text]);
      continue;
    }
    let cur = [seg.words[0]];
    for (const w of seg.words.slice(1)) {
      const text = cur.concat([w]).map((x) => x.text).join(" ");
      if (text.length > MAX_CUE_CHARS || w.end - cur[0].start > MAX_CUE_SECONDS) {
        out.push(cue(cur));
        cur = [w];
      } else {
        cur.push(w);
      }
    }
    out.push(cue(cur));
  }
  return out;
}

function stamp(seconds) {
  let ms = Math.round(seconds * 1000);
  const h = Math.floor(ms / 3600000);
  ms -= h * 3600000;
  const m = Math.floor(ms / 60000);
  ms -= m * 60000;
  const s = Math.floor(ms / 1000);
  ms -= s * 1000;
  const p = (v, n) => String(v).padStart(n, "0");
  return `${p(h, 2)}:${p(m, 2)}:${p(s, 2)},${p(ms, 3)}`;
}

function srt(finals) {
  return cues(finals).map(([a, b, t], i) => `${i + 1}\n${stamp(a)} --> ${stamp(b)}\n${t}\n\n`).join("");
}

function offerDownload(id, text, type) {
  const link = $(id);
  if (page.urls[id]) URL.revokeObjectURL(page.urls[id]);
  page.urls[id] = URL.createObjectURL(new Blob([text], { type: `${type};charset=utf-8` }));
  link.href = page.urls[id];
  link.setAttribute("aria-disabled", "false");
}

// ---- the connection --------------------------------------------------------------------------------------------
function serverUrl() {
  return `${location.protocol === "https:" ? "wss:" : "ws:"}//${location.host}/`;
}

function connect() {
  clearTimeout(page.retryTimer);
  page.retryTimer = null;
  setState("connecting", page.retries ? `reconnecting (attempt ${page.retries + 1})` : "connecting");
  const conn = { ws: new WebSocket(serverUrl()), offset: 0, opened: false, eof: false, error: "" };
  conn.ws.binaryType = "arraybuffer";
  page.conn = conn;
  conn.ws.onopen = () => {
    conn.opened = true;
    page.retries = 0;
    conn.ws.send(JSON.stringify({ sample_rate: RATE }));
    // The server's times count from this stream's first sample: the oldest audio still queued.
    conn.offset = (page.queue.length ? page.queue[0].index : page.captured) / RATE;
    for (const chunk of page.queue) conn.ws.send(chunk.pcm);
    page.queue = [];
    page.queued = 0;
    notice("");
    setState("connected", "connected, listening");
  };
  conn.ws.onmessage = (ev) => {
    if (typeof ev.data !== "string") return;
    let msg;
    try {
      msg = JSON.parse(ev.data);
    } catch {
      return;
    }
    if (msg.type === "partial") showPartial(msg);
    else if (msg.type === "final") addFinal(shifted(msg, conn.offset));
    else if (msg.type === "eof") conn.eof = true;
    else if (msg.type === "error") conn.error = String(msg.error);
  };
  conn.ws.onclose = (ev) => {
    if (page.conn !== conn) return;
    page.conn = null;
    if (!page.recording) {
      clearTimeout(page.finishTimer);
      setState("idle", conn.eof ? "stopped" : "stopped (the last results may be missing)");
      return;
    }
    let why;
    if (conn.error) why = `the server said: ${conn.error}`;
    else if (!conn.opened) why = "cannot reach the server";
    else why = `the server closed the connection (${ev.code}${ev.reason ? " " + ev.reason : ""})`;
    const delay = Math.min(RETRY_MAX_S, RETRY_FIRST_S * 2 ** page.retries);
    page.retries++;
    setState("reconnecting", `reconnecting in ${delay} s`);
    notice(`Disconnected: ${why}. Audio is kept for ${MAX_QUEUED_SAMPLES / RATE} s and sent once it is back.`);
    page.retryTimer = setTimeout(connect, delay * 1000);
  };
}

function onAudio({ pcm, level }) {
  $("level").value = Math.max(-60, level);
  const chunk = { index: page.captured, pcm };
  page.captured += pcm.byteLength / 2;
  const conn = page.conn;
  if (conn && conn.opened && conn.ws.readyState === WebSocket.OPEN) {
    if (conn.ws.bufferedAmount <= MAX_UNSENT_BYTES) {
      conn.ws.send(pcm);
      return;
    }
    // A fresh stream keeps the times right, dropping audio would not: this chunk waits in the queue for it.
    conn.ws.close(4000, "too slow for live audio");
  }
  page.queue.push(chunk);
  page.queued += pcm.byteLength / 2;
  while (page.queued > MAX_QUEUED_SAMPLES) page.queued -= page.queue.shift().pcm.byteLength / 2;
}

// ---- the microphone --------------------------------------------------------------------------------------------
function microphoneProblem(err) {
  switch (err && err.name) {
    case "NotAllowedError":
    case "SecurityError":
      return "Microphone access was refused. Allow the microphone for this site (the icon at the left of the " +
        "address bar, or the browser's site settings), then press Start again.";
    case "NotFoundError":
    case "OverconstrainedError":
      return "No microphone was found. Connect one (or enable it in the system's sound settings) and press Start.";
    case "NotReadableError":
    case "AbortError":
      return "The microphone could not be opened: another program may be using it.";
    default:
      return `The microphone could not be started: ${err && err.name ? err.name + ": " : ""}${err && err.message}`;
  }
}

async function openMicrophone() {
  // The audio graph is ready before the microphone opens, so that none of its first words are lost meanwhile.
  const ctx = new AudioContext();
  let stream = null;
  try {
    await ctx.audioWorklet.addModule("pcm-worklet.js");
    const node = new AudioWorkletNode(ctx, "pcm16-capture", { processorOptions: { targetRate: RATE } });
    node.port.onmessage = (ev) => onAudio(ev.data);
    node.connect(ctx.destination); // pulled by the graph; its output is silence
    stream = await navigator.mediaDevices.getUserMedia({
      // the model was trained on plain recordings: no echo cancellation, noise suppression or gain riding
      audio: { channelCount: 1, echoCancellation: false, noiseSuppression: false, autoGainControl: false },
    });
    ctx.createMediaStreamSource(stream).connect(node);
    for (const track of stream.getAudioTracks()) {
      track.onended = () => {
        if (page.recording) {
          stop();
          notice("The microphone stopped (unplugged or taken by the system).");
        }
      };
    }
    $("rate").textContent = `microphone ${ctx.sampleRate} Hz \u2192 ${RATE} Hz`;
    return { ctx, stream, node };
  } catch (err) {
    if (stream) stream.getTracks().forEach((t) => t.stop());
    ctx.close();
    throw err;
  }
}

function closeMicrophone() {
  if (!page.audio) return;
  page.audio.node.port.onmessage = null;
  page.audio.stream.getTracks().forEach((t) => t.stop());
  page.audio.ctx.close();
  page.audio = null;
  $("level").value = -60;
}

// ---- start / stop ----------------------------------------------------------------------------------------------
async function start() {
  const button = $("toggle");
  button.disabled = true;
  notice("");
  if (!window.isSecureContext || !navigator.mediaDevices || !window.AudioWorkletNode) {
    notice("This browser gives the microphone only to secure pages: open the page as http://localhost:PORT/ " +
      "on the server's machine, or through HTTPS (a TLS proxy in front of `asr serve`).");
    setState("error", "no microphone");
    button.disabled = false;
    return;
  }
  setState("connecting", "asking for the microphone");
  try {
    page.audio = await openMicrophone();
  } catch (err) {
    notice(microphoneProblem(err));
    setState("error", "no microphone");
    button.disabled = false;
    return;
  }
  page.recording = true;
  page.captured = 0;
  page.queue = [];
  page.queued = 0;
  page.retries = 0;
  page.finals = [];
  $("finals").replaceChildren();
  $("partial").textContent = "";
  $("count").textContent = "";
  connect();
  button.textContent = "Stop";
  button.disabled = false;
}

function stop() {
  page.recording = false;
  closeMicrophone();
  clearTimeout(page.retryTimer);
  page.retryTimer = null;
  page.queue = [];
  page.queued = 0;
  const button = $("toggle");
  button.textContent = "Start";
  const conn = page.conn;
  if (conn && conn.opened && conn.ws.readyState === WebSocket.OPEN) {
    conn.ws.send(JSON.stringify({ eof: 1 })); // the server sends the last finals, then eof, then closes
    setState("finishing", "finishing");
    button.disabled = true;
    page.finishTimer = setTimeout(() => conn.ws.close(), FINISH_TIMEOUT_MS);
    conn.ws.addEventListener("close", () => { button.disabled = false; });
  } else {
    if (conn) {
      page.conn = null;
      conn.ws.close();
    }
    setState("idle", "stopped");
  }
}

$("toggle").addEventListener("click", () => (page.recording ? stop() : start()));
