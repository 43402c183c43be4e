"""The chat reply's SSE coalesces tokens that arrive together and holds back none (issue 13), end to end: a real
OpenAI-compatible runtime whose tokens come when its script says (therascript_llm_manager.testing.ScriptedRuntime,
llm-manager's `remote` runtime: llama.cpp cannot be told to send several at once, or to pause) → real llm-manager →
real chat → the real gateway → the SSE read as the original UI reads it. A chunk event's text may hold several
tokens: the UI appends each chunk's text (ui-contract §3.1), so the reply reads the same."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from therascript_chat.testing import start_chat_service
from therascript_gateway.settings import GatewaySettings
from therascript_gateway.testing import read_sse_as_the_ui_does, serve_gateway
from therascript_llm_manager.testing import ScriptedRuntime, start_llm_manager

BURST = [" upon", " a", " time", ",", " in", " a", " house", " by", " the", " sea", ",", " there"]


@dataclass
class Relay:
    runtime: ScriptedRuntime
    api: httpx.Client


@pytest.fixture(scope="module")
def relay(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Relay]:
    data = Path(tmp_path_factory.mktemp("coalescing"))
    runtime = ScriptedRuntime([])
    llm_target, stop_llm = start_llm_manager(data / "llm", runtime="remote", remote_base_url=runtime.base_url)
    chat = start_chat_service(data / "chat", llm_target=llm_target)
    settings = GatewaySettings(sessions_target="127.0.0.1:1", chat_target=chat.target, llm_target=llm_target,
                               analysis_target="127.0.0.1:1", ops_target="127.0.0.1:1")
    try:
        with serve_gateway(settings) as (host, port), httpx.Client(base_url=f"http://{host}:{port}",
                                                                   timeout=60) as api:
            yield Relay(runtime, api)
    finally:
        chat.stop()
        stop_llm()
        runtime.close()


def _chunks(relay: Relay) -> list[tuple[float, str]]:
    """(time.monotonic() of arrival, text) of each `chunk` event of one reply on a new standalone chat."""
    chat_id = relay.api.post("/api/chats").json()["id"]
    with relay.api.stream("POST", f"/api/chats/{chat_id}/messages", json={"text": "Tell me a story."}) as response:
        assert response.status_code == 200
        events = read_sse_as_the_ui_does(response)
    assert "done" in events[-1][1]
    return [(arrived, event["chunk"]) for arrived, event in events if "chunk" in event]


def test_tokens_that_arrive_together_leave_as_one_sse_event(relay: Relay) -> None:
    relay.runtime.script = [(0.0, ["Once"]), (0.3, BURST)]  # twelve SSE events in one socket write
    chunks = _chunks(relay)

    assert "".join(text for _, text in chunks) == "Once" + "".join(BURST)
    assert chunks[0][1] == "Once"
    # One event normally (up to three if llm-manager's reader lost the CPU mid-burst on a loaded machine); relayed
    # token by token, as before issue 13, these were twelve SSE events.
    assert len(chunks) - 1 <= 3


def test_a_lone_first_token_reaches_the_client_before_the_next_one_exists(relay: Relay) -> None:
    relay.runtime.script = [(0.0, ["Once"]), (1.0, [" upon"])]
    relay.runtime.writes.clear()
    chunks = _chunks(relay)

    assert [text for _, text in chunks] == ["Once", " upon"]
    assert chunks[0][0] < relay.runtime.writes[1][0]  # through three hops, and not held back for " upon"
