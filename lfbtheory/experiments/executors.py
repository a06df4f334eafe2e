"""Where sweep tasks run, behind one interface: this process, local processes, or Dask.

An :class:`Executor` has ``submit(fn, *args) -> future``, ``wait_first(futures) -> (done,
pending)`` and ``close()``; futures have ``result()`` (re-raising the task's exception). Tasks
are plain top-level functions of picklable arguments, and every task is a deterministic
function of its arguments, so where it runs cannot change its result.

- :class:`SerialExecutor`: runs each task at submission, in this process (debugging, tests);
- :class:`LocalExecutor`: ``concurrent.futures.ProcessPoolExecutor`` (the default; a
  ``spawn`` context, so workers never inherit threads and are children of the process that
  runs the sweep; each worker ends when that process ends, however it ends: see
  :func:`_tie_to_parent`);
- :class:`DaskExecutor`: a ``dask.distributed`` cluster at ``tcp://HOST:PORT`` (or a given
  ``Client``); a task whose worker dies is re-run by the scheduler on another worker.
"""

from __future__ import annotations

import concurrent.futures as cf
import ctypes
import multiprocessing
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterable
from typing import Any, Protocol

__all__ = ["Executor", "SerialExecutor", "LocalExecutor", "DaskExecutor", "make_executor"]


class Executor(Protocol):
    name: str

    def submit(self, fn: Callable[..., Any], /, *args: Any) -> Any: ...

    def wait_first(self, futures: Iterable[Any]) -> tuple[set[Any], set[Any]]: ...

    def close(self, *, cancel: bool = False) -> None: ...


class SerialExecutor:
    """Run every task immediately in this process (its future is already done)."""

    name = "serial"

    def submit(self, fn: Callable[..., Any], /, *args: Any) -> cf.Future[Any]:
        fut: cf.Future[Any] = cf.Future()
        try:
            fut.set_result(fn(*args))
        except Exception as exc:  # re-raised by result(), like a remote failure
            fut.set_exception(exc)
        return fut

    def wait_first(self, futures: Iterable[Any]) -> tuple[set[Any], set[Any]]:
        fs = set(futures)
        return fs, set()

    def close(self, *, cancel: bool = False) -> None:
        pass


_PR_SET_PDEATHSIG = 1
_WATCH_SECONDS = 0.5


def _tie_to_parent(parent: int) -> None:
    """Worker initializer: end this worker when ``parent`` (the sweep's process) ends.

    On Linux the kernel does it: ``prctl(PR_SET_PDEATHSIG, SIGKILL)`` kills this process when
    the thread that started it ends, including by SIGKILL (then ``getppid`` is checked once,
    in case the parent died before the prctl). Elsewhere a daemon thread polls ``getppid``
    every 0.5 s and exits when this process was re-parented. A worker holds no state of its
    own (the parent stores every result), so being killed loses nothing.
    """
    armed = False
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            armed = libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) == 0
        except (OSError, AttributeError):
            armed = False
    if os.getppid() != parent:  # the parent is already gone
        os._exit(1)
    if not armed:

        def watch() -> None:
            while os.getppid() == parent:
                threading.Event().wait(_WATCH_SECONDS)
            os._exit(1)

        threading.Thread(target=watch, name="lfb-parent-watch", daemon=True).start()


class LocalExecutor:
    """Local worker processes (``workers`` of them; default: the CPUs of this machine).

    The workers are started by the thread that first submits and end when it ends (Linux's
    parent-death signal, :func:`_tie_to_parent`): SIGKILL or SIGTERM of the sweep ends them
    within a second, instead of leaving them to finish a point nobody will store. Use the
    executor from one thread that outlives the sweep (the main thread of ``lfb sweep``).
    """

    name = "local"

    def __init__(self, workers: int | None = None) -> None:
        if workers is not None and (
            isinstance(workers, bool) or not isinstance(workers, int) or workers < 1
        ):
            raise ValueError(f"workers must be a positive integer, got {workers!r}")
        self.workers = workers or os.cpu_count() or 1
        self.pool = cf.ProcessPoolExecutor(
            max_workers=self.workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_tie_to_parent,
            initargs=(os.getpid(),),
        )

    def submit(self, fn: Callable[..., Any], /, *args: Any) -> cf.Future[Any]:
        return self.pool.submit(fn, *args)

    def wait_first(self, futures: Iterable[Any]) -> tuple[set[Any], set[Any]]:
        done, pending = cf.wait(set(futures), return_when=cf.FIRST_COMPLETED)
        return set(done), set(pending)

    def pids(self) -> list[int]:
        """The process ids of the running workers."""
        return sorted(getattr(self.pool, "_processes", None) or {})

    def close(self, *, cancel: bool = False) -> None:
        """Shut the pool down after the running tasks (``cancel``: kill the workers now; their
        tasks are lost, which a sweep recomputes on its next run)."""
        if cancel:
            for p in list((getattr(self.pool, "_processes", None) or {}).values()):
                try:
                    p.kill()
                except (OSError, ValueError):  # already gone / already closed
                    pass
        self.pool.shutdown(wait=True, cancel_futures=True)


class DaskExecutor:
    """Tasks on a Dask distributed cluster: ``address`` (tcp://HOST:PORT) or a ``client``.

    ``retries``: extra attempts of a task that raised; a task whose worker died is re-run by
    the scheduler (up to its ``distributed.scheduler.allowed-failures``) without counting.
    """

    name = "dask"

    def __init__(self, address: str | None = None, *, client: Any = None, retries: int = 1):
        try:
            from distributed import Client
        except ImportError:
            raise ValueError(
                "a Dask scheduler needs dask.distributed: pip install 'lfbtheory[dask]'"
            ) from None
        if (address is None) == (client is None):
            raise ValueError("give the scheduler address or a distributed.Client, not both")
        self.own = client is None
        if client is None:
            if not isinstance(address, str) or "://" not in address:
                raise ValueError(f"scheduler must look like tcp://HOST:PORT, got {address!r}")
            try:
                client = Client(address, timeout="20s")
            except (OSError, TimeoutError) as exc:
                raise ValueError(f"cannot reach the Dask scheduler at {address}: {exc}") from None
        self.client = client
        self.retries = int(retries)

    def submit(self, fn: Callable[..., Any], /, *args: Any) -> Any:
        return self.client.submit(fn, *args, pure=False, retries=self.retries)

    def wait_first(self, futures: Iterable[Any]) -> tuple[set[Any], set[Any]]:
        from distributed import wait

        res = wait(list(futures), return_when="FIRST_COMPLETED")
        return set(res.done), set(res.not_done)

    def close(self, *, cancel: bool = False) -> None:
        """Close the client if this executor opened it. The cluster's workers are the
        cluster's: the scheduler drops the tasks of a closed client (or of released futures),
        so ``cancel`` needs nothing more."""
        if self.own:
            self.client.close()


def make_executor(scheduler: str | None = None, workers: int | None = None) -> Executor:
    """Dask at ``scheduler`` if given; else ``workers`` local processes (1: serial)."""
    if scheduler:
        return DaskExecutor(scheduler)
    if workers == 1:
        return SerialExecutor()
    return LocalExecutor(workers)
