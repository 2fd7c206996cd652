"""The Anthropic Messages API, as Claude Code speaks it, for the scripted model server.

Served: `POST /v1/messages` (JSON, or server-sent events when the request says `"stream":
true`: `message_start`, one `content_block_start` / `_delta` / `_stop` per text or tool-use
block, `message_delta` with the stop reason and output tokens, `message_stop`) and `POST
/v1/messages/count_tokens` (a rough count: four characters a token).

Which scripted turn a request gets, from the conversation it carries (so a retry gets the same
answer, and a fresh invocation of the program starts where the script says):

- A turn without tool calls ends the agent's loop (the model stops): the script is read as
  rounds, each ending with such a turn. Round N's first user message says "This is round N"
  (Jackline's brief does); without that, round 1.
- Within a round, the turn is the number of assistant messages the request already holds.
- A request without tools (a title, a command's prefix, a quota probe: what the program asks on
  the side) is not part of the conversation: it gets a short plain answer and uses up nothing.
"""

from __future__ import annotations

import json
from typing import Any

from jackline.testing.model_server import ROUND, ModelServer, Response, Turn, round_start

MESSAGES = "/v1/messages"
COUNT_TOKENS = "/v1/messages/count_tokens"
SIDE_ANSWER = "OK"
DONE = "The scripted conversation is over: nothing more to do."


class Messages:
    paths: tuple[str, ...] = (MESSAGES, COUNT_TOKENS)

    def respond(self, server: ModelServer, path: str, body: dict[str, Any]) -> Response:
        if path.endswith(COUNT_TOKENS):
            return Response(body={"input_tokens": max(1, len(json.dumps(body)) // 4)})
        model = str(body.get("model") or "claude-scripted")
        if not body.get("tools"):
            turn = Turn(text=SIDE_ANSWER, input_tokens=10, output_tokens=1)
            key = "side"
        else:
            index = turn_index(server.turns, body.get("messages") or [])
            turn = server.turn(index) or Turn(text=DONE)
            key = str(index)
        message = _message(turn, turn.model or model, key)
        if body.get("stream"):
            return Response(events=_events(message))
        return Response(body=message)


def turn_index(turns: list[Turn], messages: list[Any]) -> int:
    """The scripted turn a conversation is at: its round's first turn plus the assistant
    messages it already holds."""
    start = round_start(turns, round_of(messages))
    return start + sum(1 for m in messages if isinstance(m, dict) and m.get("role") == "assistant")


def round_of(messages: list[Any]) -> int:
    """The round the first user message names ("This is round N"), else 1."""
    first = next((m for m in messages if isinstance(m, dict) and m.get("role") == "user"), None)
    found = ROUND.search(text_of(first.get("content")) if first else "")
    return int(found.group(1)) if found else 1


def text_of(content: Any) -> str:
    """All the text in a message's content (a string, or blocks of text and tool results)."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        return ""
    parts = []
    for block in content:
        if not isinstance(block, dict):
            continue
        if block.get("type") == "text":
            parts.append(str(block.get("text", "")))
        elif block.get("type") == "tool_result":
            parts.append(text_of(block.get("content")))
    return "\n".join(parts)


def _message(turn: Turn, model: str, key: str) -> dict[str, Any]:
    content: list[dict[str, Any]] = []
    if turn.text:
        content.append({"type": "text", "text": turn.text})
    for i, tool in enumerate(turn.tools):
        tool_id = tool.id or f"toolu_scripted_{key}_{i}"
        content.append({"type": "tool_use", "id": tool_id, "name": tool.name, "input": tool.input})
    if not content:
        content.append({"type": "text", "text": DONE})
    return {
        "id": f"msg_scripted_{key}",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": "tool_use" if turn.tools else "end_turn",
        "stop_sequence": None,
        "usage": {
            "input_tokens": turn.input_tokens,
            "output_tokens": turn.output_tokens,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
        },
    }


def _events(message: dict[str, Any]) -> list[tuple[str | None, Any]]:
    """The message as the streaming API sends it, block by block."""
    usage = message["usage"]
    start = {**message, "content": [], "stop_reason": None, "usage": {**usage, "output_tokens": 1}}
    events: list[tuple[str | None, Any]] = [
        ("message_start", {"type": "message_start", "message": start})
    ]
    for i, block in enumerate(message["content"]):
        opened: dict[str, Any]
        if block["type"] == "text":
            opened = {"type": "text", "text": ""}
            delta = {"type": "text_delta", "text": block["text"]}
        else:
            opened = {**block, "input": {}}
            delta = {"type": "input_json_delta", "partial_json": json.dumps(block["input"])}
        events += [
            (
                "content_block_start",
                {"type": "content_block_start", "index": i, "content_block": opened},
            ),
            ("content_block_delta", {"type": "content_block_delta", "index": i, "delta": delta}),
            ("content_block_stop", {"type": "content_block_stop", "index": i}),
        ]
    stop = {"stop_reason": message["stop_reason"], "stop_sequence": None}
    events += [
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": stop,
                "usage": {"output_tokens": usage["output_tokens"]},
            },
        ),
        ("message_stop", {"type": "message_stop"}),
    ]
    return events
