"""The study journal file: Optuna's journal backend, hardened against a torn tail and a full disk.

A journal is one JSON record per line. A write cut short (disk full, a process killed mid-write) leaves a *torn
tail*: a last line without its newline. Optuna's reader ignores it, but its writer appends the next record onto
it, and from then on that line fails to parse and every study of the journal fails to load. :class:`JournalFile`
(the backend :func:`~mixsig.studies.open_storage` gives) therefore:

- warns, naming the file and byte offset, when it opens a journal with a torn tail (checked under the lock);
- before each write, under the journal's lock, truncates a torn tail to the last complete record (and says so);
- on a failed write (``ENOSPC``, ``EDQUOT``, any ``OSError``) cuts the file back to where the write began and
  raises one :class:`~mixsig.errors.StudyError` naming the journal and the cause: what was committed is kept;
- turns Optuna's ``JSONDecodeError`` on a damaged line into one error naming the file, the byte offset and the
  repair command (``mixsig study check STORE --fix``).

:func:`check_journals` reports torn tails, damaged lines and RUNNING trials of dead workers, and repairs them with
``fix=True`` (``mixsig study check``; ``mixsig cache verify`` calls it too).
"""

from __future__ import annotations

import errno
import json
import logging
import os
import re
from pathlib import Path

from mixsig.errors import MixsigError, StudyError
from mixsig.studies._storage import JOURNAL_NAME, dead_trials, fail_dead_trials, flock_lock

log = logging.getLogger(__name__)

_FULL = (errno.ENOSPC, errno.EDQUOT)
_RECORD_START = re.compile(rb'\{"op_code":')
_BLOCK = 1 << 16


def _repair_hint(path: str) -> str:
    p = Path(path)
    if p.name == JOURNAL_NAME:
        return f"`mixsig study check {p.parent} --fix`"
    return f"`mixsig study check STORE --storage journal:{p} --fix`"


def _complete_end(fd: int, size: int) -> int:
    """The byte offset just after the last newline of the file open as ``fd`` (0 if it has none)."""
    end = size
    while end > 0:
        start = max(0, end - _BLOCK)
        block = os.pread(fd, end - start, start)
        i = block.rfind(b"\n")
        if i >= 0:
            return start + i + 1
        end = start
    return 0


def torn_tail(path: str) -> tuple[int, int] | None:
    """``(offset, length)`` of the torn last line of the journal at ``path`` (no newline), None if it ends clean.

    Read without the lock: a writer may be mid-write; :class:`JournalFile` checks under the lock."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        size = os.fstat(fd).st_size
        if size == 0 or os.pread(fd, 1, size - 1) == b"\n":
            return None
        end = _complete_end(fd, size)
        return end, size - end
    finally:
        os.close(fd)


def _write_error(path: str, exc: OSError, nbytes: int, at: int, undone: bool = True) -> StudyError:
    kept = ("the write was undone and every record before it is kept" if undone else
            f"every record before it is kept (the torn bytes after byte {at} are removed by the next write)")
    if exc.errno in _FULL:
        what = "disk full" if exc.errno == errno.ENOSPC else "disk quota exceeded"
        return StudyError(
            f"{what}: cannot write the study journal {path} ({os.strerror(exc.errno)} writing a {nbytes}-byte "
            f"record at byte {at}); {kept}. Free space on that disk (`df {Path(path).parent}`) and rerun the same "
            "command: the study resumes where it stopped"
        )
    return StudyError(f"cannot write the study journal {path}: {exc.strerror or exc} (writing {nbytes} bytes at byte "
                      f"{at}); {kept}; fix the cause and rerun")


def append_record(path: str, data: bytes) -> None:
    """Append ``data`` (complete lines) to the journal at ``path``; the caller holds the journal's lock.

    A torn tail is truncated first (a warning names the offset). If the write fails, the file is cut back to
    where it began and :class:`StudyError` names the journal and the cause (a full disk in one clear line)."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise _write_error(path, exc, len(data), 0) from None
    try:
        size = os.fstat(fd).st_size
        end = _complete_end(fd, size) if size and os.pread(fd, 1, size - 1) != b"\n" else size
        try:
            if end < size:
                os.ftruncate(fd, end)
                log.warning("study journal %s: removed a torn last record at byte %d (%d bytes of an interrupted "
                            "write, e.g. a full disk or a killed process); every complete record is kept",
                            path, end, size - end)
            os.lseek(fd, end, os.SEEK_SET)
            view = memoryview(data)
            while view:  # a short write (the disk filling up) is continued until it raises
                n = os.write(fd, view)
                if n <= 0:
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
                view = view[n:]
            os.fsync(fd)
        except OSError as exc:
            undone = True
            try:
                os.ftruncate(fd, end)
                os.fsync(fd)
            except OSError:  # the torn tail is left; the next write (or check --fix) removes it
                undone = False
            raise _write_error(path, exc, len(data), end, undone) from None
    finally:
        os.close(fd)


class JournalFile:
    """The Optuna journal backend (``read_logs`` / ``append_logs``) of one file, locked by ``lock``
    (:func:`~mixsig.studies._storage.flock_lock` by default); reading is Optuna's ``JournalFileBackend``."""

    def __init__(self, path: str, lock=None, *, warn: bool = True) -> None:
        from optuna.storages.journal import JournalFileBackend

        self.path = str(path)
        self._lock = lock if lock is not None else flock_lock(self.path)
        if not os.path.exists(self.path):
            self._locked(append_record, self.path, b"")
        self._reader = JournalFileBackend(self.path, lock_obj=self._lock)
        if warn:
            try:
                torn = self._locked(torn_tail, self.path)
            except StudyError:  # no lock file here (a read-only folder): look without it
                torn = torn_tail(self.path)
            if torn is not None:
                log.warning("study journal %s: torn last record at byte %d (%d bytes of an interrupted write, e.g. "
                            "a full disk); readers ignore it and the next write removes it", self.path, *torn)

    def _locked(self, fn, *args):
        self._lock.acquire()
        try:
            return fn(*args)
        finally:
            self._lock.release()

    def read_logs(self, log_number_from: int):
        try:
            yield from self._reader.read_logs(log_number_from)
        except ValueError as exc:  # json.JSONDecodeError, "Invalid log format."
            raise StudyError(_damage_message(self.path, exc)) from None

    def append_logs(self, logs: list[dict]) -> None:
        data = "".join(json.dumps(r, separators=(",", ":")) + "\n" for r in logs).encode("utf-8")
        self._locked(append_record, self.path, data)


def _damage_message(path: str, exc: Exception) -> str:
    bad = [p for p in _scan(path) if p["kind"] == "journal_bad_record"]
    where = f"at byte {bad[0]['offset']} (line {bad[0]['line']}, {bad[0]['length']} bytes that are not a record)" \
        if bad else f"({type(exc).__name__}: {exc})"
    return (f"the study journal {path} is damaged {where}, e.g. a record written onto one torn by a full disk; "
            f"no study in it can be read until it is repaired: run {_repair_hint(path)} (keeps every readable record)")


def _salvage(body: bytes) -> int | None:
    """Where a whole record starts inside the damaged line ``body`` (a record appended onto a torn one)."""
    for m in reversed(list(_RECORD_START.finditer(body, 1))):
        try:
            if isinstance(json.loads(body[m.start():]), dict):
                return m.start()
        except ValueError:
            continue
    return None


def _scan(path: str, data: bytes | None = None) -> list[dict]:
    """Problems of the journal bytes ``data`` (read from ``path`` when None): torn tail, damaged lines."""
    if data is None:
        with open(path, "rb") as f:
            data = f.read()
    problems, offset = [], 0
    for number, line in enumerate(data.splitlines(keepends=True), start=1):
        if not line.endswith(b"\n"):
            problems.append({"kind": "journal_torn_tail", "offset": offset, "length": len(line), "line": number})
        else:
            try:
                json.loads(line)
            except ValueError:
                problems.append({"kind": "journal_bad_record", "offset": offset, "length": len(line), "line": number,
                                 "salvage": _salvage(line[:-1])})
        offset += len(line)
    return problems


def _describe(path: str, p: dict, fixed: bool) -> dict:
    where = f"{path} at byte {p['offset']} (line {p['line']})"
    if p["kind"] == "journal_torn_tail":
        msg = (f"removed the torn last record ({p['length']} bytes of an interrupted write); every complete record "
               "is kept") if fixed else (f"torn last record ({p['length']} bytes of an interrupted write, e.g. a full "
                                         "disk); readers ignore it, the next write or --fix removes it")
    elif fixed:
        msg = (f"removed {p['salvage']} torn bytes before the record written onto them (that record is kept)"
               if p["salvage"] is not None else f"removed the unreadable line ({p['length']} bytes); the records "
               "after it are kept")
    else:
        msg = (f"{p['length']} bytes that are not a journal record"
               + (f" ({p['salvage']} torn bytes, then a whole record)" if p["salvage"] is not None else "")
               + f"; no study in this journal can be read: repair with {_repair_hint(path)}")
    return {"kind": p["kind"], "where": where, "message": msg}


def _rewrite(path: str, problems: list[dict]) -> None:
    """Write the journal without the damaged bytes of ``problems`` (temp file + rename); caller holds the lock."""
    with open(path, "rb") as f:
        data = f.read()
    keep, pos = [], 0
    for p in problems:
        cut = p["length"] if p["kind"] == "journal_torn_tail" or p.get("salvage") is None else p["salvage"]
        keep.append(data[pos:p["offset"]])
        pos = p["offset"] + cut
    keep.append(data[pos:])
    tmp = path + ".repair-tmp"
    try:
        with open(tmp, "wb") as f:
            f.write(b"".join(keep))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise StudyError(f"cannot repair the study journal {path}: {exc.strerror or exc}; it is unchanged. Free "
                         f"space on that disk (`df {Path(path).parent}`) and run {_repair_hint(path)} again") from None


def _dead_trial_problems(path: str, fix: bool) -> list[dict]:
    """RUNNING trials of the journal's studies whose worker is gone (failed with ``fix``)."""
    import optuna

    storage = optuna.storages.JournalStorage(JournalFile(path, warn=False))
    out = []
    for summary in optuna.study.get_all_study_summaries(storage, include_best_trial=False):
        study = optuna.load_study(study_name=summary.study_name, storage=storage)
        dead = [t.number for t in dead_trials(study)]
        if fix and dead:
            dead = fail_dead_trials(study)
        for number in dead:
            out.append({"kind": "dead_trial", "where": f"{path}: study {summary.study_name!r} trial {number}",
                        "message": "marked FAIL (worker process died)" if fix else
                        "RUNNING, but its worker process is gone; --fix marks it FAIL (a rerun does too)"})
    return out


def check_journals(store_root, fix: bool = False) -> list[dict]:
    """Problems of the study journal of the store at ``store_root`` (its ``studies.journal``; or a journal file
    itself): each ``{"kind", "where", "message"}``, an empty list when it is sound or absent.

    Kinds: ``journal_torn_tail`` (a last record cut short by a full disk or a killed writer; harmless, removed by
    the next write), ``journal_bad_record`` (a line that is not a record, e.g. one written onto a torn tail by an
    older mixsig: no study loads until repaired), ``dead_trial`` (RUNNING, but its worker process on this host is
    gone). With ``fix``, under the journal's lock, torn bytes are removed (a record written onto them is kept),
    dead trials are marked FAIL, and each message says what was done. Stop the study processes before ``fix``
    when a line is damaged (the journal is rewritten). Remote stores have no journal here: ``[]``.
    """
    path = Path(str(store_root))
    if str(store_root).startswith("file://"):
        path = Path(str(store_root)[len("file://"):])
    elif "://" in str(store_root):
        return []
    if not path.exists():
        raise StudyError(f"no store folder or journal file at {str(path)!r}; pass the store folder (or --storage "
                         "journal:PATH of an existing journal)")
    if path.is_dir():
        path = path / JOURNAL_NAME
    if not path.is_file():
        return []
    path_s = str(path)
    lock = flock_lock(path_s)
    lock.acquire()
    try:
        problems = _scan(path_s)
        if fix and [p["kind"] for p in problems] == ["journal_torn_tail"]:
            os.truncate(path_s, problems[0]["offset"])  # in place: readers' cached offsets stay valid
        elif fix and problems:
            _rewrite(path_s, problems)
    finally:
        lock.release()
    out = [_describe(path_s, p, fix) for p in problems]
    if fix or not any(p["kind"] == "journal_bad_record" for p in problems):
        out += _dead_trial_problems(path_s, fix)
    return out


def mixsig_error_in(exc: BaseException) -> MixsigError | None:
    """The :class:`~mixsig.errors.MixsigError` behind ``exc`` (itself, or its cause or context): Optuna raises
    ``AssertionError`` from a ``finally`` when a trial's ``tell`` failed, hiding e.g. a full disk's error."""
    seen = 0
    while exc is not None and seen < 20:
        if isinstance(exc, MixsigError):
            return exc
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return None
