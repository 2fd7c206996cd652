"""Aider (`aider`, PyPI `aider-chat`), driven non-interactively.

One invocation a round: `aider --message-file <brief> --yes-always` answers its own questions
(adding the files the model names, applying edits), `--no-auto-commits --no-dirty-commits` leave
committing to the harness, `--no-gitignore` keeps it from adding `.aider*` to the project's
`.gitignore`. Edits come as SEARCH/REPLACE blocks (`--edit-format diff`, asked for explicitly so
that the format does not depend on what Aider guesses for the model). Aider runs no shell
command of the model's under `--yes-always` (those need an explicit yes), so suggestions are
turned off; it does run its linter on what it edited.

Rules: the rules in scope, as a read-only context file (`--read`, Aider's CONVENTIONS.md idiom)
in the private area; round 2's feedback goes in the same way.

Transcript: Aider's chat history (`--chat-history-file`, markdown: `#### ` lines are the user's
message, `> ` lines Aider's own output, the rest the model's replies) gives the messages, edits
and commands; its analytics log (`--analytics-log`, local JSON lines, nothing sent anywhere
with `--no-analytics`) gives the exact tokens and cost of every model call.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

from jackline.agents import Brief
from jackline.agents.preset import Preset, read_private, remove_private
from jackline.context import Rule
from jackline.models import AgentResult, Step, Transcript, Usage
from jackline.sandbox import Jail

PRIVATE = ".jackline/run/aider"
RULES = f"{PRIVATE}/CONVENTIONS.md"
HISTORY = f"{PRIVATE}/chat.history.md"
ANALYTICS = f"{PRIVATE}/analytics.jsonl"

# Aider's own lines, as it prints them and writes them (quoted) into the chat history.
_APPLIED = re.compile(r"Applied edit to (.+)$")
_NO_MATCH = re.compile(r"## SearchReplaceNoExactMatch: .* lines in (.+)$")
_RAN = re.compile(r"(?:## )?Running:? (.+)$")
_MODEL = re.compile(r"Model: (\S+) with")
_TOKENS = re.compile(r"Tokens: (.+? received)\.")
_COST = re.compile(r"Cost: \$([\d.]+) message, \$([\d.]+) session\.")
_HEADER = "# aider chat started at"


class Agent(Preset):
    name = "aider"
    program = "aider"
    install = (
        "install Aider from PyPI in a virtualenv of its own: `python3 -m venv /opt/aider && "
        "/opt/aider/bin/pip install aider-chat && ln -s /opt/aider/bin/aider /usr/local/bin/` "
        "(or `pipx install aider-chat`)"
    )
    private = (f"{PRIVATE}/", ".aider*")

    def base_argv(self, brief: Brief) -> list[str]:
        argv = [self.program, "--yes-always", "--no-auto-commits", "--no-dirty-commits"]
        argv += ["--no-gitignore", "--no-check-update", "--no-show-release-notes"]
        argv += ["--no-analytics", "--analytics-log", ANALYTICS]
        argv += ["--no-pretty", "--no-stream", "--no-fancy-input", "--no-detect-urls"]
        argv += ["--no-show-model-warnings", "--no-suggest-shell-commands"]
        argv += ["--no-restore-chat-history", "--edit-format", "diff", "--read", RULES]
        argv += ["--chat-history-file", HISTORY]
        argv += ["--input-history-file", f"{PRIVATE}/input.history"]
        argv += ["--llm-history-file", f"{PRIVATE}/llm.history"]
        if brief.feedback is not None:
            argv += ["--read", str(brief.feedback)]  # "# Feedback from the previous round"
        if self.config.model:
            argv += ["--model", self.config.model]
        # The brief's file, not its text: Aider echoes its command line into the chat history,
        # where a multi-line argument would read as the model's words.
        return [*argv, "--message-file", str(brief.path)]

    def rules_files(self, rules: list[Rule], brief: Brief) -> dict[str, str]:
        # Written even with no rules in scope, so that `--read` always finds its file.
        return {RULES: conventions(rules)}

    def extra_env(self, workspace: Path) -> dict[str, str]:
        # litellm's bundled price list, not a download at start-up (the sandbox has no network).
        return {"LITELLM_LOCAL_MODEL_COST_MAP": "True"}

    def run(
        self,
        brief: Brief,
        workspace: Path,
        env: Mapping[str, str],
        log: Path,
        jail: Jail | None = None,
    ) -> AgentResult:
        """The base run (its transcript read from the log), then, where Aider wrote them, the
        transcript from its chat history with the exact tokens from its analytics log."""
        for stale in (HISTORY, ANALYTICS):
            remove_private(workspace, stale)  # each round's files hold that round only
        done = super().run(brief, workspace, env, log, jail)
        history = read_private(workspace, HISTORY)
        if history is None:
            return done
        try:
            transcript = self.parse(history)
            analytics = read_private(workspace, ANALYTICS)
            if analytics is not None:
                transcript = exact_usage(transcript, analytics)
        except ValueError:
            return done
        return replace(done, transcript=transcript)

    def parse(self, output: str) -> Transcript:
        """Aider's chat history into a Transcript. Given the round's log instead (stdout, where
        nothing marks the model's words), only Aider's own lines are read: edits, commands,
        tokens."""
        reader = _Reader(self.config.model, history=_HEADER in output)
        for line in output.splitlines():
            reader.feed(line)
        return reader.transcript()


def conventions(rules: list[Rule]) -> str:
    """The rules in scope as one markdown file for Aider's read-only context."""
    parts = ["# Project rules\n", "Follow these rules; the task message repeats them.\n"]
    for r in rules:
        scope = f" (applies to {', '.join(r.paths)})" if r.paths else ""
        parts.append(f"## {r.source}{scope}\n\n{r.text}\n")
    if not rules:
        parts.append("No project rules apply to this task.\n")
    return "\n".join(parts)


class _Reader:
    """Reads Aider's output line by line; in a chat history, unquoted lines are the model's."""

    def __init__(self, model: str | None, history: bool) -> None:
        self.model = model
        self.history = history
        self.steps: list[Step] = []
        self.said: list[str] = []
        self.messages: list[str] = []
        self.sent = self.received = self.cache_read = self.cache_write = 0
        self.cost: float | None = None

    def feed(self, line: str) -> None:
        if not self.history:
            self.own(line.rstrip())
        elif line.startswith("> ") or line.rstrip() == ">":  # not `>>>>>>> REPLACE`
            self.flush()
            self.own(line[1:].strip())
        elif line.startswith("####") or line.startswith(_HEADER):
            self.flush()
        else:
            self.said.append(line.rstrip())

    def own(self, line: str) -> None:
        if m := _APPLIED.match(line):
            self.steps.append(Step("edit", m.group(1), path=m.group(1)))
        elif m := _NO_MATCH.match(line):
            path = m.group(1)
            detail = "a SEARCH block did not match the file: the edit was not applied"
            self.steps.append(Step("edit", path, detail, path=path, error=True))
        elif m := _RAN.match(line):
            # Aider's linter, shown only when it found errors in what was edited.
            lint = line.startswith("## Running:")
            self.steps.append(Step("command", m.group(1), error=lint))
        elif (m := _MODEL.match(line)) and not self.model:
            self.model = m.group(1)
        else:
            if m := _TOKENS.match(line):
                self.tokens(m.group(1))
            if m := _COST.search(line):
                self.cost = float(m.group(2))  # the session's cost so far

    def tokens(self, parts: str) -> None:
        """`1.2k sent, 300 cache write, 1.0k cache hit, 56 received` (rounded as Aider shows)."""
        for part in parts.split(","):
            count, _, label = part.strip().partition(" ")
            n = _count(count)
            if label == "sent":
                self.sent += n
            elif label == "received":
                self.received += n
            elif label == "cache hit":
                self.cache_read += n
            elif label == "cache write":
                self.cache_write += n

    def flush(self) -> None:
        text = "\n".join(self.said).strip()
        self.said = []
        if text:
            self.messages.append(text)
            self.steps.append(Step("message", text.splitlines()[0][:200], text))

    def transcript(self) -> Transcript:
        self.flush()
        usage: tuple[Usage, ...] = ()
        if self.sent or self.received:
            usage = (
                Usage(
                    self.model or "aider-default",
                    self.sent,
                    self.received,
                    self.cache_read,
                    self.cache_write,
                ),
            )
        final = self.messages[-1] if self.messages else ""
        return Transcript(tuple(self.steps), usage, final, self.cost or None)


def _count(text: str) -> int:
    """Aider's rounded token count: `56`, `1.2k`, `12k`, `1.5M`."""
    scale = {"k": 1_000, "M": 1_000_000}.get(text[-1:], 1)
    number = text[:-1] if scale > 1 else text
    try:
        return round(float(number) * scale)
    except ValueError:
        return 0


def exact_usage(t: Transcript, analytics: str) -> Transcript:
    """The transcript with the tokens and cost of Aider's `message_send` events (exact, where
    the chat history shows them rounded)."""
    sent = received = 0
    cost = 0.0
    seen = False
    for line in analytics.splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if not isinstance(event, dict) or event.get("event") != "message_send":
            continue
        props = event.get("properties") or {}
        seen = True
        sent += int(props.get("prompt_tokens") or 0)
        received += int(props.get("completion_tokens") or 0)
        cost = float(props.get("total_cost") or cost)
    if not seen:
        return t
    model = t.usage[0].model if t.usage else "aider-default"
    cached = t.usage[0] if t.usage else Usage(model)
    # Aider counts cache reads and writes inside the prompt tokens: take them out again.
    plain = max(0, sent - cached.cache_read_tokens - cached.cache_write_tokens)
    usage = Usage(model, plain, received, cached.cache_read_tokens, cached.cache_write_tokens)
    return replace(t, usage=(usage,), cost_usd=cost or t.cost_usd)
