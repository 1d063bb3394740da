"""Streaming rows through a callback in fixed-size chunks, keeping only running sums.

SmoothGrad and integrated gradients both evaluate a callback on ``n_inputs x per_input``
rows: row ``r`` belongs to input ``r // per_input`` and is the ``r % per_input``-th sample
(noise draw or path point) of that input. Rows are made chunk by chunk, at most
``batch_size`` at a time, and each chunk's results are folded into per-input running
statistics in float64, so memory is ``O(batch_size x input)`` whatever ``per_input`` is.

Overlap (``stream_rows(..., threads=k)``, SmoothGrad's ``noise_threads``): with ``k >= 1``
the rows of chunk ``c + 1`` are made in a background thread while the callback runs on
chunk ``c`` in the caller's thread (numpy's generators and ufuncs release the GIL, and so
does a callback waiting for an accelerator), so the model need not wait for its noise.
The next chunk is started only once the current one is handed to the callback, so at most
two chunks of rows are alive, and ``make_rows`` runs one call at a time, in row order, as
without a thread: the random streams are consumed in the same order, and every result is
bit-identical to ``k = 0`` (no thread, each chunk made just before its call). The first
chunk, and every chunk of fewer than ``MIN_PART`` elements, is made in the caller's thread
(a small chunk costs less to make than to hand over), which changes nothing but the time.

Several threads: random draws cannot be shared among threads without changing the
stream (``Generator.standard_normal`` consumes a variable number of bits per value, so a
thread cannot skip to its rows), and SmoothGrad's ``"iid"`` noise must stay the stream it
has always been. So a chunk is made in two steps: ``make_rows`` draws the standard noise of
the whole chunk in one thread, and ``finish_rows``, which consumes no random numbers (the
scale and shift ``x_i + sigma_i * z``), is split by rows over the ``k`` threads. Each
element gets the same operations whatever the split, so the result is the same for every
``k``, for every scheme. The draws themselves are not sped up by more threads; a
background thread hides them behind the model.

Every thread is started and joined inside :func:`stream_rows`: when it returns or raises
(an error in the callback or in ``make_rows``, a ``KeyboardInterrupt``), it first waits
for the chunk being made, so no thread is left running.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait

import numpy as np

from ._checks import check_callback_output

__all__ = [
    "RunningStatistic",
    "call_chunk",
    "call_layer_chunk",
    "cast_result",
    "chunk_bounds",
    "segments",
    "stream_rows",
]

#: The fewest elements of a chunk made in a background thread, and of a part of a chunk
#: finished by one thread: smaller ones cost less to make than a hand-over between threads.
MIN_PART = 1 << 17


def chunk_bounds(total: int, batch_size: int) -> Iterator[tuple[int, int]]:
    """``(start, stop)`` of consecutive chunks of at most ``batch_size`` of ``total`` rows.

    Examples:
        >>> list(chunk_bounds(7, 3))
        [(0, 3), (3, 6), (6, 7)]
    """
    for start in range(0, total, batch_size):
        yield start, min(start + batch_size, total)


def call_chunk(
    fn: Callable[..., object],
    *args: object,
    start: int,
    stop: int,
    expected_trailing: tuple[int, ...] | None = None,
    name: str = "fn",
) -> np.ndarray:
    """Call ``fn(*args)`` on the rows ``start..stop-1`` and check what it returns.

    The result must be a finite real numpy array of ``stop - start`` rows, and of shape
    ``(stop - start, *expected_trailing)`` unless ``expected_trailing`` is None; an error
    names the rows of the call (``rows 64..127``) and the shapes.
    """
    expected = None if expected_trailing is None else (stop - start, *expected_trailing)
    return check_callback_output(
        fn(*args), rows=(start, stop - 1), expected_shape=expected, n_rows=stop - start,
        name=name,
    )


def cast_result(values: np.ndarray, dtype: np.dtype, *, name: str = "fn") -> np.ndarray:
    """``values`` (float64 statistics) in the result ``dtype``, refusing an overflow.

    Finite callback results can still give an infinite statistic: a square beyond float64,
    or a float64 mean beyond float32 for float32 inputs. That is an error naming ``name``,
    never an array with inf in it.
    """
    with np.errstate(over="ignore", invalid="ignore"):
        result = values.astype(dtype, copy=False)
    if not np.isfinite(result).all():
        raise ValueError(
            f"{name}: expected results within the range of {np.dtype(dtype)} (x's dtype), got "
            "an overflow to inf; pass float64 inputs, or scale what the callback returns"
        )
    return result


def call_layer_chunk(
    layer_fn: Callable[..., object],
    *args: object,
    start: int,
    stop: int,
    expected_trailing: tuple[int, ...] | None = None,
    name: str = "layer_fn",
) -> tuple[np.ndarray, np.ndarray]:
    """Call a layer callback on the rows ``start..stop-1``: a checked pair of equal shapes.

    ``layer_fn(*args)`` must return ``(activations, gradients)``: both are checked as in
    :func:`call_chunk`, and the gradients must have the activations' shape.
    """
    result = layer_fn(*args)
    if not isinstance(result, tuple) or len(result) != 2:
        raise TypeError(
            f"{name} call for rows {start}..{stop - 1}: expected a pair "
            f"(activations, gradients), got {type(result).__name__}"
        )
    expected = None if expected_trailing is None else (stop - start, *expected_trailing)
    rows = (start, stop - 1)
    activations = check_callback_output(
        result[0], rows=rows, expected_shape=expected, n_rows=stop - start, name=name
    )
    gradients = check_callback_output(
        result[1], rows=rows, expected_shape=activations.shape, n_rows=stop - start,
        name=f"{name} (gradients)",
    )
    return activations, gradients


def segments(start: int, stop: int, per_input: int) -> list[tuple[int, int, int]]:
    """The runs of rows ``start..stop-1`` that belong to one input each.

    Returns ``(input, first, end)`` per run, ``first`` and ``end`` counted from ``start``
    (so they index the chunk). Rows of one input are contiguous, so this is arithmetic.
    """
    runs = []
    row = start
    while row < stop:
        owner = row // per_input
        end = min(stop, (owner + 1) * per_input)
        runs.append((owner, row - start, end - start))
        row = end
    return runs


class RunningStatistic:
    """Per-input running mean of ``g``, ``|g|`` or ``g**2``, or the variance of ``g``.

    The variance uses Chan et al.'s pairwise merge of (count, mean, M2) per chunk segment,
    which stays accurate when the mean is large next to the spread and is a sum of squares,
    so it is never negative.
    """

    def __init__(self, kind: str, n_inputs: int) -> None:
        self.kind = kind
        self.n_inputs = n_inputs
        self.count = np.zeros(n_inputs, dtype=np.int64)
        self.total: np.ndarray | None = None  # sums, or means for "variance"
        self.m2: np.ndarray | None = None

    def _allocate(self, trailing: tuple[int, ...]) -> None:
        self.total = np.zeros((self.n_inputs, *trailing), dtype=np.float64)
        if self.kind == "variance":
            self.m2 = np.zeros_like(self.total)

    def add(self, runs: list[tuple[int, int, int]], values: np.ndarray) -> None:
        """Fold ``values`` (one row each) into the inputs of ``runs`` (see :func:`segments`)."""
        if self.total is None:
            self._allocate(values.shape[1:])
        total, m2 = self.total, self.m2
        if self.kind == "abs":
            # integers in float64: abs(-2**31) wraps in int32
            values = np.abs(values.astype(np.float64) if values.dtype.kind in "iu" else values)
        elif self.kind == "square":
            # squares in float64: float16 300**2 would be inf, int32 70000**2 would wrap
            values = np.square(values, dtype=np.float64)
        for owner, start, stop in runs:
            # float64 sums straight from the callback's dtype, one run of rows at a time
            # (a plain sum is several times faster than ufunc.reduceat here)
            run = values[start:stop]
            run_sum = run.sum(axis=0, dtype=np.float64)
            n_a, n_b = self.count[owner], stop - start
            if m2 is None:
                total[owner] += run_sum  # type: ignore[index]
            else:
                # Chan et al.: merge (n_a, mean_a, M2_a) with the run's (n_b, mean_b, M2_b)
                run_mean = run_sum / n_b
                run_m2 = np.square(run - run_mean).sum(axis=0, dtype=np.float64)
                delta = run_mean - total[owner]  # type: ignore[index]
                total[owner] += delta * (n_b / (n_a + n_b))  # type: ignore[index]
                m2[owner] += run_m2 + np.square(delta) * (n_a * n_b / (n_a + n_b))
            self.count[owner] += n_b

    def result(self) -> np.ndarray:
        """The per-input statistic, ``(n_inputs, *trailing)`` in float64."""
        if self.total is None:
            raise RuntimeError("RunningStatistic.result() called before any rows were added")
        shape = (-1,) + (1,) * (self.total.ndim - 1)
        numerator = self.m2 if self.kind == "variance" else self.total
        return numerator / self.count.reshape(shape)  # type: ignore[operator]


def stream_rows(
    fn: Callable[[np.ndarray, np.ndarray | None], np.ndarray],
    make_rows: Callable[[np.ndarray, np.ndarray, list[tuple[int, int, int]]], np.ndarray],
    targets: np.ndarray | None,
    *,
    n_inputs: int,
    per_input: int,
    batch_size: int,
    statistic: RunningStatistic,
    expected_trailing: tuple[int, ...] | None,
    progress: bool = False,
    description: str = "",
    threads: int = 0,
    finish_rows: Callable[[np.ndarray, list[tuple[int, int, int]]], None] | None = None,
) -> None:
    """Evaluate ``fn`` on every row, ``batch_size`` rows per call, into ``statistic``.

    Args:
        fn: the attribution callback ``fn(x, target)``; always called in the caller's thread.
        make_rows: ``make_rows(inputs, samples, runs) -> batch`` builds the rows of one
            chunk; ``inputs`` and ``samples`` are int arrays of the chunk's input and sample
            indices, ``runs`` its runs of rows per input (:func:`segments`).
            It is called in row order, one call at a time, which keeps random streams
            independent of ``batch_size`` and of ``threads``.
        targets: ``(n_inputs,)`` indices or None; each row gets its input's target.
        expected_trailing: the trailing shape ``fn`` must return, or None to accept the
            first call's and hold every later call to it.
        threads: 0 to make each chunk in the caller's thread just before ``fn`` gets it;
            ``k >= 1`` to make the next chunk in a background thread while ``fn`` runs on
            the current one (see the module docstring), with ``finish_rows`` split over
            ``k`` threads. Chunks of fewer than ``MIN_PART`` elements are always made in
            the caller's thread, as is the first chunk. Every thread is started and
            joined inside the call.
        finish_rows: ``finish_rows(rows, runs)`` completes, in place, a contiguous part of
            a chunk that ``make_rows`` returned, ``runs`` indexing that part; it must not
            draw random numbers, as parts may be finished in any order and at once. None:
            ``make_rows`` returns finished rows.
    """
    total = n_inputs * per_input
    bar = _progress_bar(total, description) if progress else None
    pool = None
    try:
        chunks = chunk_bounds(total, batch_size)
        pending = _submit(None, next(chunks, None), make_rows, finish_rows, per_input, threads)
        while pending is not None:
            (start, stop, inputs, runs), made = pending
            batch = made.result() if isinstance(made, Future) else made
            if pool is None and threads > 0 and stop < total and batch.size >= MIN_PART:
                # from the second chunk on; smaller chunks cost less to make than a hand-over
                pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="saliency-rows")
            # the next chunk is made while fn runs on this one: two chunks of rows at most
            pending = _submit(pool, next(chunks, None), make_rows, finish_rows, per_input,
                              threads)
            chunk_targets = None if targets is None else targets[inputs]
            output = call_chunk(fn, batch, chunk_targets, start=start, stop=stop,
                                expected_trailing=expected_trailing)
            del batch  # before the chunk after next is made
            expected_trailing = output.shape[1:]
            statistic.add(runs, output)
            del output
            if bar is not None:
                bar.update(stop - start)
    finally:
        if pool is not None:
            # on an error (in fn, make_rows or a KeyboardInterrupt), wait for the chunk
            # being made, so that no thread outlives the call
            pool.shutdown(wait=True, cancel_futures=True)
        if bar is not None:
            bar.close()


MakeRows = Callable[[np.ndarray, np.ndarray, list[tuple[int, int, int]]], np.ndarray]
FinishRows = Callable[[np.ndarray, list[tuple[int, int, int]]], None]
ChunkInfo = tuple[int, int, np.ndarray, list[tuple[int, int, int]]]


def _submit(
    pool: ThreadPoolExecutor | None,
    bounds: tuple[int, int] | None,
    make_rows: MakeRows,
    finish_rows: FinishRows | None,
    per_input: int,
    threads: int,
) -> tuple[ChunkInfo, np.ndarray | Future] | None:
    """Start making the chunk ``bounds``: in ``pool``, or at once if None."""
    if bounds is None:
        return None
    start, stop = bounds
    inputs, samples = np.divmod(np.arange(start, stop), per_input)
    runs = segments(start, stop, per_input)  # once per chunk, for rows and sums
    info = (start, stop, inputs, runs)
    if pool is None:
        return info, _make_chunk(make_rows, finish_rows, inputs, samples, runs, per_input,
                                 start, None, 1)
    return info, pool.submit(_make_chunk, make_rows, finish_rows, inputs, samples, runs,
                             per_input, start, pool, threads)


def _make_chunk(
    make_rows: MakeRows,
    finish_rows: FinishRows | None,
    inputs: np.ndarray,
    samples: np.ndarray,
    runs: list[tuple[int, int, int]],
    per_input: int,
    start: int,
    pool: ThreadPoolExecutor | None,
    threads: int,
) -> np.ndarray:
    """One chunk's rows: ``make_rows`` in this thread, then ``finish_rows`` in parts."""
    rows = make_rows(inputs, samples, runs)
    if finish_rows is None:
        return rows
    parts = _parts(len(rows), rows[0].size, threads if pool is not None else 1)
    if pool is None or len(parts) == 1:
        finish_rows(rows, runs)
        return rows
    # parts of the chunk to the other threads, the first one here; no random numbers, so
    # the order does not matter, and every element gets the same operations
    helpers = [
        pool.submit(finish_rows, rows[a:b], segments(start + a, start + b, per_input))
        for a, b in parts[1:]
    ]
    try:
        a, b = parts[0]
        finish_rows(rows[a:b], segments(start + a, start + b, per_input))
    finally:
        wait(helpers)  # no part still written to once this returns or raises
    for helper in helpers:
        helper.result()  # an error of a part, if any
    return rows


def _parts(n_rows: int, row_size: int, threads: int) -> list[tuple[int, int]]:
    """Up to ``threads`` nearly equal row ranges, none under ``MIN_PART`` elements."""
    count = max(1, min(threads, n_rows, n_rows * row_size // MIN_PART))
    edges = [n_rows * k // count for k in range(count + 1)]
    return list(zip(edges[:-1], edges[1:], strict=True))


def _progress_bar(total: int, description: str):  # noqa: ANN202 - tqdm's type is optional
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=description, unit="row", leave=False)
