// The plain WebSocket console: logs in over the JSON API, opens
// /ws/chat/<room>/ (or /ws/), sends raw frames and shows every frame.
// User-controlled text is only ever inserted with textContent.

const $ = (id) => document.getElementById(id);
let socket = null;
let counter = 0;

function log(direction, text) {
  const item = document.createElement("li");
  item.className = direction;
  const time = document.createElement("time");
  time.textContent = new Date().toLocaleTimeString();
  const dir = document.createElement("span");
  dir.className = "dir";
  dir.textContent = { in: "◀ in", out: "▶ out", info: "• info" }[direction];
  const body = document.createElement("span");
  body.textContent = text;
  item.append(time, dir, body);
  $("log").prepend(item);
}

function csrfToken() {
  const match = document.cookie.match(/(?:^|; )csrftoken=([^;]*)/);
  return match ? decodeURIComponent(match[1]) : "";
}

async function api(path, body) {
  const response = await fetch(path, {
    method: "POST",
    credentials: "same-origin",
    headers: { "Content-Type": "application/json", "X-CSRFToken": csrfToken() },
    body: JSON.stringify(body),
  });
  const data = await response.json().catch(() => ({}));
  log("info", `${response.status} ${path} ${JSON.stringify(data)}`);
  return { ok: response.ok, data };
}

async function whoAmI() {
  const response = await fetch("/tools/api/auth/me/", { credentials: "same-origin" });
  if (!response.ok) {
    $("who").textContent = "not logged in";
    return;
  }
  const { data } = await response.json();
  $("who").textContent = `logged in as ${data.username}`;
}

async function authenticate(path) {
  const username = $("username").value.trim();
  const password = $("password").value;
  const { ok } = await api(path, { username, password });
  if (ok) await whoAmI();
}

function setState(text, open) {
  $("state").textContent = text;
  $("state").className = `state ${open ? "open" : "closed"}`;
  $("send-button").disabled = !open;
  $("disconnect").disabled = !open;
  $("connect-button").disabled = open;
}

function connect() {
  const room = $("room").value.trim();
  const since = $("since").value.trim();
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  let path = room ? `/ws/chat/${encodeURIComponent(room)}/` : "/ws/";
  if (room && since !== "") path += `?since_seq=${encodeURIComponent(since)}`;
  const url = `${scheme}://${location.host}${path}`;
  log("info", `connecting to ${url}`);
  setState("connecting…", false);
  socket = new WebSocket(url);
  socket.addEventListener("open", () => setState("connected", true));
  socket.addEventListener("message", (event) => log("in", event.data));
  socket.addEventListener("close", (event) => {
    log("info", `closed: code ${event.code}${event.reason ? ` (${event.reason})` : ""}`);
    setState("disconnected", false);
    socket = null;
  });
  socket.addEventListener("error", () => log("info", "connection error (not logged in, no access, or server down?)"));
}

function template(kind) {
  const room = $("room").value.trim();
  const withRoom = (frame) => (room ? frame : { ...frame, room_id: "general" });
  counter += 1;
  switch (kind) {
    case "message":
      return withRoom({ type: "message", content: "你好, Parley!", client_id: `console-${Date.now()}-${counter}` });
    case "typing":
      return withRoom({ type: "typing", is_typing: true });
    case "read":
      return withRoom({ type: "read", up_to_seq: 1 });
    case "resume":
      return withRoom({ type: "resume", since_seq: 0 });
    default:
      return { type: "ping" };
  }
}

$("login").addEventListener("submit", (event) => {
  event.preventDefault();
  authenticate("/tools/api/auth/login/");
});
$("register").addEventListener("click", () => authenticate("/tools/api/auth/register/"));
$("connect").addEventListener("submit", (event) => {
  event.preventDefault();
  if (!socket) connect();
});
$("disconnect").addEventListener("click", () => socket && socket.close(1000, "bye"));
$("send").addEventListener("submit", (event) => {
  event.preventDefault();
  if (!socket || socket.readyState !== WebSocket.OPEN) return;
  const text = $("frame").value;
  socket.send(text);
  log("out", text);
});
document.querySelectorAll("[data-frame]").forEach((button) => {
  button.addEventListener("click", () => {
    $("frame").value = JSON.stringify(template(button.dataset.frame));
  });
});
$("clear").addEventListener("click", () => $("log").replaceChildren());
whoAmI();
