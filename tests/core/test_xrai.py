"""XRAI: regions ranked by attribution density, exactly; PAIR's XRAI as the reference."""

from __future__ import annotations

import sys
from functools import partial

import numpy as np
import pytest
from saliency.core import XRAI, XRAIParameters
from saliency.core.xrai import _get_segments_felzenszwalb

from saliency_core import integrated_gradients
from saliency_core.xrai import black_white_integrated_gradients, xrai


class Counting:
    """An attribution callback returning fixed maps, recording the rows of every call."""

    def __init__(self, maps):
        self.maps = np.asarray(maps, dtype=float)
        self.calls: list[int] = []
        self.seen = 0

    def __call__(self, x, target):
        self.calls.append(x.shape[0])
        start = self.seen % len(self.maps)  # from the first row again on the next call
        out = self.maps[start:start + len(x)]
        self.seen += len(x)
        return out


def strip(masks):
    return [np.asarray(m, dtype=bool) for m in masks]


def row_image(values):
    """A (1, 1, W) batch of one row image, and the fixed attribution callback for it."""
    return np.zeros((1, 1, len(values))), Counting(np.array(values, dtype=float)[None, None])


def pixels(*columns, width=6):
    mask = np.zeros((1, width), dtype=bool)
    mask[0, list(columns)] = True
    return mask


# --------------------------------------------------------------------------- closed forms


def test_disjoint_regions_get_their_densities_ranked_exactly():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 6, size=(12, 10))
    density = np.array([0.3, -1.0, 2.5, 0.0, 1.25, 0.7])
    # attributions whose mean over region l is density[l]: density plus zero-mean noise
    attribution = density[labels] + rng.standard_normal(labels.shape)
    for label in range(6):
        inside = labels == label
        attribution[inside] += density[label] - attribution[inside].mean()
    masks = [labels == label for label in range(6)]
    x = np.zeros((1, 12, 10))
    heat = xrai(lambda b, t: attribution[None], x, segments=[masks], channel_axis=None,
                min_pixel_diff=1)[0]
    np.testing.assert_allclose(heat, density[labels], rtol=1e-12, atol=1e-12)
    # the values rank the regions: the order of the densities, exactly
    order = np.argsort(-np.array([heat[labels == label][0] for label in range(6)]))
    np.testing.assert_array_equal(order, np.argsort(-density))


def test_full_ranks_by_the_density_of_what_each_segment_adds():
    # attributions 5 4 0 3 3 3; segments A = {0,1,2} (density 3), B = {2..5} (2.25),
    # C = {0,1} (4.5). Full: C first; then A would add {2} (0), B adds {2..5} (2.25): B;
    # A adds nothing more and is dropped.
    x, fn = row_image([5, 4, 0, 3, 3, 3])
    segments = [[pixels(0, 1, 2), pixels(2, 3, 4, 5), pixels(0, 1)]]
    heat = xrai(fn, x, segments=segments, channel_axis=None, min_pixel_diff=1)
    np.testing.assert_allclose(heat[0, 0], [4.5, 4.5, 2.25, 2.25, 2.25, 2.25])


def test_fast_sorts_once_by_each_segments_own_density():
    # fast: C (4.5), then A (3) adds {2} with density 0, then B (2.25) adds {3,4,5} (3)
    x, fn = row_image([5, 4, 0, 3, 3, 3])
    segments = [[pixels(0, 1, 2), pixels(2, 3, 4, 5), pixels(0, 1)]]
    heat = xrai(fn, x, segments=segments, channel_axis=None, min_pixel_diff=1,
                algorithm="fast")
    np.testing.assert_allclose(heat[0, 0], [4.5, 4.5, 0.0, 3.0, 3.0, 3.0])


def test_min_pixel_diff_drops_segments_that_add_too_little():
    # with min_pixel_diff=2, fast's A adds one pixel only and is skipped: B adds {2..5}
    x, fn = row_image([5, 4, 0, 3, 3, 3])
    segments = [[pixels(0, 1, 2), pixels(2, 3, 4, 5), pixels(0, 1)]]
    heat = xrai(fn, x, segments=segments, channel_axis=None, min_pixel_diff=2,
                algorithm="fast")
    np.testing.assert_allclose(heat[0, 0], [4.5, 4.5, 2.25, 2.25, 2.25, 2.25])
    # a segment smaller than min_pixel_diff is never taken: its pixels stay uncovered
    heat = xrai(fn, x, segments=[[pixels(0), pixels(1, 2, 3)]], channel_axis=None,
                min_pixel_diff=2)
    np.testing.assert_allclose(heat[0, 0], [11 / 3, 7 / 3, 7 / 3, 7 / 3, 11 / 3, 11 / 3])


def test_uncovered_pixels_get_their_mean_and_area_threshold_stops_early():
    x, fn = row_image([5, 4, 0, 3, 3, 1])
    # only {0, 1} is segmented: the rest is one region of its mean attribution
    heat = xrai(fn, x, segments=[[pixels(0, 1)]], channel_axis=None, min_pixel_diff=1)
    np.testing.assert_allclose(heat[0, 0], [4.5, 4.5, 7 / 4, 7 / 4, 7 / 4, 7 / 4])
    # once 2 of 6 pixels are covered (1/3 > 0.3), the growing stops
    segments = [[pixels(0, 1), pixels(3, 4), pixels(2, 5)]]
    heat = xrai(fn, x, segments=segments, channel_axis=None, min_pixel_diff=1,
                area_threshold=0.3)
    np.testing.assert_allclose(heat[0, 0], [4.5, 4.5, 7 / 4, 7 / 4, 7 / 4, 7 / 4])
    heat = xrai(fn, x, segments=segments, channel_axis=None, min_pixel_diff=1)
    np.testing.assert_allclose(heat[0, 0], [4.5, 4.5, 0.5, 3, 3, 0.5])


def test_equal_densities_go_to_the_first_segment():
    # {0,1} and {1,2} both have density 1; the first is taken, then {1,2} adds {2} (2)
    x, fn = row_image([2, 0, 2, -1, -1, -1])
    first = xrai(fn, x, segments=[[pixels(0, 1), pixels(1, 2)]], channel_axis=None,
                 min_pixel_diff=1)
    np.testing.assert_allclose(first[0, 0], [1, 1, 2, -1, -1, -1])
    second = xrai(fn, x, segments=[[pixels(1, 2), pixels(0, 1)]], channel_axis=None,
                  min_pixel_diff=1)
    np.testing.assert_allclose(second[0, 0], [2, 1, 1, -1, -1, -1])


def test_channels_are_reduced_by_their_maximum_in_any_layout():
    rng = np.random.default_rng(1)
    attribution = rng.standard_normal((2, 5, 6, 3))
    labels = rng.integers(0, 4, size=(5, 6))
    segments = [[labels == k for k in range(4)]] * 2
    x = rng.uniform(size=(2, 5, 6, 3))
    nhwc = xrai(lambda b, t: attribution[: len(b)], x, segments=segments, min_pixel_diff=1)
    nchw = xrai(lambda b, t: attribution[: len(b)].transpose(0, 3, 1, 2),
                x.transpose(0, 3, 1, 2), segments=segments, min_pixel_diff=1, channel_axis=1)
    reduced = xrai(lambda b, t: attribution[: len(b)].max(axis=-1), x, segments=segments,
                   min_pixel_diff=1)
    np.testing.assert_array_equal(nchw, nhwc)
    np.testing.assert_array_equal(reduced, nhwc)
    assert nhwc.shape == (2, 5, 6)


def test_each_input_uses_its_own_segments_and_batching_does_not_matter():
    rng = np.random.default_rng(2)
    attribution = rng.standard_normal((5, 8, 8, 1))
    segments = [[rng.integers(0, 3, size=(8, 8)) == k for k in range(3)] for _ in range(5)]
    results = []
    for batch_size in (1, 2, 64):
        fn = Counting(attribution)
        results.append(xrai(fn, np.zeros((5, 8, 8, 1)), segments=segments, min_pixel_diff=1,
                            batch_size=batch_size))
        assert max(fn.calls) <= batch_size and sum(fn.calls) == 5
    for other in results[1:]:
        np.testing.assert_array_equal(other, results[0])
    one = xrai(lambda b, t: attribution[3:4], np.zeros((1, 8, 8, 1)), segments=segments[3:4],
               min_pixel_diff=1)
    np.testing.assert_array_equal(one[0], results[0][3])


# --------------------------------------------------------------------------- PAIR


def _image(size, seed):
    rng = np.random.default_rng(seed)
    rows, columns = np.mgrid[:size, :size]
    return np.stack([
        np.sin(rows / 4) + 0.2 * rng.standard_normal((size, size)),
        np.cos(columns / 6) * np.sin(rows / 9),
        (rows + columns) / (2 * size),
    ], axis=-1)


@pytest.fixture(scope="module")
def pair_case():
    image = _image(40, 3)
    attribution = np.random.default_rng(4).standard_normal((40, 40, 3))
    return image, attribution, _get_segments_felzenszwalb(image)


def _pair(image, attribution, segments=None, **parameters):
    return XRAI().GetMask(image, None, base_attribution=attribution, segments=segments,
                          extra_parameters=XRAIParameters(**parameters))


@pytest.mark.parametrize("parameters", [
    {"algorithm": "full"},
    {"algorithm": "fast"},
    {"algorithm": "full", "area_threshold": 0.4},
], ids=["full", "fast", "full-area-0.4"])
def test_the_map_equals_pairs_on_the_same_attribution_and_segments(pair_case, parameters):
    image, attribution, segments = pair_case
    expected = _pair(image, attribution, strip(segments), **parameters)
    ours = xrai(lambda b, t: attribution[None], image[None], segments=[strip(segments)],
                **parameters)
    np.testing.assert_array_equal(ours[0], expected)


def test_min_pixel_diff_matches_pairs():
    image, attribution = _image(24, 5), np.random.default_rng(6).standard_normal((24, 24, 3))
    labels = np.random.default_rng(7).integers(0, 30, size=(24, 24))
    segments = [labels == k for k in range(30)] + [labels < 10, labels % 3 == 0]
    parameters = XRAIParameters(algorithm="full")
    parameters.experimental_params["min_pixel_diff"] = 5
    expected = XRAI().GetMask(image, None, base_attribution=attribution, segments=segments,
                              extra_parameters=parameters)
    ours = xrai(lambda b, t: attribution[None], image[None], segments=[segments],
                min_pixel_diff=5)
    np.testing.assert_array_equal(ours[0], expected)


@pytest.mark.slow
@pytest.mark.parametrize("algorithm", ["full", "fast"])
def test_the_default_segmentation_and_map_equal_pairs(pair_case, algorithm):
    image, attribution, _ = pair_case
    expected = _pair(image, attribution, algorithm=algorithm)
    ours = xrai(lambda b, t: attribution[None], image[None], algorithm=algorithm)
    np.testing.assert_array_equal(ours[0], expected)
    if algorithm == "fast":
        return
    # channels first: the same segments and map
    first = xrai(lambda b, t: attribution.transpose(2, 0, 1)[None],
                 image.transpose(2, 0, 1)[None], algorithm=algorithm, channel_axis=1)
    np.testing.assert_array_equal(first, ours)


def test_the_default_masks_are_pairs_masks(pair_case):
    from saliency_core.xrai import FELZENSZWALB_SCALES, _felzenszwalb_masks

    image, _, segments = pair_case
    ours = _felzenszwalb_masks(image, scales=FELZENSZWALB_SCALES, sigma=0.8, min_size=150,
                               dilation_radius=5, segmentation_size=(224, 224))
    # PAIR keeps the masks of labels that vanish when resized back (all False); we drop them
    theirs = [mask.reshape(-1) for mask in segments if mask.any()]
    assert len(ours) == len(theirs) > 6
    for a, b in zip(ours, theirs, strict=True):
        np.testing.assert_array_equal(a, b)


# --------------------------------------------------------------------------- base


def test_black_white_integrated_gradients_is_the_mean_of_two_integrated_gradients():
    rng = np.random.default_rng(8)
    x = rng.uniform(0.1, 0.9, size=(3, 4, 4, 2))
    a = rng.standard_normal((32, 32))
    a = a + a.T
    gradient = lambda b, t: (2 * b.reshape(len(b), -1) @ a).reshape(b.shape)  # noqa: E731
    low = x.reshape(3, -1).min(axis=1)[:, None, None, None]
    high = x.reshape(3, -1).max(axis=1)[:, None, None, None]
    expected = (integrated_gradients(gradient, x, baseline=low, steps=10)
                + integrated_gradients(gradient, x, baseline=high, steps=10)) / 2
    result = black_white_integrated_gradients(gradient, x, steps=10, batch_size=7)
    np.testing.assert_allclose(result, expected, rtol=1e-12, atol=1e-12)
    # completeness for each baseline: the sums are the mean of S(x) - S(baseline)
    score = lambda b: np.einsum("ki,ij,kj->k", b.reshape(len(b), -1), a,  # noqa: E731
                                b.reshape(len(b), -1))
    total = (2 * score(x) - score(np.broadcast_to(low, x.shape))
             - score(np.broadcast_to(high, x.shape))) / 2
    np.testing.assert_allclose(result.reshape(3, -1).sum(axis=1), total, rtol=1e-10)
    given = black_white_integrated_gradients(gradient, x, baselines=[0.0, 1.0], steps=10)
    expected = (integrated_gradients(gradient, x, baseline=0.0, steps=10)
                + integrated_gradients(gradient, x, baseline=1.0, steps=10)) / 2
    np.testing.assert_allclose(given, expected, rtol=1e-12)


def test_xrai_over_the_papers_base_attribution():
    x = np.random.default_rng(9).uniform(size=(2, 6, 6, 3))
    w = np.random.default_rng(10).standard_normal((6, 6, 3))
    gradient = lambda b, t: np.broadcast_to(w, b.shape)  # noqa: E731
    labels = np.arange(36).reshape(6, 6) // 12  # three bands of rows
    segments = [[labels == k for k in range(3)]] * 2
    heat = xrai(partial(black_white_integrated_gradients, gradient, steps=5), x,
                segments=segments, min_pixel_diff=1)
    # a linear score: IG = w * (x - baseline), the same for every step count
    low = x.reshape(2, -1).min(axis=1)[:, None, None, None]
    high = x.reshape(2, -1).max(axis=1)[:, None, None, None]
    base = (w * (x - low) + w * (x - high)).max(axis=-1) / 2
    for i in range(2):
        for k in range(3):
            np.testing.assert_allclose(heat[i][labels == k], base[i][labels == k].mean())


# --------------------------------------------------------------------------- checks

X = np.zeros((2, 4, 4, 3))
GOOD = [[np.ones((4, 4), dtype=bool)]] * 2

BAD = [
    ({"segments": GOOD[:1]}, ValueError, r"segments: expected one list .* got 1 lists"),
    ({"segments": "masks"}, TypeError, r"segments: expected one list"),
    ({"segments": [[np.ones((4, 4))]] * 2}, TypeError,
     r"segments\[0\]\[0\]: expected a boolean mask, got dtype float64"),
    ({"segments": [[np.ones((4, 5), dtype=bool)]] * 2}, ValueError,
     r"segments\[0\]\[0\]: expected a mask of the image's shape \(4, 4\), got shape \(4, 5\)"),
    ({"segments": [[], []]}, ValueError, r"segments\[0\]: expected at least one mask"),
    ({"segments": [np.ones((4, 4), dtype=bool)] * 2}, ValueError, r"wrap it in a list"),
    ({"segments": [[[[True] * 4] * 4]] * 2}, TypeError, r"expected a boolean numpy array"),
    ({"algorithm": "greedy"}, ValueError, r"algorithm: expected one of 'full', 'fast'"),
    ({"algorithm": "fast", "area_threshold": 0.5}, ValueError,
     r"area_threshold: the fast algorithm .* only 1.0"),
    ({"area_threshold": 1.5}, ValueError, r"area_threshold: expected a number in \[0, 1\]"),
    ({"min_pixel_diff": 0}, ValueError, r"min_pixel_diff: expected a positive integer"),
    ({"channel_axis": 0}, ValueError, r"channel_axis: expected a non-batch axis"),
    ({"channel_axis": None}, ValueError, r"x: expected a batch of images \(N, H, W\)"),
    ({"batch_size": 0}, ValueError, r"batch_size: expected a positive integer"),
    ({"segments": None, "scales": ()}, ValueError, r"scales: expected one or more"),
    ({"segments": None, "scales": (50, -1)}, ValueError, r"scales: expected a finite non-neg"),
    ({"segments": None, "sigma": -0.5}, ValueError, r"sigma: expected a finite non-negative"),
    ({"segments": None, "min_size": 2.5}, TypeError, r"min_size: expected an int >= 0"),
    ({"segments": None, "dilation_radius": -1}, ValueError,
     r"dilation_radius: expected an int >= 0"),
    ({"segments": None, "segmentation_size": 224}, TypeError,
     r"segmentation_size: expected None or a pair"),
]


@pytest.mark.parametrize(("options", "error", "message"), BAD,
                         ids=[str(i) for i in range(len(BAD))])
def test_bad_options_are_refused_before_any_call(options, error, message):
    fn = Counting(np.zeros((2, 4, 4, 3)))
    with pytest.raises(error, match=message):
        xrai(fn, X, **{"segments": GOOD, **options})
    assert fn.calls == []


@pytest.mark.parametrize(("x", "target", "error", "message"), [
    (np.zeros((2, 4, 4)), None, ValueError, r"x: expected a batch of images with channels"),
    (np.full((2, 4, 4, 3), np.inf), None, ValueError, r"x: expected finite values"),
    (X, np.array([0]), ValueError, r"target: expected one index per input"),
    (X, 1.0, TypeError, r"target: expected integer output indices"),
])
def test_bad_x_and_targets_are_refused_before_any_call(x, target, error, message):
    fn = Counting(np.zeros((2, 4, 4, 3)))
    with pytest.raises(error, match=message):
        xrai(fn, x, target, segments=GOOD)
    assert fn.calls == []


def test_maps_of_the_wrong_shape_are_refused():
    with pytest.raises(ValueError, match=r"fn call for rows 0..1: expected maps shaped like "
                                         r"the inputs \(4, 4, 3\) or like the image \(4, 4\)"):
        xrai(lambda b, t: np.zeros((len(b), 4, 3)), X, segments=GOOD)
    with pytest.raises(ValueError, match=r"expected finite values"):
        xrai(lambda b, t: np.full(b.shape, np.nan), X, segments=GOOD)


def test_black_white_checks_before_any_call():
    fn = Counting(np.zeros((2, 4, 4, 3)))
    for options, error, message in [
        ({"baselines": []}, ValueError, r"baselines: expected at least one baseline"),
        ({"baselines": 0.0}, TypeError, r"baselines: expected None or a list"),
        ({"baselines": [np.zeros(5)]}, ValueError, r"baseline: expected a number or an array"),
        ({"steps": 0}, ValueError, r"steps: expected a positive integer"),
        ({"batch_size": -1}, ValueError, r"batch_size: expected a positive integer"),
    ]:
        with pytest.raises(error, match=message):
            black_white_integrated_gradients(fn, X, **options)
    assert fn.calls == []


def test_without_scikit_image_the_default_segmentation_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "skimage.segmentation", None)
    fn = Counting(np.zeros((2, 4, 4, 3)))
    with pytest.raises(ImportError, match=r"^xrai: the default segmentation .* needs "
                                          r"scikit-image; .*saliency-toolkit\[xrai\]"):
        xrai(fn, X)
    assert fn.calls == []
    # given segments need no scikit-image
    assert xrai(fn, X, segments=GOOD).shape == (2, 4, 4)
