"""The OpenAI Chat Completions API, as litellm sends it (Aider, mini-swe-agent), for the scripted
model server.

Served: `POST /v1/chat/completions` (and `/chat/completions`, for a base URL without `/v1`):
JSON, or server-sent events when the request says `"stream": true` (a first chunk with the role,
one with the text, one per tool call, one with the finish reason, a usage chunk when
`stream_options.include_usage` asks for it, then `[DONE]`).

Which scripted turn a request gets, from the conversation it carries (so a retry gets the same
answer, and each fresh invocation of the program starts where the script says):

- The round is the one the latest user message naming it says ("This is round N": Jackline's
  brief does); without one, round 1. Programs put their own examples and file contents before
  the brief (Aider does), so only what follows that message counts.
- Within a round, the turn is the number of assistant messages after that message.
- Where a round starts in the script: `ChatCompletions(rounds=[2, 3])` says how many turns each
  round has (mini-swe-agent ends a round with a tool call of its own, its submit command);
  without it, a turn without tool calls ends a round (one text turn a round suits Aider).

`Turn.text` is the message's content (Aider's SEARCH/REPLACE blocks, say); `Turn.tools` become
`tool_calls` of type `function` (mini-swe-agent's `bash` with `{"command": ...}`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

from jackline.testing.model_server import ROUND, ModelServer, Response, Turn

COMPLETIONS = "/chat/completions"
DONE = "The scripted conversation is over: nothing more to do."


class ChatCompletions:
    paths: tuple[str, ...] = (COMPLETIONS,)

    def __init__(self, rounds: Sequence[int] | None = None) -> None:
        self.rounds = list(rounds) if rounds is not None else None
        """Turns per round, in order; None: a turn without tool calls ends its round."""

    def respond(self, server: ModelServer, path: str, body: dict[str, Any]) -> Response:
        messages = [m for m in body.get("messages") or [] if isinstance(m, dict)]
        index = self.turn_index(server.turns, messages)
        turn = server.turn(index) or Turn(text=DONE)
        completion = _completion(turn, turn.model or str(body.get("model") or "scripted"), index)
        if body.get("stream"):
            usage = bool((body.get("stream_options") or {}).get("include_usage"))
            return Response(events=_chunks(completion, usage))
        return Response(body=completion)

    def turn_index(self, turns: list[Turn], messages: list[dict[str, Any]]) -> int:
        """The scripted turn a conversation is at: its round's first turn plus the assistant
        messages after the user message that names the round."""
        round_no, since = round_of(messages)
        answered = sum(1 for m in messages[since + 1 :] if m.get("role") == "assistant")
        return self.round_start(turns, round_no) + answered

    def round_start(self, turns: list[Turn], round_no: int) -> int:
        """The index of round `round_no`'s first turn."""
        if self.rounds is not None:
            return sum(self.rounds[: round_no - 1])
        ended = 0
        for i, turn in enumerate(turns):
            if ended == round_no - 1:
                return i
            if not turn.tools:
                ended += 1
        return len(turns) if round_no > 1 else 0


def round_of(messages: list[dict[str, Any]]) -> tuple[int, int]:
    """(the round, the index of the message naming it): the latest user message that says
    "This is round N"; (1, -1) when none does."""
    for i in range(len(messages) - 1, -1, -1):
        if messages[i].get("role") != "user":
            continue
        found = ROUND.search(text_of(messages[i].get("content")))
        if found:
            return int(found.group(1)), i
    return 1, -1


def text_of(content: Any) -> str:
    """The text of a message's content: a string, or a list of parts (`{"type": "text"}`)."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        return ""
    return "\n".join(
        str(part.get("text", ""))
        for part in content
        if isinstance(part, dict) and part.get("type") == "text"
    )


def _completion(turn: Turn, model: str, index: int) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": turn.text or None}
    if turn.tools:
        message["tool_calls"] = [
            {
                "id": tool.id or f"call_scripted_{index}_{i}",
                "type": "function",
                "function": {"name": tool.name, "arguments": json.dumps(tool.input)},
            }
            for i, tool in enumerate(turn.tools)
        ]
    elif not turn.text:
        message["content"] = DONE
    return {
        "id": f"chatcmpl-scripted-{index}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": "tool_calls" if turn.tools else "stop",
                "logprobs": None,
            }
        ],
        "usage": {
            "prompt_tokens": turn.input_tokens,
            "completion_tokens": turn.output_tokens,
            "total_tokens": turn.input_tokens + turn.output_tokens,
        },
    }


def _chunks(completion: dict[str, Any], with_usage: bool) -> list[tuple[str | None, Any]]:
    """The completion as the streaming API sends it, piece by piece."""
    choice = completion["choices"][0]
    message = choice["message"]
    head = {k: completion[k] for k in ("id", "created", "model")}
    head["object"] = "chat.completion.chunk"

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {**head, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}

    out: list[tuple[str | None, Any]] = [(None, chunk({"role": "assistant", "content": ""}))]
    if message.get("content"):
        out.append((None, chunk({"content": message["content"]})))
    for i, call in enumerate(message.get("tool_calls") or []):
        out.append((None, chunk({"tool_calls": [{"index": i, **call}]})))
    out.append((None, chunk({}, choice["finish_reason"])))
    if with_usage:
        out.append((None, {**head, "choices": [], "usage": completion["usage"]}))
    out.append((None, "[DONE]"))
    return out
