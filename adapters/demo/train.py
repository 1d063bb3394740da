"""Train the shipped demo network: ``python -m adapters.demo.train``.

Not run by ``make demo`` or the tests: the weights it wrote ship in the package. Rerun it
only to rebuild ``digits_cnn.npz`` and ``samples.npz`` (or, with ``--output-dir``, to
check that it reproduces them). Needs PyTorch and scikit-learn (a development
dependency); runs on the CPU, one thread, in about a minute.

What it does:

1. Data: scikit-learn's ``load_digits`` (1797 real handwritten 8x8 digits, shipped inside
   the scikit-learn wheel, so nothing is downloaded), prepared by
   :func:`adapters.demo.prepare_digits` (values / 16, bilinear upsampling to 28x28, NHWC).
2. Split: stratified, 20% held out, ``sklearn.model_selection.train_test_split`` with a
   fixed ``random_state`` (``--split-seed``). The held-out digits are never trained on.
3. Training: :class:`adapters.demo._torch.DigitsCNN` (He-normal kernels, zero biases),
   Adam with a cosine learning-rate schedule, cross-entropy, mini-batches of 32, 80
   epochs. Each training batch gets Gaussian input noise (standard deviation
   ``--noise-std``, 0.1 of the [0, 1] pixel range): the
   SmoothGrad paper (Smilkov et al. 2017, section 3.5) finds that training with noise
   gives sharper, less noisy sensitivity maps, and the noise also regularises.
4. Reproducible: ``torch.manual_seed``, a seeded ``torch.Generator`` for shuffling and
   noise, ``torch.use_deterministic_algorithms(True)`` and one thread. The same seeds,
   PyTorch version and CPU give the same files, byte for byte; another CPU or PyTorch
   version may differ by float rounding.
5. Output: ``digits_cnn.npz`` (float32 weights, HWIO kernels, plus a ``meta_json`` entry
   with the split, seeds, hyperparameters, versions and accuracies) and ``samples.npz``
   (the first two held-out digits of each class, with their indices in ``load_digits``).
   The reported accuracies are those of the saved float32 weights under
   :func:`adapters.demo.forward_numpy`, the reference forward pass.
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

__all__ = ["main", "train"]

_DEFAULT_OUTPUT = Path(__file__).resolve().parent


def train(
    *,
    epochs: int = 80,
    batch_size: int = 32,
    learning_rate: float = 3e-3,
    noise_std: float = 0.1,
    test_fraction: float = 0.2,
    split_seed: int = 0,
    train_seed: int = 0,
    samples_per_class: int = 2,
    verbose: bool = True,
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], dict[str, object]]:
    """Train the demo network and return what the package ships.

    Args:
        epochs: passes over the training digits.
        batch_size: digits per optimisation step.
        learning_rate: Adam's initial learning rate (cosine decay to 0 over all steps).
        noise_std: standard deviation of the Gaussian noise added to every training input
            (pixels are in [0, 1]); 0 trains without noise.
        test_fraction: fraction of the digits held out, stratified by class.
        split_seed: ``random_state`` of the held-out split.
        train_seed: seed of the initial weights, the shuffling and the noise.
        samples_per_class: held-out digits of each class to ship as samples.
        verbose: print the loss and accuracy as it goes.

    Returns:
        ``(weights, samples, metadata)``: float32 weights (HWIO), ``{"images", "labels",
        "indices"}`` of the sample digits, and the metadata stored in the weight file.
    """
    import sklearn
    import torch
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    from adapters.demo import _torch

    started = time.perf_counter()
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    torch.manual_seed(train_seed)
    generator = torch.Generator().manual_seed(train_seed)

    digits = load_digits()
    images = demo.prepare_digits(digits.images)
    labels = digits.target.astype(np.int64)
    indices = np.arange(len(labels))
    train_idx, test_idx = train_test_split(
        indices, test_size=test_fraction, stratify=labels, random_state=split_seed
    )

    x_train = torch.from_numpy(images[train_idx].transpose(0, 3, 1, 2).copy())
    y_train = torch.from_numpy(labels[train_idx])
    model = _torch.DigitsCNN()
    _initialise(model)
    optimizer = torch.optim.Adam(model.parameters(), lr=learning_rate)
    steps_per_epoch = math.ceil(len(train_idx) / batch_size)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, epochs * steps_per_epoch)
    loss_fn = torch.nn.CrossEntropyLoss()

    model.train()
    for epoch in range(epochs):
        order = torch.randperm(len(train_idx), generator=generator)
        total_loss = 0.0
        for start in range(0, len(order), batch_size):
            batch = order[start : start + batch_size]
            x = x_train[batch]
            if noise_std > 0:
                x = x + noise_std * torch.randn(x.shape, generator=generator)
            loss = loss_fn(model(x), y_train[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            total_loss += loss.item() * len(batch)
        if verbose:
            print(f"epoch {epoch + 1:2d}/{epochs}  loss {total_loss / len(order):.4f}")
    model.eval()
    train_seconds = time.perf_counter() - started

    weights = _torch.export_weights(model)
    train_accuracy = _accuracy(weights, images[train_idx], labels[train_idx])
    test_accuracy = _accuracy(weights, images[test_idx], labels[test_idx])

    sample_idx = _samples_per_class(test_idx, labels, samples_per_class)
    samples = {
        "images": images[sample_idx],
        "labels": labels[sample_idx],
        "indices": sample_idx.astype(np.int64),
    }
    metadata: dict[str, object] = {
        "dataset": "sklearn.datasets.load_digits (UCI optical recognition of handwritten digits)",
        "preprocessing": "values / 16, bilinear upsampling 8x8 -> 28x28 (half-pixel centres), "
        "NHWC float32 in [0, 1]; adapters.demo.prepare_digits",
        "n_train": int(len(train_idx)),
        "n_test": int(len(test_idx)),
        "test_fraction": test_fraction,
        "split": "sklearn.model_selection.train_test_split, stratified",
        "split_seed": split_seed,
        "train_seed": train_seed,
        "epochs": epochs,
        "batch_size": batch_size,
        "learning_rate": learning_rate,
        "optimizer": "Adam, cosine learning-rate decay",
        "noise_std": noise_std,
        "train_accuracy": train_accuracy,
        "test_accuracy": test_accuracy,
        "sample_indices": sample_idx.tolist(),
        "torch_version": torch.__version__,
        "sklearn_version": sklearn.__version__,
        "numpy_version": np.__version__,
        "python_version": platform.python_version(),
    }
    if verbose:
        print(f"trained in {train_seconds:.1f} s")
    return weights, samples, metadata


def save(
    weights: dict[str, np.ndarray],
    samples: dict[str, np.ndarray],
    metadata: dict[str, object],
    output_dir: Path,
) -> tuple[Path, Path]:
    """Write ``digits_cnn.npz`` and ``samples.npz`` into ``output_dir`` (compressed)."""
    output_dir.mkdir(parents=True, exist_ok=True)
    weights_path = output_dir / demo.WEIGHTS_FILE
    samples_path = output_dir / demo.SAMPLES_FILE
    weight_arrays: dict[str, Any] = {
        "meta_json": np.array(json.dumps(metadata, sort_keys=True)),
        **weights,
    }
    sample_arrays: dict[str, Any] = dict(samples)
    np.savez_compressed(weights_path, **weight_arrays)
    np.savez_compressed(samples_path, **sample_arrays)
    return weights_path, samples_path


def main(argv: list[str] | None = None) -> int:
    """Command line: train, save, and print the train and held-out accuracy."""
    parser = argparse.ArgumentParser(
        prog="python -m adapters.demo.train", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--epochs", type=int, default=80)
    parser.add_argument("--noise-std", type=float, default=0.1)
    parser.add_argument("--split-seed", type=int, default=0)
    parser.add_argument("--train-seed", type=int, default=0)
    parser.add_argument(
        "--output-dir",
        type=Path,
        default=_DEFAULT_OUTPUT,
        help="where to write the .npz files (default: the package folder, overwriting "
        "the shipped files)",
    )
    args = parser.parse_args(argv)
    weights, samples, metadata = train(
        epochs=args.epochs,
        noise_std=args.noise_std,
        split_seed=args.split_seed,
        train_seed=args.train_seed,
    )
    weights_path, samples_path = save(weights, samples, metadata, args.output_dir)
    print(
        f"train accuracy    {metadata['train_accuracy']:.4f} ({metadata['n_train']} digits)\n"
        f"held-out accuracy {metadata['test_accuracy']:.4f} ({metadata['n_test']} digits, "
        f"split seed {metadata['split_seed']})\n"
        f"wrote {weights_path} ({weights_path.stat().st_size / 1024:.1f} KB) and "
        f"{samples_path} ({samples_path.stat().st_size / 1024:.1f} KB)"
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
    predictions = demo.forward_numpy(weights, images).argmax(axis=1)
    return float(np.mean(predictions == labels))


def _samples_per_class(test_idx: np.ndarray, labels: np.ndarray, per_class: int) -> np.ndarray:
    """The first ``per_class`` held-out indices of each class, classes in order."""
    chosen = [test_idx[labels[test_idx] == digit][:per_class] for digit in range(10)]
    return np.concatenate(chosen)


if __name__ == "__main__":
    raise SystemExit(main())
