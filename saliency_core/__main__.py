"""``python -m saliency_core``: SmoothGrad on a numpy model with a known answer.

For ``S(x) = x^T A x`` the gradient is ``2 A x`` and, under Gaussian noise, SmoothGrad's
mean stays ``2 A x`` while SmoothGrad-squared gains ``4 sigma^2 sum_j A_ij^2``. This prints
both next to their closed forms, which is the whole contract of the core in a few lines.
"""

from __future__ import annotations

import numpy as np

from . import noise_sigma, smoothgrad


def main() -> None:
    rng = np.random.default_rng(0)
    a = rng.standard_normal((4, 4))
    a = (a + a.T) / 2
    x = rng.uniform(0, 1, size=(1, 4))

    def gradient(batch: np.ndarray, target: np.ndarray | None) -> np.ndarray:
        return 2 * batch @ a  # d/dx of x^T A x, row by row (A symmetric)

    sigma = noise_sigma(x, 0.15)[0]
    np.set_printoptions(precision=4, suppress=True)
    print(f"S(x) = x^T A x, x = {x[0]}, sigma = 15% of x's range = {sigma:.4f}")
    print(f"gradient 2Ax                      {(2 * x @ a)[0]}")
    mean = smoothgrad(gradient, x, n_samples=2000, seed=0)
    print(f"SmoothGrad, n=2000                {mean[0]}")
    square = smoothgrad(gradient, x, n_samples=2000, aggregate="square", seed=0)
    expected = (2 * x @ a) ** 2 + 4 * sigma**2 * (a**2).sum(axis=1)
    print(f"SmoothGrad-squared, n=2000        {square[0]}")
    print(f"(2Ax)^2 + 4 sigma^2 sum_j A_ij^2  {expected[0]}")


if __name__ == "__main__":
    main()
