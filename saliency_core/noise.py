"""Noise schemes for SmoothGrad: how the ``n`` standard normal draws of each input are made.

Every scheme gives each noise element a standard normal marginal, so SmoothGrad's
expectation (paper, eq. 3) is the same for all of them; they differ in how the ``n``
draws of one input depend on each other, and so in the Monte Carlo error of the map:

- ``"iid"``: independent draws, ``z_ij`` from ``Generator.standard_normal`` in row order
  (the toolkit's behaviour before schemes existed, kept bit for bit, and the fastest to
  make).
- ``"antithetic"``: pairs ``(z, -z)``: samples ``2t`` and ``2t + 1`` of an input are
  exact negatives (an odd ``n`` leaves the last sample unpaired). Every part of the map
  that is odd in the noise (the Hessian term of a gradient's Taylor expansion, above all)
  cancels exactly.
- ``"lhs"``: Latin hypercube per element: among a block of ``m`` samples of an input,
  each element's draws fall one in each of the ``m`` equal-probability strata of the
  normal distribution, ``z = Phi^-1((s + u) / m)`` with the strata ``s`` in a random
  order per element and ``u`` uniform within the stratum. This removes most of the error
  of the parts of the map that are additive in the noise elements. The default
  (:data:`DEFAULT_NOISE`).

Blocks: for ``"lhs"``, ``n`` samples are split into ``ceil(n / LHS_BLOCK)`` blocks of
nearly equal size (sizes differ by at most one, at most ``LHS_BLOCK`` samples), each a
Latin hypercube of its own. So ``n <= LHS_BLOCK`` gives one Latin hypercube of all ``n``
samples, and memory stays ``O(LHS_BLOCK x input)`` whatever ``n`` is (Latin hypercube
rows cost about five times iid ones to make: the inverse CDF). The block sizes depend on
``n`` only, never on ``batch_size``, and the blocks are drawn from the seed's stream in row
order, so the noise depends only on the seed, ``n_samples`` and the shape and float dtype
of ``x``, never on the framework behind the callback.

References:
    McKay, Beckman, Conover (1979). A comparison of three methods for selecting values
    of input variables in the analysis of output from a computer code. Technometrics 21.
    Hammersley, Morton (1956). A new Monte Carlo technique: antithetic variates.
    Proc. Cambridge Philos. Soc. 52. Wichura (1988). Algorithm AS 241: the percentage
    points of the normal distribution. Applied Statistics 37.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "DEFAULT_NOISE",
    "ELEMENT_SLICE",
    "LHS_BLOCK",
    "NOISE_SCHEMES",
    "NoiseStream",
    "block_count",
    "block_size",
    "block_sizes",
    "normal_quantile",
]

#: The noise schemes ``smoothgrad(..., noise=...)`` takes.
NOISE_SCHEMES = ("iid", "antithetic", "lhs")

#: SmoothGrad's default scheme: the one that measured best, and never worse than ``"iid"``
#: (``tests/benchmarks/RESULTS-noise.md``).
DEFAULT_NOISE = "lhs"

#: The most samples stratified together (one block); it never depends on ``batch_size``.
LHS_BLOCK = 128

#: Noise elements per slice while a Latin hypercube block is made (bounds temporaries).
ELEMENT_SLICE = 512

# Wichura's AS 241 (PPND16), coefficients in increasing powers; about 1e-16 relative error.
_CENTRAL_NUM = (3.3871328727963666080e0, 1.3314166789178437745e2, 1.9715909503065514427e3,
                1.3731693765509461125e4, 4.5921953931549871457e4, 6.7265770927008700853e4,
                3.3430575583588128105e4, 2.5090809287301226727e3)
_CENTRAL_DEN = (1.0, 4.2313330701600911252e1, 6.8718700749205790830e2, 5.3941960214247511077e3,
                2.1213794301586595867e4, 3.9307895800092710610e4, 2.8729085735721942674e4,
                5.2264952788528545610e3)
_NEAR_NUM = (1.42343711074968357734e0, 4.63033784615654529590e0, 5.76949722146069140550e0,
             3.64784832476320460504e0, 1.27045825245236838258e0, 2.41780725177450611770e-1,
             2.27238449892691845833e-2, 7.74545014278341407640e-4)
_NEAR_DEN = (1.0, 2.05319162663775882187e0, 1.67638483018380384940e0, 6.89767334985100004550e-1,
             1.48103976427480074590e-1, 1.51986665636164571966e-2, 5.47593808499534494600e-4,
             1.05075007164441684324e-9)
_TAIL_NUM = (6.65790464350110377720e0, 5.46378491116411436990e0, 1.78482653991729133580e0,
             2.96560571828504891230e-1, 2.65321895265761230930e-2, 1.24266094738807843860e-3,
             2.71155556874348757815e-5, 2.01033439929228813265e-7)
_TAIL_DEN = (1.0, 5.99832206555887937690e-1, 1.36929880922735805310e-1, 1.48753612908506148525e-2,
             7.86869131145613259100e-4, 1.84631831751005468180e-5, 1.42151175831644588870e-7,
             2.04426310338993978564e-15)


def _polynomial(coefficients: tuple[float, ...], r: np.ndarray) -> np.ndarray:
    result = np.full_like(r, coefficients[-1])
    for c in coefficients[-2::-1]:
        result *= r
        result += c
    return result


def normal_quantile(p: np.ndarray) -> np.ndarray:
    """The standard normal quantile ``Phi^-1(p)`` for ``0 < p < 1``, in float64.

    Wichura's algorithm AS 241 (relative error about 1e-16); numpy has no inverse normal
    CDF, and the core imports numpy only.

    Examples:
        >>> normal_quantile(np.array([0.5, 0.975, 0.025])).round(6)
        array([ 0.      ,  1.959964, -1.959964])
    """
    p = np.asarray(p, dtype=np.float64)
    q = p - 0.5
    # the central formula everywhere (no gather: most points are central), then the tails
    r = 0.180625 - q * q
    result = _polynomial(_CENTRAL_NUM, r)
    result /= _polynomial(_CENTRAL_DEN, r)
    result *= q
    outer = np.flatnonzero(np.abs(q) > 0.425)
    if outer.size:
        qo, po = q.flat[outer], p.flat[outer]
        r = np.sqrt(-np.log(np.where(qo < 0, po, 1.0 - po)))
        value = np.empty_like(r)
        near = r <= 5.0
        rn = r[near] - 1.6
        value[near] = _polynomial(_NEAR_NUM, rn) / _polynomial(_NEAR_DEN, rn)
        rt = r[~near] - 5.0
        value[~near] = _polynomial(_TAIL_NUM, rt) / _polynomial(_TAIL_DEN, rt)
        result.flat[outer] = np.where(qo < 0, -value, value)
    return result


def block_sizes(scheme: str, n_samples: int) -> list[int]:
    """The sizes of the blocks of samples ``scheme`` draws together, for ``n_samples``.

    ``"iid"``: one row at a time; ``"antithetic"``: pairs (and a last single for odd
    ``n_samples``); ``"lhs"``: ``ceil(n / LHS_BLOCK)`` nearly equal blocks.

    Examples:
        >>> block_sizes("antithetic", 5)
        [2, 2, 1]
        >>> block_sizes("lhs", 300)
        [100, 100, 100]
        >>> block_sizes("lhs", 129)
        [65, 64]
    """
    return [block_size(scheme, n_samples, k) for k in range(block_count(scheme, n_samples))]


def block_count(scheme: str, n_samples: int) -> int:
    """How many blocks :func:`block_sizes` has, computed without listing them."""
    if scheme == "iid":
        return n_samples
    if scheme == "antithetic":
        return -(-n_samples // 2)
    return -(-n_samples // LHS_BLOCK)


def block_size(scheme: str, n_samples: int, index: int) -> int:
    """The size of block ``index`` of :func:`block_sizes`, in O(1) whatever ``n_samples``."""
    if scheme == "iid":
        return 1
    if scheme == "antithetic":
        return 2 if index < n_samples // 2 else 1
    base, extra = divmod(n_samples, block_count(scheme, n_samples))
    return base + (index < extra)


class NoiseStream:
    """The standard normal noise of one SmoothGrad run, handed out in row order.

    ``fill(out, first)`` writes samples ``first .. first + len(out) - 1`` of the current
    input into ``out``; calls come in row order (all samples of input 0, then of input 1,
    ...), and ``first == 0`` starts a new input. Only the current block is kept.
    """

    def __init__(self, scheme: str, rng: np.random.Generator, n_samples: int,
                 shape: tuple[int, ...], dtype: type) -> None:
        self.scheme = scheme
        self.rng = rng
        self.shape = shape
        self.dtype = dtype
        self.n_samples = n_samples
        self.block_index = -1
        self.block_start = 0
        self.block: np.ndarray | None = None

    def fill(self, out: np.ndarray, first: int) -> None:
        if self.scheme == "iid":
            out[...] = self.rng.standard_normal(out.shape, dtype=self.dtype)
            return
        if first == 0:
            self.block_index, self.block_start, self.block = -1, 0, None
        done = 0
        while done < len(out):
            sample = first + done
            if self.block is None or sample >= self.block_start + len(self.block):
                self.block_start += 0 if self.block is None else len(self.block)
                self.block_index += 1
                self.block = None  # let the last block go before the next is made
                self.block = self._draw(block_size(self.scheme, self.n_samples,
                                                   self.block_index))
            offset = sample - self.block_start
            take = min(len(out) - done, len(self.block) - offset)
            out[done:done + take] = self.block[offset:offset + take]
            done += take

    def _draw(self, size: int) -> np.ndarray:
        rng, shape = self.rng, self.shape
        if self.scheme == "antithetic":
            z = rng.standard_normal((1, *shape), dtype=self.dtype)
            return z if size == 1 else np.concatenate([z, -z])
        # Latin hypercube blocks, made ELEMENT_SLICE elements at a time so that the float64
        # temporaries stay small next to the block itself
        n_elements = int(np.prod(shape))
        block: np.ndarray = np.empty((size, n_elements), dtype=self.dtype)
        for start in range(0, n_elements, ELEMENT_SLICE):
            stop = min(start + ELEMENT_SLICE, n_elements)
            block[:, start:stop] = _lhs_slice(rng, size, stop - start).T
        return block.reshape((size, *shape))


def _lhs_slice(rng: np.random.Generator, size: int, n_elements: int) -> np.ndarray:
    """``(n_elements, size)`` draws: each element's ``size`` strata in a random order."""
    strata = np.tile(np.arange(size, dtype=np.float64), (n_elements, 1))
    rng.permuted(strata, axis=1, out=strata)
    return _quantiles(strata, rng.random((n_elements, size)), size)


def _quantiles(strata: np.ndarray, uniform: np.ndarray, size: int) -> np.ndarray:
    """``Phi^-1((strata + uniform) / size)``, kept inside (0, 1) against rounding."""
    p = strata + uniform
    p /= size
    np.clip(p, 2.0**-60, 1.0 - 2.0**-53, out=p)
    return normal_quantile(p)
