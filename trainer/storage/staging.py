"""The local side of a mirrored run: its files as the mirror sees them, and moving a
finished download into place."""

from __future__ import annotations

import os
import re
import shutil

from trainer.rundir import RunDir
from trainer.storage.bucket import MARKER
from trainer.storage.lease import LEASE

# Uploaded after everything else but the marker, since they name data files: TensorFlow's
# checkpoint pointer (a camera run's teacher keeps one in teacher/checkpoints/) and a
# camera run's dagger.json, which names the student of its last finished round.
POINTERS = (RunDir.CHECKPOINT_POINTER, RunDir.DAGGER_STATE)


def is_pointer(name: str) -> bool:
    """Whether the mirror sends `name` after the data files of an upload (POINTERS)."""
    return name in POINTERS or name.endswith("/" + RunDir.CHECKPOINT_POINTER)


def mirrored(name: str) -> bool:
    """Whether a run's file is kept in step: not the marker (each upload writes it), not
    the lease nor its clock probes (their writers' alone: a downloaded lease sent back
    would change its generation under its holder)."""
    # Half-written files (rundir.write_atomic's X.tmp, TensorFlow's checkpoint.tmp* and
    # ckpt-N_temp/) would be kept alive by an upload's hard links; none is ever needed.
    if ".tmp" in name or "_temp/" in name:
        return False
    return name != MARKER and not name.startswith(LEASE)


def pointers(local_dir: str, names: list[str]) -> dict[str, tuple[bytes, tuple[int, int]]]:
    """The pointers among `names`: each one's bytes and its (size, mtime) from just
    before they were read. A pointer read before the files are listed names only files
    that existed when the listing was taken."""
    out = {}
    for name in filter(is_pointer, names):
        before = stat(local_dir, name)
        try:
            with open(os.path.join(local_dir, name), "rb") as f:
                out[name] = f.read(), before
        except FileNotFoundError:
            continue
    return out


def frozen_dir(local_dir: str) -> str:
    """This process's directory for freeze, inside the run (files() skips it), after
    removing those that processes no longer running left behind (a crash, a SIGKILL)."""
    for name in os.listdir(local_dir) if os.path.isdir(local_dir) else []:
        found = re.fullmatch(r"\.upload-(\d+)\.tmp", name)
        if found and not _running(int(found.group(1))):
            shutil.rmtree(os.path.join(local_dir, name), ignore_errors=True)
    return os.path.join(local_dir, f".upload-{os.getpid()}.tmp")


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's, running
        pass
    return True


def freeze(local_dir: str, names: list[str], into: str) -> int:
    """Hard-links `names` (relative to `local_dir`) into the directory `into`, so that an
    upload sends and checks them as they were listed while the run goes on: TensorFlow
    replaces checkpoints and exports by renaming, which leaves a link alone (an events
    file appended to grows in both). A top-level directory any of whose folders was
    swapped while it was linked (an export, rundir.export_dir) is linked again, up to
    twice, so that its files come from one export. Returns how many files could not be
    linked (another file system): those are read where they are."""
    shutil.rmtree(into, ignore_errors=True)
    unlinked: set[str] = set()
    for _ in range(3):
        before = _folders(local_dir, names)
        # A relinked file counts by its last pass.
        unlinked -= set(names)
        unlinked |= {name for name in names if not _link(local_dir, name, into)}
        after = _folders(local_dir, names)
        # Gone since (a folder deleted): its links stay as they were.
        swapped = {
            top for top, inodes in after.items() if inodes != before[top] and None not in inodes
        }
        names = [name for name in names if name.split("/")[0] in swapped]
        if not names:
            break
    return len(unlinked)


def _link(local_dir: str, name: str, into: str) -> bool:
    """Links `name` into `into`, replacing an earlier link only once the new one exists."""
    target = os.path.join(into, name)
    os.makedirs(os.path.dirname(target), exist_ok=True)
    try:
        os.link(os.path.join(local_dir, name), target + ".new")
    except FileNotFoundError:  # deleted since it was listed: an earlier link stays
        return True
    except OSError:
        return False
    os.replace(target + ".new", target)
    return True


def _folders(local_dir: str, names: list[str]) -> dict[str, tuple]:
    """For each top-level directory of `names`, the inodes of its folders that hold them."""
    folders: dict[str, set[str]] = {}
    for name in names:
        folders.setdefault(name.split("/")[0], set()).add(os.path.dirname(name))
    return {top: tuple(_inode(local_dir, f) for f in sorted(held)) for top, held in folders.items()}


def _inode(local_dir: str, folder: str) -> int | None:
    try:
        return os.stat(os.path.join(local_dir, folder)).st_ino
    except FileNotFoundError:
        return None


def files(local_dir: str, only: str = "") -> list[str]:
    """The files under `local_dir`/`only`, relative with "/", sorted."""
    found = []
    for root, dirs, names in os.walk(os.path.join(local_dir, only)):
        # Staging directories are half-written by definition.
        dirs[:] = [d for d in dirs if not d.endswith((".tmp", ".old"))]
        for name in names:
            path = os.path.relpath(os.path.join(root, name), local_dir)
            found.append(path.replace(os.sep, "/"))
    return sorted(found)


def stat(local_dir: str, relative: str = "") -> tuple[int, int] | None:
    """(size, mtime) of a local file (`local_dir` itself without `relative`); None once
    the run deleted it (an old checkpoint)."""
    try:
        found = os.stat(os.path.join(local_dir, relative) if relative else local_dir)
    except FileNotFoundError:
        return None
    return found.st_size, found.st_mtime_ns


def move_into(source: str, target: str) -> None:
    """Moves the tree `source` into `target`: one rename if `target` is absent, else
    entry by entry, directories before files (a run's config.json is a file)."""
    if not os.path.lexists(target):
        os.makedirs(os.path.dirname(target) or ".", exist_ok=True)
        os.rename(source, target)
        return
    for name in sorted(os.listdir(source), key=lambda n: os.path.isfile(os.path.join(source, n))):
        here, there = os.path.join(source, name), os.path.join(target, name)
        if os.path.isdir(here) and os.path.isdir(there):
            move_into(here, there)
        else:
            os.replace(here, there)
