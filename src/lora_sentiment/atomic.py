"""Artifacts appear complete or not at all: each is built in a hidden sibling folder and renamed into place."""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import IO

from .errors import UserError


def check_writable(target: Path, flag: str, inside: bool = False) -> None:
    """`target`, a file or folder still to be made (`inside`: a folder written into, as tune's and audit's are), can
    be: its nearest existing folder takes a hidden folder (made and removed at once), as its staging copy will be
    made there. Checked with the settings, so a read-only, full or foreign place fails in one line before the work
    instead of in a traceback after it."""
    folder = target.expanduser().absolute()
    folder = folder if inside else folder.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        Path(tempfile.mkdtemp(prefix=".lora-sentiment-probe-", dir=folder)).rmdir()
    except OSError as exc:
        raise UserError(
            f"{flag} {target}: cannot write in {folder} ({exc.strerror or exc}); choose a folder you can write to"
        ) from None


def staging_path(final: Path) -> Path:
    """The hidden `.NAME.partial` beside `final` where it is built."""
    return final.with_name(f".{final.name}.partial")


def fresh_staging_dir(final: Path) -> Path:
    """An empty hidden `.NAME.partial` beside `final` (what a crashed earlier attempt left there goes)."""
    staging = staging_path(final)
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    return staging


def replace_dir(staging: Path, final: Path) -> None:
    """Swap the finished folder into place; an existing one is moved aside first and removed only after."""
    old = final.with_name(f".{final.name}.old")
    _remove(old)
    if final.exists():
        final.rename(old)  # a file too: a predictions file replaced by a folder of them (--overwrite)
    staging.rename(final)
    _remove(old)


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()


@contextmanager
def staged(final: Path) -> Iterator[Path]:
    """A fresh hidden folder to build `final` in: swapped into place when the block ends, removed if it fails."""
    staging = fresh_staging_dir(final)
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    replace_dir(staging, final)


@contextmanager
def staged_path(target: Path, suffix: str = "") -> Iterator[Path]:
    """A hidden path beside `target` for a writer that takes a path (numpy, pyarrow), renamed over `target` only
    when the block ends; removed if it fails. `suffix`: what the writer insists the name ends with (".npy")."""
    temporary = staging_path(target).with_name(staging_path(target).name + suffix)
    try:
        yield temporary
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    os.replace(temporary, target)


@contextmanager
def staged_file(target: Path) -> Iterator[IO[str]]:
    """A text file written beside `target` under a hidden name and renamed over it only when the block ends."""
    with staged_path(target) as temporary, open(temporary, "w", encoding="utf-8", newline="") as handle:
        yield handle


@contextmanager
def claimed(final: Path, flag: str, wait: Callable[[str], None] | None = None) -> Iterator[None]:
    """`final` written by this process alone while the block runs. Two commands given the same place (the same
    command started twice, two terminals) would otherwise both pass the settings checks and then interleave their
    checkpoints and swap in each other's files; the second one ends at once, in one line, instead, or with `wait`
    (told the holder's pid) waits for the first to finish (a cache both would build: the second reads the first's).
    An OS lock (`flock`) on the hidden `.NAME.lock` beside `final`: the kernel drops it when its process dies, so a
    killed run leaves no stale claim for the next one to trip on. A thread may claim again what it holds (a compile
    calls `export_run`, which claims its folder). Folders made to hold the lock go again if still empty. Nothing is
    claimed where the OS has no `fcntl` (Windows) or the folder cannot take the lock file (the command's own checks
    then name what is wrong with the place)."""
    given, final = final, Path(os.path.normpath(final.expanduser().absolute()))
    if not final.name:
        raise UserError(f"{flag} {given} is the root folder; give a folder of its own, e.g. runs/imdb")
    final = final.parent.resolve() / final.name  # one lock however the folder is reached (a link, `..`)
    held = _held.__dict__.setdefault("paths", set())
    if final in held:
        yield
        return
    lock = final.with_name(f".{final.name}.lock")
    made = [folder for folder in [final.parent, *final.parent.parents] if not folder.exists()]
    try:
        lock.parent.mkdir(parents=True, exist_ok=True)
        handle, holder = _lock(lock, blocking=False)
        if holder is not None and wait is not None:
            wait(holder)
            handle, holder = _lock(lock, blocking=True)
    except (ImportError, OSError):
        handle, holder = None, None
    if holder is not None:
        _remove_empty(made)
        raise UserError(
            f"{flag} {given} is being written by another lora-sentiment command"
            + (f" (process {holder})" if holder else "")
            + f"; wait for it to end or choose another {flag}"
        )
    held.add(final)
    try:
        yield
    finally:
        held.discard(final)
        if handle is not None:
            lock.unlink(missing_ok=True)  # while still held, so the next claimant opens a fresh file
            os.close(handle)
        _remove_empty(made)


_held = threading.local()  # the places this thread has claimed


def _lock(lock: Path, blocking: bool) -> tuple[int | None, str | None]:
    """(the open, locked file, None), or (None, the pid written in it) where another process or thread holds it."""
    import fcntl

    while True:
        handle = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX if blocking else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(handle, 32).decode("ascii", "replace").strip()
            os.close(handle)
            return None, holder
        with suppress(FileNotFoundError):
            if os.stat(lock).st_ino == os.fstat(handle).st_ino:
                os.ftruncate(handle, 0)
                os.write(handle, str(os.getpid()).encode())
                return handle, None
        os.close(handle)  # its holder removed the file between our open and our lock: claim the new one


def _remove_empty(folders: list[Path]) -> None:
    for folder in folders:  # deepest first
        with suppress(OSError):
            folder.rmdir()
