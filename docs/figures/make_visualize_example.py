"""Make docs/figures/visualize_example.png, a tour of the visualize package.

Uses numpy and visualize only, no model: a synthetic scene (a red ball and a blue square)
and a synthetic gradient for the class "ball" (signal on the ball, plus the
high-frequency noise and a few outlying values that make raw gradients hard to read).
The second row averages 50 noisy copies of that gradient, as SmoothGrad averages the
gradients of 50 noisy inputs, so the noise shrinks by a factor of about 7 (sqrt(50)).

Run from the repository root:

    python docs/figures/make_visualize_example.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

REPOSITORY = Path(__file__).resolve().parents[2]
if str(REPOSITORY) not in sys.path:  # run as a script from a checkout, not installed
    sys.path.insert(0, str(REPOSITORY))

import visualize  # noqa: E402

SIZE = 56
N_SAMPLES = 50


def make_scene(size: int = SIZE) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A float RGB image in [0, 1] and the masks of its two objects, ball and square."""
    rows, columns = np.mgrid[0:size, 0:size] / size
    image = np.stack([0.55 + 0.2 * rows, 0.7 + 0.1 * rows, 0.9 - 0.3 * rows], axis=-1)
    ball = (rows - 0.38) ** 2 + (columns - 0.32) ** 2 < 0.2**2
    square = (np.abs(rows - 0.68) < 0.16) & (np.abs(columns - 0.72) < 0.16)
    image[ball] = [0.85, 0.15, 0.1]
    image[square] = [0.15, 0.25, 0.8]
    shading = 1.0 - 0.35 * np.hypot(rows - 0.3, columns - 0.25)
    return image * shading[..., None], ball, square


def gradient_for(mask: np.ndarray, rng: np.random.Generator, *, n_samples: int) -> np.ndarray:
    """A signed synthetic gradient (H, W, 3) for one object, averaged over n_samples."""
    signal = np.where(mask, 1.0, 0.0)[..., None] * np.array([1.0, -0.4, 0.3])
    noise = rng.normal(scale=0.8, size=(n_samples, *signal.shape)).mean(axis=0)
    spikes = np.zeros_like(signal)
    spike_rows, spike_columns = rng.integers(0, mask.shape[0], size=(2, 6))
    spikes[spike_rows, spike_columns] = 25.0  # a few outlying values
    return signal + noise + spikes


def main(path: str | Path = REPOSITORY / "docs" / "figures" / "visualize_example.png") -> Path:
    rng = np.random.default_rng(0)
    image, ball, square = make_scene()
    titles = [
        "input",
        "|grad|, no cap",
        "|grad|, p99 cap",
        "diverging",
        "overlay",
        "grad x input",
        "ball vs square",
    ]
    rows = []
    for n_samples in (1, N_SAMPLES):
        ball_gradient = gradient_for(ball, rng, n_samples=n_samples)
        square_gradient = gradient_for(square, rng, n_samples=n_samples)
        capped = visualize.grayscale(ball_gradient)
        rows.append(
            [
                image,
                visualize.grayscale(ball_gradient, clip_percentile=100),
                capped,
                visualize.apply_colormap(visualize.diverging(ball_gradient), cmap="blue_grey_red"),
                visualize.overlay(image, capped, alpha=0.6, cmap="viridis"),
                visualize.grayscale(visualize.times_input(ball_gradient, image)),
                visualize.discriminativity(ball_gradient, square_gradient),
            ]
        )
    figure = visualize.grid(
        rows,
        titles=titles,
        row_labels=["raw gradient", f"mean of {N_SAMPLES}"],
        cell_size=2 * SIZE,  # whole-pixel enlargement keeps map pixels sharp
    )
    return visualize.save(figure, path)


if __name__ == "__main__":
    print(main())
