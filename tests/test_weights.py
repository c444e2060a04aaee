import json
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
from kerasr.weights.networks import preset_of
from kerasr.weights.presets import save_weights

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
    # The entry carries its preset: the cached file loads by path like any kerasr weights.
    by_path = load_model(cache_path(NAME))
    assert weights_digest(by_path) == REGISTRY[NAME].sha256
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


def test_weights_file_is_rebuilt_from_its_preset(tmp_path, tiny_model):
    path = save_weights(tiny_model, tmp_path / "t.weights.h5", preset_of(tiny_model, "a test"))
    preset = json.loads((tmp_path / "t.json").read_text())
    assert preset["kind"] == "rrdbnet" and preset["scale"] == 4 and preset["source"] == "a test"
    assert preset["sha256"] == weights_digest(tiny_model)
    model = load_model(path)
    assert model.get_config()["num_dense_blocks"] == 1 and model.rrdb_channels == 8
    x = np.random.default_rng(0).random((1, 8, 8, 3)).astype("float32")
    np.testing.assert_allclose(np.asarray(model(x)), np.asarray(tiny_model(x)), atol=1e-6)


def test_weights_without_preset_or_that_do_not_fit_it_are_a_clear_error(tmp_path, tiny_model):
    path = tmp_path / "t.weights.h5"
    tiny_model.save_weights(path)
    with pytest.raises(KerasrError, match="has no preset .t.json beside it.*load the .keras"):
        load_model(path)
    preset = preset_of(tiny_model, "a test")
    other = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    save_weights(other, path, preset)
    with pytest.raises(KerasrError, match="does not hold the weights of its preset .rrdbnet"):
        load_model(path)
    save_weights(tiny_model, path, preset)
    data = json.loads((tmp_path / "t.json").read_text())
    (tmp_path / "t.json").write_text(json.dumps({**data, "sha256": "0" * 64}))
    # Weights that fit but were rewritten after their preset: usable, with a warning.
    with pytest.warns(UserWarning, match="does not match the checksum of its preset t.json"):
        assert load_model(path).rrdb_channels == tiny_model.rrdb_channels
    (tmp_path / "t.json").write_text(json.dumps({**data, "kind": "vgg19"}))
    with pytest.raises(KerasrError, match="unknown network kind 'vgg19'"):
        load_model(path)
    (tmp_path / "t.json").write_text(json.dumps({**data, "arguments": {"scale": 3}}))
    with pytest.raises(KerasrError, match="cannot build a rrdbnet network from .'scale'."):
        load_model(path)
    (tmp_path / "junk.weights.h5").write_bytes(b"not hdf5")
    (tmp_path / "junk.json").write_text(json.dumps(data))
    with pytest.raises(KerasrError, match="does not hold the weights of its preset"):
        load_model(tmp_path / "junk.weights.h5")


def test_every_kind_of_the_registry_builds_and_round_trips_through_a_preset(tmp_path):
    from kerasr.weights.kinds import DISCRIMINATORS, GENERATORS, UPSCALERS
    from kerasr.weights.networks import NETWORKS, build_network, load_weights
    from kerasr.weights.presets import Preset

    assert set(NETWORKS) == {*UPSCALERS, *GENERATORS, *DISCRIMINATORS}
    tiny = {
        "rrdbnet": {"num_basic_blocks": 1, "rrdb_channels": 4, "growth_channels": 2},
        "srvgg": {"num_feat": 4, "num_conv": 1, "act_type": "relu"},
        "dcgan": {"image_size": 8, "latent_dim": 4, "filters": 2, "max_filters": 4},
        "fastgan": {"image_size": 16, "latent_dim": 4, "filters": 2},
        "vgg_discriminator": {"vgg_blk_ch": [4, 4], "fc_features": [2]},
        "unet_discriminator": {"features": 2},
        "dcgan_discriminator": {"image_size": 8, "filters": 2, "max_filters": 4},
    }
    assert set(tiny) == set(NETWORKS) - {"projected_discriminator"}  # needs ImageNet weights
    shapes = {"vgg_discriminator": (None, 8, 8, 3), "unet_discriminator": (None, 8, 8, 3)}
    for kind, arguments in tiny.items():
        network = build_network(kind, input_shape=shapes.get(kind), **arguments)
        assert network.built, kind
        if kind in DISCRIMINATORS:  # saved by training, never loaded back by -m
            continue
        network.set_weights([np.full(w.shape, 0.5, w.dtype) for w in network.get_weights()])
        path = save_weights(network, tmp_path / f"{kind}.weights.h5", Preset(kind, arguments))
        loaded, preset = load_weights(path)
        assert (preset.kind, preset.arguments) == (kind, arguments)
        assert weights_digest(loaded) == weights_digest(network) == preset.sha256, kind
    with pytest.raises(KerasrError, match="unknown network kind 'resnet'"):
        build_network("resnet")


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
    save_weights(tiny_model, a, preset_of(tiny_model, "a test"))
    other = tiny_model.__class__.from_config(tiny_model.get_config())
    other.build((None, None, None, 3))
    other.set_weights([w * 3.0 for w in tiny_model.get_weights()])
    save_weights(other, b, preset_of(other, "a test"))
    written = interpolate_to_file(a, b, 0.5, tmp_path / "mix.weights.h5")
    assert "interpolation of" in json.loads((tmp_path / "mix.json").read_text())["source"]
    mixed = load_model(written)
    for got, base in zip(mixed.get_weights(), tiny_model.get_weights(), strict=True):
        np.testing.assert_allclose(got, base * 2.0, rtol=1e-5, atol=1e-6)
    with pytest.raises(KerasrError, match="output must end with .weights.h5 or .keras"):
        interpolate_to_file("nope", "nope", 0.5, tmp_path / "mix.h5")


def test_a_run_folders_generator_preset_is_not_taken_for_other_weights(tmp_path, tiny_model):
    # An SR run writes generator.weights.h5 with its preset generator.json; another weights
    # file in the folder without its own preset must not borrow it.
    save_weights(tiny_model, tmp_path / "generator.weights.h5", preset_of(tiny_model, "a run"))
    tiny_model.save_weights(tmp_path / "other.weights.h5")
    with pytest.raises(KerasrError, match="other.weights.h5 has no preset .other.json beside"):
        load_model(tmp_path / "other.weights.h5")
    assert load_model(tmp_path / "generator.weights.h5").rrdb_channels == tiny_model.rrdb_channels
