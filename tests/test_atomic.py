"""menet_tf.atomic: a file or folder appears whole or not at all; what a killed writer leaves is removable."""

import os

import numpy as np
import pytest
from PIL import Image

from menet_tf import atomic
from menet_tf.imageio import write_image


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "table.csv"
    path.write_text("old\n")
    with pytest.raises(RuntimeError):
        with atomic.atomic_write(str(path)) as f:
            f.write("new, half")
            raise RuntimeError("killed mid-write")
    assert path.read_text() == "old\n"
    assert os.listdir(tmp_path) == ["table.csv"]
    with atomic.atomic_write(str(path)) as f:
        f.write("new\n")
        # until the block ends, readers still see the old content, and the new bytes sit in a temporary
        assert path.read_text() == "old\n"
        assert any(n.startswith(atomic.PARTIAL_PREFIX) and n.endswith("table.csv") for n in os.listdir(tmp_path))
    assert path.read_text() == "new\n" and os.listdir(tmp_path) == ["table.csv"]


def test_a_folder_is_swapped_in_whole(tmp_path):
    target = tmp_path / "export"
    target.mkdir()
    (target / "old.txt").write_text("old")
    with atomic.atomic_path(str(target)) as tmp:
        os.makedirs(tmp)
        with open(os.path.join(tmp, "saved_model.pb"), "w") as f:
            f.write("new")
        assert (target / "old.txt").exists()  # the old folder stays until the new one is complete
    assert sorted(os.listdir(target)) == ["saved_model.pb"]
    assert sorted(os.listdir(tmp_path)) == ["export"]
    with pytest.raises(FileNotFoundError):  # nothing written: an error, and the old folder stays
        with atomic.atomic_path(str(target)):
            pass
    assert sorted(os.listdir(target)) == ["saved_model.pb"]


def test_write_image_is_atomic_and_keeps_the_format_of_the_extension(tmp_path):
    image = np.random.default_rng(0).integers(0, 256, (9, 7, 3), dtype=np.uint8)
    calls = []
    write_image(str(tmp_path / "a.png"), image, before_rename=lambda: calls.append(sorted(os.listdir(tmp_path))))
    assert calls and not (set(calls[0]) & {"a.png"})  # before the rename only the temporary exists
    assert os.listdir(tmp_path) == ["a.png"]
    with Image.open(tmp_path / "a.png") as img:
        assert img.format == "PNG"
        np.testing.assert_array_equal(np.asarray(img), image)
    write_image(str(tmp_path / "b.jpg"), image)
    with Image.open(tmp_path / "b.jpg") as img:
        assert img.format == "JPEG"


def test_remove_partials_removes_only_temporaries(tmp_path):
    names = ["net.weights.h5", "notes.tmp", f"{atomic.PARTIAL_PREFIX}12-net.weights.h5", "tmp_net.weights.h5",
             "history.csv.tmp", f"{atomic.PARTIAL_PREFIX}12-logs"]
    for n in names:
        (tmp_path / n).mkdir() if n.endswith("logs") else (tmp_path / n).write_text("x")
    assert atomic.remove_partials(str(tmp_path)) == sorted(n for n in names if n.startswith(atomic.PARTIAL_PREFIX))
    assert sorted(os.listdir(tmp_path)) == sorted(["net.weights.h5", "notes.tmp", "tmp_net.weights.h5", "history.csv.tmp"])
    assert atomic.remove_partials(str(tmp_path), legacy=True) == ["history.csv.tmp", "tmp_net.weights.h5"]
    assert sorted(os.listdir(tmp_path)) == ["net.weights.h5", "notes.tmp"]


def test_partial_names_differ_between_machines_with_the_same_pid(tmp_path, monkeypatch):
    """Workers on several machines may write one shared folder (a multi-worker disk cache): equal pids
    there must not give equal temporary names. The name stays in the folder and ends with the final name."""
    target = str(tmp_path / "pair-000001.npy")
    names = set()
    for host in ("node-a.cluster", "node-b.cluster"):
        monkeypatch.setattr(atomic.socket, "gethostname", lambda host=host: host)
        p = atomic.partial_path(target)
        assert os.path.dirname(p) == str(tmp_path) and p.endswith("pair-000001.npy")
        assert os.path.basename(p).startswith(atomic.PARTIAL_PREFIX)
        names.add(p)
    assert len(names) == 2
