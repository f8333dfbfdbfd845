// edge-ser live dashboard: reads ws://<this host>/events (the token, if the page was opened with ?token=..., is
// passed on) and draws the current emotion, the input level against the noise floor, an emotion timeline, the
// recent events and the stream's status events.  No library, nothing from the network.
"use strict";
(function () {
  const SPAN = 60;              // seconds of audio shown in the timeline and the level chart
  const MAX_EVENTS = 600;       // events kept in memory
  const DEFAULT_EMOTIONS = ["neutral", "calm", "happy", "sad", "angry", "fear", "disgust", "surprise"];
  const HEIGHT = {low: 0.4, medium: 0.7, high: 1.0};
  const $ = (id) => document.getElementById(id);
  const SVG = "http://www.w3.org/2000/svg";

  let events = [];
  let emotions = DEFAULT_EMOTIONS.slice();
  let statuses = [];
  let counts = {events: 0, speech: 0, dropped: 0};
  let scheduled = false;
  let retry = 500;

  function colour(emotion) {
    const v = getComputedStyle(document.documentElement).getPropertyValue("--" + emotion).trim();
    return v || "#cccccc";
  }
  function fmt(x, digits) { return (x === null || x === undefined) ? "–" : Number(x).toFixed(digits); }
  function text(id, value) { const el = $(id); if (el) el.textContent = value; }

  function hello(msg) {
    text("model", (msg.model || "?") + (msg.format ? " (" + msg.format + ")" : ""));
    text("profile", msg.profile || "defaults");
    text("timing", (msg.hop ? msg.hop + " s" : "?") + " / " + (msg.window ? msg.window + " s" : "?"));
    const input = msg.input === null || msg.input === undefined ? "?" : String(msg.input);
    text("input", input.split("/").pop() || input);  // the file's name; the whole path on hover
    $("input").title = input;
    text("version", msg.version || "");
    if (Array.isArray(msg.labels) && msg.labels.length) {
      const seen = [];
      for (const label of msg.labels) {
        const e = String(label).split("_")[0];
        if (!seen.includes(e)) seen.push(e);
      }
      emotions = DEFAULT_EMOTIONS.filter((e) => seen.includes(e)).concat(seen.filter((e) => !DEFAULT_EMOTIONS.includes(e)));
    }
    events = []; statuses = []; counts = {events: 0, speech: 0, dropped: counts.dropped};
    drawLanes();
  }

  function drawLanes() {
    const lanes = $("lanes");
    lanes.textContent = "";
    for (const e of emotions.concat(["silence"])) {
      const div = document.createElement("div");
      div.textContent = e;
      lanes.appendChild(div);
    }
  }

  function onEvent(ev) {
    events.push(ev);
    if (events.length > MAX_EVENTS) events.splice(0, events.length - MAX_EVENTS);
    counts.events += 1;
    if (ev.speech) counts.speech += 1;
  }

  function onStatus(st) {
    if (st.state === "overflow" && st.sink === "websocket") counts.dropped = st.dropped_total || counts.dropped + (st.dropped || 0);
    statuses.push(st);
    if (statuses.length > 50) statuses.shift();
  }

  function schedule() {
    if (scheduled) return;
    scheduled = true;
    setTimeout(() => { scheduled = false; render(); }, 40);
  }

  function render() {
    const last = events[events.length - 1];
    if (last) renderNow(last);
    renderLevel();
    renderTimeline();
    renderRecent();
    renderStatus();
  }

  function renderNow(ev) {
    const speech = $("speech");
    speech.textContent = ev.speech ? "speech" : "silence";
    speech.className = "speech " + (ev.speech ? "speaking" : "silence");
    const cur = $("current-emotion");
    const emo = ev.speech && ev.emotion ? ev.emotion : (ev.speech ? "listening…" : "–");
    cur.textContent = emo;
    cur.dataset.emotion = ev.emotion || "";
    cur.style.color = ev.emotion ? colour(ev.emotion) : "";
    text("current-intensity", ev.speech && ev.intensity ? ev.intensity + " intensity" : "\u00a0");
    const c = ev.speech && ev.confidence !== null && ev.confidence !== undefined ? ev.confidence : 0;
    $("confidence-bar").style.width = Math.round(c * 100) + "%";
    $("confidence-bar").style.background = ev.emotion ? colour(ev.emotion) : "";
    text("confidence-text", "confidence " + (ev.speech && ev.confidence != null ? fmt(ev.confidence, 2) : "–"));
  }

  function x01(db) { return Math.max(0, Math.min(1, (db + 100) / 100)); }

  function renderLevel() {
    const last = events[events.length - 1];
    if (!last) return;
    const level = last.level_db, floor = last.noise_floor_db;
    if (level !== undefined) {
      $("level-bar").style.width = (x01(level) * 100).toFixed(1) + "%";
      text("level-text", "level " + fmt(level, 1) + " dBFS");
    }
    if (floor !== undefined) {
      $("floor-mark").style.left = (x01(floor) * 100).toFixed(1) + "%";
      text("floor-text", "floor " + fmt(floor, 1) + " dBFS");
    }
    if (level !== undefined && floor !== undefined) text("snr-text", fmt(level - floor, 1) + " dB above the floor");
    const t1 = Math.max(last.t, SPAN), t0 = t1 - SPAN;
    const pts = (key) => events.filter((e) => e.t >= t0 && e[key] !== undefined)
      .map((e) => ((e.t - t0) / SPAN * 600).toFixed(1) + "," + ((1 - x01(e[key])) * 120).toFixed(1)).join(" ");
    $("level-line").setAttribute("points", pts("level_db"));
    $("floor-line").setAttribute("points", pts("noise_floor_db"));
  }

  function renderTimeline() {
    const svg = $("timeline");
    svg.textContent = "";
    const rows = emotions.length + 1, rowH = 200 / rows;
    for (let i = 1; i < rows; i++) {
      const line = document.createElementNS(SVG, "line");
      line.setAttribute("class", "lane-line");
      line.setAttribute("x1", 0); line.setAttribute("x2", 1000);
      line.setAttribute("y1", (i * rowH).toFixed(1)); line.setAttribute("y2", (i * rowH).toFixed(1));
      svg.appendChild(line);
    }
    const last = events[events.length - 1];
    const t1 = last ? Math.max(last.t, SPAN) : SPAN, t0 = t1 - SPAN;
    for (let i = 0; i < events.length; i++) {
      const ev = events[i];
      if (ev.t < t0) continue;
      const prev = i > 0 ? events[i - 1].t : ev.t - 0.5;
      const dt = Math.max(0.1, Math.min(2, ev.t - prev));
      const lane = ev.speech && ev.emotion ? emotions.indexOf(ev.emotion) : -1;
      const row = lane >= 0 ? lane : emotions.length;
      const h = lane >= 0 ? (HEIGHT[ev.intensity] || 0.7) * (rowH - 2) : rowH * 0.3;
      const rect = document.createElementNS(SVG, "rect");
      rect.setAttribute("x", ((ev.t - dt - t0) / SPAN * 1000).toFixed(2));
      rect.setAttribute("width", Math.max(1, dt / SPAN * 1000 - 1).toFixed(2));
      rect.setAttribute("y", (row * rowH + (rowH - h) - 1).toFixed(2));
      rect.setAttribute("height", h.toFixed(2));
      rect.setAttribute("fill", lane >= 0 ? colour(ev.emotion) : colour("silence"));
      rect.setAttribute("fill-opacity", lane >= 0 ? (0.35 + 0.65 * (ev.confidence || 0)).toFixed(2) : "1");
      rect.setAttribute("class", "seg");
      rect.dataset.emotion = lane >= 0 ? ev.emotion : (ev.speech ? "speech" : "silence");
      rect.dataset.intensity = ev.intensity || "";
      const title = document.createElementNS(SVG, "title");
      title.textContent = fmt(ev.t, 1) + " s " + (lane >= 0 ? ev.emotion + (ev.intensity ? " " + ev.intensity : "")
        + " " + fmt(ev.confidence, 2) : (ev.speech ? "speech" : "silence"));
      rect.appendChild(title);
      svg.appendChild(rect);
    }
    const axis = $("axis");
    axis.textContent = "";
    for (let k = 0; k <= 6; k++) {
      const span = document.createElement("span");
      span.textContent = (t0 + k * SPAN / 6).toFixed(0) + " s";
      axis.appendChild(span);
    }
  }

  function renderRecent() {
    const ol = $("recent");
    ol.textContent = "";
    for (const ev of events.slice(-12).reverse()) {
      const li = document.createElement("li");
      li.className = "ev " + (ev.speech ? "is-speech" : "is-silence");
      li.dataset.emotion = ev.emotion || "";
      const t = document.createElement("span"); t.className = "t"; t.textContent = fmt(ev.t, 1) + " s";
      const e = document.createElement("span"); e.className = "emo";
      e.textContent = ev.speech ? (ev.emotion ? ev.emotion + (ev.intensity ? " " + ev.intensity : "") : "speech") : "silence";
      if (ev.emotion) e.style.color = colour(ev.emotion);
      const c = document.createElement("span"); c.className = "conf";
      c.textContent = (ev.speech && ev.confidence != null ? fmt(ev.confidence, 2) + "  " : "")
        + fmt(ev.level_db, 1) + " dBFS" + (ev.latency_ms != null ? "  " + fmt(ev.latency_ms, 1) + " ms" : "");
      li.append(t, e, c);
      ol.appendChild(li);
    }
  }

  function renderStatus() {
    text("counts", counts.events + " events, " + counts.speech + " with speech, " + counts.dropped + " dropped");
    const ol = $("status");
    ol.textContent = "";
    if (!statuses.length) {
      const li = document.createElement("li");
      li.className = "none";
      li.textContent = "no status events: input and sinks are fine";
      ol.appendChild(li);
    }
    for (const st of statuses.slice(-10).reverse()) {
      const li = document.createElement("li");
      const t = document.createElement("span"); t.className = "t";
      t.textContent = st.ts ? new Date(st.ts * 1000).toLocaleTimeString([], {hour12: false}) : "";
      const s = document.createElement("span"); s.className = "state"; s.textContent = st.state;
      const d = document.createElement("span");
      d.textContent = [st.sink, st.message || (st.dropped ? st.dropped + " dropped" : "")]
        .filter(Boolean).join(": ");
      li.append(t, s, d);
      ol.appendChild(li);
    }
  }

  function setConn(state, label) {
    const el = $("conn");
    el.className = "conn " + state;
    el.dataset.state = state;
    el.textContent = label || state;
  }

  function connect() {
    const token = new URLSearchParams(location.search).get("token");
    const url = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/events"
      + (token ? "?token=" + encodeURIComponent(token) : "");
    let ws;
    try { ws = new WebSocket(url); } catch (err) { setConn("closed", "error"); return; }
    ws.onopen = () => { retry = 500; setConn("live", "live"); };
    ws.onmessage = (m) => {
      let msg;
      try { msg = JSON.parse(m.data); } catch (err) { return; }
      if (msg.type === "hello") hello(msg);
      else if (msg.type === "status") onStatus(msg);
      else onEvent(msg);
      schedule();
    };
    ws.onclose = () => {
      setConn("closed", "reconnecting");
      setTimeout(connect, retry);
      retry = Math.min(retry * 2, 10000);
    };
  }

  drawLanes();
  render();
  connect();
})();
