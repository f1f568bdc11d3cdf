"""wshub.js's pure parts (close codes, backoff, frame splitting), run by Node where it exists."""

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
