"""A person accepts a finding: an owner accepts a block-level one with a reason, recorded in the
run's audit log and shown in the handoff, and another reviewer may then approve; for the head it
was made on only. Real runs (a scripted agent editing a CI file, which a gate scan blocks), the
real CLI, and a real `jackline serve` on loopback for the API and the remote client."""

from __future__ import annotations

import json
import secrets
import string
from dataclasses import replace
from pathlib import Path
from typing import Any

from conftest import Project
from test_server_api import start_server, stop_server

from jackline import handoff
from jackline.models import Acceptance, Finding, from_json
from jackline.testing import Replace, Round, ScriptedAgent

CI = {".github/workflows/ci.yml": "on: push\njobs: {}\n"}
FIX = Round(edits={"calc.py": Replace("a - b", "a + b"), **CI})
AGAIN = Round(edits={"calc.py": Replace("return a + b", "return b + a")})
OWNERS = '\n[review]\nowners = ["carol"]\nallow_as = true\n'


def test_a_finding_id_is_hex_derived_from_what_it_says_and_read_back_from_old_events() -> None:
    f = Finding("scope.gate", "block", "edits a gate", "a b/`x`\n## y.yml", 3, quote="q")
    assert len(f.id) == 10 and set(f.id) <= set("0123456789abcdef")
    assert replace(f, why="other").id == f.id and replace(f, line=4).id != f.id
    old = {"rule": "scope.gate", "level": "block", "message": "edits a gate", "file": f.file}
    assert from_json(Finding, {**old, "line": 3}).id == f.id  # an event without an id


def test_an_acceptance_in_the_handoff_is_text_whatever_its_words() -> None:
    """A reason, a name and a file name are a person's or the agent's words: they cannot write
    a section of the note."""
    f = Finding("scope.gate", "block", "edits a gate", ".github/x\n## How to undo\n.yml")
    a = Acceptance(
        "run-1", f.id, f.rule, f.level, f.file, None, "carol`\n# x",
        "fine\n## How to undo\n- `rm -rf /`", "a" * 40,
    )  # fmt: skip
    h = handoff.Handoff("run-1", "Fix add", "awaiting_review", findings=(f,), accepted=(a,))
    note = handoff.markdown(h)
    assert note.count("\n## How to undo") == 1
    assert "**Accepted** by carol" in note and "Accepted by an owner" in note
    assert handoff.Handoff.from_json(json.loads(json.dumps(handoff.as_json(h)))) == h


def gate_finding(project: Project, run_id: str) -> dict[str, Any]:
    shown = project.jl_json("show", run_id)
    gates = [f for f in shown["findings"] if f["rule"] == "scope.gate" and f["level"] == "block"]
    assert len(gates) == 1, shown["findings"]
    return dict(gates[0])


def test_an_owner_accepts_a_block_finding_for_its_head_and_another_reviewer_approves(
    project: Project,
) -> None:
    project.create(ScriptedAgent([FIX, AGAIN]), extra=OWNERS)
    run = project.jl_json("run", "Fix add")
    assert run["status"] == "awaiting_review" and run["blocking"] == 1
    gate = gate_finding(project, run["id"])
    fid = gate["id"]
    assert len(fid) == 10 and gate["accepted"] is None
    assert fid in project.jl("show", run["id"]).stdout

    # Not an owner; the submitter; no reason: each refused, saying what would be right.
    bob = project.jl("accept", run["id"], fid, "-m", "fine", user="bob", ok=False)
    assert bob.returncode == 1
    assert "bob is not an owner" in bob.stderr and "carol" in bob.stderr and fid in bob.stderr
    own = project.jl("accept", run["id"], fid, "-m", "mine", user="alice", ok=False)
    assert own.returncode == 1 and "alice submitted" in own.stderr
    bare = project.jl("accept", run["id"], fid, user="carol", ok=False)
    assert bare.returncode == 1 and "-m REASON" in bare.stderr
    unknown = project.jl("accept", run["id"], "ffffffffff", "-m", "x", user="carol", ok=False)
    assert unknown.returncode == 1 and fid in unknown.stderr
    refused = project.events_by_kind(run["id"])["decision_refused"]
    assert [(r["decision"], r["by"]) for r in refused] == [("accept", "bob"), ("accept", "alice")]

    reason = "The CI file is empty on purpose: jobs move to the new runner <next week>."
    made = project.jl_json("accept", run["id"], fid[:6], "-m", reason, user="carol")
    assert made["finding"] == fid and made["by"] == "carol" and made["reason"] == reason
    assert made["head"] == run["head_sha"] and made["left"] == 0 and made["level"] == "block"
    (event,) = project.events_by_kind(run["id"])["accepted"]
    assert event["finding"] == fid and event["reason"] == reason
    assert event["head"] == run["head_sha"] and event["claimed_by_os_user"]  # --as/JACKLINE_USER
    logs = project.jl("logs", run["id"]).stdout
    assert f"finding {fid} (scope.gate .github/workflows/ci.yml) accepted by carol" in logs
    assert gate_finding(project, run["id"])["accepted"]["by"] == "carol"
    note = Path(run["handoff"]).read_text()
    assert "**Accepted** by carol" in note and "\\<next week\\>" in note
    assert "Accepted by an owner" in note and "Needs an owner" not in note
    record = json.loads(Path(run["handoff"]).with_name("handoff.json").read_text())
    assert [(a["finding"], a["by"]) for a in record["accepted"]] == [(fid, "carol")]
    again = project.jl("accept", run["id"], fid, "-m", "twice", user="carol", ok=False)
    assert again.returncode == 1 and "accepted already" in again.stderr

    # A new round is a new head: the finding, still there, needs accepting again.
    sent = project.jl_json("request-changes", run["id"], "-m", "Swap them", user="bob")
    assert sent["status"] == "awaiting_review" and sent["head_sha"] != run["head_sha"]
    gate = gate_finding(project, run["id"])
    assert gate["accepted"] is None
    stale = project.jl("approve", run["id"], user="bob", ok=False)
    assert stale.returncode == 1, stale.stdout
    assert "bob is not an owner" in stale.stderr
    assert f"accepted by carol on {run['head_sha'][:10]}" in stale.stderr
    assert "accept it again" in stale.stderr
    assert "Needs an owner" in Path(sent["handoff"]).read_text()

    project.jl_json("accept", run["id"], gate["id"], "-m", reason, user="carol")
    merged = project.jl_json("approve", run["id"], user="bob")
    assert merged["status"] == "merged"
    assert "**Accepted** by carol" in Path(merged["handoff"]).read_text()


def test_a_secret_finding_is_never_accepted(project: Project) -> None:
    alphabet = string.ascii_uppercase + string.digits
    aws = "AKIA" + "".join(secrets.choice(alphabet) for _ in range(16))
    leak = Round(
        edits={"calc.py": Replace("a - b", "a + b"), "settings_local.py": f'K = "{aws}"\n'}
    )
    project.create(ScriptedAgent([leak]), extra=OWNERS)
    run = project.jl_json("run", "Fix add")
    assert run["status"] == "blocked"
    found = project.jl_json("show", run["id"])["findings"]
    secret = next(f for f in found if f["rule"].startswith("secret.") and f["level"] == "block")
    refused = project.jl(
        "accept", run["id"], secret["id"], "-m", "a test key", user="carol", ok=False
    )
    assert refused.returncode == 1
    assert "blocked" in refused.stderr and "never accepted" in refused.stderr
    assert f"jackline request-changes {run['id']}" in refused.stderr
    assert "accepted" not in project.events_by_kind(run["id"])


def test_the_api_takes_an_acceptance_from_an_owners_token_only(tmp_path: Path) -> None:
    from conftest import unmount_under

    project = Project(tmp_path, tmp_path / "home").create(
        ScriptedAgent([FIX]), extra='\n[review]\nowners = ["olga"]\n'
    )
    server = start_server(project)
    try:
        made = server.call("alice", "POST", "/api/runs", json={"task": "Fix add"}).json()
        run_id = made["id"]
        with server.client("vera") as c:
            c.get(f"/api/runs/{run_id}/events/stream").read()  # until it rests
        detail = server.call("vera", "GET", f"/api/runs/{run_id}").json()
        assert detail["status"] == "awaiting_review", detail
        (gate,) = [f for f in detail["findings"] if f["level"] == "block"]
        path = f"/api/runs/{run_id}/findings/{gate['id']}/accept"
        body = {"message": "reviewed by hand"}

        assert server.call(None, "POST", path, json=body).status_code == 401
        server.tokens["forged"] = "jl_deadbeef_not-a-real-secret"
        assert server.call("forged", "POST", path, json=body).status_code == 401
        assert server.call("vera", "POST", path, json=body).status_code == 403  # a viewer
        bob = server.call("bob", "POST", path, json=body)
        assert bob.status_code == 403 and "bob is not an owner" in bob.json()["error"]["message"]
        bare = server.call("olga", "POST", path, json={})
        assert bare.status_code == 422 and "-m REASON" in bare.json()["error"]["message"]
        missing = server.call("olga", "POST", f"/api/runs/{run_id}/findings/0000/accept", json=body)
        assert missing.status_code == 404 and gate["id"] in missing.json()["error"]["message"]
        early = server.call("bob", "POST", f"/api/runs/{run_id}/approve", json={})
        assert early.status_code == 403 and gate["id"] in early.json()["error"]["message"]

        # The remote client: the token's person accepts; --as does not apply.
        env = {**project.env, "JACKLINE_TOKEN": server.tokens["olga"]}
        project.env = env
        remote = project.jl_json("--server", server.url, "accept", run_id, gate["id"], "-m", "ok")
        assert remote["by"] == "olga" and remote["left"] == 0 and remote["run"] == run_id
        shown = server.call("vera", "GET", f"/api/runs/{run_id}").json()
        assert "**Accepted** by olga" in shown["handoff_markdown"]
        page = server.call("vera", "GET", f"/runs/{run_id}")
        assert page.status_code == 200 and "Accepted</strong> by olga" in page.text

        approved = server.call("bob", "POST", f"/api/runs/{run_id}/approve", json={})
        assert approved.status_code == 200 and approved.json()["status"] == "merged"
    finally:
        stop_server(server)
        unmount_under(tmp_path)
