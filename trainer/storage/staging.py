"""The local side of a mirrored run: its files as the mirror sees them, and moving a
finished download into place."""

from __future__ import annotations

import contextlib
import os
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


def freeze(local_dir: str, names: list[str], into: str) -> None:
    """Hard-links `names` (relative to `local_dir`) into the directory `into`, so that an
    upload sends and checks them as they were listed while the run goes on: TensorFlow
    replaces checkpoints and exports by renaming, which leaves a link alone (an events
    file appended to grows in both). A directory swapped while its files were linked (an
    export, rundir.export_dir) is linked again, so that its files come from one export.
    A file that cannot be linked (another file system) is not frozen."""
    shutil.rmtree(into, ignore_errors=True)
    for _ in range(3):
        folders = {os.path.dirname(name) for name in names}
        before = {folder: _inode(local_dir, folder) for folder in folders}
        for name in names:
            target = os.path.join(into, name)
            os.makedirs(os.path.dirname(target), exist_ok=True)
            with contextlib.suppress(FileNotFoundError):
                os.remove(target)
            with contextlib.suppress(OSError):
                os.link(os.path.join(local_dir, name), target)
        swapped = {folder for folder in folders if _inode(local_dir, folder) != before[folder]}
        names = [name for name in names if os.path.dirname(name) in swapped]
        if not names:
            return


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
