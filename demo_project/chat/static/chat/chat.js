// The demo chat page: one wshub.js connection per tab, any number of rooms.
// Everything people typed is shown with textContent, never as HTML.
//
// wshub.js reconnects by itself (full-jitter backoff), rejoins the rooms with the offset of the
// last message seen in each, and says whether what was missed could be replayed (onRecovery):
// when it could not, the room shows "reloaded". Joining, leaving and writing in rooms are
// protocol frames; the page's own requests (who, rooms, dm) are JSON objects with a "type".
import { connect } from "/static/wshub_channels/wshub.js";

const $ = (id) => document.getElementById(id);
const chat = $("chat");
const MEMBERS = chat.dataset.membersRoom;
const FATAL = { 4401: "Pick a nickname first.", 4409: "Your nickname is in use by someone else." };
const TRY_AGAIN = new Set([1013, 4013]);

const state = {
  client: null,
  me: null,            // {nick, login, id, node}
  joined: new Map(),   // room -> {messages: [{kind, ...}], members: Map(id -> {nick, login})}
  current: null,       // the room shown
  everOpen: false,
};

// -- small DOM helpers -----------------------------------------------------------------------

function el(tag, cls, text) {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (text !== undefined) node.textContent = text;
  return node;
}

let noticeTimer = null;
function notice(text, code) {
  const box = $("notice");
  box.textContent = text;
  box.dataset.code = code || "";
  box.hidden = false;
  clearTimeout(noticeTimer);
  noticeTimer = setTimeout(() => { box.hidden = true; }, 8000);
}

function status(text) { $("status").textContent = text; }

function offline() { notice("Not connected: wait a moment and try again.", "offline"); }

function request(obj) {
  if (state.client.sendFrame(obj)) return true;
  offline();
  return false;
}

// -- rooms -----------------------------------------------------------------------------------

function renderRooms(rooms) {
  const list = $("rooms");
  list.replaceChildren();
  for (const room of rooms) {
    const li = el("li", state.joined.has(room.name) ? "room joined" : "room");
    li.dataset.room = room.name;
    const name = el("button", "name", room.name);
    name.type = "button";
    name.title = state.joined.has(room.name) ? "Show this room" : "Join this room";
    name.onclick = () => openRoom(room.name);
    li.append(name);
    if (room.login) li.append(el("span", "lock", "login"));
    li.append(el("span", "count", String(room.count)));
    list.append(li);
  }
}

function openRoom(room) {
  if (state.joined.has(room)) show(room);
  else state.client.join(room).catch(() => {});  // a refusal comes as an error (onError)
}

function renderTabs() {
  const tabs = $("tabs");
  tabs.replaceChildren();
  for (const room of state.joined.keys()) {
    const tab = el("span", room === state.current ? "tab current" : "tab");
    tab.dataset.room = room;
    const name = el("button", "name", room);
    name.type = "button";
    name.onclick = () => show(room);
    const leave = el("button", "leave", "×");
    leave.type = "button";
    leave.title = `Leave ${room}`;
    leave.onclick = () => { state.client.leave(room).catch(() => {}); };
    tab.append(name, leave);
    tabs.append(tab);
  }
  for (const li of $("rooms").children) {
    li.classList.toggle("joined", state.joined.has(li.dataset.room));
  }
}

function show(room) {
  state.current = room;
  const info = state.joined.get(room);
  $("room-title").textContent = room ? `#${room}` : "No room";
  const box = $("messages");
  box.replaceChildren(...(info ? info.messages.map(renderLine) : []));
  box.scrollTop = box.scrollHeight;
  renderPeople();
  renderTabs();
  if (room) $("say-input").focus();
}

function renderLine(line) {
  const p = el("p", line.kind);
  if (line.kind === "msg") {
    p.append(el("span", "from", line.from), el("span", "text", line.text));
    if (line.offset !== null) p.dataset.offset = String(line.offset);
  } else {
    p.textContent = line.text;
  }
  return p;
}

function addLine(room, line) {
  const info = state.joined.get(room);
  if (!info) return;
  info.messages.push(line);
  if (info.messages.length > 500) info.messages.shift();
  if (room === state.current) {
    const box = $("messages");
    box.append(renderLine(line));
    box.scrollTop = box.scrollHeight;
  }
}

function renderPeople() {
  const list = $("people");
  list.replaceChildren();
  const info = state.joined.get(state.current);
  if (!info || !state.me) { $("people-count").textContent = ""; return; }
  const people = new Map();  // nick -> {login, tabs}
  for (const member of info.members.values()) {
    const person = people.get(member.nick) || { login: member.login, tabs: 0 };
    person.tabs += 1;
    person.login = person.login || member.login;
    people.set(member.nick, person);
  }
  for (const [nick, person] of [...people.entries()].sort()) {
    const li = el("li", nick === state.me.nick ? "person me" : "person");
    li.dataset.nick = nick;
    const name = el("button", "name", nick);
    name.type = "button";
    name.title = `Write to ${nick}`;
    name.onclick = () => { $("dm-to").value = nick; $("dm-text").focus(); };
    li.append(name);
    if (person.login && person.login !== nick) li.append(el("span", "login", person.login));
    if (person.tabs > 1) li.append(el("span", "tabs", `×${person.tabs}`));
    list.append(li);
  }
  $("people-count").textContent = `(${people.size})`;
}

function setMembers(room, members) {
  const info = state.joined.get(room);
  if (!info) return;
  info.members = new Map(members.map((m) => [m.id, { nick: m.nick, login: m.login }]));
  if (room === state.current) renderPeople();
}

// -- the page's own frames (JSON with a "type"), direct or through the hub -------------------

const handlers = {
  hello(msg) {
    state.me = msg;
    state.everOpen = true;
    status(`connected as ${msg.nick} to node ${msg.node}`);
  },
  rooms(msg) { renderRooms(msg.rooms); },
  who(msg) { setMembers(msg.room, msg.members); },
  message(msg, position) {
    const from = msg.room === MEMBERS && msg.login ? `${msg.login} (${msg.from})` : msg.from;
    const offset = position ? position.offset : null;
    addLine(msg.room, { kind: "msg", from, text: msg.text, offset });
  },
  dm(msg) {
    const line = el("p", msg.echo ? "dm echo" : "dm");
    const who = msg.echo ? `you → ${msg.to}` : `${msg.from} → you`;
    line.append(el("span", "from", who), el("span", "text", msg.text));
    $("dms").append(line);
    $("dms").scrollTop = $("dms").scrollHeight;
  },
  error(msg) { notice(msg.message, msg.code); },
};

function dispatch(obj, position) {
  if (!obj || typeof obj !== "object") return;
  const handler = handlers[obj.type];
  if (handler) handler(obj, position);
}

// -- the connection ----------------------------------------------------------------------------

function wsUrl() {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  return `${scheme}://${location.host}/ws/chat/`;
}

function stopped(code) {
  status("disconnected");
  notice(FATAL[code], String(code));
  const change = el("a", null, "Pick another nickname");
  change.href = `?change=1&room=${encodeURIComponent(chat.dataset.room)}`;
  $("status").append(" · ", change);
}

state.client = connect(wsUrl, {
  onOpen() { status("connected"); },
  onFrame(frame) { dispatch(frame, null); },
  onMessage(message) {  // through the hub: a room's line, a direct message
    let obj;
    try { obj = JSON.parse(message.data); } catch { return; }
    if (message.room !== null && obj && obj.type === "message") obj.room = message.room;
    dispatch(obj, message.offset === null ? null : message);
  },
  onJoined(frame) {
    const fresh = !state.joined.has(frame.room);
    if (fresh) {
      state.joined.set(frame.room, { messages: [], members: new Map() });
      addLine(frame.room, { kind: "note", text: `You joined #${frame.room}.` });
    }
    request({ type: "who", room: frame.room });
    if (fresh || !state.current) show(frame.room);
    else renderTabs();
  },
  onRecovery(room, recovered) {
    if (recovered) return;
    const text = "reloaded: messages sent while you were away could not be recovered";
    addLine(room, { kind: "note reloaded", text });
  },
  onLeft(frame) {
    state.joined.delete(frame.room);
    if (state.current === frame.room) show(state.joined.keys().next().value || null);
    else renderTabs();
  },
  onPresence(frame) {
    const info = state.joined.get(frame.room);
    if (!info) return;
    if (frame.event === "joined") info.members.set(frame.client, { nick: frame.user, login: null });
    else info.members.delete(frame.client);
    addLine(frame.room, { kind: "presence", text: `${frame.user} ${frame.event} #${frame.room}` });
    if (frame.room === state.current) renderPeople();
  },
  onError(error) {
    if (error.code === "rate_limited") return;  // the server's own notice says how fast
    notice(error.message, error.code);
  },
  onClose(info) {
    if (info.byClient) return;
    if (FATAL[info.code]) { stopped(info.code); return; }
    let why = `connection closed (${info.code})`;
    if (TRY_AGAIN.has(info.code)) why = "too many tabs with this nickname on this server";
    else if (!state.everOpen) why = "the server refused the connection (full or restarting)";
    if (info.delay === null) { status(`${why}; not reconnecting`); return; }
    status(`${why}; reconnecting in ${(info.delay / 1000).toFixed(1)} s`);
  },
});
state.client.join(chat.dataset.room).catch(() => {});
window.chatClient = state.client;  // for the curious, in the console

// -- forms ---------------------------------------------------------------------------------

$("say").onsubmit = (event) => {
  event.preventDefault();
  const input = $("say-input");
  if (!state.current) { notice("Join a room first.", "no_room"); return; }
  if (!input.value) return;
  if (state.client.send(state.current, input.value) === null) { offline(); return; }
  input.value = "";
};

$("new-room").onsubmit = (event) => {
  event.preventDefault();
  const input = $("new-room-name");
  const room = input.value.trim().replace(/\s+/g, " ").toLowerCase();
  if (room) { openRoom(room); input.value = ""; }
};

$("dm").onsubmit = (event) => {
  event.preventDefault();
  const to = $("dm-to").value.trim();
  const text = $("dm-text").value;
  if (to && text && request({ type: "dm", to, text })) $("dm-text").value = "";
};
