// wshub.js: the browser client of wshub_channels' client protocol v1.
//
// A dependency-free ES module (no build step): `import { connect } from "/static/wshub_channels/wshub.js"`.
// It connects with the subprotocol "wshub.v1" (and "wshub.token.<token>" when a token provider is
// given), reconnects by itself with full-jitter exponential backoff, answers the server's pings and
// drops a connection that stays silent, rejoins its rooms after a reconnect asking for what it
// missed since the last offset it saw in each room, and tells the page whether the room could be
// recovered. Types: wshub.d.ts beside this file. The server side is HubProtocolMixin
// (wshub_channels.connection.protocol); the frames are described in wshub_channels.core.protocol.

/** The subprotocol of client protocol v1. */
export const PROTOCOL = "wshub.v1";
/** The prefix of the subprotocol that carries a token in the handshake. */
export const TOKEN_PREFIX = "wshub.token.";
/** Close code: the token expired; the client asks its provider for a fresh one and retries. */
export const TOKEN_EXPIRED = 4419;
/**
 * Close codes after which the client reconnects (with backoff): drain (1001; 4001 under daphne),
 * abnormal closes and server errors (1005, 1006, 1011), restart (1012), try again later (1013),
 * bad gateway (1014), and daphne's 4xxx forms of 1011-1014. Every other code stops the client
 * (1000 included: the server ended the session on purpose), as do the other 4xxx codes.
 */
export const RETRY_CODES = Object.freeze(
  new Set([1001, 1005, 1006, 1011, 1012, 1013, 1014, 4001, 4011, 4012, 4013, 4014]),
);

/** The close code this client uses when it drops a silent connection itself. */
const LOCAL_DROP = 4000;
/**
 * Error codes that refuse a join for now, not for good (a rejoin storm over the rate limit, a
 * busy bus): the join is asked again after a backoff delay instead of dropping the room.
 */
export const TRANSIENT_ERRORS = Object.freeze(new Set(["rate_limited", "timeout", "unavailable"]));

/**
 * What to do after the server closed with `code`.
 * @param {number} code
 * @returns {"retry" | "refresh" | "stop"}
 */
export function closeAction(code) {
  if (code === TOKEN_EXPIRED) return "refresh";
  return RETRY_CODES.has(code) ? "retry" : "stop";
}

/**
 * The wait before reconnect attempt number `attempt` (0 for the first), in milliseconds:
 * "full jitter", uniformly random in [0, min(maxDelay, minDelay * 2^attempt)), so that clients
 * dropped at the same moment do not come back at the same moment.
 * @param {number} attempt
 * @param {{minDelay?: number, maxDelay?: number, random?: () => number}} [options]
 * @returns {number}
 */
export function backoffDelay(attempt, options = {}) {
  const minDelay = options.minDelay ?? 500;
  const maxDelay = options.maxDelay ?? 20000;
  const random = options.random ?? Math.random;
  const cap = Math.min(maxDelay, minDelay * 2 ** Math.min(Math.max(attempt, 0), 30));
  return random() * cap;
}

/**
 * The objects of one text frame: with write coalescing the server joins several JSON objects
 * with "\n" (JSON never holds a raw newline). A line that is not JSON is returned as a string.
 * @param {string} text
 * @returns {unknown[]}
 */
export function splitFrames(text) {
  const out = [];
  for (const line of text.split("\n")) {
    if (!line) continue;
    try {
      out.push(JSON.parse(line));
    } catch {
      out.push(line);
    }
  }
  return out;
}

/**
 * Whether `position` comes after `than` in one room (an epoch change always counts as newer).
 * @param {{offset: number, epoch: string} | null} position
 * @param {{offset: number, epoch: string} | null} than
 */
function isNewer(position, than) {
  if (!position) return false;
  if (!than || than.epoch !== position.epoch) return true;
  return position.offset > than.offset;
}

/** @param {any} frame */
function positionOf(frame) {
  return typeof frame.offset === "number" && typeof frame.epoch === "string"
    ? { offset: frame.offset, epoch: frame.epoch }
    : null;
}

/**
 * One connection to a wshub_channels server, kept open across drops. Make one with
 * {@link connect}. Callbacks given as options (`onMessage`, ...) and listeners added with
 * {@link WshubClient#on} receive the same events.
 */
export class WshubClient {
  /**
   * @param {string | (() => string)} url
   * @param {import("./wshub").ClientOptions} [options]
   */
  constructor(url, options = {}) {
    this.url = url;
    this.options = options;
    /** @type {import("./wshub").ClientState} */
    this.state = "idle";
    /** @type {import("./wshub").WelcomeFrame | null} the last welcome frame */
    this.welcome = null;
    /** @type {WebSocket | null} */
    this._socket = null;
    /** @type {Map<string, any>} room -> subscription */
    this._rooms = new Map();
    /** @type {Map<string, {kind: string, room: string}>} ref -> what it asked */
    this._refs = new Map();
    /** @type {Map<string, Set<Function>>} */
    this._listeners = new Map();
    this._attempt = 0;
    this._nextRef = 1;
    this._openedAt = 0;
    this._refreshed = false;
    this._timers = { retry: 0, watchdog: 0, connect: 0 };
    this._token = null;
  }

  // -- events ------------------------------------------------------------------------------

  /**
   * Listen to `type`; returns a function that removes the listener.
   * @param {string} type
   * @param {Function} listener
   * @returns {() => void}
   */
  on(type, listener) {
    let set = this._listeners.get(type);
    if (!set) this._listeners.set(type, (set = new Set()));
    set.add(listener);
    return () => set.delete(listener);
  }

  /** @param {string} type @param {...any} args */
  _emit(type, ...args) {
    const name = "on" + type[0].toUpperCase() + type.slice(1);
    const callbacks = [this.options[name], ...(this._listeners.get(type) || [])];
    for (const callback of callbacks) {
      if (typeof callback !== "function") continue;
      try {
        callback(...args);
      } catch (error) {
        // A listener's bug must not break the connection: report it and carry on.
        setTimeout(() => { throw error; });
      }
    }
  }

  _setState(state) {
    if (this.state === state) return;
    this.state = state;
    this._emit("state", state);
  }

  // -- the connection --------------------------------------------------------------------------

  /** Start connecting (a client made by {@link connect} is started already). */
  open() {
    if (this.state === "connecting" || this.state === "open" || this.state === "waiting") return;
    this._attempt = 0;
    this._refreshed = false;
    this._connect();
  }

  /**
   * Close for good: no reconnect; pending joins are rejected. Call {@link open} to start again.
   * @param {number} [code]
   * @param {string} [reason]
   */
  close(code = 1000, reason = "") {
    this._clearTimers();
    const socket = this._socket;
    this._socket = null;
    if (socket) {
      socket.onopen = socket.onmessage = socket.onerror = socket.onclose = null;
      try { socket.close(code, reason); } catch { socket.close(); }
    }
    this._lost();
    this._rejectPending(new Error("wshub: closed"));
    this._setState("closed");
    this._emit("close", { code, reason, action: "stop", delay: null, byClient: true });
  }

  async _connect() {
    this._setState("connecting");
    let token = null;
    const provider = this.options.token;
    try {
      token = provider ? await provider() : null;
    } catch (error) {
      this._emit("error", { code: "token_provider_failed", message: String(error), ref: null });
      this._retryLater(this._nextDelay());
      return;
    }
    if (this.state !== "connecting") return;  // closed meanwhile
    this._token = token;
    const transport = this.options.tokenTransport || "subprotocol";
    const protocols = [PROTOCOL, ...(this.options.protocols || [])];
    if (token && transport === "subprotocol") protocols.push(TOKEN_PREFIX + token);
    const url = typeof this.url === "function" ? this.url() : this.url;
    const Socket = this.options.WebSocket || WebSocket;
    let socket;
    try {
      socket = new Socket(url, protocols);
    } catch (error) {  // a bad URL, or a token that is not a valid subprotocol token
      this._emit("error", { code: "bad_connect", message: String(error), ref: null });
      this._setState("stopped");
      this._rejectPending(error);
      return;
    }
    socket.binaryType = "arraybuffer";
    this._socket = socket;
    const timeout = this.options.connectTimeout ?? 10000;
    this._timers.connect = setTimeout(() => this._drop(socket, "connect timeout"), timeout);
    socket.onopen = () => {
      if (token && transport === "frame") socket.send(JSON.stringify({ t: "auth", token }));
    };
    socket.onmessage = (event) => this._receive(socket, event.data);
    socket.onclose = (event) => this._closed(socket, event.code, event.reason || "");
  }

  /** Drop `socket` ourselves (connect or ping timeout) and reconnect. */
  _drop(socket, why) {
    if (socket !== this._socket) return;
    socket.onopen = socket.onmessage = socket.onerror = socket.onclose = null;
    try { socket.close(LOCAL_DROP, why); } catch { /* already closing */ }
    this._closed(socket, LOCAL_DROP, why, "retry");
  }

  _closed(socket, code, reason, forced) {
    if (socket !== this._socket) return;
    this._socket = null;
    this._clearTimers();
    this._lost();
    const stable = this._openedAt && Date.now() - this._openedAt >= (this.options.stableAfter ?? 5000);
    if (stable) this._attempt = 0;
    this._openedAt = 0;
    const action = forced || closeAction(code);
    let delay = null;
    if (action === "refresh" && !this._refreshed) {
      this._refreshed = true;  // once at once; a second 4419 in a row waits like any retry
      delay = 0;
    } else if (action !== "stop") {
      delay = this._nextDelay();
    }
    this._emit("close", { code, reason, action, delay, byClient: false });
    if (delay === null) {
      this._setState("stopped");
      this._rejectPending(new Error(`wshub: closed by the server (${code} ${reason})`.trim()));
      return;
    }
    this._retryLater(delay);
  }

  _nextDelay() {
    const options = this.options;
    return backoffDelay(this._attempt++, {
      minDelay: options.minDelay,
      maxDelay: options.maxDelay,
      random: options.random,
    });
  }

  _retryLater(delay) {
    this._setState("waiting");
    this._timers.retry = setTimeout(() => this._connect(), delay);
  }

  _clearTimers() {
    for (const name of Object.keys(this._timers)) {
      clearTimeout(this._timers[name]);
      this._timers[name] = 0;
    }
  }

  /** The connection is gone: rooms wait to be rejoined, answers to old refs never come. */
  _lost() {
    this._refs.clear();
    for (const sub of this._rooms.values()) {
      sub.joined = false;
      sub.buffer = null;
    }
  }

  _rejectPending(error) {
    for (const [room, sub] of this._rooms) {
      if (sub.pending.length) {
        for (const waiter of sub.pending) waiter.reject(error);
        sub.pending = [];
        if (!sub.everJoined) this._rooms.delete(room);
      }
    }
  }

  _watch(socket) {
    const ping = this.welcome && this.welcome.ping;
    clearTimeout(this._timers.watchdog);
    if (!ping) return;
    const silence = ping * 1000 + (this.options.pingTimeout ?? 10000);
    this._timers.watchdog = setTimeout(() => this._drop(socket, "ping timeout"), silence);
  }

  // -- frames from the server ------------------------------------------------------------------

  _receive(socket, data) {
    if (socket !== this._socket) return;
    if (this.welcome && this.state === "open") this._watch(socket);
    if (typeof data !== "string") {
      this._emit("binary", data);
      return;
    }
    for (const frame of splitFrames(data)) {
      if (socket !== this._socket) return;  // a handler closed the client
      if (frame === null || typeof frame !== "object" || typeof frame.t !== "string") {
        this._emit("frame", frame);  // the app's own frame
        continue;
      }
      const handle = HANDLERS[frame.t];
      if (handle) handle.call(this, frame, socket);
      // A frame type this version does not know is ignored: newer servers may add some.
    }
  }

  _welcome(frame, socket) {
    clearTimeout(this._timers.connect);
    this.welcome = frame;
    this._openedAt = Date.now();
    this._refreshed = false;
    this._setState("open");
    this._watch(socket);
    this._emit("open", frame);
    for (const [room, sub] of this._rooms) {
      if (!sub.leaving && !sub.joined) this._sendJoin(room, sub);
    }
  }

  _sendJoin(room, sub) {
    const ref = String(this._nextRef++);
    const since = sub.position;
    sub.buffer = [];
    sub.asked = since;
    sub.recovering = sub.everJoined || since !== null;
    this._refs.set(ref, { kind: "join", room });
    this._raw({ t: "join", room, since, ref });
  }

  _message(frame) {
    const room = typeof frame.room === "string" ? frame.room : null;
    const sub = room === null ? null : this._rooms.get(room);
    if (sub && sub.buffer) {
      sub.buffer.push(frame);  // delivered after the room's "joined"
      return;
    }
    this._deliver(sub, frame);
  }

  _deliver(sub, frame) {
    const position = positionOf(frame);
    if (sub && position) {
      if (!isNewer(position, sub.position)) return;  // seen already (replay overlap)
      sub.position = position;
    }
    const message = {
      room: typeof frame.room === "string" ? frame.room : null,
      data: frame.data,
      offset: position ? position.offset : null,
      epoch: position ? position.epoch : null,
    };
    if (sub && sub.onMessage) {
      try { sub.onMessage(message); } catch (error) { setTimeout(() => { throw error; }); }
    }
    this._emit("message", message);
  }

  _joined(frame, known) {
    const asked = known || this._refs.get(String(frame.ref));
    this._refs.delete(String(frame.ref));
    const sub = this._rooms.get(frame.room);
    if (!sub || !asked) return;
    const buffered = sub.buffer || [];
    sub.buffer = null;
    sub.joined = true;
    sub.retries = 0;
    const recovering = sub.recovering;
    sub.everJoined = true;
    const position = positionOf(frame);
    if (position && sub.position && sub.position.epoch !== position.epoch) sub.position = null;
    this._emit("joined", frame);
    if (recovering) {
      // Without a position (a room without history) nothing could be recovered.
      const recovered = Boolean(frame.recovered) && sub.asked !== null;
      this._emit("recovery", frame.room, recovered, position);
    }
    for (const waiter of sub.pending) waiter.resolve(frame);
    sub.pending = [];
    for (const message of buffered) this._deliver(sub, message);
    if (position && isNewer(position, sub.position)) sub.position = position;
  }

  _left(frame) {
    const asked = frame.ref == null ? undefined : this._refs.get(String(frame.ref));
    if (asked) this._refs.delete(String(frame.ref));
    const sub = this._rooms.get(frame.room);
    if (!sub || (asked && !sub.leaving)) return;  // a join came after this leave: it stays
    if (asked || frame.ref == null) {  // ours, or the server took the client out of the room
      this._rooms.delete(frame.room);
      for (const waiter of sub.leaving || []) waiter.resolve(frame);
      for (const waiter of sub.pending) waiter.reject(new Error(`wshub: left ${frame.room}`));
      this._emit("left", frame);
    }
  }

  _error(frame) {
    const asked = frame.ref == null ? undefined : this._refs.get(String(frame.ref));
    if (asked) this._refs.delete(String(frame.ref));
    const sub = asked ? this._rooms.get(asked.room) : undefined;
    if (asked && sub && asked.kind === "join" && frame.code === "already_in_room") {
      // The server had put the client in the room itself: joined, but nothing was replayed.
      this._joined({ t: "joined", room: asked.room, recovered: false, ref: frame.ref }, asked);
      return;
    } else if (asked && sub && asked.kind === "join" && TRANSIENT_ERRORS.has(frame.code)) {
      sub.buffer = null;  // asked again later, on this connection or the next one
      const socket = this._socket;
      sub.retries = (sub.retries || 0) + 1;
      const delay = backoffDelay(sub.retries, { random: this.options.random });
      setTimeout(() => {
        if (this._socket === socket && this.state === "open" && this._rooms.get(asked.room) === sub
            && !sub.joined && !sub.leaving && !sub.buffer) this._sendJoin(asked.room, sub);
      }, delay);
    } else if (asked && sub && asked.kind === "join") {
      this._rooms.delete(asked.room);  // refused: the room is not rejoined either
      const error = Object.assign(new Error(frame.message || frame.code), { frame });
      for (const waiter of sub.pending) waiter.reject(error);
    } else if (asked && sub && asked.kind === "leave" && sub.leaving) {
      const error = Object.assign(new Error(frame.message || frame.code), { frame });
      for (const waiter of sub.leaving) waiter.reject(error);
      sub.leaving = null;
    }
    this._emit("error", { ...frame, room: asked ? asked.room : frame.room ?? null });
  }

  // -- what the page asks ----------------------------------------------------------------------

  /**
   * Join `room` now or, while offline, at the next connect; after a reconnect the room is
   * rejoined by itself with the position of the last message seen in it. Resolves with the
   * "joined" frame; rejects with the server's error (`error.frame`). The room's messages are
   * delivered after its "joined" event, so create the room's view in `onJoined`.
   * @param {string} room
   * @param {{since?: {offset: number, epoch: string} | null, onMessage?: (m: any) => void}} [options]
   */
  join(room, options = {}) {
    return new Promise((resolve, reject) => {
      let sub = this._rooms.get(room);
      if (sub && sub.joined && !sub.leaving) {
        const position = sub.position || { offset: null, epoch: null };
        resolve({ t: "joined", room, recovered: true, ...position, ref: null });
        return;
      }
      if (!sub) {
        sub = {
          position: options.since ?? null,
          joined: false,
          everJoined: false,
          buffer: null,
          pending: [],
          leaving: null,
          asked: null,
          recovering: false,
          onMessage: options.onMessage,
        };
        this._rooms.set(room, sub);
      }
      if (sub.leaving) {  // joined again while the leave is on its way: join after it
        for (const waiter of sub.leaving) waiter.resolve({ t: "left", room, ref: null });
        sub.leaving = null;
        sub.joined = false;
      }
      sub.pending.push({ resolve, reject });
      if (this.state === "stopped" || this.state === "closed") {
        reject(new Error("wshub: not connected (call open())"));
        sub.pending.pop();
        if (!sub.everJoined) this._rooms.delete(room);
        return;
      }
      if (this.state === "open" && !sub.buffer) this._sendJoin(room, sub);
    });
  }

  /**
   * Leave `room` (and stop rejoining it). Resolves with the "left" frame, or at once offline.
   * @param {string} room
   */
  leave(room) {
    return new Promise((resolve, reject) => {
      const sub = this._rooms.get(room);
      if (!sub) { resolve({ t: "left", room, ref: null }); return; }
      if (this.state !== "open") {
        this._rooms.delete(room);
        for (const waiter of sub.pending) waiter.reject(new Error("wshub: left before joined"));
        resolve({ t: "left", room, ref: null });
        return;
      }
      sub.leaving = [...(sub.leaving || []), { resolve, reject }];
      const ref = String(this._nextRef++);
      this._refs.set(ref, { kind: "leave", room });
      this._raw({ t: "leave", room, ref });
    });
  }

  /**
   * Send `data` to `room` through the server's send hook (objects are JSON-encoded).
   * Returns the request's ref (errors about it carry it), or null when offline: nothing is
   * queued while offline.
   * @param {string} room
   * @param {unknown} data
   * @returns {string | null}
   */
  send(room, data) {
    if (this.state !== "open") return null;
    const ref = String(this._nextRef++);
    const text = typeof data === "string" ? data : JSON.stringify(data);
    return this._raw({ t: "send", room, data: text, ref }) ? ref : null;
  }

  /**
   * Send the app's own frame (an object without "t", JSON-encoded, or a string) to the
   * consumer's normal handler. Returns false when offline.
   * @param {unknown} frame
   */
  sendFrame(frame) {
    if (this.state !== "open") return false;
    if (frame && typeof frame === "object" && "t" in frame) {
      throw new TypeError('wshub: app frames must not have a "t" key (the protocol\'s)');
    }
    const socket = this._socket;
    socket.send(typeof frame === "string" ? frame : JSON.stringify(frame));
    return true;
  }

  /** @param {object} frame */
  _raw(frame) {
    const socket = this._socket;
    if (!socket || socket.readyState !== 1) return false;
    socket.send(JSON.stringify(frame));
    return true;
  }

  /**
   * The position of the last message seen in `room` (history rooms), else null.
   * @param {string} room
   */
  position(room) {
    const sub = this._rooms.get(room);
    return sub && sub.position ? { ...sub.position } : null;
  }

  /** The rooms this client is in or will rejoin. */
  get rooms() {
    return [...this._rooms.entries()].filter(([, s]) => !s.leaving).map(([room]) => room);
  }
}

const HANDLERS = {
  welcome: WshubClient.prototype._welcome,
  msg: WshubClient.prototype._message,
  joined: WshubClient.prototype._joined,
  left: WshubClient.prototype._left,
  error: WshubClient.prototype._error,
  presence(frame) { this._emit("presence", frame); },
  ping() { this._raw({ t: "pong" }); },
};

/**
 * Connect to `url` (ws:// or wss://; a function is called on every attempt) and keep the
 * connection up until {@link WshubClient#close} or a close code that says stop.
 * @param {string | (() => string)} url
 * @param {import("./wshub").ClientOptions} [options]
 * @returns {WshubClient}
 */
export function connect(url, options = {}) {
  const client = new WshubClient(url, options);
  client.open();
  return client;
}
