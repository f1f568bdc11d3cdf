// The demo chat page: one WebSocket per tab, any number of rooms.
// Everything people typed is shown with textContent, never as HTML.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const chat = $("chat");
  const MEMBERS = chat.dataset.membersRoom;
  const FATAL = { 4401: "Pick a nickname first.", 4409: "Your nickname is in use by someone else." };
  const TRY_AGAIN = new Set([1013, 4013]);

  const state = {
    socket: null,
    me: null,            // {nick, login, id, node}
    joined: new Map(),   // room -> {messages: [{kind, ...}], members: Map(id -> {nick, login})}
    current: null,       // the room shown
    wanted: new Set([chat.dataset.room]),  // rooms to (re)join on connect
    retry: 0,
    everOpen: false,
  };

  // -- small DOM helpers ---------------------------------------------------------------------

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

  function send(obj) {
    if (state.socket && state.socket.readyState === WebSocket.OPEN) {
      state.socket.send(JSON.stringify(obj));
      return true;
    }
    notice("Not connected: wait a moment and try again.", "offline");
    return false;
  }

  // -- rooms ---------------------------------------------------------------------------------

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
    else { state.wanted.add(room); send({ type: "join", room }); }
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
      leave.onclick = () => { state.wanted.delete(room); send({ type: "leave", room }); };
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
    if (!info) { $("people-count").textContent = ""; return; }
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

  // -- what the server says ------------------------------------------------------------------

  const handlers = {
    hello(msg) {
      state.me = msg;
      status(`connected as ${msg.nick} to node ${msg.node}`);
      for (const room of state.wanted) send({ type: "join", room });
    },
    rooms(msg) { renderRooms(msg.rooms); },
    joined(msg) {
      if (!state.joined.has(msg.room)) {
        state.joined.set(msg.room, { messages: [], members: new Map() });
      }
      state.wanted.add(msg.room);
      setMembers(msg.room, msg.members);
      addLine(msg.room, { kind: "note", text: `You joined #${msg.room}.` });
      show(msg.room);
    },
    left(msg) {
      state.joined.delete(msg.room);
      state.wanted.delete(msg.room);
      if (state.current === msg.room) show(state.joined.keys().next().value || null);
      else renderTabs();
    },
    who(msg) { setMembers(msg.room, msg.members); },
    message(msg) {
      const from = msg.room === MEMBERS && msg.login ? `${msg.login} (${msg.from})` : msg.from;
      addLine(msg.room, { kind: "msg", from, text: msg.text });
    },
    presence(msg) {
      const info = state.joined.get(msg.room);
      if (!info) return;
      if (msg.event === "joined") info.members.set(msg.id, { nick: msg.nick, login: null });
      else info.members.delete(msg.id);
      addLine(msg.room, { kind: "presence", text: `${msg.nick} ${msg.event} #${msg.room}` });
      if (msg.room === state.current) renderPeople();
    },
    dm(msg) {
      const line = el("p", msg.echo ? "dm echo" : "dm");
      const who = msg.echo ? `you → ${msg.to}` : `${msg.from} → you`;
      line.append(el("span", "from", who), el("span", "text", msg.text));
      $("dms").append(line);
      $("dms").scrollTop = $("dms").scrollHeight;
    },
    error(msg) {
      if (msg.action === "join" && msg.room) state.wanted.delete(msg.room.trim().toLowerCase());
      notice(msg.message, msg.code);
    },
  };

  // -- the connection ------------------------------------------------------------------------

  function connect() {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const socket = new WebSocket(`${scheme}://${location.host}/ws/chat/`);
    state.socket = socket;
    socket.onopen = () => { state.retry = 0; state.everOpen = true; status("connected"); };
    socket.onmessage = (event) => {
      for (const raw of event.data.split("\n")) {  // frames may be coalesced
        if (!raw) continue;
        const msg = JSON.parse(raw);
        const handler = handlers[msg.type];
        if (handler) handler(msg);
      }
    };
    socket.onclose = (event) => {
      state.socket = null;
      state.joined.clear();
      show(null);
      if (FATAL[event.code]) {
        status("disconnected");
        notice(FATAL[event.code], String(event.code));
        const change = el("a", null, "Pick another nickname");
        change.href = `?change=1&room=${encodeURIComponent(chat.dataset.room)}`;
        $("status").append(" · ", change);
        return;
      }
      let why = `connection closed (${event.code})`;
      if (TRY_AGAIN.has(event.code)) why = "too many tabs with this nickname on this server";
      else if (!state.everOpen) why = "the server refused the connection (full or restarting)";
      const wait = Math.min(10, 2 ** state.retry++);
      status(`${why}; trying again in ${wait} s`);
      setTimeout(connect, wait * 1000);
    };
  }

  // -- forms ---------------------------------------------------------------------------------

  $("say").onsubmit = (event) => {
    event.preventDefault();
    const input = $("say-input");
    if (!state.current) { notice("Join a room first.", "no_room"); return; }
    if (input.value && send({ type: "say", room: state.current, text: input.value })) {
      input.value = "";
    }
  };

  $("new-room").onsubmit = (event) => {
    event.preventDefault();
    const input = $("new-room-name");
    const room = input.value.trim().toLowerCase();
    if (room) { openRoom(room); input.value = ""; }
  };

  $("dm").onsubmit = (event) => {
    event.preventDefault();
    const to = $("dm-to").value.trim();
    const text = $("dm-text").value;
    if (to && text && send({ type: "dm", to, text })) $("dm-text").value = "";
  };

  connect();
})();
