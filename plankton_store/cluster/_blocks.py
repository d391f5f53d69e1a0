"""The one loop every job uses to run blocks of work on Dask.

A block is thousands of images (Dask costs about 2 ms per task, so never one task per image).
Each block is one task with retries; results come back in submission order while a progress
bar advances as tasks finish, in whatever order.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from typing import Any


def run_id() -> str:
    """A short random id for one run of a job, to name its tasks and per-run caches."""
    return uuid.uuid4().hex[:8]


def run_blocks(
    client: Any,
    function: Callable[..., Any],
    calls: Sequence[tuple[Any, ...]],
    *,
    name: str,
    retries: int = 2,
    sizes: Sequence[int] | None = None,
    unit: str = "img",
    progress: bool = True,
    on_result: Callable[[int, Any], None] | None = None,
    key: str | None = None,
    desc: str | None = None,
    window: int | None = None,
) -> list[Any]:
    """Run ``function(*call)`` for every call as one Dask task each.

    Parameters
    ----------
    client
        A ``distributed.Client``.
    function
        The block function; it must be safe to run twice on the same inputs (idempotent),
        since a task is retried when its worker is lost.
    calls
        The positional arguments of each block.
    name
        Shown on the progress bar and used in the task keys (``<name>-<key>-<index>``).
    retries
        Retries of each task after a failure or a lost worker.
    sizes
        Progress weight of each block (e.g. its number of images); default 1 each.
    unit
        Progress unit.
    progress
        Show a progress bar.
    on_result
        Called with (index, result) as each block finishes, in completion order.
    key
        Distinguishes this run's task keys (default: a new :func:`run_id`).
    desc
        The progress bar's label (default: ``name``).
    window
        At most this many tasks submitted and unfinished at a time (None: all at once).
        ``calls[i]`` is then only read when task ``i`` is submitted, so a lazy sequence
        keeps the client's and the scheduler's share of the task graph bounded.

    Returns
    -------
    list
        The results, in the order of ``calls``.
    """
    from distributed import as_completed
    from tqdm import tqdm

    key = key or run_id()
    weights = list(sizes) if sizes is not None else [1] * len(calls)
    n = len(calls)
    position: dict[str, int] = {}

    def submit(index: int) -> Any:
        future = client.submit(
            function, *calls[index], key=f"{name}-{key}-{index}", retries=retries
        )
        position[future.key] = index
        return future

    first = n if window is None else min(n, max(1, window))
    pending = as_completed([submit(index) for index in range(first)])
    results: list[Any] = [None] * n
    with tqdm(total=sum(weights), unit=unit, desc=desc or name, disable=not progress) as bar:
        for future in pending:
            index = position.pop(future.key)
            results[index] = future.result()
            del future
            if first < n:
                pending.add(submit(first))
                first += 1
            bar.update(weights[index])
            if on_result is not None:
                on_result(index, results[index])
    return results
