import os

import h5py
import keras
import numpy as np
import pytest

from kerasr.errors import KerasrError
from kerasr.weights import (
    REGISTRY,
    cache_path,
    is_cached,
    kerasr_home,
    list_models,
    load_model,
    weights_digest,
)

NAME = "realesrgan-x4plus-anime"  # 6 blocks: the cheaper of the two to convert


def test_cache_lives_under_kerasr_home():
    assert kerasr_home() == type(kerasr_home())(os.environ["KERASR_HOME"])
    assert cache_path(NAME).parent == kerasr_home() / "models"


def test_first_use_converts_verifies_and_caches():
    cache_path(NAME).unlink(missing_ok=True)
    model = load_model(NAME)
    assert is_cached(NAME)
    assert weights_digest(model) == REGISTRY[NAME].sha256
    assert not list(cache_path(NAME).parent.glob(".*tmp*"))  # nothing half-written left
    again = load_model(NAME)  # from the cache this time
    assert weights_digest(again) == REGISTRY[NAME].sha256


def test_corrupt_cache_entry_is_rebuilt():
    load_model(NAME)
    path = cache_path(NAME)
    path.write_bytes(path.read_bytes()[:5000])  # truncated HDF5
    with pytest.warns(UserWarning, match="corrupt"):
        model = load_model(NAME)
    assert weights_digest(model) == REGISTRY[NAME].sha256
    assert weights_digest(load_model(NAME)) == REGISTRY[NAME].sha256  # the rebuilt entry is good


def test_cache_entry_with_wrong_values_is_rebuilt():
    load_model(NAME)
    path = cache_path(NAME)
    with h5py.File(
        path, "r+"
    ) as f:  # a valid file whose numbers changed: only the checksum sees it
        data = f["conv_first/vars/0"]
        data[...] = data[...] + 1.0
    with pytest.warns(UserWarning, match="checksum"):
        model = load_model(NAME)
    assert weights_digest(model) == REGISTRY[NAME].sha256


@pytest.mark.parametrize("obstacle", ["cache path is a folder", "models is a file"])
def test_unwritable_cache_warns_and_still_gives_the_model(tmp_path, monkeypatch, obstacle):
    monkeypatch.setenv("KERASR_HOME", str(tmp_path))
    if obstacle == "models is a file":
        (tmp_path / "models").write_text("not a folder")
    else:
        (cache_path(NAME) / "inside").mkdir(parents=True)
    with pytest.warns(UserWarning, match="without caching"):
        model = load_model(NAME)
    assert weights_digest(model) == REGISTRY[NAME].sha256
    assert not is_cached(NAME)


def test_registry_lists_the_default_first():
    names = [m.name for m in list_models()]
    assert names[0] == "realesrgan-x4plus" and NAME in names
    assert REGISTRY[NAME].arch["num_basic_blocks"] == 6


def test_unknown_name_is_a_clear_error():
    with pytest.raises(KerasrError, match="unknown model 'realesrgan-x9'.*realesrgan-x4plus"):
        load_model("realesrgan-x9")


def test_missing_model_file(tmp_path):
    with pytest.raises(KerasrError, match="not found"):
        load_model(tmp_path / "none.keras")


def test_weights_file_architecture_is_inferred(tmp_path, tiny_model):
    tiny_model.save_weights(tmp_path / "t.weights.h5")
    model = load_model(tmp_path / "t.weights.h5")
    assert model.get_config()["num_dense_blocks"] == 1 and model.rrdb_channels == 8
    x = np.random.default_rng(0).random((1, 8, 8, 3)).astype("float32")
    np.testing.assert_allclose(np.asarray(model(x)), np.asarray(tiny_model(x)), atol=1e-6)


def test_weights_that_do_not_fit_are_a_clear_error(tmp_path):
    other = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    other.save_weights(tmp_path / "dense.weights.h5")
    with pytest.raises(KerasrError, match="does not hold RRDBNet weights"):
        load_model(tmp_path / "dense.weights.h5")
    (tmp_path / "junk.weights.h5").write_bytes(b"not hdf5")
    with pytest.raises(KerasrError, match="cannot read"):
        load_model(tmp_path / "junk.weights.h5")


def test_keras_file_loads(tiny_model_file, tiny_model):
    model = load_model(tiny_model_file)
    assert model.scale == 4 and model.count_params() == tiny_model.count_params()


def test_the_catalog_lists_upscalers_and_generators():
    from kerasr.weights.catalog import catalog

    models = catalog()
    assert [u.name for u in models.upscalers] == list(REGISTRY)
    first = models.upscalers[0]
    assert first.scale == 4 and first.parameters == REGISTRY[first.name].parameters
    assert first.cached == is_cached(first.name)
    assert {g.name for g in models.generators} >= {"pokemon-dcgan-64", "pokemon-dcgan-64-white"}
    assert all(g.shipped and g.image_size == 64 for g in models.generators)


def test_interpolate_to_file_blends_two_files(tmp_path, tiny_model):
    from kerasr.weights.interpolate import interpolate_to_file

    a, b = tmp_path / "a.weights.h5", tmp_path / "b.weights.h5"
    tiny_model.save_weights(a)
    other = tiny_model.__class__.from_config(tiny_model.get_config())
    other.build((None, None, None, 3))
    other.set_weights([w * 3.0 for w in tiny_model.get_weights()])
    other.save_weights(b)
    written = interpolate_to_file(a, b, 0.5, tmp_path / "mix.weights.h5")
    mixed = load_model(written)
    for got, base in zip(mixed.get_weights(), tiny_model.get_weights(), strict=True):
        np.testing.assert_allclose(got, base * 2.0, rtol=1e-5, atol=1e-6)
    with pytest.raises(KerasrError, match="output must end with .weights.h5 or .keras"):
        interpolate_to_file("nope", "nope", 0.5, tmp_path / "mix.h5")
