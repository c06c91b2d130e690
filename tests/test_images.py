"""Image folders and the one image decoder (data/images.py): every bit depth and mode to the right uint8 values."""

import io
import struct
import tarfile
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cleardiffusion.data import DataError, decode_image, folders, load_dataset


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    """Never write decoded-image caches into the user's home during tests."""
    monkeypatch.setenv("CLEARDIFFUSION_CACHE", str(tmp_path / "cache"))


def write_png(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


# ------------------------------------------------------------------------------------------------------------
# Image folders
# ------------------------------------------------------------------------------------------------------------


def test_png_folder_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    arrays = {f"{c}/{i}.png": rng.integers(0, 256, (5, 7, 3), dtype=np.uint8) for c in ("zebra", "ant") for i in (1, 0)}
    for rel, a in arrays.items():
        write_png(tmp_path / rel, a)
    (tmp_path / "ant" / "notes.txt").write_text("not an image")
    ds = load_dataset("folder", tmp_path)
    assert ds.class_names == ["ant", "zebra"] and ds.labels.tolist() == [0, 0, 1, 1]
    assert ds.images.shape == (4, 3, 5, 7) and ds.images.dtype == torch.uint8
    for k, rel in enumerate(["ant/0.png", "ant/1.png", "zebra/0.png", "zebra/1.png"]):
        assert torch.equal(ds.images[k], torch.from_numpy(arrays[rel]).permute(2, 0, 1))  # (H, W, C) -> (C, H, W)


def test_folder_channels(tmp_path):
    gray, rgb = np.arange(12, dtype=np.uint8).reshape(3, 4), np.full((3, 4, 3), [10, 20, 30], np.uint8)
    write_png(tmp_path / "g" / "a.png", gray)
    assert load_dataset("folder", tmp_path).images.shape == (1, 1, 3, 4)  # all grayscale -> 1 channel
    write_png(tmp_path / "c" / "b.png", rgb)
    ds = load_dataset("folder", tmp_path)
    assert ds.channels == 3 and torch.equal(ds.images[1], torch.from_numpy(gray).expand(3, 3, 4))
    one = load_dataset("folder", tmp_path, channels=1)
    assert one.channels == 1 and one.images[0, 0, 0, 0].item() == round(0.299 * 10 + 0.587 * 20 + 0.114 * 30)


def png_bytes(width: int, height: int, bit_depth: int, color_type: int, rows: np.ndarray) -> bytes:
    """A PNG written by hand (Pillow cannot write 16-bit colour): rows (H, W * samples) big-endian samples."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    raw = b"".join(b"\x00" + row.tobytes() for row in rows)  # filter type 0 on every row
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def image_file(kind: str) -> tuple[bytes, np.ndarray]:
    """(file bytes, the uint8 array it must decode to) for one storage format."""
    ramp16 = (np.arange(12, dtype=np.uint32).reshape(3, 4) * 5957).astype(np.uint16)  # 0 .. 65527
    expected16 = np.round(ramp16 / 257).astype(np.uint8)
    buf = io.BytesIO()
    if kind == "grey16":
        return png_bytes(4, 3, 16, 0, ramp16.astype(">u2")), expected16
    if kind == "rgb16":
        rgb = np.stack([ramp16, 65535 - ramp16, np.full_like(ramp16, 40000)], axis=-1)  # (3, 4, 3)
        return png_bytes(4, 3, 16, 2, rgb.astype(">u2").reshape(3, 12)), (rgb >> 8).astype(np.uint8)
    if kind == "grey16-tiff":
        Image.fromarray(ramp16).save(buf, format="TIFF")
        return buf.getvalue(), expected16
    if kind == "palette":
        rgb = np.zeros((3, 4, 3), np.uint8)
        rgb[:, 2:] = [200, 10, 30]
        Image.fromarray(rgb).convert("P", palette=Image.Palette.ADAPTIVE, colors=4).save(buf, format="PNG")
        return buf.getvalue(), rgb
    if kind in ("rgba", "la"):
        grey = np.arange(12, dtype=np.uint8).reshape(3, 4) * 20
        colour = np.stack([grey, grey // 2, 255 - grey], -1) if kind == "rgba" else grey
        alpha = np.zeros((3, 4, 1), np.uint8)  # fully transparent: the colours are still what is stored
        Image.fromarray(np.concatenate([colour.reshape(3, 4, -1), alpha], -1)).save(buf, format="PNG")
        return buf.getvalue(), colour
    if kind == "one-bit":
        bits = np.arange(12).reshape(3, 4) % 2 == 0
        Image.fromarray(bits).save(buf, format="PNG")
        return buf.getvalue(), bits.astype(np.uint8) * 255
    raise ValueError(kind)


@pytest.mark.parametrize("kind", ["grey16", "rgb16", "grey16-tiff", "palette", "rgba", "la", "one-bit"])
def test_every_bit_depth_and_mode_decodes_to_the_right_8_bit_values(kind):
    data, expected = image_file(kind)
    decoded = decode_image(data, f"x.{kind}")
    assert decoded.dtype == np.uint8 and decoded.shape == expected.shape
    np.testing.assert_array_equal(decoded, expected)  # 16 bits scaled: 65535 -> 255, never clipped at 255


@pytest.mark.parametrize("mode", ["I", "F"])
def test_pixels_without_a_known_range_are_refused_in_one_line(mode):
    buf = io.BytesIO()
    Image.fromarray(np.full((3, 4), 70000, np.int32 if mode == "I" else np.float32), mode).save(buf, format="TIFF")
    with pytest.raises(DataError, match="range cannot be told") as info:
        decode_image(buf.getvalue(), "deep.png")
    assert "deep.png" in str(info.value) and "\n" not in str(info.value)


def test_a_folder_of_16_bit_pngs_is_scaled_like_its_8_bit_twin(tmp_path):
    data, expected = image_file("grey16")
    for i in range(2):
        (tmp_path / "deep" / "a").mkdir(parents=True, exist_ok=True)
        (tmp_path / "deep" / "a" / f"{i}.png").write_bytes(data)
        write_png(tmp_path / "flat" / "a" / f"{i}.png", expected)
    deep, flat = load_dataset("folder", tmp_path / "deep"), load_dataset("folder", tmp_path / "flat")
    assert deep.channels == 1 and torch.equal(deep.images, flat.images)
    assert deep.images.max() == 255 and deep.images.unique().numel() == 12  # the ramp survives, not clipped


def test_folder_mixed_sizes(tmp_path):
    write_png(tmp_path / "a" / "0.png", np.zeros((8, 8, 3), np.uint8))
    write_png(tmp_path / "b" / "odd.png", np.zeros((6, 9, 3), np.uint8))
    with pytest.raises(DataError, match=r"odd\.png has \(H, W\) = \(6, 9\).*--image-size"):
        load_dataset("folder", tmp_path)
    assert load_dataset("folder", tmp_path, image_size=4).images.shape == (2, 3, 4, 4)


def test_folder_tar_gz_with_splits(tmp_path):
    tree = tmp_path / "tree" / "mydata"
    for split, n in (("train", 3), ("test", 2)):
        for c in ("cat", "dog"):
            for i in range(n):
                write_png(tree / split / c / f"{i:04d}.png", np.full((4, 4, 3), i, np.uint8))
    archive = tmp_path / "archive" / "mydata.tar.gz"
    archive.parent.mkdir()
    with tarfile.open(archive, "w:gz") as tf:
        tf.add(tree, arcname="mydata")  # wrapped in one top folder, as `tar czf x.tar.gz mydata/` does
    for data_dir in (archive, archive.parent):
        train, test = load_dataset("folder", data_dir, "train"), load_dataset("folder", data_dir, "test")
        assert (len(train), len(test)) == (6, 4) and train.class_names == ["cat", "dog"]
        assert test.labels.tolist() == [0, 0, 1, 1] and test.images[:, 0, 0, 0].tolist() == [0, 1, 0, 1]
    with pytest.raises(DataError, match="only a train split"):
        load_dataset("folder", tree / "train", "test")


def test_folder_cache_is_used_and_invalidated(tmp_path, monkeypatch):
    write_png(tmp_path / "src" / "a" / "0.png", np.full((2, 2, 3), 7, np.uint8))
    monkeypatch.setattr(folders, "CACHE_MIN_SECONDS", -1.0)  # cache even this tiny folder
    first = load_dataset("folder", tmp_path / "src", cache_dir=tmp_path / "c")
    assert [p.suffix for p in (tmp_path / "c").iterdir()] == [".npz"]  # no temporary file left behind

    def no_decoding(*args):
        raise AssertionError("decoded although cached")

    monkeypatch.setattr(folders, "decode_image", no_decoding)
    again = load_dataset("folder", tmp_path / "src", cache_dir=tmp_path / "c")
    assert torch.equal(again.images, first.images) and again.class_names == ["a"]
    write_png(tmp_path / "src" / "a" / "1.png", np.zeros((2, 2, 3), np.uint8))  # the source changed
    with pytest.raises(AssertionError, match="decoded although cached"):
        load_dataset("folder", tmp_path / "src", cache_dir=tmp_path / "c")
