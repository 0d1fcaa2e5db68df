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
  repair command (``mixsig study check STORE --fix``), or, for a line ``--fix`` must not remove (it may have been a
  record that numbers studies or trials, see :func:`_repair_plan`), the way out.

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

from mixsig.errors import StudyError
from mixsig.studies._storage import JOURNAL_NAME, dead_trials, fail_dead_trials, flock_lock, journal_file

log = logging.getLogger(__name__)

_FULL = (errno.ENOSPC, errno.EDQUOT)
_RECORD_START = re.compile(rb'\{"op_code":')
_OP_CODE = re.compile(rb'"op_code":\s*(\d+)')
_LEAD = re.compile(rb'\{"op_code":\s*(\d+)\s*[,}]')
_TRIAL_ID = re.compile(rb'"trial_id":\s*(\d+)')
_BLOCK = 1 << 16
# Optuna's journal op codes (optuna.storages.journal.JournalOperation, Optuna 5)
_OPS = {0: "create_study", 1: "delete_study", 2: "set_study_user_attr", 3: "set_study_system_attr",
        4: "create_trial", 5: "set_trial_param", 6: "set_trial_state_values", 7: "set_trial_intermediate_value",
        8: "set_trial_user_attr", 9: "set_trial_system_attr", 10: "discard_trials"}
# ops whose order numbers studies and trials: a study's id is the count of create_study records before it, a
# trial's id (and number) the count of create_trial records; a delete_study frees a name that a later
# create_study takes (dropped, that create_study is ignored and every later study id shifts)
_NUMBERING = (0, 1, 4)


def _repair_hint(path: str) -> str:
    p = Path(path)
    if p.name == JOURNAL_NAME:  # a store's default journal: <store>/.mixsig/studies.journal (older: <store>/...)
        return f"`mixsig study check {p.parent.parent if p.parent.name == '.mixsig' else p.parent} --fix`"
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
    refused = [p for p in bad if p["repair"] == "refuse"]
    todo = (f"line {refused[0]['line']} {refused[0]['what'][3:]} and cannot be removed by --fix: "
            + _keep_advice(path, refused[0]) if refused else f"run {_repair_hint(path)} (keeps every readable record)")
    return (f"the study journal {path} is damaged {where}, e.g. a record written onto one torn by a full disk; "
            f"no study in it can be read until it is repaired: {todo}")


def _keep_advice(path: str, p: dict) -> str:
    return (f"removing it could renumber every later study or trial (Optuna numbers them by the order of their "
            f"create records), so it is left as it is. Move the journal aside (`mv {path} {path}.damaged`) and rerun "
            f"your `mixsig study run` command to start its studies afresh, or repair line {p['line']} by hand in a "
            f"copy (`cp {path} {path}.bak`)")


def _salvage(body: bytes) -> int | None:
    """Where a whole record starts inside the damaged line ``body`` (a record appended onto a torn one)."""
    for m in reversed(list(_RECORD_START.finditer(body, 1))):
        try:
            if isinstance(json.loads(body[m.start():]), dict):
                return m.start()
        except ValueError:
            continue
    return None


def _only_torn(prefix: bytes) -> bool:
    """Whether ``prefix`` is only records cut short: it starts as a record does and no whole record is in it."""
    if not _RECORD_START.match(prefix):
        return False
    text, decoder = prefix.decode("utf-8", "replace"), json.JSONDecoder()
    for m in re.finditer(r'\{"op_code":', text):
        try:
            decoder.raw_decode(text, m.start())
        except ValueError:
            continue
        return False  # a whole record (e.g. a committed one whose newline was lost): not a torn write
    return True


def _repair_plan(body: bytes, salvage: int | None) -> tuple[str, str]:
    """How ``--fix`` may repair the damaged line ``body``: ``("torn", "")`` (cut the torn bytes before the salvaged
    record), ``("drop", what)`` or ``("refuse", what)``.

    A torn write (bytes of records cut short, then the whole record written onto them) was never read by anyone:
    Optuna's readers skip a torn last line, so cutting it shifts nothing. Any other damaged line held a record
    readers applied; it may be dropped only when it is exactly one record whose op code is readable and is not one
    that numbers studies or trials (``create_study``, ``delete_study``, ``create_trial``): dropping a param, state,
    value or attr record loses that one record and shifts no id. Anything else (a create op, an unreadable op
    code, parts of several records run together, bytes before the record) is refused."""
    if salvage is not None and _only_torn(body[:salvage]):
        return "torn", ""
    codes, lead = [int(c) for c in _OP_CODE.findall(body)], _LEAD.match(body)
    names = [_OPS.get(c, f"op_code {c}") for c in codes]
    if not codes or lead is None and len(codes) == 1:
        return "refuse", "it holds no readable record start (it may have been a create_study or create_trial record)"
    if len(codes) > 1:
        return "refuse", f"it holds parts of {len(codes)} records run together ({', '.join(names)})"
    if codes[0] in _NUMBERING or codes[0] not in _OPS:
        return "refuse", f"it holds a {names[0]} record"
    trial = _TRIAL_ID.search(body)
    return "drop", f"a damaged {names[0]} record" + (f" of trial_id {int(trial.group(1))}" if trial else "")


def _scan(path: str, data: bytes | None = None) -> list[dict]:
    """Problems of the journal bytes ``data`` (read from ``path`` when None): torn tail, damaged lines."""
    data = Path(path).read_bytes() if data is None else data
    problems, offset = [], 0
    for number, line in enumerate(data.splitlines(keepends=True), start=1):
        if not line.endswith(b"\n"):
            problems.append({"kind": "journal_torn_tail", "offset": offset, "length": len(line), "line": number})
        else:
            try:
                json.loads(line)
            except ValueError:
                salvage = _salvage(line[:-1])
                repair, what = _repair_plan(line[:-1], salvage)
                problems.append({"kind": "journal_bad_record", "offset": offset, "length": len(line), "line": number,
                                 "salvage": salvage if repair == "torn" else None, "repair": repair, "what": what})
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
               if p["repair"] == "torn" else f"removed the unreadable line ({p['length']} bytes, {p['what']}: that "
               "record is lost; no study or trial id shifts); the records after it are kept")
    elif p["repair"] == "refuse":
        msg = (f"{p['length']} bytes that are not a journal record; no study in this journal can be read, and "
               f"{p['what']}: {_keep_advice(path, p)}")
    else:
        msg = (f"{p['length']} bytes that are not a journal record"
               + (f" ({p['salvage']} torn bytes, then a whole record)" if p["repair"] == "torn" else
                  f" ({p['what']}; --fix removes it, losing that record; no id shifts)")
               + f"; no study in this journal can be read: repair with {_repair_hint(path)}")
    return {"kind": p["kind"], "where": where, "message": msg}


def _refuse_fix(path: str, problems: list[dict]) -> None:
    """Raise :class:`StudyError` when a damaged line of ``problems`` cannot be removed without renumbering."""
    refused = [p for p in problems if p.get("repair") == "refuse"]
    if refused:
        p = refused[0]
        more = f" (and {len(refused) - 1} more such line(s))" if len(refused) > 1 else ""
        raise StudyError(f"cannot repair the study journal {path}: line {p['line']} (byte {p['offset']}, "
                         f"{p['length']} bytes) is damaged and {p['what']}{more}; the journal is unchanged: "
                         + _keep_advice(path, p))


def _rewrite(path: str, problems: list[dict]) -> None:
    """Write the journal without the damaged bytes of ``problems`` (temp file + rename); caller holds the lock
    and has refused lines that cannot be removed (:func:`_refuse_fix`)."""
    with open(path, "rb") as f:
        data = f.read()
    keep, pos = [], 0
    for p in problems:
        cut = p["salvage"] if p.get("repair") == "torn" else p["length"]
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


def _acquire(lock, fix: bool) -> bool:
    """Take the journal's lock; without ``fix`` False instead when it cannot be (a read-only folder or file system
    cannot hold the lock file): the check reads unlocked, where a record being written shows as a torn tail."""
    try:
        lock.acquire()
        return True
    except (StudyError, OSError) as exc:
        if fix:
            raise
        log.info("study journal lock not taken (%s); checking the journal without it", exc)
        return False


def check_journals(store_root, fix: bool = False) -> list[dict]:
    """Problems of the study journal of the store at ``store_root`` (its ``.mixsig/studies.journal``, see
    :func:`~mixsig.studies.journal_file`; or a journal file
    itself): each ``{"kind", "where", "message"}``, an empty list when it is sound or absent.

    Kinds: ``journal_torn_tail`` (a last record cut short by a full disk or a killed writer; harmless, removed by
    the next write), ``journal_bad_record`` (a line that is not a record, e.g. one written onto a torn tail by an
    older mixsig: no study loads until repaired), ``dead_trial`` (RUNNING, but its worker process on this host is
    gone). With ``fix``, under the journal's lock, torn bytes are removed (a record written onto them is kept), a
    damaged line holding one non-numbering record is removed (that record is lost), dead trials are marked FAIL,
    and each message says what was done. A damaged line that may have been a ``create_study``/``create_trial``
    (or ``delete_study``) record is never removed: Optuna numbers studies and trials by the order of those records,
    so removing one would move every later record onto the wrong trial; ``fix`` then raises
    :class:`~mixsig.errors.StudyError` naming the line and leaves the journal unchanged. Stop the study processes
    before ``fix`` when a line is damaged (the journal is rewritten). Without ``fix`` a journal whose lock file
    cannot be created (a read-only store) is read unlocked. Remote stores have no journal here: ``[]``.
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
        path = journal_file(path)
    if not path.is_file():
        return []
    path_s = str(path)
    lock = flock_lock(path_s)
    locked = _acquire(lock, fix)
    try:
        problems = _scan(path_s)
        if fix:
            _refuse_fix(path_s, problems)
        if fix and [p["kind"] for p in problems] == ["journal_torn_tail"]:
            os.truncate(path_s, problems[0]["offset"])  # in place: readers' cached offsets stay valid
        elif fix and problems:
            _rewrite(path_s, problems)
    finally:
        if locked:
            lock.release()
    out = [_describe(path_s, p, fix) for p in problems]
    if fix or not any(p["kind"] == "journal_bad_record" for p in problems):
        out += _dead_trial_problems(path_s, fix)
    return out
