"""Replace directories all or nothing, in a way that survives ``kill -9`` at any point.

Every directory replacement in kernelstacks goes through here: a built layer into the build
directory, deployed layers into a deployment, a kernelspec into a kernels directory. The caller
prepares each new directory completely in a *staging* directory beside its final place
(:func:`new_staging_dir`: same filesystem, so ``rename`` is atomic), then calls
:func:`replace_all` (several directories as one transaction) or :func:`swap_in` (one).

How a transaction works:

1. Recover whatever an earlier, interrupted transaction with the same journal left.
2. Write the journal (durably): the entries, state ``prepared``.
3. Per entry: rename the current directory to ``.<name>~old-<stamp>``, rename the staged one in
   (an entry with no staged directory removes its final one: moved aside only).
4. Write the journal again, state ``committed`` (the commit point).
5. Delete the old directories (renamed to ``~trash-`` first, so a half-deleted directory can never
   be mistaken for a whole one), then the journal.

Recovery (:func:`recover`) reads the journal: before the commit point it rolls back (every final
directory is what it was before), after it rolls forward (the old copies are deleted). Each step
is a single rename, so a kill between any two leaves a state recovery understands. The journal
names directories relative to its own folder and every entry must live in that folder, so
recovery never touches anything outside it, whatever the journal says.

Names use ``~``, which Jupyter does not accept in kernel names, so a staging or old copy inside a
kernels directory is never listed as a kernel. Callers serialise transactions on one journal
(a file lock on the directory).
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from kernelstacks._support.atomic import fsync_dir, read_json, write_json

_NEW, _OLD, _TRASH = "~new-", "~old-", "~trash-"
_JOURNAL_SUFFIX = "~swap.json"
#: Fault injection for tests: the process SIGKILLs itself at the named step.
CRASH_ENV = "KERNELSTACKS_CRASH_AT"


class SwapError(RuntimeError):
    """A journal or a staged directory that cannot be used as asked."""


def crash_point(name: str) -> None:
    """Die here, like ``kill -9``, when ``KERNELSTACKS_CRASH_AT`` names this step (tests)."""
    if os.environ.get(CRASH_ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)


def new_staging_dir(final: Path) -> Path:
    """An empty, world-readable directory beside ``final`` to prepare its replacement in."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    staged = Path(tempfile.mkdtemp(prefix=f".{final.name}{_NEW}", dir=final.parent))
    umask = os.umask(0)
    os.umask(umask)
    staged.chmod(0o777 & ~umask)
    return staged


def journal_for(final: Path) -> Path:
    """The journal of single-directory swaps of ``final``: a hidden file beside it."""
    final = Path(final)
    return final.parent / f".{final.name}{_JOURNAL_SUFFIX}"


def swap_in(staged: Path, final: Path, *, sync: bool = True) -> None:
    """Replace ``final`` with the fully prepared ``staged`` directory (see module docstring)."""
    replace_all([(Path(staged), Path(final))], journal_for(final), sync=sync)


def replace_all(
    pairs: Sequence[tuple[Path, Path]],
    journal: Path,
    *,
    remove: Sequence[Path] = (),
    sync: bool = True,
) -> None:
    """Replace every ``final`` with its ``staged`` directory as one all-or-nothing transaction.

    Directories in ``remove`` go in the same transaction (a deployment replaced by another
    stack's loses the layers the new stack lacks: a kill never leaves them half there).
    ``sync`` flushes file data first, so a power loss cannot leave a renamed directory with
    empty files.
    """
    journal = Path(journal)
    recover(journal)
    entries = [_entry(journal.parent, Path(s), Path(f)) for s, f in pairs]
    entries += [_removal(journal.parent, Path(f)) for f in remove if os.path.lexists(f)]
    if not entries:
        return
    if sync:
        os.sync()
    write_json(journal, {"state": "prepared", "entries": entries}, durable=True)
    crash_point("swap-prepared")
    for entry in entries:
        _apply(journal.parent, entry)
    fsync_dir(journal.parent)
    write_json(journal, {"state": "committed", "entries": entries}, durable=True)
    crash_point("swap-committed")
    _finish(journal, entries)


def _entry(folder: Path, staged: Path, final: Path) -> dict[str, str | None]:
    """Journal entry for one replacement; both paths must be plain names inside ``folder``."""
    for path in (staged, final):
        if path.parent.resolve() != folder.resolve() or path.name in ("", ".", ".."):
            raise SwapError(f"{path} must be directly inside {folder} to be swapped atomically")
    if not staged.is_dir() or staged.is_symlink():
        raise SwapError(f"prepared directory not found: {staged}")
    old = f".{final.name}{_OLD}{_stamp()}" if os.path.lexists(final) else None
    return {"final": final.name, "staged": staged.name, "old": old}


def _removal(folder: Path, final: Path) -> dict[str, str | None]:
    """Journal entry that removes ``final`` (a plain name inside ``folder``): aside, no staged."""
    if final.parent.resolve() != folder.resolve() or final.name in ("", ".", ".."):
        raise SwapError(f"{final} must be directly inside {folder} to be removed atomically")
    return {"final": final.name, "staged": None, "old": f".{final.name}{_OLD}{_stamp()}"}


def _apply(folder: Path, entry: dict[str, str | None]) -> None:
    """Step 3 for one entry: current aside (if any), staged in (if any)."""
    final = folder / str(entry["final"])
    if entry["old"] is not None:
        os.rename(final, folder / entry["old"])
        crash_point("swap-moved-aside")
    if entry["staged"] is not None:
        os.rename(folder / entry["staged"], final)
        crash_point("swap-moved-in")


def _finish(journal: Path, entries: list[dict[str, str | None]]) -> None:
    """Step 5: delete the old directories, then the journal."""
    for entry in entries:
        if entry["old"] is not None:
            discard(journal.parent / entry["old"])
    journal.unlink(missing_ok=True)
    fsync_dir(journal.parent)


def recover(journal: Path) -> str | None:
    """Finish or undo an interrupted transaction; returns ``"rolled back"``, ``"completed"``.

    Returns None when there was nothing to recover. A journal that cannot be read is an error
    (its directories are left alone for a person to look at).
    """
    journal = Path(journal)
    if not os.path.lexists(journal):
        return None
    data = read_json(journal)
    entries = data.get("entries") if data else None
    if not data or data.get("state") not in ("prepared", "committed"):
        entries = None
    if not isinstance(entries, list):
        raise SwapError(
            f"unreadable swap journal {journal}: check {journal.parent}, then move the journal away"
        )
    entries = [_checked(journal, e) for e in entries]
    if data is not None and data["state"] == "committed":
        _finish(journal, entries)
        return "completed"
    for entry in reversed(entries):
        _roll_back(journal.parent, entry)
    journal.unlink(missing_ok=True)
    fsync_dir(journal.parent)
    return "rolled back"


def _checked(journal: Path, entry: object) -> dict[str, str | None]:
    """A journal entry whose names stay inside the journal's folder."""
    if not isinstance(entry, dict):
        raise SwapError(f"swap journal {journal}: malformed entry {entry!r}")
    out: dict[str, str | None] = {}
    for key in ("final", "staged", "old"):
        value = entry.get(key)
        if value is None and key in ("old", "staged"):
            out[key] = None
            continue
        if not isinstance(value, str) or not value or "/" in value or value in (".", ".."):
            raise SwapError(f"swap journal {journal}: entry {key} {value!r} is not a plain name")
        out[key] = value
    return out


def _roll_back(folder: Path, entry: dict[str, str | None]) -> None:
    """Put one final directory back to what it was before the transaction."""
    final = folder / str(entry["final"])
    staged = folder / entry["staged"] if entry["staged"] else None
    old = folder / entry["old"] if entry["old"] else None
    if old is not None and os.path.lexists(old):
        if os.path.lexists(final):  # the new one had been moved in
            discard(final)
        os.rename(old, final)
    elif (
        old is None
        and staged is not None
        and os.path.lexists(final)
        and not os.path.lexists(staged)
    ):
        discard(final)  # there was nothing before: the new one goes
    if staged is not None and os.path.lexists(staged):
        discard(staged)


def discard(path: Path) -> None:
    """Delete a directory by renaming it to ``~trash-`` first, so it is never seen half-deleted."""
    path = Path(path)
    if not os.path.lexists(path):
        return
    name = path.name.lstrip(".").split("~", 1)[0] or "dir"
    trash = path.with_name(f".{name}{_TRASH}{_stamp()}")
    os.rename(path, trash)
    remove_tree(trash)


def remove_tree(path: Path) -> None:
    """Delete a file or a tree, including read-only directories inside it."""
    path = Path(path)
    if path.is_symlink() or not path.is_dir():
        path.unlink(missing_ok=True)
        return

    def make_writable(_func: object, target: str, _exc: object) -> None:
        os.chmod(os.path.dirname(target), 0o700)
        if os.path.isdir(target) and not os.path.islink(target):
            os.chmod(target, 0o700)
            shutil.rmtree(target, ignore_errors=True)
        else:
            os.unlink(target)

    if sys.version_info >= (3, 12):
        shutil.rmtree(path, onexc=make_writable)
    else:  # pragma: no cover - Python 3.11
        shutil.rmtree(path, onerror=make_writable)


def clean_leftovers(folder: Path, name: str | None = None) -> list[Path]:
    """Remove staging and trash directories a killed process left (``name``: only for it).

    Only safe while holding the folder's lock: a live process's staging directory looks the same.
    Old copies are left to :func:`recover`, which knows whether they are still needed.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    removed = []
    for entry in os.listdir(folder):
        if not entry.startswith("."):
            continue
        base, sep, rest = entry[1:].partition("~")
        if not sep or (name is not None and base != name):
            continue
        if rest.startswith(("new-", "trash-")):
            remove_tree(folder / entry)
            removed.append(folder / entry)
    return removed


def _stamp() -> str:
    return f"{time.time_ns():020d}-{secrets.token_hex(4)}"
