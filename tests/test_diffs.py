"""The diff viewer's parser on real `git diff --stat --patch` output, made in a temporary repo
the way the commit step makes it (`steps.commit._keep_change`)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from jackline import diffs

BODY = "\n".join(f"line {n}" for n in range(1, 41)) + "\n"
MOVED = "def total(items):\n    return sum(i.price for i in items)\n    # the end of total\n"


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)
    return done.stdout.decode()


def change(tmp_path: Path, before: dict[str, bytes], after: dict[str, bytes | None]) -> str:
    """The kept change between a commit of `before` and one with `after` applied (None
    deletes a file; a rename is a delete and an add of the same bytes)."""
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    for path, data in before.items():
        (repo / path).write_bytes(data)
    git(repo, "add", "-A")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "base")
    for path, data in after.items():
        if data is None:
            (repo / path).unlink()
        else:
            (repo / path).parent.mkdir(parents=True, exist_ok=True)
            (repo / path).write_bytes(data)
    git(repo, "add", "-A")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "change")
    return git(repo, "diff", "--no-color", "--no-ext-diff", "--stat", "--patch", "HEAD~1", "HEAD")


def test_files_added_deleted_renamed_and_binary_are_told_apart(tmp_path: Path) -> None:
    text = change(
        tmp_path,
        {"gone.py": b"x = 1\n", "old_name.py": BODY.encode(), "logo.png": b"\x89PNG\0\1"},
        {
            "gone.py": None,
            "new.py": b"y = 2\nz = 3\n",
            "old_name.py": None,
            "new_name.py": BODY.encode(),
            "logo.png": b"\x89PNG\0\2",
        },
    )
    found = {f.path: f for f in diffs.parse(text).files}
    assert set(found) == {"gone.py", "new.py", "new_name.py", "logo.png"}
    assert (found["gone.py"].status, found["gone.py"].removed) == ("deleted", 1)
    new = found["new.py"]
    assert (new.status, new.added) == ("added", 2)
    assert [(x.kind, x.old, x.new, x.text) for x in new.hunks[0].lines] == [
        ("add", None, 1, "y = 2"),
        ("add", None, 2, "z = 3"),
    ]
    renamed = found["new_name.py"]
    assert (renamed.status, renamed.old_path, renamed.hunks) == ("renamed", "old_name.py", ())
    assert found["logo.png"].binary and not found["logo.png"].hunks


def test_line_numbers_are_right_on_each_side_of_a_multi_hunk_diff(tmp_path: Path) -> None:
    after = BODY.replace("line 3\n", "line 3\nextra a\nextra b\n").replace("line 30\n", "")
    (f,) = diffs.parse(change(tmp_path, {"a.txt": BODY.encode()}, {"a.txt": after.encode()})).files
    assert len(f.hunks) == 2 and (f.added, f.removed) == (2, 1)
    first = {x.text: (x.old, x.new) for x in f.hunks[0].lines}
    assert first["line 3"] == (3, 3)
    assert first["extra b"] == (None, 5)
    assert first["line 4"] == (4, 6)
    second = {x.text: (x.kind, x.old, x.new) for x in f.hunks[1].lines}
    # Below the second hunk's removal the new side is 2 - 1 = 1 line ahead of the old.
    assert second["line 30"] == ("del", 30, None)
    assert second["line 31"] == ("ctx", 31, 32)
    assert f.hunks[1].header.startswith("@@ -27,7 +29,6 @@")
    assert f.has_line("new", 32) and f.has_line("old", 30) and not f.has_line("new", 20)


def test_a_block_moved_to_another_file_is_marked_on_both_sides(tmp_path: Path) -> None:
    before = {"shop.py": ("import os\n\n" + MOVED + "\nrest = 1\n").encode(), "util.py": b"u = 1\n"}
    after: dict[str, bytes | None] = {
        "shop.py": b"import os\n\n\nrest = 1\n",
        # Moved and re-indented: identical once whitespace is stripped.
        "util.py": ("u = 1\n\nclass Cart:\n" + MOVED.replace("\n", "\n    ")).encode(),
    }
    found = {f.path: f for f in diffs.parse(change(tmp_path, before, after)).files}
    gone = [x for h in found["shop.py"].hunks for x in h.lines if x.kind == "del"]
    came = [x for h in found["util.py"].hunks for x in h.lines if x.kind == "add"]
    assert [x.moved for x in gone if x.text.strip()] == [
        "to util.py:4",
        "to util.py:5",
        "to util.py:6",
    ]
    assert [x.moved for x in came if "total" in x.text] == ["from shop.py:3", "from shop.py:5"]
    assert not any(x.moved for x in came if "class Cart" in x.text)


def test_a_changed_line_is_not_a_move(tmp_path: Path) -> None:
    text = change(
        tmp_path,
        {"a.txt": BODY.encode()},
        {"a.txt": BODY.replace("line 2\n", "line two\n").encode()},
    )
    assert not any(x.moved for f in diffs.parse(text).files for h in f.hunks for x in h.lines)


@pytest.mark.parametrize(
    ("name", "folded"),
    [("uv.lock", "lock file"), ("web/package-lock.json", "lock file"), ("app.min.js", "generated"),
     ("calc.py", "")],
)  # fmt: skip
def test_lock_and_generated_files_are_folded_by_name(
    tmp_path: Path, name: str, folded: str
) -> None:
    text = change(tmp_path, {"keep.txt": b"k\n"}, {name: b"{}\n"})
    assert diffs.parse(text).files[0].folded == folded


def test_a_file_that_says_it_is_generated_is_folded(tmp_path: Path) -> None:
    text = change(
        tmp_path, {"keep.txt": b"k\n"}, {"api.go": b"// Code generated by x. DO NOT EDIT.\n"}
    )
    assert diffs.parse(text).files[0].folded == "generated"


def test_a_change_cut_mid_file_keeps_the_whole_files_and_says_it_was_cut(tmp_path: Path) -> None:
    text = change(tmp_path, {"a.txt": BODY.encode()}, {"a.txt": b"x\n", "b.txt": BODY.encode()})
    cut = text[: text.index("+line 20")] + "\n(cut at 4194304 characters)\n"
    parsed = diffs.parse(cut)
    assert parsed.cut and [f.path for f in parsed.files] == ["a.txt"]
    assert not diffs.parse(text).cut


def test_the_viewer_puts_findings_under_their_lines_and_keeps_code_text(tmp_path: Path) -> None:
    from jackline.server import diffpage

    before = {"t.py": b"def test_add():\n    assert add(2, 3) == 5\n    x = 1\n"}
    after: dict[str, bytes | None] = {"t.py": b"def test_add():\n    x = 1\n    y = '<script>'\n"}
    parsed = diffs.parse(change(tmp_path, before, after))
    found = [
        {"file": "t.py", "line": 2, "level": "warn", "rule": "assert.removed", "message": "gone"},
        {"file": "t.py", "line": 3, "level": "info", "rule": "r", "message": "added here"},
        {"file": "t.py", "line": 99, "level": "info", "rule": "r", "message": "nowhere shown"},
    ]
    (f,) = diffpage.view(parsed, "f", found).files
    rows = [r for _, hunk in f.hunks or [] for r in hunk]
    at = {r.line.text.strip(): [x["message"] for x in r.findings] for r in rows}
    # Line 2 was removed (the assert) and line 3 added: each finding under its own line.
    assert at["assert add(2, 3) == 5"] == ["gone"]
    assert at["y = '<script>'"] == ["added here"]
    assert [x["message"] for x in f.loose] == ["nowhere shown"]
    code = next(str(r.code) for r in rows if "script" in r.line.text)
    assert "<script>" not in code and "&lt;script&gt;" in code


def test_past_the_bound_a_lock_file_is_cut_before_the_code(tmp_path: Path) -> None:
    from jackline.server import diffpage

    lock = "".join(f"pkg{n} = 1\n" for n in range(30)).encode()
    code = b"a = 1\nb = 2\nc = 3\nd = 4\ne = 5\n"
    parsed = diffs.parse(change(tmp_path, {"k.txt": b"k\n"}, {"uv.lock": lock, "z.py": code}))
    # 32 lines: the lock file (30, listed first) would fit, then the code (5) would not.
    shown = diffpage.view(parsed, "f", limit=32)
    hidden = {v.diff.path: v.hunks is None for v in shown.files}
    assert hidden == {"z.py": False, "uv.lock": False} and shown.hidden == 1
    lock_view = next(v for v in shown.files if v.diff.path == "uv.lock")
    # The lock file's first 27 lines are shown (with its hunk's header), the other 3 named.
    assert lock_view.more == 3 and len(lock_view.hunks[0][1]) == 27  # type: ignore[index]
    assert diffpage.view(parsed, "f", limit=5).files[0].hunks is None
