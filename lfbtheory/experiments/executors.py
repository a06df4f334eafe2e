"""Where sweep tasks run, behind one interface: this process, local processes, or Dask.

An :class:`Executor` has ``submit(fn, *args) -> future``, ``wait_first(futures) -> (done,
pending)`` and ``close()``; futures have ``result()`` (re-raising the task's exception). Tasks
are plain top-level functions of picklable arguments, and every task is a deterministic
function of its arguments, so where it runs cannot change its result.

- :class:`SerialExecutor`: runs each task at submission, in this process (debugging, tests);
- :class:`LocalExecutor`: ``concurrent.futures.ProcessPoolExecutor`` (the default; a
  ``forkserver`` context that preloads lfbtheory, so workers start cheaply and never inherit
  threads);
- :class:`DaskExecutor`: a ``dask.distributed`` cluster at ``tcp://HOST:PORT`` (or a given
  ``Client``); a task whose worker dies is re-run by the scheduler on another worker.
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
import os
from collections.abc import Callable, Iterable
from typing import Any, Protocol

__all__ = ["Executor", "SerialExecutor", "LocalExecutor", "DaskExecutor", "make_executor"]


class Executor(Protocol):
    name: str

    def submit(self, fn: Callable[..., Any], /, *args: Any) -> Any: ...

    def wait_first(self, futures: Iterable[Any]) -> tuple[set[Any], set[Any]]: ...

    def close(self) -> None: ...


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

    def close(self) -> None:
        pass


class LocalExecutor:
    """Local worker processes (``workers`` of them; default: the CPUs of this machine)."""

    name = "local"

    def __init__(self, workers: int | None = None) -> None:
        if workers is not None and (
            isinstance(workers, bool) or not isinstance(workers, int) or workers < 1
        ):
            raise ValueError(f"workers must be a positive integer, got {workers!r}")
        self.workers = workers or os.cpu_count() or 1
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(["lfbtheory.experiments.sweep"])
        self.pool = cf.ProcessPoolExecutor(max_workers=self.workers, mp_context=ctx)

    def submit(self, fn: Callable[..., Any], /, *args: Any) -> cf.Future[Any]:
        return self.pool.submit(fn, *args)

    def wait_first(self, futures: Iterable[Any]) -> tuple[set[Any], set[Any]]:
        done, pending = cf.wait(set(futures), return_when=cf.FIRST_COMPLETED)
        return set(done), set(pending)

    def close(self) -> None:
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

    def close(self) -> None:
        if self.own:
            self.client.close()


def make_executor(scheduler: str | None = None, workers: int | None = None) -> Executor:
    """Dask at ``scheduler`` if given; else ``workers`` local processes (1: serial)."""
    if scheduler:
        return DaskExecutor(scheduler)
    if workers == 1:
        return SerialExecutor()
    return LocalExecutor(workers)
