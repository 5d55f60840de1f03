"""Files that appear whole or not at all: written under a fresh, exclusively created temporary name in the
target's folder, then renamed over it. Unique names let concurrent writers of one folder coexist, O_EXCL
creation never follows a planted symlink (and the rename replaces a symlink at the target instead of writing
through it), and a failed write leaves nothing behind."""

from __future__ import annotations

import contextlib
import glob
import hashlib
import os
import tempfile

_SUFFIX = ".part"


def _prefix(name: str) -> str:
    # A long name is shortened (a digest keeps it distinct), so that a target whose name is near the
    # file-system limit (255 bytes) still gets a temporary name within it.
    if len(name) <= 40:
        return f".{name}."
    return f".{name[:32]}~{hashlib.sha1(os.fsencode(name)).hexdigest()[:8]}."


@contextlib.contextmanager
def atomic_path(path: str):
    """A temporary path beside `path` (created empty, exclusively) that replaces `path` when the block succeeds."""
    folder, name = os.path.split(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=_prefix(name), suffix=_SUFFIX, dir=folder)
    os.close(fd)
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; the result gets the mode open() would give
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise


@contextlib.contextmanager
def atomic_write(path: str, mode: str = "w", **open_kwargs):
    """open() for writing whose result replaces `path` only when the block succeeds."""
    with atomic_path(path) as tmp, open(tmp, mode, **open_kwargs) as f:
        yield f


def remove_leftovers(path: str) -> None:
    """Delete temporary files that a writer of `path` killed mid-write (SIGKILL) could not clean up itself."""
    folder, name = os.path.split(os.path.abspath(path))
    for tmp in glob.glob(os.path.join(glob.escape(folder), glob.escape(_prefix(name)) + "*" + _SUFFIX)):
        with contextlib.suppress(OSError):
            os.remove(tmp)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
