"""The ScriptedAgent's process: `python -m jackline.testing.scripted SCRIPT.json`.

Reads `JACKLINE_ROUND` and plays that round of the script in the current directory. A round past
the end of the script replays the last one.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any


def play(script: list[dict[str, Any]], round_no: int, cwd: Path) -> int:
    step = script[min(round_no, len(script)) - 1]
    print(f"scripted agent: round {round_no}; brief at {os.environ.get('JACKLINE_BRIEF')}")
    feedback = os.environ.get("JACKLINE_FEEDBACK")
    if feedback:
        print(f"scripted agent: read feedback ({len(Path(feedback).read_text())} bytes)")
    for rel, edit in step["edits"].items():
        path = cwd / rel
        if edit is None:
            path.unlink(missing_ok=True)
            print(f"scripted agent: deleted {rel}")
        elif isinstance(edit, dict):
            text = path.read_text()
            if edit["old"] not in text:
                print(f"scripted agent: {rel} does not contain {edit['old']!r}", file=sys.stderr)
                return 2
            path.write_text(text.replace(edit["old"], edit["new"], 1))
            print(f"scripted agent: edited {rel}")
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(edit)
            print(f"scripted agent: wrote {rel}")
    for command in step["commands"]:
        print(f"$ {command}", flush=True)
        code = subprocess.call(command, shell=True, cwd=cwd)
        print(f"scripted agent: exit {code}")
    if step["notes"]:
        notes = cwd / ".jackline" / "notes.md"
        notes.parent.mkdir(parents=True, exist_ok=True)
        notes.write_text(step["notes"])
    if step["message"]:
        print(step["message"])
    sys.stdout.flush()
    time.sleep(step["sleep"])
    return int(step["exit_code"])


def main() -> None:
    script = json.loads(Path(sys.argv[1]).read_text())
    sys.exit(play(script, int(os.environ.get("JACKLINE_ROUND", "1")), Path.cwd()))


if __name__ == "__main__":
    main()
