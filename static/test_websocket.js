// The friendly WebSocket tester: one room as chat bubbles, presence, typing,
// ping round trips, and reconnect with ?since_seq= so nothing is missed.
// User text is only ever inserted with textContent.

const $ = (id) => document.getElementById(id);
let socket = null;
let wanted = false;
let lastSeq = null;
let attempt = 0;
let pingSentAt = 0;
let me = null;
const online = new Set();
const seen = new Set();

function raw(direction, text) {
  const item = document.createElement("li");
  item.className = direction;
  item.textContent = `${new Date().toLocaleTimeString()} ${direction === "in" ? "◀" : "▶"} ${text}`;
  $("log").prepend(item);
}

function csrf() {
  const match = document.cookie.match(/(?:^|; )csrftoken=([^;]*)/);
  return match ? decodeURIComponent(match[1]) : "";
}

async function whoAmI() {
  const response = await fetch("/tools/api/auth/me/", { credentials: "same-origin" });
  me = response.ok ? (await response.json()).data : null;
  $("who").textContent = me ? `已登录 logged in as ${me.display_name || me.username} (@${me.username})` : "未登录 not logged in";
  $("login").hidden = Boolean(me);
}

async function authenticate(path) {
  const response = await fetch(path, {
    method: "POST",
    credentials: "same-origin",
    headers: { "Content-Type": "application/json", "X-CSRFToken": csrf() },
    body: JSON.stringify({ username: $("username").value.trim(), password: $("password").value }),
  });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) $("who").textContent = `${response.status}: ${body.error?.message ?? "failed"}`;
  else await whoAmI();
}

function setState(text, open) {
  $("state").textContent = text;
  $("state").className = `state ${open ? "open" : "closed"}`;
  $("send-button").disabled = !open;
  $("ping").disabled = !open;
  $("disconnect").disabled = !wanted;
  $("connect-button").disabled = wanted;
}

function show(message) {
  if (seen.has(message.id)) return;
  seen.add(message.id);
  lastSeq = Math.max(lastSeq ?? 0, message.seq);
  const item = document.createElement("li");
  item.className = message.message_type === "system" ? "system" : message.is_own ? "own" : "";
  if (message.message_type !== "system" && !message.is_own) {
    const who = document.createElement("span");
    who.className = "who";
    who.textContent = message.sender_display_name || message.sender;
    item.append(who);
  }
  item.append(document.createTextNode(message.content));
  $("messages").append(item);
  item.scrollIntoView({ block: "end" });
}

function onFrame(frame) {
  switch (frame.type) {
    case "connection_established":
      attempt = 0;
      online.clear();
      for (const id of frame.online ?? []) online.add(id);
      if (lastSeq === null) lastSeq = frame.last_seq;
      setState("connected", true);
      break;
    case "chat_message":
      show(frame.message);
      break;
    case "user_joined":
      online.add(frame.user_id);
      break;
    case "user_left":
      online.delete(frame.user_id);
      break;
    case "user_typing":
      $("typing").textContent = frame.is_typing ? `${frame.username} 正在输入… is typing…` : "";
      break;
    case "pong":
      $("rtt").textContent = `RTT ${Date.now() - pingSentAt} ms`;
      break;
    case "error":
      $("typing").textContent = `error: ${frame.code} — ${frame.message}`;
      break;
    default:
      break;
  }
  $("online").textContent = online.size ? `${online.size}` : "—";
}

function connect() {
  const room = $("room").value.trim();
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const since = lastSeq === null ? "" : `?since_seq=${lastSeq}`;
  const url = `${scheme}://${location.host}/ws/chat/${encodeURIComponent(room)}/${since}`;
  setState(attempt ? `reconnecting (attempt ${attempt})…` : "connecting…", false);
  socket = new WebSocket(url);
  socket.addEventListener("message", (event) => {
    raw("in", event.data);
    try {
      onFrame(JSON.parse(event.data));
    } catch {
      /* shown raw */
    }
  });
  socket.addEventListener("close", (event) => {
    raw("in", `closed ${event.code} ${event.reason}`);
    socket = null;
    if (!wanted || event.code === 1008) {
      wanted = false;
      setState(`disconnected (${event.code})`, false);
      return;
    }
    attempt += 1;
    const delay = Math.min(30000, 500 * 2 ** attempt) * (0.5 + Math.random() / 2);
    setState(`reconnecting in ${Math.ceil(delay / 1000)} s`, false);
    setTimeout(() => wanted && connect(), delay);
  });
}

function send(frame) {
  if (socket?.readyState !== WebSocket.OPEN) return;
  const text = JSON.stringify(frame);
  socket.send(text);
  raw("out", text);
}

$("login").addEventListener("submit", (event) => {
  event.preventDefault();
  authenticate("/tools/api/auth/login/");
});
$("register").addEventListener("click", () => authenticate("/tools/api/auth/register/"));
$("connect").addEventListener("submit", (event) => {
  event.preventDefault();
  if (socket) return;
  wanted = true;
  lastSeq = null;
  seen.clear();
  $("messages").replaceChildren();
  connect();
});
$("disconnect").addEventListener("click", () => {
  wanted = false;
  socket?.close(1000, "bye");
});
$("send").addEventListener("submit", (event) => {
  event.preventDefault();
  const content = $("text").value.trim();
  if (!content) return;
  send({ type: "message", content, client_id: `tester-${Date.now()}-${Math.random().toString(36).slice(2, 8)}` });
  $("text").value = "";
});
$("text").addEventListener("input", () => send({ type: "typing", is_typing: $("text").value.length > 0 }));
$("ping").addEventListener("click", () => {
  pingSentAt = Date.now();
  send({ type: "ping" });
});
whoAmI();
