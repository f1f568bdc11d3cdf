"""wshub.js under Node where it exists: its pure parts (close codes, backoff, frame splitting)
and a session against a fake socket (the browser tests run it against real servers)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.rig.timing import t

SCRIPT = Path(__file__).resolve().parents[1] / "wshub_channels/static/wshub_channels/wshub.js"
NODE = shutil.which("node")

pytestmark = pytest.mark.skipif(NODE is None, reason="node is not installed")


def run(expression: str) -> object:
    """The JSON value of ``expression`` evaluated with wshub.js imported as ``m``."""
    module = json.dumps(SCRIPT.as_uri())
    code = f"import({module}).then((m) => console.log(JSON.stringify({expression})))"
    done = subprocess.run(
        [str(NODE), "--input-type=module", "-e", code],
        capture_output=True,
        text=True,
        timeout=t(30),
        check=True,
    )
    return json.loads(done.stdout)


def test_close_codes_map_to_retry_refresh_or_stop() -> None:
    codes = [1000, 1001, 1006, 1008, 1011, 1012, 1013, 4001, 4011, 4013, 4401, 4409, 4419]
    actions = run(f"{codes}.map(m.closeAction)")
    assert dict(zip(codes, actions, strict=True)) == {
        1000: "stop",
        1001: "retry",
        1006: "retry",
        1008: "stop",
        1011: "retry",
        1012: "retry",
        1013: "retry",
        4001: "retry",
        4011: "retry",
        4013: "retry",
        4401: "stop",
        4409: "stop",
        4419: "refresh",
    }


def test_backoff_is_full_jitter_from_half_a_second_to_twenty() -> None:
    top = run("[0, 1, 2, 3, 6, 20].map((a) => m.backoffDelay(a, {random: () => 0.9999999}))")
    assert isinstance(top, list)
    assert [round(x) for x in top] == [500, 1000, 2000, 4000, 20000, 20000]
    assert run("m.backoffDelay(5, {random: () => 0})") == 0
    spread = run("Array.from({length: 1000}, () => m.backoffDelay(2))")
    assert isinstance(spread, list)
    assert 0 <= min(spread) < 200 and 1800 < max(spread) < 2000


def test_coalesced_frames_split_on_newlines() -> None:
    text = json.dumps({"t": "msg", "data": "a\nb"}) + "\n" + json.dumps({"x": 1}) + "\n\nplain"
    assert run(f"m.splitFrames({json.dumps(text)})") == [
        {"t": "msg", "data": "a\nb"},
        {"x": 1},
        "plain",
    ]


FLOW = """
const m = await import(%s);
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
class FakeSocket {
  static all = [];
  constructor(url, protocols) {
    Object.assign(this, { url, protocols, sent: [], readyState: 0 });
    FakeSocket.all.push(this);
  }
  send(text) { this.sent.push(JSON.parse(text)); }
  close() { this.readyState = 3; }
  open() { this.readyState = 1; if (this.onopen) this.onopen(); }
  recv(...frames) { this.onmessage({ data: frames.map((f) => JSON.stringify(f)).join("\\n") }); }
  drop(code) { this.readyState = 3; this.onclose({ code, reason: "" }); }
}
const welcome = { t: "welcome", v: 1, client: "c", node: "n", ping: 0 };
const events = [];
const client = m.connect("ws://server/ws/", {
  WebSocket: FakeSocket,
  random: () => 0,
  onMessage: (msg) => events.push(["msg", msg.room, msg.data, msg.offset]),
  onRecovery: (room, ok, position) => events.push(["recovery", room, ok, position]),
  onError: (error) => events.push(["error", error.code, error.room]),
});
await sleep(0);
const one = FakeSocket.all[0];
one.open();
one.recv(welcome);
client.join("r");
const first = one.sent[0];
one.recv({ t: "msg", room: "r", offset: 1, epoch: "e", data: "a" });  // before joined: held
events.push(["held", events.length]);
one.recv({ t: "joined", room: "r", recovered: false, offset: 1, epoch: "e", ref: first.ref });
const b = { t: "msg", room: "r", offset: 2, epoch: "e", data: "b" };
one.recv(b, b);  // the second copy is dropped by its offset
one.drop(1006);
await sleep(5);
const two = FakeSocket.all[1];
two.open();
two.recv(welcome);
const rejoin = two.sent[0];
two.recv(
  { t: "msg", room: "r", offset: 2, epoch: "e", data: "b" },  // replay overlap: dropped
  { t: "msg", room: "r", offset: 3, epoch: "e", data: "c" },
  { t: "joined", room: "r", recovered: true, offset: 3, epoch: "e", ref: rejoin.ref },
);
client.join("q");
const refused = two.sent[1];
two.recv({ t: "error", code: "rate_limited", message: "slow", ref: refused.ref });
await sleep(5);
const again = two.sent[2];
two.drop(1012);
await sleep(5);
const three = FakeSocket.all[2];
three.open();
three.recv(welcome);
const sinceR = three.sent.find((f) => f.room === "r");
three.recv(
  { t: "joined", room: "r", recovered: false, offset: 10, epoch: "e2", ref: sinceR.ref },
  { t: "msg", room: "r", offset: 11, epoch: "e2", data: "d" },
);
console.log(JSON.stringify({ first, rejoin, refused, again, sinceR, events,
  protocols: one.protocols, position: client.position("r") }));
"""


def test_a_session_rejoins_with_its_position_and_drops_what_it_saw() -> None:
    """Against a fake socket: messages before "joined" are held, a copy with an offset
    already seen is dropped, a reconnect rejoins with the last position and reports the
    recovery, a rate-limited join is asked again, and a new epoch reports a failed one."""
    done = subprocess.run(
        [str(NODE), "--input-type=module", "-e", FLOW % json.dumps(SCRIPT.as_uri())],
        capture_output=True,
        text=True,
        timeout=t(30),
        check=True,
    )
    got = json.loads(done.stdout)
    assert got["protocols"] == ["wshub.v1"]
    assert got["first"] == {"t": "join", "room": "r", "since": None, "ref": got["first"]["ref"]}
    assert got["rejoin"]["since"] == {"offset": 2, "epoch": "e"}
    assert (got["refused"]["room"], got["again"]["room"]) == ("q", "q")
    assert got["again"]["ref"] != got["refused"]["ref"]
    assert got["sinceR"]["since"] == {"offset": 3, "epoch": "e"}
    assert got["events"] == [
        ["held", 0],
        ["msg", "r", "a", 1],  # a first join: no recovery to tell
        ["msg", "r", "b", 2],
        ["recovery", "r", True, {"offset": 3, "epoch": "e"}],
        ["msg", "r", "c", 3],
        ["error", "rate_limited", "q"],
        ["recovery", "r", False, {"offset": 10, "epoch": "e2"}],
        ["msg", "r", "d", 11],
    ]
    assert got["position"] == {"offset": 11, "epoch": "e2"}
