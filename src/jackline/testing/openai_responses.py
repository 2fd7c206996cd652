"""The OpenAI Responses API (`POST /v1/responses`) as the scripted model server speaks it, the
way the Codex CLI consumes it: server-sent events (`response.created`, `response.output_item.added`
/ `.done` per item, `response.output_text.delta`, `response.completed` with the usage), or one JSON
response object when the request does not ask to stream.

A turn's text becomes an assistant `message`; each of its tools a `function_call` (its input as
the JSON arguments) or, for a tool the request declares as free-form (`"type": "custom"`, as
Codex declares `apply_patch`), a `custom_tool_call` whose input is `Tool.input["input"]`.

Which scripted turn a request gets, from the conversation it carries (so a retry gets the same
answer, and each round of a harness, a fresh `codex exec`, starts where the script says), as
the other dialects read a script:

- A turn without tool calls ends the agent's loop: the script is read as rounds, each ending
  with such a turn. Round N's prompt (the last user message before the model first answered)
  says "This is round N" (Jackline's brief does); without that, round 1.
- Within a round, the turn is the number of turns of the model the request already holds
  (runs of items it produced: a message, function calls, reasoning).
- A request without tools (a summary, a title) is not part of the conversation: it gets a
  short answer and uses up nothing.

Shell tools change name between Codex releases (`shell` with an argv, `shell_command` with a
string, `exec_command` with `cmd`): a scripted call to one of them is sent as whichever of them
the request offers, its command converted, so a script outlives the rename. Models Codex drives
in its code mode (their one tool `exec` takes JavaScript) need scripts in that vocabulary: pin a
model in tests (`gpt-5.5` for Codex 0.169).
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Iterator
from typing import Any

from jackline.testing.model_server import ROUND, ModelServer, Response, Tool, Turn, round_start

# Items in a request's input that the model produced (one turn may produce several in a row).
MODEL_ITEMS = {
    "function_call",
    "custom_tool_call",
    "local_shell_call",
    "reasoning",
    "web_search_call",
    "tool_search_call",
}
SHELL_TOOLS = ("shell", "shell_command", "exec_command")
SIDE_ANSWER = "OK."
USED_UP = "(The scripted model has no more turns.)"


class Responses:
    paths: tuple[str, ...] = ("/responses",)

    def respond(self, server: ModelServer, path: str, body: dict[str, Any]) -> Response:
        model = str(body.get("model") or "scripted")
        if not _declared(body):
            turn: Turn | None = Turn(text=SIDE_ANSWER, input_tokens=0, output_tokens=0)
        else:
            turn = server.turn(turn_index(server.turns, body))
        if turn is None:
            turn = Turn(text=USED_UP, input_tokens=0, output_tokens=0)
        response_id = f"resp_{len(server.requests)}"
        items = output_items(turn, _declared(body), response_id)
        usage = _usage(turn)
        name = turn.model or model
        if not body.get("stream"):
            return Response(200, _response(response_id, name, "completed", items, usage))
        return Response(events=list(_events(response_id, name, items, usage)))


def turn_index(turns: list[Turn], body: dict[str, Any]) -> int:
    """The scripted turn a conversation is at: its round's first turn plus the turns of the
    model it already holds."""
    found = ROUND.search(prompt(body))
    return round_start(turns, int(found.group(1)) if found else 1) + model_turns(body)


def prompt(body: dict[str, Any]) -> str:
    """The conversation's prompt: the last user message before the model first answered."""
    last = ""
    for item in _input(body):
        if _is_model(item):
            break
        if item.get("role") == "user":
            last = _text(item)
    return last


def model_turns(body: dict[str, Any]) -> int:
    """How many turns of the model the request's conversation holds: runs of items the model
    produced, each ended by something else (a tool's output, a user message)."""
    turns, inside = 0, False
    for item in _input(body):
        mine = _is_model(item)
        if mine and not inside:
            turns += 1
        inside = mine
    return turns


def output_items(turn: Turn, declared: dict[str, str], response_id: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    if turn.text:
        items.append(
            {
                "type": "message",
                "id": f"msg_{response_id}",
                "role": "assistant",
                "status": "completed",
                "content": [{"type": "output_text", "text": turn.text, "annotations": []}],
            }
        )
    for n, tool in enumerate(turn.tools):
        call_id = tool.id or f"call_{response_id}_{n}"
        items.append(_call(_offered(tool, declared), declared, call_id))
    return items


def _call(tool: Tool, declared: dict[str, str], call_id: str) -> dict[str, Any]:
    if declared.get(tool.name) == "custom":
        text = tool.input.get("input", "")
        return {
            "type": "custom_tool_call",
            "id": f"ctc_{call_id}",
            "call_id": call_id,
            "name": tool.name,
            "input": text if isinstance(text, str) else json.dumps(text),
            "status": "completed",
        }
    return {
        "type": "function_call",
        "id": f"fc_{call_id}",
        "call_id": call_id,
        "name": tool.name,
        "arguments": json.dumps(tool.input),
        "status": "completed",
    }


def _offered(tool: Tool, declared: dict[str, str]) -> Tool:
    """The scripted shell call as the shell tool the request offers, when it names another."""
    if tool.name not in SHELL_TOOLS or tool.name in declared:
        return tool
    offered = next((name for name in SHELL_TOOLS if name in declared), None)
    if offered is None:
        return tool
    raw = tool.input.get("command", tool.input.get("cmd", ""))
    line = shlex.join(raw) if isinstance(raw, list) else str(raw)
    rest = {k: v for k, v in tool.input.items() if k not in ("command", "cmd")}
    if offered == "shell":
        return Tool(offered, {**rest, "command": ["bash", "-lc", line]}, tool.id)
    if offered == "exec_command":
        return Tool(offered, {"cmd": line, **_workdir(rest)}, tool.id)
    return Tool(offered, {**rest, "command": line}, tool.id)


def _workdir(rest: dict[str, Any]) -> dict[str, Any]:
    return {"workdir": rest["workdir"]} if "workdir" in rest else {}


def _declared(body: dict[str, Any]) -> dict[str, str]:
    """Tool name -> its type (`function`, `custom`): the request's tools, those in namespaces,
    and those it declares in its input (`additional_tools`, as Codex does for some models)."""
    declared = list(body.get("tools") or [])
    for item in _input(body):
        if item.get("type") == "additional_tools":
            declared += item.get("tools") or []
    out: dict[str, str] = {}
    for tool in declared:
        if not isinstance(tool, dict):
            continue
        for inner in tool.get("tools") or []:
            if isinstance(inner, dict) and "name" in inner:
                out[str(inner["name"])] = str(inner.get("type", "function"))
        if "name" in tool and tool.get("type") != "namespace":
            out[str(tool["name"])] = str(tool.get("type", "function"))
    return out


def _usage(turn: Turn) -> dict[str, Any]:
    return {
        "input_tokens": turn.input_tokens,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": turn.output_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": turn.input_tokens + turn.output_tokens,
    }


def _response(
    response_id: str,
    model: str,
    status: str,
    output: list[dict[str, Any]],
    usage: dict[str, Any] | None,
) -> dict[str, Any]:
    return {
        "id": response_id,
        "object": "response",
        "created_at": 0,
        "status": status,
        "model": model,
        "output": output,
        "usage": usage,
    }


def _events(
    response_id: str, model: str, items: list[dict[str, Any]], usage: dict[str, Any]
) -> Iterator[tuple[str | None, Any]]:
    seq = iter(range(1_000_000))

    def event(kind: str, **data: Any) -> tuple[str, dict[str, Any]]:
        return kind, {"type": kind, "sequence_number": next(seq), **data}

    yield event("response.created", response=_response(response_id, model, "in_progress", [], None))
    yield event(
        "response.in_progress", response=_response(response_id, model, "in_progress", [], None)
    )
    for index, item in enumerate(items):
        yield event("response.output_item.added", output_index=index, item=_started(item))
        if item["type"] == "message":
            text = item["content"][0]["text"]
            yield event(
                "response.output_text.delta",
                item_id=item["id"],
                output_index=index,
                content_index=0,
                delta=text,
            )
            yield event(
                "response.output_text.done",
                item_id=item["id"],
                output_index=index,
                content_index=0,
                text=text,
            )
        yield event("response.output_item.done", output_index=index, item=item)
    yield event(
        "response.completed", response=_response(response_id, model, "completed", items, usage)
    )


def _started(item: dict[str, Any]) -> dict[str, Any]:
    """An item as `output_item.added` shows it: still in progress, its content not yet there."""
    if item["type"] == "message":
        return {**item, "status": "in_progress", "content": []}
    return {**item, "status": "in_progress"}


def _input(body: dict[str, Any]) -> list[dict[str, Any]]:
    raw = body.get("input")
    if isinstance(raw, str):
        return [{"type": "message", "role": "user", "content": raw}]
    return [i for i in raw or [] if isinstance(i, dict)]


def _is_model(item: dict[str, Any]) -> bool:
    return item.get("type") in MODEL_ITEMS or (
        item.get("type", "message") == "message" and item.get("role") == "assistant"
    )


def _text(item: dict[str, Any]) -> str:
    content = item.get("content")
    if isinstance(content, str):
        return content
    parts = content if isinstance(content, list) else []
    return "\n".join(str(p.get("text", "")) for p in parts if isinstance(p, dict))
