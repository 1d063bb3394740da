"""Shared machinery of the framework benchmarks: workers, timing, memory, agreement.

Each (framework, model) pair runs in a fresh worker process (``python -m
tests.benchmarks._harness ARGS``) that builds every contender once, warms each up, checks
that the maps agree, then times them round-robin: round r runs every contender once, in
an order rotated by r, so that load from other processes on a shared machine falls on all
of them alike. Results go to a JSON file that the front ends (``bench_adapters``,
``bench_peers``) turn into tables.

Memory is the peak resident set size of the worker during one run minus its resident set
size just before that run (after ``gc.collect()`` and glibc's ``malloc_trim(0)``, which
returns freed heap pages, and a reset of the kernel's high-water mark through
``/proc/self/clear_refs``): what one SmoothGrad call needs beyond the model, the framework
and its caches. It is measured in the last timed round (and in the agreement runs), so it
costs no extra run.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import os
import platform
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

MIB = 1024 * 1024


# ---------------------------------------------------------------------------- memory


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not found in /proc/self/status")


def _malloc_trim() -> None:
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: nothing to return
        pass


class PeakMemory:
    """``with PeakMemory() as peak: ...`` then ``peak.extra_mib``: peak RSS minus RSS before."""

    def __enter__(self) -> PeakMemory:
        gc.collect()
        _malloc_trim()
        try:
            with open("/proc/self/clear_refs", "w") as clear:
                clear.write("5")  # reset VmHWM to the current VmRSS
            self.supported = True
        except OSError:
            self.supported = False
        self.before_kib = _status_kib("VmRSS")
        return self

    def __exit__(self, *exc: object) -> None:
        self.peak_kib = _status_kib("VmHWM")

    @property
    def extra_mib(self) -> float | None:
        if not self.supported:
            return None
        return (self.peak_kib - self.before_kib) * 1024 / MIB


# ---------------------------------------------------------------------------- maps


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    """The smallest per-image Pearson correlation of two map batches."""
    values = []
    for left, right in zip(a, b, strict=True):
        left = left.ravel().astype(np.float64)
        right = right.ravel().astype(np.float64)
        values.append(float(np.corrcoef(left, right)[0, 1]))
    return min(values)


def relative_difference(a: np.ndarray, b: np.ndarray) -> float:
    """``max |a - b| / max |b|``."""
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-30))


# ---------------------------------------------------------------------------- worker


#: CPU seconds per wall second of the last timed run (about the number of busy threads).
LAST_CPU_USE = [0.0]


def _timed(run: Any, n_samples: int, seed: int) -> tuple[float, np.ndarray]:
    cpu = os.times()
    start = time.perf_counter()
    maps = run(n_samples, seed)
    wall = time.perf_counter() - start
    used = os.times()
    LAST_CPU_USE[0] = (used.user + used.system - cpu.user - cpu.system) / max(wall, 1e-9)
    return wall, maps


def compare(args: argparse.Namespace, report: dict[str, Any], save: Any) -> None:
    """Warm up, check agreement, time round-robin, measure memory; fill ``report``."""
    from tests.benchmarks import contenders as C
    from tests.benchmarks import models

    setup = C.Setup(models.SPECS[args.model], args.n_images, args.batch_size)
    keys = set(args.keys) - set(args.skip)
    report["status"] = "building"
    save()
    built = C.factories[args.framework](setup, keys)
    entries: dict[str, dict[str, Any]] = {}
    for contender in built:
        entries[contender.key] = {
            "name": contender.name,
            "rows_per_call": contender.rows_per_call,
            "noise": contender.noise,
            "note": contender.note,
            "times": [],
            "memory_mib": None,
        }
    report["contenders"] = entries
    live = list(built)

    def attempt(contender: Any, stage: str, action: Any) -> Any:
        report["current"] = f"{contender.key}:{stage}"
        save()
        try:
            return action()
        except Exception as error:  # noqa: BLE001 - a peer failing is a result
            entries[contender.key]["error"] = f"{stage}: {type(error).__name__}: {error}"
            entries[contender.key]["traceback"] = traceback.format_exc(limit=6)
            live.remove(contender)
            return None

    # warm-up (compilation, tracing, first-touch allocations), seed 0, maps kept
    warm_maps: dict[str, np.ndarray] = {}
    for contender in list(live):
        result = attempt(contender, "warm-up", lambda c=contender: _timed(c.run, args.n_samples, 0))
        if result is not None:
            entries[contender.key]["warmup_s"] = result[0]
            warm_maps[contender.key] = result[1]

    # fairness: the numpy-noise native loops draw the toolkit's noise, so maps are equal
    for contender in live:
        twin = contender.exact_twin_of
        if twin and twin in warm_maps and contender.key in warm_maps:
            difference = relative_difference(warm_maps[contender.key], warm_maps[twin])
            entries[contender.key]["exact_difference"] = difference
            if difference > contender.twin_tolerance:
                report["unfair"] = (
                    f"{contender.name} differs from {twin} by {difference:.2e} "
                    "(relative) for the same noise"
                )

    # timed rounds; seed = round, so two toolkit maps of different seeds exist
    last_maps: dict[str, dict[int, np.ndarray]] = {c.key: {} for c in live}
    for r in range(args.repeats):
        order = live[r % len(live) :] + live[: r % len(live)] if live else []
        measure_memory = r == args.repeats - 1
        for contender in order:
            if contender not in live:
                continue
            peak = PeakMemory() if measure_memory else None

            def run(
                c: Any = contender, p: PeakMemory | None = peak, seed: int = r
            ) -> tuple[float, np.ndarray]:
                if p is None:
                    return _timed(c.run, args.n_samples, seed)
                with p:
                    return _timed(c.run, args.n_samples, seed)

            result = attempt(contender, f"round {r}", run)
            if result is None:
                continue
            entries[contender.key]["times"].append(result[0])
            entries[contender.key].setdefault("cpu_use", []).append(LAST_CPU_USE[0])
            if r < 2:
                last_maps[contender.key][r] = result[1]
            if peak is not None:
                entries[contender.key]["memory_mib"] = peak.extra_mib
        report["rounds_done"] = r + 1
        save()

    # per-round ratios toolkit / contender: neighbours in time share the outside load
    toolkit_times = entries.get("toolkit", {}).get("times", [])
    for entry in entries.values():
        if len(entry["times"]) == len(toolkit_times) and toolkit_times:
            entry["paired_ratios"] = [
                t / c for t, c in zip(toolkit_times, entry["times"], strict=True)
            ]

    # agreement at n_samples (timed maps) with the toolkit's map of the same round
    toolkit = last_maps.get("toolkit", {})
    if 0 in toolkit and 1 in toolkit:
        report["toolkit_self_correlation"] = pearson(toolkit[0], toolkit[1])
    for key, maps in last_maps.items():
        if key != "toolkit" and 0 in maps and 0 in toolkit:
            entries[key]["correlation"] = pearson(maps[0], toolkit[0])

    # agreement at corr_samples (e.g. 500), one run each, memory recorded too
    if args.corr_samples:
        corr_maps: dict[str, np.ndarray] = {}
        # exact twins were compared map for map already; a long run of them adds nothing
        for contender in [c for c in live if not c.exact_twin_of]:
            peak = PeakMemory()

            def run_corr(c: Any = contender, p: PeakMemory = peak) -> tuple[float, np.ndarray]:
                with p:
                    return _timed(c.run, args.corr_samples, 1000)

            result = attempt(contender, f"n_samples={args.corr_samples}", run_corr)
            if result is None:
                continue
            corr_maps[contender.key] = result[1]
            entries[contender.key]["corr_run_s"] = result[0]
            entries[contender.key]["corr_memory_mib"] = peak.extra_mib
            save()
        if "toolkit" in corr_maps:
            reference = corr_maps["toolkit"]
            for key, maps in corr_maps.items():
                if key != "toolkit":
                    entries[key]["corr_correlation"] = pearson(maps, reference)
            # the toolkit against itself with other noise: what independent runs can reach
            toolkit_contender = next(c for c in live if c.key == "toolkit")
            _, other = _timed(toolkit_contender.run, args.corr_samples, 2000)
            report["toolkit_self_corr_correlation"] = pearson(other, reference)
    report["current"] = None
    report["status"] = "done"


def scaling(args: argparse.Namespace, report: dict[str, Any], save: Any) -> None:
    """The toolkit's time and memory against n_samples and against batch_size."""
    from tests.benchmarks import contenders as C
    from tests.benchmarks import models

    rows = []
    report["scaling"] = rows
    spec = models.SPECS[args.model]
    configs = [(n, args.batch_size) for n in args.n_list]
    configs += [(args.batch_n_samples, b) for b in args.batch_list if b != args.batch_size]
    built: dict[int, Any] = {}
    for n_samples, batch in configs:
        if batch not in built:
            setup = C.Setup(spec, args.n_images, batch)
            built[batch] = C.factories[args.framework](setup, {"toolkit"})[0]
            built[batch].run(max(batch, 2), 0)  # warm-up: compile this chunk shape
        toolkit = built[batch]
        times, cpu_use = [], []
        for r in range(args.repeats):
            times.append(_timed(toolkit.run, n_samples, r)[0])
            cpu_use.append(LAST_CPU_USE[0])
        peak = PeakMemory()
        with peak:
            _timed(toolkit.run, n_samples, args.repeats)
        rows.append(
            {
                "n_samples": n_samples,
                "batch_size": batch,
                "median_s": float(np.median(times)),
                "times": times,
                "cpu_use": cpu_use,
                "memory_mib": peak.extra_mib,
            }
        )
        save()
    report["status"] = "done"


def limit_threads(threads: int) -> None:
    """Make every framework use ``threads`` threads (0: leave their defaults).

    Call before the framework is imported. On a machine shared with other jobs, two
    threads on two busy cores wait for each other at every parallel region (PyTorch's
    OpenMP regions slowed down 4-20x here when one core was taken), so one thread per
    worker gives stable, comparable timings.
    """
    if threads <= 0:
        return
    for name in (
        "OMP_NUM_THREADS",
        "MKL_NUM_THREADS",
        "OPENBLAS_NUM_THREADS",
        "TF_NUM_INTRAOP_THREADS",
        "TF_NUM_INTEROP_THREADS",
    ):
        os.environ[name] = str(threads)
    flags = os.environ.get("XLA_FLAGS", "")
    os.environ["XLA_FLAGS"] = (
        f"{flags} --xla_cpu_multi_thread_eigen={'false' if threads == 1 else 'true'} "
        f"intra_op_parallelism_threads={threads}"
    ).strip()


def apply_thread_limit(framework: str, threads: int) -> None:
    """The framework's own thread settings (after import, before the first operation)."""
    if threads <= 0:
        return
    if framework == "torch":
        import torch

        torch.set_num_threads(threads)
        torch.set_num_interop_threads(threads)
    elif framework == "tensorflow":
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)


def worker_main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="one benchmark worker (internal)")
    parser.add_argument(
        "--threads", type=int, default=1, help="threads per framework (0: the framework's default)"
    )
    parser.add_argument("task", choices=["compare", "scaling"])
    parser.add_argument("--framework", required=True, choices=["torch", "tensorflow", "jax"])
    parser.add_argument("--model", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--n-images", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=50)
    parser.add_argument("--n-samples", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--corr-samples", type=int, default=0)
    parser.add_argument("--keys", nargs="+", default=[])
    parser.add_argument("--skip", nargs="*", default=[])
    parser.add_argument("--n-list", type=int, nargs="*", default=[])
    parser.add_argument("--batch-list", type=int, nargs="*", default=[])
    parser.add_argument("--batch-n-samples", type=int, default=100)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args(argv)
    limit_threads(args.threads)
    apply_thread_limit(args.framework, args.threads)

    report: dict[str, Any] = {
        "framework": args.framework,
        "model": args.model,
        "args": vars(args),
        "status": "starting",
    }
    out = Path(args.out)

    def save() -> None:
        tmp = out.with_suffix(".tmp")
        tmp.write_text(json.dumps(report, indent=1, default=float))
        tmp.replace(out)

    save()
    {"compare": compare, "scaling": scaling}[args.task](args, report, save)
    if args.profile:
        profile_toolkit(args, report)
    save()


# ---------------------------------------------------------------------------- profile

#: Functions whose cumulative time explains where a toolkit run goes, by framework.
PROFILE_ROWS = {
    "common": [
        ("smoothgrad", "saliency_core/smoothing.py", "smoothgrad"),
        (
            "noise: make_rows (numpy Generator + scale/shift)",
            "saliency_core/smoothing.py",
            "make_rows",
        ),
        ("check_callback_output (isfinite)", "saliency_core/_checks.py", "check_callback_output"),
        ("RunningStatistic.add (float64 sums)", "saliency_core/_streaming.py", "add"),
    ],
    "torch": [
        ("adapter call", "adapters/torch.py", "gradients"),
        ("  numpy -> tensor (_to_tensor)", "adapters/torch.py", "_to_tensor"),
        ("  forward (nn.Module.__call__)", "torch/nn/modules/module.py", "_wrapped_call_impl"),
        ("  backward (torch.autograd.grad)", "torch/autograd/__init__.py", "grad"),
        ("  tensor -> numpy (_to_numpy)", "adapters/torch.py", "_to_numpy"),
    ],
    "tensorflow": [
        ("adapter call", "adapters/tensorflow.py", "gradients"),
        (
            "  numpy -> tensor (convert_to_eager_tensor)",
            "tensorflow/python/framework/constant_op.py",
            "convert_to_eager_tensor",
        ),
        (
            "  compiled forward+backward (TFE_Py_Execute)",
            "~",
            "<built-in method tensorflow.python._pywrap_tfe.TFE_Py_Execute>",
        ),
        ("  tensor -> numpy (.numpy())", "tensorflow/python/framework/ops.py", "numpy"),
    ],
    "jax": [
        ("adapter call", "adapters/jax.py", "gradients"),
        ("  padding (_pad_rows)", "adapters/jax.py", "_pad_rows"),
        (
            "  compiled call, waited for in np.asarray (dispatch is asynchronous)",
            "~",
            "<built-in method numpy.asarray>",
        ),
        ("  copy of the result (np.array)", "~", "<built-in method numpy.array>"),
    ],
}


def profile_toolkit(args: argparse.Namespace, report: dict[str, Any]) -> None:
    """cProfile one toolkit run and one native run; keep the cumulative times that matter."""
    import cProfile
    import pstats

    from tests.benchmarks import contenders as C
    from tests.benchmarks import models

    setup = C.Setup(models.SPECS[args.model], args.n_images, args.batch_size)
    built = {c.key: c for c in C.factories[args.framework](setup, {"toolkit", "native"})}
    for contender in built.values():
        contender.run(args.n_samples, 0)  # warm-up
    result: dict[str, Any] = {}
    for key, contender in built.items():
        profiler = cProfile.Profile()
        start = time.perf_counter()
        profiler.runcall(contender.run, args.n_samples, 1)
        result[f"{key}_s"] = time.perf_counter() - start
        if key != "toolkit":
            continue
        stats = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
        rows = []
        for label, path, function in PROFILE_ROWS["common"] + PROFILE_ROWS[args.framework]:
            total = 0.0
            for (filename, _, name), (_, _, _, cumulative, _) in stats.items():
                if name == function and (path == "~" or filename.endswith(path)):
                    total = max(total, cumulative)
            rows.append((label, total))
        result["toolkit_rows"] = rows
        hot = sorted(stats.items(), key=lambda item: -item[1][2])[:12]  # by own time
        result["toolkit_top_own_time"] = [
            (f"{Path(f).name}:{line}({name})", own) for (f, line, name), (_, _, own, _, _) in hot
        ]
    result["noise_ms"] = noise_costs(args.framework, setup)
    result["per_call_us"] = per_call_costs(args.framework)
    report["profile"] = result


def per_call_costs(framework: str, calls: int = 1000) -> dict[str, float]:
    """Microseconds per model call on a tiny linear model, where fixed costs dominate.

    ``toolkit``: ``smoothgrad(..., batch_size=1)`` (core + adapter per chunk); ``adapter``:
    the adapter's callback alone; ``minimal``: the smallest hand-written callback (numpy in,
    gradient of the target score, numpy out), as one would pass to PAIR.
    """
    x = np.random.default_rng(0).uniform(size=(1, 12)).astype(np.float32)
    target = np.array([1])
    if framework == "torch":
        import torch

        from adapters import torch as adapter

        model = torch.nn.Linear(12, 2).eval()
        grad_fn = adapter.gradient_fn(model)

        def minimal(batch: np.ndarray) -> np.ndarray:
            inputs = torch.from_numpy(batch).requires_grad_(True)
            (grad,) = torch.autograd.grad(model(inputs)[:, 1].sum(), inputs)
            return grad.numpy()

    elif framework == "tensorflow":
        import keras
        import tensorflow as tf

        from adapters import tensorflow as adapter

        inputs = keras.Input((12,))
        model = keras.Model(inputs, keras.layers.Dense(2)(inputs))
        grad_fn = adapter.gradient_fn(model)

        @tf.function(input_signature=[tf.TensorSpec((None, 12), tf.float32)])
        def tape(batch: Any) -> Any:
            with tf.GradientTape() as g:
                g.watch(batch)
                score = tf.reduce_sum(model(batch, training=False)[:, 1])
            return g.gradient(score, batch)

        def minimal(batch: np.ndarray) -> np.ndarray:
            return tape(batch).numpy()

    else:
        import jax

        from adapters import jax as adapter

        params = {"w": jax.numpy.ones((12, 2))}
        grad_fn = adapter.gradient_fn(_linear_apply, params=params)
        gradient = jax.jit(jax.grad(lambda p, b: (b @ p["w"])[:, 1].sum(), argnums=1))

        def minimal(batch: np.ndarray) -> np.ndarray:
            return np.asarray(gradient(params, batch))

    from saliency_core import smoothgrad

    runs = {
        "toolkit": lambda: smoothgrad(grad_fn, x, target, n_samples=calls, batch_size=1,
                                      noise="iid", seed=0),
        "adapter": lambda: [grad_fn(x, target) for _ in range(calls)],
        "minimal": lambda: [minimal(x) for _ in range(calls)],
    }
    costs = {}
    for name, run in runs.items():
        run()
        best = min(_timed(lambda n, s, r=run: r(), 0, 0)[0] for _ in range(5))
        costs[name] = 1e6 * best / calls
    return costs


def _linear_apply(params: Any, x: Any) -> Any:
    return x @ params["w"]


def noise_costs(framework: str, setup: Any, repeats: int = 21) -> dict[str, float]:
    """Milliseconds to make one chunk of noisy rows: numpy (the toolkit) and the framework.

    The toolkit draws float32 normals with numpy's Generator and scales and shifts them in
    place; a native loop does the same with the framework's generator, so the toolkit's
    extra cost for noise is the difference.
    """
    from tests.benchmarks import models

    x = setup.x[:1] if framework != "torch" else models.to_nchw(setup.x[:1])
    shape = (setup.batch_size, *x.shape[1:])
    sigma = np.float32(0.15)
    rng = np.random.default_rng(0)

    def numpy_noise() -> None:
        rows = rng.standard_normal(shape, dtype=np.float32)
        rows *= sigma
        rows += x[0]

    if framework == "torch":
        import torch

        image = torch.from_numpy(x[0])
        generator = torch.Generator().manual_seed(0)

        def native_noise() -> None:
            torch.randn(shape, generator=generator).mul_(0.15).add_(image)

    elif framework == "tensorflow":
        import tensorflow as tf

        image = tf.constant(x[0])
        tf_generator = tf.random.Generator.from_seed(0)
        make = tf.function(lambda: image[None] + 0.15 * tf_generator.normal(shape))

        def native_noise() -> None:
            make()

    else:
        import jax

        image = jax.numpy.asarray(x[0])
        make_jax = jax.jit(lambda key: image + 0.15 * jax.random.normal(key, shape))
        key = jax.random.key(0)

        def native_noise() -> None:
            make_jax(key).block_until_ready()

    costs = {}
    for name, make_noise in (("numpy", numpy_noise), ("native", native_noise)):
        make_noise()
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            make_noise()
            times.append(time.perf_counter() - start)
        costs[name] = 1000 * float(np.median(times))
    return costs


# ---------------------------------------------------------------------------- orchestration


#: glibc settings that keep freed memory for reuse instead of returning it to the kernel.
#: With the defaults, PyTorch's activations (and big numpy arrays) are mmap-ed and unmapped on
#: every call, so every run touches fresh pages again: about 700,000 page faults (2.7 GB)
#: per ResNet-18 run here, a quarter of its time, and the noisiest part of it on a shared
#: machine. These settings apply to every contender alike; ``malloc_trim(0)`` before a
#: memory measurement still returns the kept memory, so peaks are measured the same way.
KEEP_FREED_MEMORY = {
    "MALLOC_MMAP_THRESHOLD_": str(4 * 1024**3),
    "MALLOC_TRIM_THRESHOLD_": str(4 * 1024**3),
}


def worker_environment(malloc: str, framework: str) -> dict[str, str]:
    """The environment of a worker: ours, plus :data:`KEEP_FREED_MEMORY` when asked.

    ``malloc``: "torch" (PyTorch workers only: there it removes the page faults and most
    of the timing noise; TensorFlow gained 18% from it too but JAX lost about 9%, so the
    others keep glibc's defaults), "all", or "default" (none).
    """
    env = dict(os.environ)
    if malloc == "all" or (malloc == "torch" and framework == "torch"):
        env.update(KEEP_FREED_MEMORY)
    return env


def run_worker(
    python: str,
    task: str,
    options: list[str],
    out: Path,
    *,
    log: Any,
    env: dict[str, str] | None = None,
    timeout: float,
    retries: int = 2,
) -> dict[str, Any]:
    """Run a worker; if it dies (a peer crashing the process), retry without that peer."""
    skipped: list[str] = []
    crashed: dict[str, str] = {}
    for _ in range(retries + 1):
        command = [
            python,
            "-m",
            "tests.benchmarks._harness",
            task,
            "--out",
            str(out),
            *options,
            *(["--skip", *skipped] if skipped else []),
        ]
        start = time.perf_counter()
        try:
            completed = subprocess.run(
                command,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                timeout=timeout,
                cwd=_repository_root(),
                env=env,
            )
            code, output = completed.returncode, completed.stdout
        except subprocess.TimeoutExpired as expired:
            code, output = (
                "timeout",
                (expired.stdout or b"").decode(errors="replace")
                if isinstance(expired.stdout, bytes)
                else (expired.stdout or ""),
            )
        elapsed = time.perf_counter() - start
        report = json.loads(out.read_text()) if out.exists() else {}
        if code == 0 and report.get("status") == "done":
            report["elapsed_s"] = elapsed
            report.setdefault("crashed", {}).update(crashed)
            return report
        current = (report.get("current") or "").split(":")[0]
        tail = "\n".join(output.strip().splitlines()[-15:])
        log(f"worker {task} {' '.join(options)} ended with {code} during {current or '?'}:\n{tail}")
        if not current or current in skipped or current == "toolkit":
            report.setdefault("crashed", {}).update(crashed)
            report["failed"] = f"exit {code} during {report.get('current')}: {tail[-800:]}"
            return report
        crashed[current] = f"the process died (exit {code}) during {report.get('current')}"
        skipped.append(current)
    report["failed"] = "too many crashes"
    return report


def _repository_root() -> Path:
    return Path(__file__).resolve().parents[2]


def machine_description() -> dict[str, str]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = ""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                memory = f"{int(line.split()[1]) / MIB:.0f} GiB"
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cpus": str(len(os.sched_getaffinity(0))),
        "memory": memory,
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "load": " ".join(f"{value:.2f}" for value in os.getloadavg()),
    }


def package_versions(names: list[str]) -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for name in names:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "not installed"
    return found


if __name__ == "__main__":
    worker_main(sys.argv[1:])
