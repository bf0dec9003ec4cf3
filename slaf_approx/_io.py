"""Atomic file output: a reader never sees a half-written file, and an interrupted run changes nothing.

Temporary files are named ``.NAME.PID.XXXX.tmp`` beside their target, so that a later run can tell the
leftovers of a killed process (whose pid is gone) from the work of a live one: :func:`remove_stale_temps`.
"""

from __future__ import annotations

import io
import os
import re
import tempfile
import time
from pathlib import Path

#: a temporary file of ours: .NAME.PID.XXXX.tmp (PID decimal); older releases wrote .NAME.XXXX.tmp
_TEMP = re.compile(r"^\.(?P<name>.+?)\.(?:(?P<pid>\d+)\.)?[^.]+\.tmp$")
#: a temporary file without a pid is stale when it is older than this (no live write takes this long)
LEGACY_TEMP_AGE_S = 3600.0


def pid_alive(pid: int) -> bool:
    """Whether a process with this id exists (a zombie or another user's process counts as alive)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def atomic_write(path: str | os.PathLike, data: bytes | str) -> Path:
    """Write `data` to a temporary file beside `path`, then rename it over `path` (mode 0644 under umask)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        data = data.encode("utf-8")
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; results are for everyone to read
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def is_stale_temp(path: Path, names: set[str] | None = None) -> bool:
    """Whether `path` is a temporary file of :func:`atomic_write` whose writer is gone.

    With `names`, only temporaries of those target names count. A pid-stamped file is stale when its
    process no longer exists; an unstamped one (older releases) when it is older than LEGACY_TEMP_AGE_S.
    """
    m = _TEMP.match(path.name)
    if m is None or (names is not None and m["name"] not in names) or path.is_dir():
        return False
    if m["pid"] is not None:
        return int(m["pid"]) != os.getpid() and not pid_alive(int(m["pid"]))
    try:
        return time.time() - path.lstat().st_mtime > LEGACY_TEMP_AGE_S
    except FileNotFoundError:
        return False


def remove_stale_temps(folder: str | os.PathLike, names: set[str] | None = None) -> list[Path]:
    """Delete the stale temporaries (see :func:`is_stale_temp`) in `folder`; returns what was deleted."""
    gone = []
    folder = Path(folder)
    if not folder.is_dir():
        return gone
    for p in folder.iterdir():
        if is_stale_temp(p, names):
            try:
                p.unlink()
                gone.append(p)
            except FileNotFoundError:
                pass
    return gone


def save_figure(fig, path: str | os.PathLike, dpi: int = 100) -> Path:
    """Render a matplotlib Figure to PNG in memory, write it atomically, and release the figure."""
    buf = io.BytesIO()
    try:
        fig.savefig(buf, format="png", dpi=dpi)
    except ValueError as exc:  # matplotlib's messages don't say which figure
        raise ValueError(f"cannot draw {Path(path).name}: {exc}") from exc
    finally:
        fig.clear()
    return atomic_write(path, buf.getvalue())
