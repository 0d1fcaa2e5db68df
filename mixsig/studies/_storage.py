"""Where studies live: Optuna's journal file beside the store (default) or an RDB URL (PostgreSQL).

- Default: ``<store>/.mixsig/studies.journal`` (:func:`journal_file`; a store of an older mixsig keeps its
  ``<store>/studies.journal``), an :class:`optuna.storages.JournalStorage` over a
  journal backend (:class:`~mixsig.studies._journal.JournalFile`, reading through Optuna's
  :class:`~optuna.storages.journal.JournalFileBackend`); safe for several processes on one machine. Writes are
  locked with ``fcntl.flock`` on ``studies.journal.flock`` (the kernel releases it if a worker dies); other tools
  may read the journal freely (``optuna.load_study``, optuna-dashboard) but should write through
  :func:`open_storage`. A journal has no heartbeat, so each trial records the worker's host, pid and process start
  time (:func:`worker_identity`) and :func:`fail_dead_trials` marks FAIL the RUNNING trials whose process is gone.
- ``postgresql://...`` (or any SQLAlchemy URL but SQLite): :class:`optuna.storages.RDBStorage` with heartbeats;
  a trial whose worker stops beating is failed and re-queued by
  :class:`optuna.storages.RetryHeartbeatStaleTrialCallback` (the Optuna 5 name of ``RetryFailedTrialCallback``).
- ``sqlite://`` is refused for parallel workers ("database is locked"); one ``study run`` process may use it, and
  a second one on the same database is refused up front naming the holder (:func:`run_lock`). SQLite has no
  heartbeat either, so its dead trials are failed like the journal's (:func:`uses_heartbeat` is False).

The journal backend itself (torn tail repaired under the lock, a full disk reported in one line, damage located)
is :class:`~mixsig.studies._journal.JournalFile`; :func:`~mixsig.studies.check_journals` checks and repairs it.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import socket
import warnings
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from mixsig.errors import StudyError

if TYPE_CHECKING:  # pragma: no cover
    import optuna

log = logging.getLogger(__name__)

JOURNAL_NAME = "studies.journal"
HEARTBEAT_SECONDS = 10
GRACE_SECONDS = 30
MAX_RETRY = 3
ORPHAN_SECONDS = 60.0  # a RUNNING trial without a worker record this old was left by a process killed at birth

_ALTERNATIVES = (
    "use the default journal file beside the store (omit --storage) for workers on one machine, "
    "or a PostgreSQL URL (--storage postgresql://user@host/db) for workers on several machines"
)


def local_store_path(store_url: str) -> Path | None:
    """The local folder of a store URL (plain path or ``file://``), None for remote (fsspec) stores."""
    if store_url.startswith("file://"):
        return Path(store_url[len("file://"):])
    if "://" in store_url:
        return None
    return Path(store_url)


def journal_file(store_folder, create: bool = False) -> Path:
    """The default study journal of the local store in ``store_folder``: ``<store>/.mixsig/studies.journal``, in
    the folder zarr does not list (:func:`mixsig.cache.state_dir`), or ``<store>/studies.journal`` where a store of
    an older mixsig has one there and none in ``.mixsig/`` (it stays where it is: processes may hold it open).
    With ``create``, ``.mixsig/`` is made (with the ``zarr.json`` that hides it from zarr) for a new journal."""
    from mixsig.cache import state_dir

    folder = Path(store_folder)
    old, new = folder / JOURNAL_NAME, state_dir(folder, create=False) / JOURNAL_NAME
    if old.is_file() and not new.is_file():
        return old
    if create:
        state_dir(folder)
    return new


def describe_storage(store_url: str, url: str | None) -> str:
    """The storage URL as recorded and shown: the journal path or the RDB URL without its password."""
    if url is None:
        path = local_store_path(store_url)
        return str(journal_file(path).resolve()) if path is not None else "?"
    return _hide_password(url)


def _hide_password(url: str) -> str:
    if "://" in url and "@" in url:
        scheme, rest = url.split("://", 1)
        cred, host = rest.rsplit("@", 1)
        if ":" in cred:
            return f"{scheme}://{cred.split(':', 1)[0]}:***@{host}"
    return url


def _rdb_url(url: str) -> str:
    """Use psycopg2 for a bare ``postgresql://`` when psycopg (3) is not installed (SQLAlchemy 2.1 defaults to it)."""
    if url.startswith(("postgresql://", "postgres://")):
        try:
            import psycopg  # noqa: F401
        except ImportError:
            return "postgresql+psycopg2://" + url.split("://", 1)[1]
    return url


def open_storage(store_url: str, url: str | None = None, *, parallel: bool = False,
                 heartbeat_interval: int = HEARTBEAT_SECONDS, grace_period: int = GRACE_SECONDS,
                 ) -> "optuna.storages.BaseStorage":
    """The Optuna storage for studies of the store at ``store_url``.

    ``url=None`` gives the journal file :func:`journal_file` (``<store>/.mixsig/studies.journal``); otherwise an RDB URL, whose workers beat every
    ``heartbeat_interval`` seconds and whose RUNNING trials without a beat for ``grace_period`` seconds are failed
    and re-queued (up to 3 times). ``parallel=True`` (a ``study worker``) refuses SQLite with the alternatives.
    """
    import optuna

    if url is None or url.startswith("journal:"):
        if url is None:
            folder = local_store_path(store_url)
            if folder is None:
                raise StudyError(
                    f"the store {store_url!r} is not a local folder, so the default journal file cannot live beside it; "
                    "pass --storage postgresql://... (or --storage journal:/local/path/studies.journal)"
                )
            if not folder.is_dir():
                raise StudyError(f"no store folder at {str(folder)!r}; create the store first (mixsig extract)")
            path = journal_file(folder, create=True)
        else:
            path = Path(url[len("journal:"):])
        from mixsig.studies._journal import JournalFile

        return optuna.storages.JournalStorage(JournalFile(str(path)))
    if url.startswith("sqlite:"):
        if parallel:
            raise StudyError(
                f"SQLite storage ({url}) is not safe for parallel study workers (\"database is locked\"); " + _ALTERNATIVES
            )
        log.warning("SQLite storage %s: fine for one process; for parallel workers %s", url, _ALTERNATIVES)
        return optuna.storages.RDBStorage(url)
    if "://" not in url:
        raise StudyError(f"--storage {url!r} is not a storage URL; {_ALTERNATIVES}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.storages.RDBStorage(
                _rdb_url(url),
                heartbeat_interval=heartbeat_interval,
                grace_period=grace_period,
                heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRY),
            )
    except ImportError as exc:
        raise StudyError(f"cannot open storage {_hide_password(url)}: {exc} (pip install psycopg2-binary)") from exc
    except Exception as exc:  # sqlalchemy OperationalError etc.: name the URL and the cause in one line
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise StudyError(f"cannot open storage {_hide_password(url)}: {first}") from exc


def flock_lock(journal_path: str):
    """A journal lock held with ``fcntl.flock`` on ``<journal>.flock``: the kernel releases it when the holder
    dies, so a SIGKILLed worker never leaves a stale lock (Optuna's file locks wait a 30 s grace period)."""
    import fcntl

    class FlockLock:  # the acquire/release protocol of optuna's BaseJournalFileLock
        def __init__(self, path: str) -> None:
            self._path = path
            self._fd: int | None = None

        def acquire(self) -> bool:
            try:
                fd = os.open(self._path, os.O_CREAT | os.O_RDWR, 0o644)
            except OSError as exc:  # e.g. a full disk cannot hold the new lock file, nor a read-only folder
                fix = ("make its folder writable (a read-only store's journal can be checked without --fix, not "
                       "repaired or written)" if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM)
                       else "fix the cause (a full disk: free space) and rerun")
                raise StudyError(f"cannot open the study journal's lock file {self._path}: {exc.strerror or exc}; "
                                 + fix) from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
            except BaseException:
                os.close(fd)
                raise
            self._fd = fd
            return True

        def release(self) -> None:
            fd, self._fd = self._fd, None
            if fd is not None:
                fcntl.flock(fd, fcntl.LOCK_UN)
                os.close(fd)

    return FlockLock(journal_path + ".flock")


# --- one `study run` at a time on SQLite ---------------------------------------------------------------------


def sqlite_path(url: str | None) -> str | None:
    """The database file of a ``sqlite:///FILE`` URL; None for an in-memory database or any other URL."""
    if not url or not url.startswith("sqlite:") or "://" not in url:
        return None
    rest = url.split("://", 1)[1].split("?", 1)[0]
    path = rest[1:] if rest.startswith("/") else ""
    return None if path in ("", ":memory:") else path


def _holder(fd: int) -> dict:
    try:
        raw = os.pread(fd, 4096, 0)
        record = json.loads(raw) if raw.strip() else {}
        return record if isinstance(record, dict) else {}
    except (OSError, ValueError):
        return {}


@contextmanager
def run_lock(url: str | None, study: str):
    """Hold SQLite storage ``url`` for this `study run` (study ``study``) while it runs; nothing for other storages.

    SQLite takes one process at a time ("database is locked"), so a second `study run` on the same database is
    refused up front, naming the holder (study, pid, host, since) and the alternatives. The lock is an
    ``fcntl.flock`` on ``<database>.mixsig-run``: the kernel releases it when the holder dies, so a rerun after a
    killed run takes it over (the stale holder record is replaced)."""
    import fcntl

    path = sqlite_path(url)
    if path is None:
        yield
        return
    lock = path + ".mixsig-run"
    try:
        fd = os.open(lock, os.O_CREAT | os.O_RDWR, 0o644)
    except OSError as exc:
        raise StudyError(f"cannot use SQLite storage {url}: {exc.strerror or exc} ({lock})") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            h = _holder(fd)
            raise StudyError(
                f"SQLite storage {url} is in use by another `mixsig study run` (study {h.get('study', '?')!r}, pid "
                f"{h.get('pid', '?')} on host {h.get('host', '?')}, since {h.get('since', '?')}); SQLite takes one "
                f"process at a time (\"database is locked\"): wait for it to finish, or " + _ALTERNATIVES
            ) from None
        old = _holder(fd)
        if old and is_alive(old) is False:
            log.info("SQLite storage %s: the study run that held it (pid %s on %s) is gone; taking over",
                     url, old.get("pid"), old.get("host"))
        record = {**worker_identity(), "study": study, "since": datetime.now().isoformat(timespec="seconds")}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(record).encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the flock


def uses_heartbeat(storage) -> bool:
    """Whether ``storage`` fails the trials of dead workers itself (an RDB storage with heartbeats); journal and
    SQLite storages rely on :func:`fail_dead_trials` instead."""
    get = getattr(storage, "get_heartbeat_interval", None)
    return get is not None and get() is not None


# --- liveness of journal workers --------------------------------------------------------------------------------


def _process_start(pid: int) -> str | None:
    """Start time of ``pid`` in clock ticks since boot (``/proc/<pid>/stat`` field 22), None if unknown."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read().decode()
        return stat.rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def worker_identity() -> dict:
    """``{"host", "pid", "start"}`` of this process: what a trial records so a later run can tell it died."""
    return {"host": socket.gethostname(), "pid": os.getpid(), "start": _process_start(os.getpid())}


def is_alive(worker: dict) -> bool | None:
    """Whether the worker process recorded in ``worker`` still runs: None when it ran on another host."""
    if worker.get("host") != socket.gethostname():
        return None
    pid = int(worker.get("pid", -1))
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by someone else
    start = worker.get("start")
    return start is None or _process_start(pid) in (None, start)  # a reused pid has another start time


WORKER_ATTR = "mixsig_worker"
#: study user attr ``mixsig_failed.<trial number>``: why :func:`fail_dead_trials` failed that trial
FAILED_ATTR = "mixsig_failed"
DEAD_WORKER = "worker process died"


def dead_trials(study: "optuna.Study") -> list:
    """The RUNNING trials of ``study`` whose worker process (on this host) is gone: recorded in the trial
    (:data:`WORKER_ATTR`) and no longer running, or never recorded and older than :data:`ORPHAN_SECONDS`."""
    from optuna.trial import TrialState

    now = datetime.now()
    out = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        worker = t.user_attrs.get(WORKER_ATTR)
        if worker is None:
            age = (now - t.datetime_start).total_seconds() if t.datetime_start else 0.0
            if age > ORPHAN_SECONDS:
                out.append(t)
        elif is_alive(worker) is False:
            out.append(t)
    return out


def fail_dead_trials(study: "optuna.Study") -> list[int]:
    """Mark FAIL every RUNNING trial of ``study`` whose worker process (on this host) is gone (:func:`dead_trials`).

    Trials of workers on other hosts are left alone (RDB storages fail those by heartbeat). A RUNNING trial that
    never recorded its worker is failed once it is older than a minute (its process died right after starting it).
    Each is finished with Optuna's public ``study.tell(number, state=FAIL)``, and the reason is recorded as the
    study user attr ``mixsig_failed.<number>`` (``study show`` lists them under ``failed``). ``study run`` and
    ``study worker`` call it at start and after every trial. Returns the numbers of the trials failed.
    """
    from optuna.exceptions import UpdateFinishedTrialError
    from optuna.trial import TrialState

    failed = []
    for t in dead_trials(study):
        try:
            done = study.tell(t.number, state=TrialState.FAIL, skip_if_finished=True)
        except (UpdateFinishedTrialError, RuntimeError):  # finished meanwhile
            continue
        if done.state != TrialState.FAIL:  # another process finished it meanwhile
            continue
        study.set_user_attr(f"{FAILED_ATTR}.{t.number}", DEAD_WORKER)
        failed.append(t.number)
    if failed:
        log.warning("marked %d trial(s) FAIL whose worker process died: %s", len(failed), failed)
    return failed
