// The call page: one WebRTC call to the agent, no build step.
// Signalling: POST /talk/offer {type, sdp} (ICE gathered first, host candidates, no STUN)
// -> {status: "accepted", call_id, answer: {type, sdp}} | 503 busy | 400 bad offer.
// The agent's data channel ("events") sends JSON lines: transcript, state, turn, transfer, end.
// Two analysers time each turn as the caller hears it: the end of your speech (microphone
// level) to the first agent audio (remote track level), shown as "heard".
"use strict";

const SPEECH_DB = -40;     // microphone frames louder than this are you speaking
const AGENT_DB = -45;      // remote frames louder than this are the agent speaking
const AGENT_GAP_MS = 300;  // agent quiet this long before a new onset counts as a new reply

const talk = window.talk = {
  state: "idle", callId: null, transcript: [], turns: [], heard: [], end: null,
  agentPeakDb: -Infinity, error: null,
  marks: [],  // when you spoke and when the agent's audio began, ms from the start of the call
};
const $ = (id) => document.getElementById(id);
let pc = null, channel = null, micStream = null, audioCtx = null, meterTimer = null;

function setStatus(text) { $("status").textContent = text; }
function setState(state) {
  talk.state = state;
  $("call").disabled = state === "connecting" || state === "connected";
  $("hangup").disabled = !(state === "connecting" || state === "connected");
}

function addLine(role, text, { interim = false, note = false } = {}) {
  const list = $("transcript");
  let li = note ? null : list.querySelector(`li.${role}.interim`);
  if (!li) {
    li = document.createElement("li");
    list.appendChild(li);
  }
  li.className = note ? "note" : `${role}${interim ? " interim" : ""}`;
  li.innerHTML = "";
  if (!note) {
    const who = document.createElement("span");
    who.className = "who";
    who.textContent = role === "caller" ? "You" : "Agent";
    li.appendChild(who);
  }
  li.appendChild(document.createTextNode(text));
  li.scrollIntoView({ block: "nearest" });
}

function ms(value) { return value == null ? "–" : `${value} ms`; }

function renderTurns() {
  const body = $("turns").querySelector("tbody");
  body.innerHTML = "";
  const rows = Math.max(talk.turns.length, talk.heard.length);
  for (let i = 0; i < rows; i++) {
    const t = talk.turns[i] || {};
    const p = t.providers || {};
    const tr = document.createElement("tr");
    const cells = [i + 1, ms(talk.heard[i]), ms(t.e2e_ms), ms(t.stt_ms), ms(t.llm_ms),
                   ms(t.tts_ms),
                   t.providers ? `${p.stt} / ${p.llm} / ${p.tts}${t.fallback ? " (fallback)" : ""}` : "–"];
    for (const c of cells) {
      const td = document.createElement("td");
      td.textContent = c;
      tr.appendChild(td);
    }
    body.appendChild(tr);
  }
}

function onMessage(event) {
  const m = JSON.parse(event.data);
  if (m.type === "transcript") {
    if (!m.text) return;
    if (m.role === "caller") {
      addLine("caller", m.text, { interim: !m.final });
      if (m.final) talk.transcript.push({ role: "caller", text: m.text });
    } else {
      addLine("agent", m.text + (m.interrupted ? " …" : ""));
      talk.transcript.push({ role: "agent", text: m.text, interrupted: !!m.interrupted });
    }
  } else if (m.type === "state") {
    $("agent-state").textContent = `agent ${m.agent}`;
  } else if (m.type === "turn") {
    talk.turns[m.index] = m;
    renderTurns();
  } else if (m.type === "transfer") {
    addLine("note", `The agent is transferring you to a person (${m.to}).`, { note: true });
  } else if (m.type === "dtmf") {
    addLine("note", `The agent pressed ${m.digits}.`, { note: true });
  } else if (m.type === "end") {
    talk.end = m;
    addLine("note", `Call ended: ${m.reason.replace(/_/g, " ")}.`, { note: true });
    finish(`Call ended (${m.reason.replace(/_/g, " ")}).`);
  }
}

// --- levels and the heard latency ------------------------------------------------------------
function levelDb(analyser, buffer) {
  analyser.getFloatTimeDomainData(buffer);
  let sum = 0;
  for (let i = 0; i < buffer.length; i++) sum += buffer[i] * buffer[i];
  const rms = Math.sqrt(sum / buffer.length);
  return rms > 0 ? 20 * Math.log10(rms) : -Infinity;
}

function startMeters(localStream, remoteStream) {
  audioCtx = audioCtx || new AudioContext();
  audioCtx.resume();
  const mic = audioCtx.createAnalyser(), agent = audioCtx.createAnalyser();
  mic.fftSize = agent.fftSize = 512;  // ~10 ms windows at 48 kHz
  audioCtx.createMediaStreamSource(localStream).connect(mic);
  audioCtx.createMediaStreamSource(remoteStream).connect(agent);
  const micBuf = new Float32Array(mic.fftSize), agentBuf = new Float32Array(agent.fftSize);
  let lastSpeech = null, spokeSinceReply = false, lastAgent = -Infinity;
  const t0 = performance.now();
  meterTimer = setInterval(() => {
    const now = performance.now();
    const micDb = levelDb(mic, micBuf), agentDb = levelDb(agent, agentBuf);
    $("mic-level").value = Math.max(-70, micDb);
    $("agent-level").value = Math.max(-70, agentDb);
    if (micDb > SPEECH_DB) {
      if (lastSpeech === null || now - lastSpeech > AGENT_GAP_MS) {
        talk.marks.push({ speech_from_ms: Math.round(now - t0) });
      }
      lastSpeech = now;
      spokeSinceReply = true;
      talk.marks.at(-1).speech_to_ms = Math.round(now - t0);
    }
    if (agentDb > AGENT_DB) {
      talk.agentPeakDb = Math.max(talk.agentPeakDb, agentDb);
      if (now - lastAgent > AGENT_GAP_MS) {
        talk.marks.push({ agent_from_ms: Math.round(now - t0) });
        if (spokeSinceReply && lastSpeech !== null) {
          talk.heard.push(Math.round(now - lastSpeech));  // end of your speech -> agent audio
          spokeSinceReply = false;
          renderTurns();
        }
      }
      lastAgent = now;
    }
  }, 5);
}

// --- the call ------------------------------------------------------------------------------
function iceGathered(peer, timeoutMs = 3000) {
  if (peer.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => { if (peer.iceGatheringState === "complete") resolve(); };
    peer.addEventListener("icegatheringstatechange", done);
    setTimeout(resolve, timeoutMs);
  });
}

async function call() {
  setState("connecting");
  talk.error = null; talk.end = null;
  setStatus("Asking for the microphone…");
  try {
    audioCtx = audioCtx || new AudioContext();  // created in the click: allowed to play
    micStream = await navigator.mediaDevices.getUserMedia({ audio: true });
    pc = new RTCPeerConnection({ iceServers: [] });
    micStream.getTracks().forEach((t) => pc.addTrack(t, micStream));
    channel = pc.createDataChannel("events");
    channel.onmessage = onMessage;
    pc.ontrack = (event) => {
      const remote = new MediaStream([event.track]);
      $("agent-audio").srcObject = remote;  // Chrome feeds WebAudio only once it plays
      startMeters(micStream, remote);
    };
    pc.onconnectionstatechange = () => {
      if (pc && pc.connectionState === "connected") {
        setState("connected");
        setStatus("Connected: talk to the agent.");
      } else if (pc && pc.connectionState === "failed") {
        finish("The connection failed.");
      }
    };
    await pc.setLocalDescription(await pc.createOffer());
    await iceGathered(pc);
    setStatus("Calling…");
    const reply = await fetch("/talk/offer", {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ type: "offer", sdp: pc.localDescription.sdp }),
    });
    const body = await reply.json();
    if (reply.status !== 200 || body.status !== "accepted") {
      talk.error = body;
      finish(body.message || body.detail || `The call was not accepted (${reply.status}).`);
      return;
    }
    talk.callId = body.call_id;
    await pc.setRemoteDescription(body.answer);
  } catch (err) {
    talk.error = String(err);
    finish(`Could not call: ${err.message || err}`);
  }
}

function hangup() {
  if (channel && channel.readyState === "open") channel.send(JSON.stringify({ type: "hangup" }));
  setTimeout(() => finish("You hung up."), 300);  // let the hang-up reach the agent
}

function finish(text) {
  if (meterTimer) clearInterval(meterTimer);
  meterTimer = null;
  if (pc) pc.close();
  pc = null; channel = null;
  if (micStream) micStream.getTracks().forEach((t) => t.stop());
  micStream = null;
  setState("ended");
  setStatus(text);
}

$("call").addEventListener("click", call);
$("hangup").addEventListener("click", hangup);
