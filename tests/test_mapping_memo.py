"""map_weights memoises recent maps: same answer, read-only arrays, a new key for a new config."""

import numpy as np
import pytest

from imclib import CrossbarConfig
from imclib.mapping import _map_weights, map_weights


def test_memoised_map_equals_a_fresh_fit_and_is_read_only():
    weights = np.random.default_rng(0).normal(size=(12, 5))
    config = CrossbarConfig()
    first_targets, first_map = map_weights(weights, config)
    again_targets, again_map = map_weights(weights.copy(), config)
    assert again_targets is first_targets and again_map is first_map
    fresh_targets, fresh_map = _map_weights(weights, config)
    np.testing.assert_array_equal(first_targets, fresh_targets)
    np.testing.assert_array_equal(first_map.gain, fresh_map.gain)
    with pytest.raises(ValueError, match="read-only"):
        first_targets[0, 0] = 0


def test_memo_key_holds_the_weights_and_the_mapping_fields():
    weights = np.random.default_rng(1).normal(size=(12, 5))
    base_targets, _ = map_weights(weights, CrossbarConfig())
    changed = weights.copy()
    changed[0, 0] += 1.0
    assert map_weights(changed, CrossbarConfig())[0] is not base_targets
    differential, _ = map_weights(weights, CrossbarConfig(mapping="differential"))
    assert differential.shape == (12, 5, 2)
    naive, _ = map_weights(weights, CrossbarConfig(weight_map="naive"))
    assert naive is not base_targets


def test_training_quantizer_starts_from_the_calibrated_map_and_tracks_it():
    from imclib.mapping import quantize_weights
    from imclib.network import device_quantizer

    rng = np.random.default_rng(2)
    weights = rng.normal(size=(40, 6))
    config = CrossbarConfig()
    quantize = device_quantizer(config)
    np.testing.assert_allclose(quantize(0, weights), quantize_weights(weights, config), rtol=1e-12, atol=1e-12)
    moved = weights + 1e-3 * rng.normal(size=weights.shape)
    tracked, fresh = quantize(0, moved), quantize_weights(moved, config)
    error = lambda q: np.mean((moved - q) ** 2)  # noqa: E731
    assert error(tracked) <= 1.05 * error(fresh)
    naive = CrossbarConfig(weight_map="naive")
    np.testing.assert_array_equal(device_quantizer(naive)(0, weights), quantize_weights(weights, naive))


def test_memo_keeps_recent_maps_up_to_its_byte_budget(monkeypatch):
    import imclib.mapping as mapping

    monkeypatch.setattr(mapping, "_MAPS", mapping._memo.Recent(2 * 12 * 5 * 8, lambda result: result[0].nbytes))  # two maps' targets
    rng = np.random.default_rng(3)
    weights = [rng.normal(size=(12, 5)) for _ in range(3)]
    first = map_weights(weights[0], CrossbarConfig())[0]
    map_weights(weights[1], CrossbarConfig())
    assert map_weights(weights[0], CrossbarConfig())[0] is first  # kept, and now the most recent
    map_weights(weights[2], CrossbarConfig())  # evicts weights[1], the least recent
    assert len(mapping._MAPS) == 2 and map_weights(weights[0], CrossbarConfig())[0] is first
    monkeypatch.setattr(mapping._MAPS, "max_bytes", 0)  # only the latest map is kept
    map_weights(weights[1], CrossbarConfig())
    assert len(mapping._MAPS) == 1 and map_weights(weights[0], CrossbarConfig())[0] is not first
