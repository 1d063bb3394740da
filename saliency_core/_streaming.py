"""Streaming rows through a callback in fixed-size chunks, keeping only running sums.

SmoothGrad and integrated gradients both evaluate a callback on ``n_inputs x per_input``
rows: row ``r`` belongs to input ``r // per_input`` and is the ``r % per_input``-th sample
(noise draw or path point) of that input. Rows are made chunk by chunk, at most
``batch_size`` at a time, and each chunk's results are folded into per-input running
statistics in float64, so memory is ``O(batch_size x input)`` whatever ``per_input`` is.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

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
) -> None:
    """Evaluate ``fn`` on every row, ``batch_size`` rows per call, into ``statistic``.

    Args:
        fn: the attribution callback ``fn(x, target)``.
        make_rows: ``make_rows(inputs, samples, runs) -> batch`` builds the rows of one
            chunk; ``inputs`` and ``samples`` are int arrays of the chunk's input and sample
            indices, ``runs`` its runs of rows per input (:func:`segments`).
            It is called in row order, which keeps random streams independent of
            ``batch_size``.
        targets: ``(n_inputs,)`` indices or None; each row gets its input's target.
        expected_trailing: the trailing shape ``fn`` must return, or None to accept the
            first call's and hold every later call to it.
    """
    total = n_inputs * per_input
    bar = _progress_bar(total, description) if progress else None
    try:
        for start, stop in chunk_bounds(total, batch_size):
            inputs, samples = np.divmod(np.arange(start, stop), per_input)
            runs = segments(start, stop, per_input)  # once per chunk, for rows and sums
            batch = make_rows(inputs, samples, runs)
            chunk_targets = None if targets is None else targets[inputs]
            output = call_chunk(fn, batch, chunk_targets, start=start, stop=stop,
                                expected_trailing=expected_trailing)
            expected_trailing = output.shape[1:]
            statistic.add(runs, output)
            if bar is not None:
                bar.update(stop - start)
    finally:
        if bar is not None:
            bar.close()


def _progress_bar(total: int, description: str):  # noqa: ANN202 - tqdm's type is optional
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=description, unit="row", leave=False)
