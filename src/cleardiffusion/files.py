"""What the tool writes, and where: atomic files, output paths checked before work, one run per folder.

- `atomic_write` is the only way a file is written: a temporary file with a unique name in the target
  folder (created exclusively), flushed and fsynced, then `os.replace`d over the target and the folder
  fsynced. A crash, kill or full disk at any instant leaves the old file or the new one, never half of
  one, and the temporary file is removed on any error it can catch. A write that fails (a full disk, a
  quota, an I/O error, also when torch's zip writer swallows the OSError and reports "unexpected pos") is
  one `WriteError` naming the file, the cause and the free space.
- `output_file` / `output_dir` check a path the user gave (not a folder where a file is meant, parent
  created, writable) BEFORE the expensive work starts, so no work is lost to an unwritable path.
- `RunLock` makes a run folder belong to one run: a lock file created exclusively, removed at exit; a lock
  left by a process that no longer exists is taken over. (Which files of a run folder are ours:
  `checkpoint.check_run_folder`.)
"""

import contextlib
import errno
import io
import os
import secrets
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from .errors import UsageError, WriteError

TEMP_SUFFIX = ".tmp"  # temporary files are named .NAME.PID.RANDOM.tmp next to their target


def _fsync_directory(directory: Path) -> None:
    """Make a rename durable (POSIX); a no-op where directories cannot be opened (Windows)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class _Writer(io.BufferedWriter):
    """A buffered file that remembers the first OSError of a write, even one its caller swallows."""

    error: OSError | None = None

    def write(self, data) -> int:
        try:
            return super().write(data)
        except OSError as e:
            self.error = self.error or e
            raise

    def flush(self) -> None:
        try:
            super().flush()
        except OSError as e:
            self.error = self.error or e
            raise


# errors of a write that the user fixes with space or another disk (not a wrong path: that is checked before)
WRITE_ERRNOS = frozenset(getattr(errno, n) for n in ("ENOSPC", "EDQUOT", "EFBIG", "EIO") if hasattr(errno, n))
# torch.save reports a failed write of its zip writer as RuntimeError("[enforce fail at inline_container.cc...]")
_TORCH_WRITER = ("inline_container", "PytorchStreamWriter")


def _write_error(path: Path, error: BaseException, cause: OSError | None) -> WriteError | None:
    """The one-line WriteError for a failed write, or None when `error` is not one (a bug, an interrupt)."""
    if not isinstance(error, Exception):  # Ctrl-C, SystemExit: never hidden behind a write error
        return None
    if cause is None and isinstance(error, OSError) and error.errno in WRITE_ERRNOS:
        cause = error
    if cause is None and not (isinstance(error, RuntimeError) and any(w in str(error) for w in _TORCH_WRITER)):
        return None
    from .limits import format_bytes

    try:
        free = f"{format_bytes(shutil.disk_usage(path.parent).free)} free there"
    except OSError:
        free = "free space unknown"
    reason = (cause.strerror or str(cause)) if cause is not None else str(error).splitlines()[0][:120]
    kept = f"the previous {path.name} is unchanged" if path.exists() else f"no partial {path.name} was left"
    out = WriteError(f"could not write {path}: {reason} ({free}); {kept}: free some space or write elsewhere")
    out.errno = cause.errno if cause is not None else errno.EIO
    return out


@contextlib.contextmanager
def atomic_write(path: str | Path, mode: str = "wb") -> Iterator[IO]:
    """Open a temporary file next to `path`; on success it replaces `path`, on any error it is removed.

    with atomic_write(out / "metrics.json", "w") as f:
        f.write(text)

    A failed write (full disk, quota, I/O error) raises a one-line WriteError; other errors pass unchanged.
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_write writes whole files: mode 'w' or 'wb', got {mode!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}{TEMP_SUFFIX}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # the umask applies, as for open()
    writer = _Writer(io.FileIO(fd, "w"))
    try:
        with writer if mode == "wb" else io.TextIOWrapper(writer) as f:  # text: the locale's encoding, as open()
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:  # a failed or interrupted write leaves the previous file untouched
        tmp.unlink(missing_ok=True)
        failed = _write_error(path, e, writer.error)
        if failed is not None:
            raise failed from None
        raise
    _fsync_directory(path.parent)


def write_text(path: str | Path, text: str) -> Path:
    """Write a whole text file atomically."""
    with atomic_write(path, "w") as f:
        f.write(text)
    return Path(path)


def remove_stale_temporaries(folder: str | Path) -> None:
    """Delete temporary files left in `folder` by a killed writer (call it only while holding the folder's lock)."""
    for stale in Path(folder).glob(f".*{TEMP_SUFFIX}"):
        stale.unlink(missing_ok=True)


# ----------------------------------------------------------------------------------------------------------
# Output paths, checked before the work


def _probe_writable(folder: Path, flag: str) -> None:
    """Create and remove a file in `folder`: the only reliable test (permissions, read-only mounts, ACLs)."""
    probe = folder / f".write-test.{os.getpid()}.{secrets.token_hex(4)}{TEMP_SUFFIX}"
    try:
        os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        probe.unlink()
    except OSError as e:
        raise UsageError(f"cannot write into {folder} ({flag}): {e.strerror or e}; choose a writable folder") from None


def output_dir(path: str | Path, flag: str = "--out") -> Path:
    """Create the folder `path` (and its parents) if needed and check a file can be written in it."""
    out = Path(path)
    if str(path) == "":
        raise UsageError(f"{flag} is empty; give a folder name")
    if out.exists() and not out.is_dir():
        raise UsageError(f"{flag} {out} is a file, not a folder; give a folder name (or remove the file)")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UsageError(f"cannot create {flag} folder {out}: {e.strerror or e}; choose a writable folder") from None
    _probe_writable(out, flag)
    return out


def output_file(path: str | Path, flag: str = "--out", suffixes: tuple[str, ...] = (), need_bytes: int = 0) -> Path:
    """Check that the file `path` can be written (creating its folder): not a folder, writable, room on disk.

    Args:
        suffixes: accepted endings such as (".png", ".npz"); empty accepts any.
        need_bytes: about how large the file will be; refused if the disk has clearly less free space.
    """
    out = Path(path)
    if str(path) == "" or out.name in ("", ".", ".."):
        raise UsageError(f"{flag} needs a file name, got {str(path)!r}")
    if out.is_dir():
        example = out / ("out" + (suffixes[0] if suffixes else ""))
        raise UsageError(f"{flag} {out} is a folder; give a file name inside it, e.g. {example}")
    if suffixes and out.suffix not in suffixes:
        raise UsageError(f"{flag} must end in {' or '.join(suffixes)}, got {str(path)!r}")
    output_dir(out.parent, f"the folder of {flag}")
    if need_bytes:
        from .limits import format_bytes

        free = shutil.disk_usage(out.parent).free
        if need_bytes > free:
            raise UsageError(
                f"{flag} {out} needs about {format_bytes(need_bytes)} but {out.parent} has {format_bytes(free)} "
                "free; free some space or write elsewhere"
            )
    return out


def distinct_outputs(paths: dict[str, str | Path | None]) -> None:
    """Refuse two flags that name the same file (one would silently replace the other)."""
    seen: dict[Path, str] = {}
    for flag, path in paths.items():
        if path is None:
            continue
        key = Path(os.path.abspath(path))
        if key in seen:
            raise UsageError(f"{seen[key]} and {flag} both name {path}; give them different files")
        seen[key] = flag


# ----------------------------------------------------------------------------------------------------------
# One run per folder


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


class RunLock:
    """`with RunLock(folder):` the folder's `.lock` file holds this process's id while the run lasts.

    A second run on the same folder gets a UsageError naming the running process; a lock whose process
    no longer exists (on this machine) is stale and taken over.
    """

    def __init__(self, folder: str | Path, flag: str = "--out"):
        self.path = Path(folder) / ".lock"
        self.flag = flag
        self.held = False

    def acquire(self) -> "RunLock":
        for _ in range(2):  # at most once more, after removing a stale lock
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            except FileExistsError:
                pid = self._owner()
                if (pid is not None and _pid_alive(pid)) or (pid is None and self._just_created()):
                    raise UsageError(
                        f"{self.flag} {self.path.parent} is in use by another run (process {pid or '?'}); wait for it "
                        f"to finish or choose another {self.flag} (if no run uses it, delete {self.path})"
                    ) from None
                self.path.unlink(missing_ok=True)  # stale: its process is gone
                continue
            with os.fdopen(fd, "w") as f:
                f.write(f"{os.getpid()}\n")
            self.held = True
            return self
        raise UsageError(f"cannot take the lock {self.path}; remove it if no run uses {self.path.parent}")

    def _owner(self) -> int | None:
        try:
            return int(self.path.read_text().strip())
        except (OSError, ValueError):
            return None  # unreadable, or created but its pid not yet written

    def _just_created(self) -> bool:
        """A lock without a pid is being written by its owner right now, unless it is seconds old."""
        try:
            return time.time() - self.path.stat().st_mtime < 10
        except OSError:
            return False

    def release(self) -> None:
        if self.held:
            self.path.unlink(missing_ok=True)
            self.held = False

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


# OSErrors a user can fix (a path, a permission, space): printed on one line by the command line
USER_OS_ERRNOS = frozenset(
    getattr(errno, name)
    for name in ("EACCES", "EPERM", "ENOSPC", "EDQUOT", "EROFS", "ENOTDIR", "EISDIR", "ENOENT", "EEXIST",
                 "ENAMETOOLONG", "ELOOP", "EFBIG", "ENOTEMPTY", "EXDEV", "EMFILE", "ENFILE", "EBUSY", "ETXTBSY")
    if hasattr(errno, name)
)  # fmt: skip
