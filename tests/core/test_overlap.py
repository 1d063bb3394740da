"""Noise made in background threads while the callback runs (``noise_threads``).

The reference of every comparison is ``noise_threads=0``: no thread, each chunk made just
before its call, the loop the toolkit has always run. Most tests lower ``MIN_PART`` (the
smallest chunk worth a thread) so that small inputs take the threaded path, and check that
they did.
"""

from __future__ import annotations

import threading
import time
import weakref

import numpy as np
import pytest

from saliency_core import AGGREGATES, NOISE_SCHEMES, _streaming, smoothgrad
from saliency_core._streaming import RunningStatistic, segments, stream_rows
from tests.core import callbacks

POOL_PREFIX = "saliency-rows"


def pool_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith(POOL_PREFIX)]


class Recording:
    """An identity-like callback that keeps every row it gets and notes the pool's threads."""

    def __init__(self):
        self.rows: list[np.ndarray] = []
        self.threads_seen = 0
        self.caller = set()

    def __call__(self, x, target):
        self.rows.append(x.copy())
        self.threads_seen = max(self.threads_seen, len(pool_threads()))
        self.caller.add(threading.get_ident())
        return np.sin(x) * x

    def all_rows(self) -> np.ndarray:
        return np.concatenate(self.rows)


@pytest.fixture
def small_parts(monkeypatch):
    """Chunks of any size go to the threads, and are split down to one row per part."""
    monkeypatch.setattr(_streaming, "MIN_PART", 1)


def run(x, threads, **options):
    recording = Recording()
    result = smoothgrad(recording, x, noise_threads=threads, **options)
    return result, recording


# --- the same results ----------------------------------------------------------------------


@pytest.mark.parametrize("noise", NOISE_SCHEMES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_rows_and_maps_are_bit_identical_to_no_thread(small_parts, noise, dtype):
    # chunks straddle inputs and, for "lhs", blocks (131 samples: blocks of 66 and 65)
    x = np.random.default_rng(0).uniform(-1, 1, size=(2, 3, 2)).astype(dtype)
    n_samples = 131 if noise == "lhs" else 21
    cases = [(1, "mean")] + [(b, aggregate) for b in (7, 16) for aggregate in AGGREGATES]
    for batch_size, aggregate in cases:
        options = dict(n_samples=n_samples, noise=noise, aggregate=aggregate, batch_size=batch_size,
                       seed=3)
        reference, ref_rows = run(x, 0, **options)
        assert ref_rows.threads_seen == 0
        for threads in (1, 3) if aggregate == "mean" else (2,):
            result, rows = run(x, threads, **options)
            assert result.dtype == dtype
            np.testing.assert_array_equal(result, reference)
            np.testing.assert_array_equal(rows.all_rows(), ref_rows.all_rows())
            # the path under test was taken: the pool was alive during the calls
            assert 1 <= rows.threads_seen <= threads


@pytest.mark.parametrize("seed", [0, 12345])
def test_default_size_chunks_take_the_threads_and_match(seed):
    # 48x48x3 rows, 64 per chunk: 442,368 elements, above MIN_PART, split in 2 parts
    x = np.random.default_rng(1).uniform(size=(2, 48, 48, 3)).astype(np.float32)
    assert 64 * x[0].size >= 2 * _streaming.MIN_PART
    options = dict(n_samples=100, batch_size=64, seed=seed, noise_level=0.2)
    reference, _ = run(x, 0, **options)
    for threads in (1, 2):
        result, rows = run(x, threads, **options)
        np.testing.assert_array_equal(result, reference)
        assert rows.threads_seen >= 1
    default, rows = run(x, 1, **options)
    np.testing.assert_array_equal(smoothgrad(Recording(), x, **options), default)


def test_a_generator_seed_is_advanced_the_same(small_parts):
    x = np.random.default_rng(0).uniform(size=(3, 4))
    states = []
    for threads in (0, 1, 3):
        rng = np.random.default_rng(7)
        smoothgrad(callbacks.quadratic(np.eye(4)), x, n_samples=10, batch_size=4,
                   noise_threads=threads, seed=rng)
        states.append(rng.bit_generator.state)
    assert states[0] == states[1] == states[2]
    assert states[0] != np.random.default_rng(7).bit_generator.state


def test_calls_targets_and_caller_thread_are_unchanged(small_parts):
    seen = []

    def fn(x, target):
        seen.append((x.shape[0], target.tolist(), threading.get_ident()))
        return np.zeros_like(x)

    x = np.random.default_rng(0).uniform(size=(3, 2))
    smoothgrad(fn, x, np.array([4, 0, 9]), n_samples=3, batch_size=4, noise_threads=2, seed=0)
    assert [(n, t) for n, t, _ in seen] == [(4, [4, 4, 4, 0]), (4, [0, 0, 9, 9]), (1, [9])]
    assert {ident for _, _, ident in seen} == {threading.get_ident()}


def test_small_chunks_stay_in_the_callers_thread():
    # below MIN_PART a hand-over costs more than the rows: no thread is started
    recording = Recording()
    smoothgrad(recording, np.zeros((2, 5)), n_samples=40, batch_size=8, sigma=1.0, seed=0)
    assert recording.threads_seen == 0


# --- no thread left behind ---------------------------------------------------------------


class Stop(BaseException):
    """Not an Exception: as KeyboardInterrupt or SystemExit."""


def failing_at(call: int, error: BaseException):
    count = [0]

    def fn(x, target):
        count[0] += 1
        if count[0] == call:
            raise error
        time.sleep(0.001)  # let the next chunk be in the making
        return x.copy()

    return fn


@pytest.mark.parametrize("error", [ValueError("boom"), Stop("stop"), KeyboardInterrupt()])
@pytest.mark.parametrize("threads", [1, 3])
def test_an_error_in_the_callback_leaves_no_thread(small_parts, error, threads):
    before = threading.active_count()
    x = np.random.default_rng(0).uniform(size=(2, 6))
    with pytest.raises(type(error)):
        smoothgrad(failing_at(3, error), x, n_samples=20, batch_size=4, noise_threads=threads,
                   seed=0)
    assert threading.active_count() == before
    assert pool_threads() == []


def stream(make_rows, *, threads, finish_rows=None, fn=None, n_inputs=3, per_input=5,
           batch_size=2):
    statistic = RunningStatistic("mean", n_inputs)
    stream_rows(fn or (lambda b, t: b.copy()), make_rows, None, n_inputs=n_inputs,
                per_input=per_input, batch_size=batch_size, statistic=statistic,
                expected_trailing=None, threads=threads, finish_rows=finish_rows)
    return statistic.result()


def rows_of(inputs, samples, runs):
    return np.stack([inputs, samples], axis=1).astype(np.float64)


@pytest.mark.parametrize("error", [ValueError("bad rows"), Stop("stop"), KeyboardInterrupt()])
@pytest.mark.parametrize("where", ["make_rows", "finish_rows"])
def test_an_error_in_making_rows_reaches_the_caller_and_leaves_no_thread(small_parts, error,
                                                                         where):
    before = threading.active_count()
    made = []

    def make_rows(inputs, samples, runs):
        made.append(inputs[0])
        if where == "make_rows" and len(made) == 4:
            raise error
        return rows_of(inputs, samples, runs)

    def finish_rows(rows, runs):
        if where == "finish_rows" and rows[0, 0] == 2:
            raise error
        rows += 1

    with pytest.raises(type(error)):
        stream(make_rows, threads=3, finish_rows=finish_rows)
    assert 3 <= len(made) <= 6  # it stopped soon after the error
    assert threading.active_count() == before
    assert pool_threads() == []


# --- the design's promises ---------------------------------------------------------------


@pytest.mark.parametrize("threads", [0, 1, 2, 4])
def test_finished_rows_are_the_same_for_every_split(small_parts, threads):
    def finish_rows(rows, runs):
        for owner, start, stop in runs:
            rows[start:stop, 1] = rows[start:stop, 1] * 10 + owner

    result = stream(rows_of, threads=threads, finish_rows=finish_rows, batch_size=4)
    # input i's rows are (i, 10 s + i) for s = 0..4: the mean is (i, 20 + i)
    np.testing.assert_array_equal(result, [[0.0, 20.0], [1.0, 21.0], [2.0, 22.0]])


def test_make_rows_runs_in_row_order_one_call_at_a_time(small_parts):
    order, active, most = [], [0], [0]
    lock = threading.Lock()

    def make_rows(inputs, samples, runs):
        with lock:
            active[0] += 1
            most[0] = max(most[0], active[0])
        time.sleep(0.002)
        order.append(int(inputs[0] * 5 + samples[0]))
        with lock:
            active[0] -= 1
        return rows_of(inputs, samples, runs)

    stream(make_rows, threads=4, finish_rows=lambda rows, runs: None)
    assert order == list(range(0, 15, 2))
    assert most[0] == 1


def test_at_most_two_chunks_of_rows_are_alive(small_parts):
    alive, most = [0], [0]

    def released():
        alive[0] -= 1

    def make_rows(inputs, samples, runs):
        rows = rows_of(inputs, samples, runs)
        alive[0] += 1
        most[0] = max(most[0], alive[0])
        weakref.finalize(rows, released)
        return rows

    def slow(x, target):
        time.sleep(0.002)  # the next chunk is made meanwhile
        return x[:, :1].copy()

    stream(make_rows, threads=2, fn=slow, per_input=10)
    assert most[0] == 2  # the one the callback has and the next
    assert alive[0] == 0


def test_segments_of_a_part_index_the_part():
    # what a thread finishing rows 3..6 of a chunk gets, per_input 4
    assert segments(3, 7, 4) == [(0, 0, 1), (1, 1, 4)]


# --- the option ----------------------------------------------------------------------------


def refuses(x, target):
    raise AssertionError("the callback must not run on bad input")


@pytest.mark.parametrize(("value", "error", "match"), [
    (1.5, TypeError, "noise_threads: expected a non-negative integer, got 1.5"),
    (True, TypeError, "noise_threads: expected a non-negative integer, got True"),
    ("2", TypeError, "noise_threads: expected a non-negative integer, got '2'"),
    (-1, ValueError, "noise_threads: expected an integer from 0 to 64, got -1"),
    (65, ValueError, "noise_threads: expected an integer from 0 to 64, got 65"),
])
def test_bad_noise_threads(value, error, match):
    with pytest.raises(error, match=match):
        smoothgrad(refuses, np.zeros((1, 3)), noise_threads=value, seed=0)


def test_noise_threads_is_keyword_only():
    with pytest.raises(TypeError, match="positional"):
        smoothgrad(refuses, np.zeros((1, 3)), None, 5, 0.15, None, "mean", "iid", 64, 0,
                   False, 2)


def test_integrated_gradients_makes_its_path_points_in_the_background():
    # S(x) = sum(x**2) / 2 has the gradient x, so the attributions are x**2 / 2 exactly
    # (the midpoint rule is exact for a linear gradient); big chunks take the thread path
    import threading

    from saliency_core import integrated_gradients

    seen = []

    def gradient(rows, target):
        seen.append(any(t.name.startswith("saliency-rows") for t in threading.enumerate()))
        return rows.copy()

    x = np.random.default_rng(0).standard_normal((3, 64, 64, 1))
    attributions = integrated_gradients(gradient, x, steps=96, batch_size=64)
    np.testing.assert_allclose(attributions, x**2 / 2, rtol=1e-12, atol=1e-12)
    assert any(seen)  # the next chunk was being made while the callback ran
    assert not any(t.name.startswith("saliency-rows") for t in threading.enumerate())
