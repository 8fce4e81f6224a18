"""The one directory swap (kernelstacks._support.swap): all or nothing, whatever kills it.

Real directories and real processes: a child process runs a swap and SIGKILLs itself at each
step (``KERNELSTACKS_CRASH_AT``); the next swap's recovery must leave every directory either
entirely old or entirely new.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from kernelstacks._support.swap import (
    CRASH_ENV,
    SwapError,
    clean_leftovers,
    discard,
    journal_for,
    new_staging_dir,
    recover,
    replace_all,
    swap_in,
)

CRASH_POINTS = ["swap-prepared", "swap-moved-aside", "swap-moved-in", "swap-committed"]


def fake_layer(path: Path, marker: str) -> Path:
    (path / "lib").mkdir(parents=True, exist_ok=True)
    (path / "marker").write_text(marker)
    (path / "lib" / "data").write_text(marker * 100)
    return path


def visible(folder: Path) -> dict[str, str]:
    """What a reader sees: non-hidden entries and their markers."""
    return {
        p.name: (p / "marker").read_text()
        for p in sorted(folder.iterdir())
        if not p.name.startswith(".")
    }


def hidden(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_swap_in_first_time_and_replace(tmp_path: Path) -> None:
    final = tmp_path / "app"
    swap_in(fake_layer(new_staging_dir(final), "one"), final)
    assert visible(tmp_path) == {"app": "one"}
    assert oct(final.stat().st_mode & 0o777) != oct(0o700)  # not mkdtemp's private mode
    swap_in(fake_layer(new_staging_dir(final), "two"), final)
    assert visible(tmp_path) == {"app": "two"}
    assert hidden(tmp_path) == []


def test_staging_names_are_not_valid_kernel_names(tmp_path: Path) -> None:
    """Jupyter lists any directory whose name matches its kernel-name pattern."""
    from jupyter_client.kernelspec import _is_valid_kernel_name

    staged = new_staging_dir(tmp_path / "kernelstacks-demo-app")
    assert not _is_valid_kernel_name(staged.name)
    assert not _is_valid_kernel_name(journal_for(tmp_path / "kernelstacks-demo-app").name)


def test_replace_all_swaps_several_directories(tmp_path: Path) -> None:
    fake_layer(tmp_path / "rt", "old-rt")
    pairs = [
        (fake_layer(new_staging_dir(tmp_path / "rt"), "new-rt"), tmp_path / "rt"),
        (fake_layer(new_staging_dir(tmp_path / "app"), "new-app"), tmp_path / "app"),
    ]
    replace_all(pairs, tmp_path / ".journal~swap.json")
    assert visible(tmp_path) == {"app": "new-app", "rt": "new-rt"}
    assert hidden(tmp_path) == []


def test_entries_outside_the_journal_folder_are_refused(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    staged = fake_layer(new_staging_dir(tmp_path / "a" / "x"), "new")
    with pytest.raises(SwapError, match="directly inside"):
        replace_all([(staged, tmp_path / "a" / "x")], tmp_path / ".j~swap.json")
    assert not (tmp_path / ".j~swap.json").exists()


def test_a_missing_staged_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SwapError, match="prepared directory not found"):
        swap_in(tmp_path / "nope", tmp_path / "app")


def test_journal_naming_outside_its_folder_is_refused(tmp_path: Path) -> None:
    """Recovery never touches a path a tampered journal names outside its folder."""
    outside = fake_layer(tmp_path / "outside", "keep")
    folder = tmp_path / "deploy"
    folder.mkdir()
    journal = folder / ".j~swap.json"
    entry = {"final": "../outside", "staged": ".x~new-1", "old": None}
    journal.write_text(json.dumps({"state": "prepared", "entries": [entry]}))
    with pytest.raises(SwapError, match="not a plain name"):
        recover(journal)
    assert (outside / "marker").read_text() == "keep"


def test_unreadable_journal_is_an_error_not_a_guess(tmp_path: Path) -> None:
    journal = tmp_path / ".j~swap.json"
    journal.write_text("{not json")
    with pytest.raises(SwapError, match="unreadable swap journal"):
        recover(journal)


def test_discard_never_leaves_a_whole_looking_copy(tmp_path: Path) -> None:
    old = fake_layer(tmp_path / ".app~old-1", "old")
    discard(old)
    assert hidden(tmp_path) == []


def test_clean_leftovers_removes_staging_and_trash_only(tmp_path: Path) -> None:
    fake_layer(tmp_path / "app", "live")
    fake_layer(new_staging_dir(tmp_path / "app"), "half")
    fake_layer(tmp_path / ".app~trash-1", "partial")
    fake_layer(tmp_path / ".app~old-1", "old")  # only recovery may decide about old copies
    removed = clean_leftovers(tmp_path)
    assert len(removed) == 2
    assert hidden(tmp_path) == [".app~old-1"]
    assert visible(tmp_path) == {"app": "live"}


_CHILD = """
import sys
from pathlib import Path
from kernelstacks._support.swap import new_staging_dir, replace_all

folder = Path(sys.argv[1])
pairs, remove = [], []
for name in sys.argv[2:]:
    if name.startswith("-"):  # "-fw": fw is removed in the same transaction
        remove.append(folder / name[1:])
        continue
    staged = new_staging_dir(folder / name)
    (staged / "lib").mkdir()
    (staged / "marker").write_text("new-" + name)
    pairs.append((staged, folder / name))
replace_all(pairs, folder / ".j~swap.json", remove=remove)
"""


def _run_child(folder: Path, names: list[str], crash_at: str | None) -> int:
    env = dict(os.environ)
    if crash_at:
        env[CRASH_ENV] = crash_at
    proc = subprocess.run(
        [sys.executable, "-c", _CHILD, str(folder), *names], env=env, capture_output=True
    )
    return proc.returncode


@pytest.mark.parametrize("crash_at", CRASH_POINTS)
def test_kill_at_every_step_is_all_or_nothing(tmp_path: Path, crash_at: str) -> None:
    """Two replaced layers and one new one; killed at each step, then recovered."""
    fake_layer(tmp_path / "rt", "old-rt")
    fake_layer(tmp_path / "fw", "old-fw")
    code = _run_child(tmp_path, ["rt", "fw", "app"], crash_at)
    assert code == -signal.SIGKILL
    outcome = recover(tmp_path / ".j~swap.json")
    seen = visible(tmp_path)
    old = {"rt": "old-rt", "fw": "old-fw"}
    new = {"rt": "new-rt", "fw": "new-fw", "app": "new-app"}
    if crash_at == "swap-committed":
        assert outcome == "completed"
        assert seen == new
    else:
        assert outcome == "rolled back"
        assert seen == old
    assert hidden(tmp_path) == []


@pytest.mark.parametrize("crash_at", CRASH_POINTS)
def test_a_removal_in_the_transaction_is_all_or_nothing(tmp_path: Path, crash_at: str) -> None:
    """A deployment replaced by another stack's: one layer replaced, one removed, one added."""
    fake_layer(tmp_path / "rt", "old-rt")
    fake_layer(tmp_path / "extra", "old-extra")
    code = _run_child(tmp_path, ["rt", "-extra", "app"], crash_at)
    assert code == -signal.SIGKILL
    outcome = recover(tmp_path / ".j~swap.json")
    if crash_at == "swap-committed":
        assert outcome == "completed"
        assert visible(tmp_path) == {"rt": "new-rt", "app": "new-app"}
    else:
        assert outcome == "rolled back"
        assert visible(tmp_path) == {"rt": "old-rt", "extra": "old-extra"}
    assert hidden(tmp_path) == []
    assert _run_child(tmp_path, ["rt", "-extra"], None) == 0
    assert visible(tmp_path) == {
        "rt": "new-rt",
        **({"app": "new-app"} if outcome == "completed" else {}),
    }


def test_a_later_swap_recovers_first(tmp_path: Path) -> None:
    fake_layer(tmp_path / "rt", "old-rt")
    assert _run_child(tmp_path, ["rt"], "swap-moved-aside") == -signal.SIGKILL
    assert not (tmp_path / "rt").exists()  # the window a kill can leave
    assert _run_child(tmp_path, ["rt"], None) == 0
    assert visible(tmp_path) == {"rt": "new-rt"}
    assert hidden(tmp_path) == []
