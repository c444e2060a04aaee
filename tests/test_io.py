"""The one atomic writer, GIF and CSV files, and the one uint8 rounding rule."""

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from kerasr.errors import KerasrError
from kerasr.images import to_uint8
from kerasr.io import append_csv, atomic_path, read_csv, save_gif, write_bytes, write_text


@pytest.mark.parametrize("kind", ["file", "folder"])
def test_atomic_path_leaves_nothing_on_failure(tmp_path, kind):
    target = tmp_path / "x.weights.h5"
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        assert tmp.parent == tmp_path and tmp.name.endswith(".weights.h5")
        if kind == "file":
            tmp.write_bytes(b"partial")
        else:
            (tmp / "sub").mkdir(parents=True)
            (tmp / "sub" / "f").write_bytes(b"partial")
        raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []


def test_atomic_path_replaces_only_when_complete(tmp_path):
    target = tmp_path / "a.txt"
    target.write_text("old")
    with atomic_path(target) as tmp:
        tmp.write_text("new")
        assert target.read_text() == "old"  # nobody sees the new file before it is whole
    assert target.read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_write_bytes_folder_rules(tmp_path):
    with pytest.raises(KerasrError, match="output folder does not exist"):
        write_bytes(tmp_path / "missing" / "f.bin", b"x", make_parents=False)
    assert write_text(tmp_path / "made" / "f.txt", "hé") == tmp_path / "made" / "f.txt"
    assert (tmp_path / "made" / "f.txt").read_text(encoding="utf-8") == "hé"


def test_write_bytes_unusable_folder_is_one_error(tmp_path):
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(KerasrError, match="cannot create folder"):
        write_bytes(tmp_path / "file" / "sub" / "f.bin", b"x")
    (tmp_path / "folder" / "inside").mkdir(parents=True)
    with pytest.raises(KerasrError, match="cannot write"):
        write_bytes(tmp_path / "folder", b"x")  # a file cannot replace a folder
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "folder"]


def test_csv_appends_in_place(tmp_path):
    path = tmp_path / "log" / "history.csv"
    append_csv(path, {"step": 1, "loss": 0.5})
    inode = path.stat().st_ino
    append_csv(path, {"step": 2, "loss": 0.25})
    append_csv(path, {"step": 3})  # a missing value is an empty cell
    assert path.stat().st_ino == inode  # appended, not rewritten through a new file
    assert path.read_text().splitlines()[0] == "step,loss"
    rows = read_csv(path)
    assert [r["step"] for r in rows] == [1, 2, 3]
    assert rows[1]["loss"] == 0.25 and np.isnan(rows[2]["loss"])
    with pytest.raises(KerasrError, match="not in the log's header"):
        append_csv(path, {"step": 4, "psnr": 30.0})


def test_read_csv_drops_a_line_cut_by_a_crash(tmp_path):
    path = tmp_path / "h.csv"
    path.write_text("step,loss,psnr\n1,0.5,20\n2,0.4")
    assert read_csv(path) == [{"step": 1.0, "loss": 0.5, "psnr": 20.0}]
    assert read_csv(tmp_path / "none.csv") == []


def test_gif_from_arrays(tmp_path):
    frames = [np.full((8, 8, 3), v, np.uint8) for v in (0, 128, 255)]
    out = save_gif(tmp_path / "a.gif", frames, 0.1, hold_last=4)
    with Image.open(out) as gif:
        assert gif.n_frames == 3 and gif.info["loop"] == 0
        durations = []
        for i in range(gif.n_frames):
            gif.seek(i)
            durations.append(gif.info["duration"])
            assert np.asarray(gif.convert("RGB"))[0, 0, 0] == frames[i][0, 0, 0]
    assert durations == [100, 100, 400]
    assert save_gif(tmp_path / "none.gif", []) is None
    assert not (tmp_path / "none.gif").exists()


def test_to_uint8_one_rule_for_arrays_and_tensors():
    x = np.array([-0.5, 0.0, 0.2, 0.5 / 255, 1.0, 1.7], np.float32)
    expected = np.array([0, 0, 51, 0, 255, 255], np.uint8)  # 0.5 level rounds to even
    np.testing.assert_array_equal(to_uint8(x), expected)
    from_tensor = to_uint8(tf.constant(x))
    assert isinstance(from_tensor, tf.Tensor) and from_tensor.dtype == tf.uint8
    np.testing.assert_array_equal(from_tensor.numpy(), expected)
    np.testing.assert_array_equal(to_uint8(np.array([-1.0, 0.0, 1.0]), (-1.0, 1.0)), [0, 128, 255])
    np.testing.assert_array_equal(to_uint8(np.array([12.4, 300.0]), (0.0, 255.0)), [12, 255])
