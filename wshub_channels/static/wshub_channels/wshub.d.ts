// Types of wshub.js (client protocol v1 of wshub_channels).

/** Where a room's history stands: the offset of a message, in an epoch. */
export interface Position {
  offset: number;
  epoch: string;
}

export type ClientState = "idle" | "connecting" | "open" | "waiting" | "closed" | "stopped";
export type CloseAction = "retry" | "refresh" | "stop";

export interface WelcomeFrame {
  t: "welcome";
  v: number;
  client: string;
  node: string;
  /** Seconds between the server's pings (0: the server does not ping). */
  ping: number;
}

export interface JoinedFrame {
  t: "joined";
  room: string;
  recovered: boolean;
  /** The room's position; null for rooms without history. */
  offset: number | null;
  epoch: string | null;
  ref: string | null;
}

export interface LeftFrame {
  t: "left";
  room: string;
  ref: string | null;
}

export interface PresenceFrame {
  t: "presence";
  room: string;
  event: "joined" | "left";
  client: string;
  user: string | null;
  node: string;
}

export interface ErrorFrame {
  t?: "error";
  /**
   * A stable code: "bad_frame", "room_full", "max_rooms", "unauthorized", "invalid_name",
   * "already_in_room", "not_in_room", "rate_limited", "server_error", "token_provider_failed"...
   */
  code: string;
  message: string;
  ref: string | null;
  /** The room of the join, leave or send it answers, when known. */
  room?: string | null;
}

/** A "msg" frame as the page gets it. */
export interface RoomMessage {
  /** null for sends to the user, the client, or everyone. */
  room: string | null;
  /** The server's text as-is (an app's JSON stays a string). */
  data: string;
  /** Only for rooms with history. */
  offset: number | null;
  epoch: string | null;
}

export interface CloseInfo {
  code: number;
  reason: string;
  action: CloseAction;
  /** Milliseconds until the next attempt; null when the client stopped. */
  delay: number | null;
  /** True when the page called close(). */
  byClient: boolean;
}

export interface ClientOptions {
  /**
   * Called on every (re)connect; its token goes in the handshake as the subprotocol
   * "wshub.token.<token>" (so it must be made of token characters, as base64url and JWTs are).
   * On close code 4419 (token expired) it is called again and the client retries at once.
   */
  token?: () => Promise<string | null> | string | null;
  /** "subprotocol" (the default) or "frame": send {"t":"auth","token"} first instead. */
  tokenTransport?: "subprotocol" | "frame";
  /** More subprotocols to offer after "wshub.v1". */
  protocols?: string[];
  /** Backoff: the first retry waits up to minDelay ms, doubling up to maxDelay (500, 20000). */
  minDelay?: number;
  maxDelay?: number;
  /** The backoff starts over once a connection stayed up this long (ms, default 5000). */
  stableAfter?: number;
  /** A connection silent for the ping interval plus this (ms, default 10000) is dropped. */
  pingTimeout?: number;
  /** No welcome this long after starting to connect (ms, default 10000): try again. */
  connectTimeout?: number;
  /** Random numbers in [0, 1) for the jitter (default Math.random). */
  random?: () => number;
  /** A WebSocket constructor other than the global one. */
  WebSocket?: typeof WebSocket;

  onOpen?: (welcome: WelcomeFrame) => void;
  onClose?: (info: CloseInfo) => void;
  onState?: (state: ClientState) => void;
  onMessage?: (message: RoomMessage) => void;
  /** After a rejoin: whether what was missed in the room was replayed (false: reload it). */
  onRecovery?: (room: string, recovered: boolean, position: Position | null) => void;
  onJoined?: (frame: JoinedFrame) => void;
  onLeft?: (frame: LeftFrame) => void;
  onPresence?: (frame: PresenceFrame) => void;
  onError?: (error: ErrorFrame) => void;
  /** The app's own frames (JSON without "t", or text that is not JSON). */
  onFrame?: (frame: unknown) => void;
  onBinary?: (data: ArrayBuffer) => void;
}

export interface JoinOptions {
  /** Ask for what came after this position (for example one kept in sessionStorage). */
  since?: Position | null;
  onMessage?: (message: RoomMessage) => void;
}

export class WshubClient {
  constructor(url: string | (() => string), options?: ClientOptions);
  readonly url: string | (() => string);
  readonly options: ClientOptions;
  readonly state: ClientState;
  readonly welcome: WelcomeFrame | null;
  readonly rooms: string[];
  on(type: "open", listener: (welcome: WelcomeFrame) => void): () => void;
  on(type: "close", listener: (info: CloseInfo) => void): () => void;
  on(type: "state", listener: (state: ClientState) => void): () => void;
  on(type: "message", listener: (message: RoomMessage) => void): () => void;
  on(
    type: "recovery",
    listener: (room: string, recovered: boolean, position: Position | null) => void,
  ): () => void;
  on(type: "joined", listener: (frame: JoinedFrame) => void): () => void;
  on(type: "left", listener: (frame: LeftFrame) => void): () => void;
  on(type: "presence", listener: (frame: PresenceFrame) => void): () => void;
  on(type: "error", listener: (error: ErrorFrame) => void): () => void;
  on(type: "frame", listener: (frame: unknown) => void): () => void;
  on(type: "binary", listener: (data: ArrayBuffer) => void): () => void;
  open(): void;
  close(code?: number, reason?: string): void;
  join(room: string, options?: JoinOptions): Promise<JoinedFrame>;
  leave(room: string): Promise<LeftFrame>;
  send(room: string, data: unknown): string | null;
  sendFrame(frame: unknown): boolean;
  position(room: string): Position | null;
}

export const PROTOCOL: "wshub.v1";
export const TOKEN_PREFIX: "wshub.token.";
export const TOKEN_EXPIRED: 4419;
export const RETRY_CODES: ReadonlySet<number>;
/** Join refusals that are asked again after a backoff delay ("rate_limited", ...). */
export const TRANSIENT_ERRORS: ReadonlySet<string>;
export function closeAction(code: number): CloseAction;
export function backoffDelay(
  attempt: number,
  options?: { minDelay?: number; maxDelay?: number; random?: () => number },
): number;
export function splitFrames(text: string): unknown[];
export function connect(url: string | (() => string), options?: ClientOptions): WshubClient;
