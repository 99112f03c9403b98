"""Tests of scratch.data: loaders, downloader, file checks.

No test reaches the internet: archives are built here and served by a local HTTP
server on 127.0.0.1, and every mirror not pointed at it points at a closed port.
"""
import gzip
import hashlib
import http.server
import io
import os
import struct
import tarfile
import threading
import zlib

import numpy as np
import pytest

from data_server import closed_port_url, offline  # noqa: F401 (offline: autouse)
from scratch import data

# ----------------------------------------------------------------------------- fixtures


class Server:
    """Serves ``files`` (URL path -> bytes); can damage its next responses."""

    def __init__(self):
        self.files = {}
        self.requests = []  # URL paths asked for
        self.corrupt_next = 0  # this many responses get a flipped byte
        self.truncate_next = 0  # this many responses stop halfway through the body
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            timeout = 5

            def do_GET(self):
                server.requests.append(self.path)
                body = server.files.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                length = len(body)
                if server.corrupt_next:
                    server.corrupt_next -= 1
                    body = bytes([body[0] ^ 0xFF]) + body[1:]
                if server.truncate_next:
                    server.truncate_next -= 1
                    body = body[: len(body) // 2]
                self.send_response(200)
                self.send_header("Content-Length", str(length))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever,
                                       kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def server():
    s = Server()
    yield s
    s.close()


def md5(blob):
    return hashlib.md5(blob).hexdigest()


def idx(array, magic):
    array = np.asarray(array, np.uint8)
    header = struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in array.shape)
    return header + array.tobytes()


def fake_mnist(n, seed):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 28, 28), dtype=np.uint8), rng.integers(0, 10, n, dtype=np.uint8)


def serve_mnist(server, monkeypatch, counts={"train": 7, "t10k": 3}):
    """Put gzipped fake IDX files on the server and their md5s in CHECKSUMS."""
    arrays = {}
    for seed, (prefix, n) in enumerate(counts.items()):
        images, labels = arrays[prefix] = fake_mnist(n, seed)
        for name, blob in ((f"{prefix}-images-idx3-ubyte.gz", idx(images, 0x803)),
                           (f"{prefix}-labels-idx1-ubyte.gz", idx(labels, 0x801))):
            gz = gzip.compress(blob)
            server.files[f"/mnist/{name}"] = gz
            monkeypatch.setitem(data.CHECKSUMS, name, f"md5:{md5(gz)}")
    monkeypatch.setitem(data.MIRRORS, "mnist", [server.url + "/mnist/"])
    return arrays


def fake_cifar_tar(counts, extra_members=()):
    """A CIFAR-10 binary archive with ``counts[name]`` records per batch file."""
    rng = np.random.default_rng(0)
    records = {name: rng.integers(0, 256, (n, 3073), dtype=np.uint8) for name, n in counts.items()}
    for r in records.values():
        r[:, 0] %= 10
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        members = [(f"cifar-10-batches-bin/{name}", r.tobytes()) for name, r in records.items()]
        members.append(("cifar-10-batches-bin/batches.meta.txt", b"airplane\nautomobile\nbird\ncat\ndeer\n"
                        b"dog\nfrog\nhorse\nship\ntruck\n\n"))
        for name, blob in [*members, *extra_members]:
            info = tarfile.TarInfo(name)
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
    return buf.getvalue(), records


CIFAR_COUNTS = {"data_batch_1.bin": 2, "data_batch_2.bin": 3, "data_batch_3.bin": 1,
                "data_batch_4.bin": 2, "data_batch_5.bin": 3, "test_batch.bin": 4}


def serve_cifar(server, monkeypatch, archive):
    server.files["/cifar/cifar-10-binary.tar.gz"] = archive
    monkeypatch.setitem(data.CHECKSUMS, "cifar-10-binary.tar.gz", f"md5:{md5(archive)}")
    monkeypatch.setitem(data.MIRRORS, "cifar10", [server.url + "/cifar/"])


# ----------------------------------------------------------------------------- loaders


def test_mnist_downloads_unpacks_and_counts_from_headers(server, monkeypatch, tmp_path, offline):
    arrays = serve_mnist(server, monkeypatch)
    data.MIRRORS["mnist"].insert(0, offline)  # a dead first mirror: the next one is tried

    images, labels = data.mnist("train", root=tmp_path)
    assert images.shape == (7, 28, 28) and images.dtype == np.uint8
    assert labels.shape == (7,) and labels.dtype == np.int64
    np.testing.assert_array_equal(images, arrays["train"][0])
    np.testing.assert_array_equal(labels, arrays["train"][1])
    images[0, 0, 0] = 1  # the arrays are writable

    test_images, test_labels = data.mnist("test", root=tmp_path)
    assert test_images.shape == (3, 28, 28) and test_labels.shape == (3,)

    raw = tmp_path / "MNIST" / "raw"
    assert sorted(p.name for p in raw.iterdir()) == sorted(
        f"{s}-{k}-ubyte{gz}"
        for s in ("train", "t10k") for k in ("images-idx3", "labels-idx1") for gz in ("", ".gz"))
    assert len(server.requests) == 4

    data.mnist("train", root=tmp_path)  # unpacked now: no more requests
    assert len(server.requests) == 4


def test_root_comes_from_scratch_data(server, monkeypatch, tmp_path):
    serve_mnist(server, monkeypatch)
    monkeypatch.setenv("SCRATCH_DATA", str(tmp_path / "cache"))
    assert data.data_root() == str(tmp_path / "cache")
    images, _ = data.mnist("test")
    assert len(images) == 3 and (tmp_path / "cache" / "MNIST" / "raw" / "t10k-images-idx3-ubyte").exists()

    monkeypatch.delenv("SCRATCH_DATA")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert data.data_root() == str(tmp_path / "xdg" / "scratch")


def test_present_files_are_read_without_network(server, monkeypatch, tmp_path):
    for name in data.MIRRORS:  # everything points at a live server that counts requests
        monkeypatch.setitem(data.MIRRORS, name, [server.url + "/"])
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    images, labels = fake_mnist(5, 0)
    (raw / "train-images-idx3-ubyte").write_bytes(idx(images, 0x803))
    (raw / "train-labels-idx1-ubyte").write_bytes(idx(labels, 0x801))
    # Only the .gz for the test split: read as is, also without network.
    (raw / "t10k-images-idx3-ubyte.gz").write_bytes(gzip.compress(idx(images[:2], 0x803)))
    (raw / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(idx(labels[:2], 0x801)))
    archive, _ = fake_cifar_tar(CIFAR_COUNTS)
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(tmp_path, filter="data")
    (tmp_path / "tinyshakespeare").mkdir()
    (tmp_path / "tinyshakespeare" / "input.txt").write_text("First Citizen:\nBefore we proceed\n")
    (tmp_path / "names").mkdir()
    (tmp_path / "names" / "names.txt").write_text("emma\nolivia\nava\n")

    assert len(data.mnist("train", root=tmp_path, download=False)[0]) == 5
    assert len(data.mnist("train", root=tmp_path)[0]) == 5
    assert data.mnist("test", root=tmp_path)[0].shape == (2, 28, 28)
    assert data.cifar10("train", root=tmp_path)[0].shape == (11, 3, 32, 32)
    assert data.cifar10("test", root=tmp_path)[0].shape == (4, 3, 32, 32)
    assert data.cifar10_classes(root=tmp_path)[:2] == ["airplane", "automobile"]
    assert data.tiny_shakespeare(root=tmp_path).startswith("First Citizen:")
    assert data.names(root=tmp_path) == ["emma", "olivia", "ava"]
    assert server.requests == []
    assert not (tmp_path / "MNIST" / "raw" / "t10k-images-idx3-ubyte").exists()  # nothing written


def test_cifar10_download_extract_and_layout(server, monkeypatch, tmp_path):
    archive, records = fake_cifar_tar(CIFAR_COUNTS)
    serve_cifar(server, monkeypatch, archive)

    images, labels = data.cifar10("train", root=tmp_path)
    assert images.shape == (11, 3, 32, 32) and images.dtype == np.uint8
    assert labels.shape == (11,) and labels.dtype == np.int64
    first = records["data_batch_1.bin"][0]
    assert labels[0] == first[0]
    np.testing.assert_array_equal(images[0].ravel(), first[1:])  # R plane, then G, then B
    green = records["data_batch_2.bin"][0][1 + 1024:1 + 2048].reshape(32, 32)
    np.testing.assert_array_equal(images[2, 1], green)
    assert images.flags.c_contiguous

    test_images, test_labels = data.cifar10("test", root=tmp_path)
    assert test_images.shape == (4, 3, 32, 32)
    np.testing.assert_array_equal(test_labels, records["test_batch.bin"][:, 0])
    assert len(data.cifar10_classes(root=tmp_path)) == 10
    assert len(server.requests) == 1
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # temp folder removed


def test_cifar10_incomplete_folder_is_replaced_from_archive(server, monkeypatch, tmp_path):
    archive, _ = fake_cifar_tar(CIFAR_COUNTS)
    serve_cifar(server, monkeypatch, archive)
    (tmp_path / "cifar-10-batches-bin").mkdir()
    (tmp_path / "cifar-10-batches-bin" / "data_batch_1.bin").write_bytes(b"x" * 3073)
    assert data.cifar10("train", root=tmp_path)[0].shape == (11, 3, 32, 32)


def test_cifar10_archive_with_unsafe_path_is_refused(server, monkeypatch, tmp_path):
    archive, _ = fake_cifar_tar(CIFAR_COUNTS, extra_members=[("../evil.txt", b"pwned")])
    serve_cifar(server, monkeypatch, archive)
    root = tmp_path / "root"
    with pytest.raises(ValueError, match="unsafe path"):
        data.cifar10("train", root=root)
    assert not (tmp_path / "evil.txt").exists()
    assert not (root / "cifar-10-batches-bin").exists()


def test_cifar10_batch_size_must_be_whole_records(tmp_path):
    folder = tmp_path / "cifar-10-batches-bin"
    folder.mkdir()
    (folder / "test_batch.bin").write_bytes(b"\0" * (3073 * 2 + 5))
    with pytest.raises(ValueError, match="not a whole number of 3073-byte"):
        data.cifar10("test", root=tmp_path)


def test_text_datasets_download(server, monkeypatch, tmp_path):
    text = "First Citizen:\nSpeak, speak.\n"
    server.files["/t/input.txt"] = text.encode()
    server.files["/n/names.txt"] = b"emma\nolivia\n"
    monkeypatch.setitem(data.MIRRORS, "tinyshakespeare", [server.url + "/t/"])
    monkeypatch.setitem(data.MIRRORS, "names", [server.url + "/n/"])
    monkeypatch.setitem(data.CHECKSUMS, "input.txt", "sha256:" + hashlib.sha256(text.encode()).hexdigest())
    monkeypatch.setitem(data.CHECKSUMS, "names.txt", "sha256:" + hashlib.sha256(b"emma\nolivia\n").hexdigest())
    assert data.tiny_shakespeare(root=tmp_path) == text
    assert data.names(root=tmp_path) == ["emma", "olivia"]
    assert (tmp_path / "tinyshakespeare" / "input.txt").exists()
    assert (tmp_path / "names" / "names.txt").exists()


# ----------------------------------------------------------------------------- download failures


def test_checksum_mismatch_is_retried_then_a_clear_error(server, tmp_path):
    server.files["/f.bin"] = b"the wrong bytes"
    target = tmp_path / "sub" / "f.bin"
    with pytest.raises(data.DatasetNotFoundError, match="md5 mismatch"):
        data.download(server.url + "/f.bin", target, md5=md5(b"the right bytes"))
    assert len(server.requests) == 2  # fetched again once
    assert list((tmp_path / "sub").iterdir()) == []  # nothing at the path, no .part


def test_corrupted_copy_is_fetched_again(server, tmp_path, capsys):
    blob = os.urandom(5000)
    server.files["/f.bin"] = blob
    server.corrupt_next = 1
    path = data.download(server.url + "/f.bin", tmp_path / "f.bin", sha256=hashlib.sha256(blob).hexdigest())
    assert path == str(tmp_path / "f.bin") and (tmp_path / "f.bin").read_bytes() == blob
    assert len(server.requests) == 2
    lines = capsys.readouterr().err.splitlines()
    assert lines == [f"downloading {server.url}/f.bin -> {tmp_path / 'f.bin'}"] * 2


def test_truncated_download_is_detected_and_fetched_again(server, tmp_path):
    blob = os.urandom(5000)
    server.files["/f.bin"] = blob
    server.truncate_next = 1
    data.download(server.url + "/f.bin", tmp_path / "f.bin")  # no checksum: Content-Length catches it
    assert (tmp_path / "f.bin").read_bytes() == blob and len(server.requests) == 2

    server.truncate_next = 2  # truncated twice: give up with a clear error
    with pytest.raises(data.DatasetNotFoundError, match="truncated: got 2500 of 5000 bytes"):
        data.download(server.url + "/f.bin", tmp_path / "g.bin")
    assert not (tmp_path / "g.bin").exists() and not (tmp_path / "g.bin.part").exists()


def test_stale_part_file_and_damaged_file_are_replaced(server, tmp_path):
    blob = b"good data\n" * 100
    server.files["/f.bin"] = blob
    (tmp_path / "f.bin.part").write_bytes(b"half of an earlier run")
    data.download(server.url + "/f.bin", tmp_path / "f.bin", md5=md5(blob))
    assert (tmp_path / "f.bin").read_bytes() == blob and not (tmp_path / "f.bin.part").exists()

    data.download(server.url + "/f.bin", tmp_path / "f.bin", md5=md5(blob))  # intact: kept
    assert len(server.requests) == 1
    (tmp_path / "f.bin").write_bytes(b"damaged")
    data.download(server.url + "/f.bin", tmp_path / "f.bin", md5=md5(blob))  # damaged: fetched again
    assert (tmp_path / "f.bin").read_bytes() == blob and len(server.requests) == 2


def test_offline_error_names_file_url_and_path(tmp_path, offline):
    with pytest.raises(data.DatasetNotFoundError) as info:
        data.mnist("train", root=tmp_path)
    message = str(info.value)
    target = tmp_path / "MNIST" / "raw" / "train-images-idx3-ubyte.gz"
    assert "\n" not in message
    assert "train-images-idx3-ubyte.gz" in message
    assert offline + "train-images-idx3-ubyte.gz" in message
    assert str(target) in message and "SCRATCH_DATA" in message
    assert isinstance(info.value, RuntimeError)
    assert not target.exists() and not target.with_name(target.name + ".part").exists()


def test_download_false_never_downloads(server, monkeypatch, tmp_path):
    serve_mnist(server, monkeypatch)
    with pytest.raises(data.DatasetNotFoundError, match="download=False"):
        data.mnist("train", root=tmp_path, download=False)
    with pytest.raises(data.DatasetNotFoundError, match="names.txt"):
        data.names(root=tmp_path, download=False)
    assert server.requests == []


def test_mirror_env_var_replaces_the_mirrors(server, monkeypatch, tmp_path):
    server.files["/m/names.txt"] = b"ava\n"
    monkeypatch.setitem(data.CHECKSUMS, "names.txt", "sha256:" + hashlib.sha256(b"ava\n").hexdigest())
    monkeypatch.setenv("SCRATCH_DATA_MIRROR", server.url + "/m")
    assert data.names(root=tmp_path) == ["ava"]


# ----------------------------------------------------------------------------- file checks


def test_bad_idx_magic_is_a_clear_error(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    images, labels = fake_mnist(4, 0)
    (raw / "train-images-idx3-ubyte").write_bytes(idx(images, 0x801))  # label magic on images
    (raw / "train-labels-idx1-ubyte").write_bytes(idx(labels, 0x801))
    with pytest.raises(ValueError, match="bad IDX magic number 0x00000801, expected 0x00000803"):
        data.mnist("train", root=tmp_path)
    (raw / "train-images-idx3-ubyte").write_bytes(b"PK\x03\x04 not idx")
    with pytest.raises(ValueError, match="bad IDX magic"):
        data.mnist("train", root=tmp_path)


def test_idx_length_must_match_header(tmp_path):
    images, labels = fake_mnist(4, 0)
    path = tmp_path / "x-idx3-ubyte"
    path.write_bytes(idx(images, 0x803)[:-10])
    with pytest.raises(ValueError, match=r"shape \(4, 28, 28\) \(3136 bytes\) but the file holds 3126"):
        data.read_idx(path, 0x803)
    path.write_bytes(idx(images, 0x803) + b"extra")
    with pytest.raises(ValueError, match="but the file holds 3141"):
        data.read_idx(path)


def test_mnist_images_and_labels_must_agree(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    images, labels = fake_mnist(4, 0)
    (raw / "t10k-images-idx3-ubyte").write_bytes(idx(images, 0x803))
    (raw / "t10k-labels-idx1-ubyte").write_bytes(idx(labels[:3], 0x801))
    with pytest.raises(ValueError, match="do not match"):
        data.mnist("test", root=tmp_path)
    with pytest.raises(ValueError, match="split"):
        data.mnist("validation", root=tmp_path)


# ----------------------------------------------------------------------------- helpers


def test_as_float():
    x = data.as_float(np.array([[0, 255], [51, 102]], np.uint8))
    assert x.dtype == np.float32 and x.min() == 0.0 and x.max() == 1.0
    np.testing.assert_allclose(x[1], [0.2, 0.4])


def test_subsample_is_stratified_seeded_and_bounded():
    y = np.repeat(np.arange(4), [400, 300, 200, 100])
    x = np.arange(len(y)) * 10
    xs, ys = data.subsample(x, y, 100, seed=1)
    assert len(xs) == 100 and np.array_equal(xs // 10, np.flatnonzero(np.isin(x, xs)))
    np.testing.assert_array_equal(y[xs // 10], ys)  # pairs stay together
    np.testing.assert_array_equal(np.bincount(ys), [40, 30, 20, 10])
    assert np.all(np.diff(xs) > 0)  # original order kept
    np.testing.assert_array_equal(data.subsample(x, y, 100, seed=1)[0], xs)
    assert not np.array_equal(data.subsample(x, y, 100, seed=2)[0], xs)
    assert data.subsample(x, y, 5000)[0] is x
    xr, yr = data.subsample(x, None, 7)
    assert len(xr) == 7 and yr is None


# ----------------------------------------------------------------------------- the seeded offline copies

SEEDED = os.environ.get("SCRATCH_DATA", "")
seeded = pytest.mark.skipif(
    not os.path.exists(os.path.join(SEEDED, "MNIST", "raw", "t10k-labels-idx1-ubyte")),
    reason="SCRATCH_DATA does not point at a seeded data folder (python ../shared/data/seed.py DIR)")


@seeded
def test_seeded_copies_load_without_network():
    # The autouse fixture points every mirror at a closed port: a download would fail.
    train, train_labels = data.mnist("train")
    test, test_labels = data.mnist("test")
    # The offline stand-in has 8,000 / 2,000 images; a real download 60,000 / 10,000.
    assert (len(train), len(test)) in {(8000, 2000), (60000, 10000)}
    assert train.shape[1:] == test.shape[1:] == (28, 28)
    assert set(np.unique(train_labels)) == set(range(10)) and len(train_labels) == len(train)

    images, labels = data.cifar10("train")
    assert images.shape == (50000, 3, 32, 32) and np.bincount(labels).tolist() == [5000] * 10
    assert data.cifar10("test")[0].shape == (10000, 3, 32, 32)
    assert data.cifar10_classes()[0] == "airplane"

    assert len(data.tiny_shakespeare()) == 1115394
    assert len(data.names()) == 32033


# ----------------------------------------------------------------------------- photographs

def fake_imagenette_tar(per_class=2):
    """A tiny imagenette2-160.tgz: JPEGs of different sizes in the official layout."""
    from PIL import Image
    buf = io.BytesIO()
    rng = np.random.default_rng(0)
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for split in ("train", "val"):
            for wnid in sorted(data.IMAGENETTE_CLASSES):
                for k in range(per_class):
                    h, w = (160, 213) if k % 2 else (240, 160)
                    img = Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8))
                    jpg = io.BytesIO()
                    img.save(jpg, format="JPEG")
                    info = tarfile.TarInfo(f"imagenette2-160/{split}/{wnid}/{k}.JPEG")
                    info.size = len(jpg.getvalue())
                    tar.addfile(info, io.BytesIO(jpg.getvalue()))
    return buf.getvalue()


def test_imagenette_downloads_resizes_labels_and_caches(server, monkeypatch, tmp_path):
    archive = fake_imagenette_tar()
    server.files["/nette/imagenette2-160.tgz"] = archive
    monkeypatch.setitem(data.CHECKSUMS, "imagenette2-160.tgz", f"md5:{md5(archive)}")
    monkeypatch.setitem(data.MIRRORS, "imagenette", [server.url + "/nette/"])
    images, labels = data.imagenette("train", size=64, root=tmp_path, variant="160")
    assert images.shape == (20, 3, 64, 64) and images.dtype == np.uint8
    np.testing.assert_array_equal(labels, np.repeat(np.arange(10), 2))
    assert len(server.requests) == 1
    assert list((tmp_path / "imagenette2-160").glob("cache-train-64-*.npy"))
    again, _ = data.imagenette("train", size=64, root=tmp_path, variant="160", download=False)
    np.testing.assert_array_equal(again, images)  # from the cache, no network
    assert data.imagenette("test", size=32, root=tmp_path, variant="160")[0].shape == (20, 3, 32, 32)
    assert len(server.requests) == 1
    assert data.imagenette_classes()[0] == "tench" and len(data.imagenette_classes()) == 10
    with pytest.raises(ValueError, match="variant"):
        data.imagenette("train", variant="999", root=tmp_path)


def test_channel_stats_and_normalize():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (5000, 3, 4, 4), dtype=np.uint8)
    images[:, 2] //= 2  # a darker, narrower blue channel
    mean, std = data.channel_stats(images)
    x = images.astype(np.float64) / 255
    np.testing.assert_allclose(mean, x.mean(axis=(0, 2, 3)), rtol=1e-5)
    np.testing.assert_allclose(std, x.std(axis=(0, 2, 3)), rtol=1e-4)
    z = data.normalize(images, mean, std)
    assert z.dtype.is_floating_point and tuple(z.shape) == images.shape
    np.testing.assert_allclose(z.mean(dim=(0, 2, 3)).numpy(), 0, atol=1e-4)
    np.testing.assert_allclose(z.std(dim=(0, 2, 3)).numpy(), 1, atol=1e-3)
    with pytest.raises(ValueError, match="N, C, H, W"):
        data.channel_stats(images[0])


def test_oxford_pets_masks_from_trimaps_and_cache(tmp_path):
    """torchvision's layout, already unpacked: read without network, masks = pet pixels."""
    from PIL import Image
    base = tmp_path / "oxford-iiit-pet"
    (base / "images").mkdir(parents=True)
    (base / "annotations" / "trimaps").mkdir(parents=True)
    lines = []
    for i in range(3):
        name = f"Abyssinian_{i + 1}"
        Image.fromarray(np.full((60, 80, 3), 40 * i, np.uint8)).save(base / "images" / f"{name}.jpg")
        trimap = np.full((60, 80), 2, np.uint8)  # background ...
        trimap[15:45, 30:50] = 1                 # ... a pet in the middle ...
        trimap[15, 30:50] = 3                    # ... with a border row
        Image.fromarray(trimap).save(base / "annotations" / "trimaps" / f"{name}.png")
        lines.append(f"{name} 1 1 1")
    for split in ("trainval", "test"):
        (base / "annotations" / f"{split}.txt").write_text("\n".join(lines) + "\n")
    images, masks = data.oxford_pets("train", size=30, root=tmp_path, download=False)
    assert images.shape == (3, 3, 30, 30) and masks.shape == (3, 30, 30) and masks.dtype == np.uint8
    # 80x60 -> shorter side 30 (x0.5): 40x30, centre crop drops 5 columns each side.
    expected = np.zeros((30, 30), np.uint8)
    expected[7:22, 10:20] = 1
    assert (masks[0] != expected).sum() <= 30 * 2  # nearest-neighbour resizing may move an edge by a pixel
    assert set(np.unique(masks)) == {0, 1}
    assert list(base.glob("cache-train-30-*.npy"))
    with pytest.raises(data.DatasetNotFoundError, match="Oxford-IIIT Pet"):
        data.oxford_pets("train", root=tmp_path / "empty", download=False)


# ----------------------------------------------------------------------------- bad input: one clear line


def one_line(info):
    """The message of a ``pytest.raises`` result, checked to be a single line."""
    message = str(info.value)
    assert message and "\n" not in message
    return message


def corrupt_gzip(blob):
    """``blob`` gzipped, with one byte flipped so that zlib itself fails (``zlib.error``)."""
    gz = gzip.compress(blob, mtime=0)
    for offset in range(len(gz) // 3, len(gz) - 8):
        bad = gz[:offset] + bytes([gz[offset] ^ 0xFF]) + gz[offset + 1:]
        try:
            gzip.decompress(bad)
        except zlib.error:
            return bad
        except (OSError, EOFError):
            pass
    raise AssertionError("no corruption found that zlib rejects")


def corrupt_tar(archive, want):
    """``archive`` (a .tar.gz) with one byte flipped past its first header.

    ``want="zlib"``: reading the members raises zlib.error; ``want="silent"``: every
    member reads without error, only the gzip CRC at the very end is wrong.
    """
    for offset in range(600, len(archive) - 8, 7):
        bad = archive[:offset] + bytes([archive[offset] ^ 0xFF]) + archive[offset + 1:]
        try:
            with tarfile.open(fileobj=io.BytesIO(bad), mode="r:gz") as tar:
                for member in tar:
                    if member.isfile():
                        tar.extractfile(member).read()
        except zlib.error:
            if want == "zlib":
                return bad
            continue
        except (tarfile.TarError, OSError, EOFError):
            continue
        if want == "silent":
            return bad
    raise AssertionError(f"no {want} corruption found")


def mnist_arrays_gz(n=30, seed=0):
    images, labels = fake_mnist(n, seed)
    images[:, :14] = 0  # compressible, so that a flipped byte lands in deflate codes
    return images, labels, idx(images, 0x803), idx(labels, 0x801)


def test_read_idx_of_a_corrupted_gz_is_one_clear_line(tmp_path):
    _, _, blob, _ = mnist_arrays_gz()
    path = tmp_path / "x-idx3-ubyte.gz"
    path.write_bytes(corrupt_gzip(blob))
    with pytest.raises(data.DatasetDamagedError) as info:  # was a raw zlib.error
        data.read_idx(path, 0x803)
    message = one_line(info)
    assert message.startswith(f"{path}: damaged gzip file (")
    assert "delete it and re-run to download it again" in message
    assert isinstance(info.value, ValueError)
    path.write_bytes(gzip.compress(blob)[:200])  # truncated: EOFError inside gzip
    with pytest.raises(data.DatasetDamagedError, match="damaged gzip file"):
        data.read_idx(path)


def test_mnist_corrupted_gz_is_fetched_again_or_explained(server, monkeypatch, tmp_path, capsys):
    arrays = serve_mnist(server, monkeypatch)
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    gz = raw / "train-images-idx3-ubyte.gz"
    gz.write_bytes(corrupt_gzip(mnist_arrays_gz()[2]))

    with pytest.raises(data.DatasetDamagedError) as info:  # download=False: told what to do
        data.mnist("train", root=tmp_path, download=False)
    message = one_line(info)
    assert message.startswith(f"{gz}: damaged gzip file (")
    assert "download=True" in message
    assert f"{server.url}/mnist/train-images-idx3-ubyte.gz as {gz}" in message
    assert server.requests == [] and gz.exists()

    images, labels = data.mnist("train", root=tmp_path)  # download=True: like a bad checksum
    np.testing.assert_array_equal(images, arrays["train"][0])
    np.testing.assert_array_equal(labels, arrays["train"][1])
    assert "/mnist/train-images-idx3-ubyte.gz" in server.requests
    assert f"{gz}: damaged gzip file" in capsys.readouterr().err


def test_cifar10_corrupted_tar_gz_is_one_clear_line(server, monkeypatch, tmp_path):
    rng = np.random.default_rng(0)
    records = rng.integers(0, 4, (40, 3073), dtype=np.uint8)  # compressible
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name in ("test_batch.bin", "batches.meta.txt"):
            blob = records.tobytes() if name.endswith(".bin") else b"a\nb\nc\nd\ne\nf\ng\nh\ni\nj\n"
            info = tarfile.TarInfo(f"cifar-10-batches-bin/{name}")
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
    for kind in ("zlib", "silent"):  # a raw zlib.error / silently wrong pixels before
        root = tmp_path / kind
        serve_cifar(server, monkeypatch, corrupt_tar(buf.getvalue(), kind))  # checksum matches it
        with pytest.raises(data.DatasetDamagedError) as info:
            data.cifar10("test", root=root)
        message = one_line(info)
        archive = root / "cifar-10-binary.tar.gz"
        assert message.startswith(f"{archive}: cannot unpack (")
        assert message.endswith("delete it and re-run to download it again")
        assert kind == "zlib" or "CRC check failed" in message
        assert not (root / "cifar-10-batches-bin").exists()
        assert [p.name for p in root.iterdir()] == ["cifar-10-binary.tar.gz"]  # no temp folder


def test_unwritable_data_folder_is_one_clear_line(server, monkeypatch, tmp_path):
    for name in data.MIRRORS:  # a live server: any request would be a bug
        monkeypatch.setitem(data.MIRRORS, name, [server.url + "/"])
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    for scratch_data, loader in ((blocker / "data", data.names),  # a path under a file
                                 (blocker, data.tiny_shakespeare),  # the variable names a file
                                 (blocker / "data", lambda: data.mnist("test")),
                                 (blocker / "data", lambda: data.cifar10("test"))):
        monkeypatch.setenv("SCRATCH_DATA", str(scratch_data))
        with pytest.raises(data.DataFolderNotWritableError) as info:  # was NotADirectoryError
            loader()
        message = one_line(info)
        assert message.startswith(f"cannot write to {scratch_data}")
        assert f"({blocker} is a file, not a folder)" in message
        assert "set SCRATCH_DATA to a writable folder" in message
        assert isinstance(info.value, data.DatasetNotFoundError)
    assert server.requests == []
    with pytest.raises(data.DataFolderNotWritableError, match=f"cannot write to {blocker}/x"):
        data.download(server.url + "/f.bin", blocker / "x" / "f.bin")


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root can write a read-only folder")
def test_read_only_data_folder_is_one_clear_line(server, monkeypatch, tmp_path):
    monkeypatch.setitem(data.MIRRORS, "names", [server.url + "/"])
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        monkeypatch.setenv("SCRATCH_DATA", str(folder))
        with pytest.raises(data.DataFolderNotWritableError) as info:
            data.names()
        assert one_line(info).startswith(f"cannot write to {folder / 'names'} (Permission denied)")
        assert server.requests == []
    finally:
        folder.chmod(0o755)


def test_local_archive_is_verified_before_unpacking_with_download_false(tmp_path, offline):
    archive, _ = fake_cifar_tar(CIFAR_COUNTS)
    path = tmp_path / "cifar-10-binary.tar.gz"
    path.write_bytes(archive)
    data.CHECKSUMS["cifar-10-binary.tar.gz"] = f"md5:{md5(b'the official archive')}"
    with pytest.raises(data.DatasetDamagedError) as info:  # was unpacked as is
        data.cifar10("test", root=tmp_path, download=False)
    message = one_line(info)
    assert message.startswith(f"{path}: md5 mismatch: got {md5(archive)}, expected ")
    assert f"download=True" in message and f"{offline}cifar-10-binary.tar.gz as {path}" in message
    assert not (tmp_path / "cifar-10-batches-bin").exists()

    data.CHECKSUMS["cifar-10-binary.tar.gz"] = f"md5:{md5(archive)}"  # the right one: unpacked
    assert data.cifar10("test", root=tmp_path, download=False)[0].shape == (4, 3, 32, 32)


def test_subsample_rejects_bad_n_and_keeps_all_for_large_n():
    y = np.arange(100) % 10
    x = np.arange(100)
    for bad in (-10, -1, 2.5, None, "10"):
        with pytest.raises(ValueError, match="n must be a whole number >= 0") as info:
            data.subsample(x, y, bad)  # -10 silently kept 90 of 100 items
        one_line(info)
    with pytest.raises(ValueError, match="x has 100 items but y has 50"):
        data.subsample(x, y[:50], 10)
    assert data.subsample(x, y, 100)[0] is x and data.subsample(x, None, 10**6)[0] is x
    assert len(data.subsample(x, y, 0)[0]) == 0
    np.testing.assert_array_equal(data.subsample(x, y, 30.0)[0], data.subsample(x, y, np.int64(30))[0])


def unpack_imagenette(root, per_class=1):
    archive = fake_imagenette_tar(per_class)
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(root, filter="data")
    data.CHECKSUMS["imagenette2-160.tgz"] = f"md5:{md5(archive)}"
    return archive


def test_imagenette_missing_class_folder_is_one_clear_line(tmp_path):
    archive = unpack_imagenette(tmp_path)
    missing = tmp_path / "imagenette2-160" / "train" / "n01440764"
    for f in missing.iterdir():
        f.unlink()
    missing.rmdir()
    with pytest.raises(data.DatasetDamagedError) as info:  # was a raw FileNotFoundError
        data.imagenette("train", size=16, root=tmp_path, download=False, variant="160")
    message = one_line(info)
    assert message.startswith(f"{missing}: class folder missing, so the unpacked Imagenette "
                              f"archive looks incomplete; delete {tmp_path / 'imagenette2-160'} ")
    assert "download=True" in message and str(tmp_path / "imagenette2-160.tgz") in message

    # With the (verified) archive there, the folder is unpacked again, also with download=False.
    (tmp_path / "imagenette2-160.tgz").write_bytes(archive)
    images, labels = data.imagenette("train", size=16, root=tmp_path, download=False, variant="160")
    assert images.shape == (10, 3, 16, 16) and labels.tolist() == list(range(10))
    assert missing.is_dir()


def test_imagenette_archive_without_a_class_folder_is_one_clear_line(server, monkeypatch, tmp_path):
    from PIL import Image
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for wnid in sorted(data.IMAGENETTE_CLASSES)[1:]:
            jpg = io.BytesIO()
            Image.new("RGB", (20, 20)).save(jpg, format="JPEG")
            info = tarfile.TarInfo(f"imagenette2-160/val/{wnid}/0.JPEG")
            info.size = len(jpg.getvalue())
            tar.addfile(info, io.BytesIO(jpg.getvalue()))
    server.files["/nette/imagenette2-160.tgz"] = buf.getvalue()
    monkeypatch.setitem(data.CHECKSUMS, "imagenette2-160.tgz", f"md5:{md5(buf.getvalue())}")
    monkeypatch.setitem(data.MIRRORS, "imagenette", [server.url + "/nette/"])
    with pytest.raises(data.DatasetDamagedError) as info:
        data.imagenette("test", size=16, root=tmp_path, variant="160")
    assert one_line(info) == (f"{tmp_path / 'imagenette2-160.tgz'}: archive has no imagenette2-160/val/"
                              f"n01440764/ class folder, so it looks incomplete; "
                              f"delete it and re-run to download it again")


def test_imagenette_damaged_image_and_cache(tmp_path, capsys):
    unpack_imagenette(tmp_path)
    base = tmp_path / "imagenette2-160"
    bad = base / "val" / "n01440764" / "1.JPEG"
    for blob in (b"not a jpeg", (base / "val" / "n01440764" / "0.JPEG").read_bytes()[:300]):
        bad.write_bytes(blob)  # garbage, then a truncated JPEG: raw PIL errors before
        with pytest.raises(data.DatasetDamagedError) as info:
            data.imagenette("test", size=16, root=tmp_path, download=False, variant="160")
        message = one_line(info)
        assert message.startswith(f"{bad}: cannot decode the image (")
        assert message.endswith(f"delete {base} and re-run to unpack it again")
    bad.unlink()
    (base / "val" / "n01440764" / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")  # not an image: skipped

    images, labels = data.imagenette("test", size=16, root=tmp_path, download=False, variant="160")
    assert images.shape == (10, 3, 16, 16)
    cache = base / "cache-test-16-images.npy"
    cache.write_bytes(b"garbage")  # a damaged cache is rebuilt (was a raw ValueError)
    again, again_labels = data.imagenette("test", size=16, root=tmp_path, download=False, variant="160")
    np.testing.assert_array_equal(again, images)
    np.testing.assert_array_equal(again_labels, labels)
    assert f"{cache}: damaged cache" in capsys.readouterr().err
    np.testing.assert_array_equal(np.load(cache), images)  # and saved again

    # A cache that cannot be written only costs speed: the arrays still come back.
    (base / "cache-test-8-images.npy.part.npy").mkdir()
    assert data.imagenette("test", size=8, root=tmp_path, download=False, variant="160")[0].shape == (10, 3, 8, 8)
    assert "cannot cache" in capsys.readouterr().err
    for size in (0, -1, 2.5):
        with pytest.raises(ValueError, match="size must be a positive whole number"):
            data.imagenette("test", size=size, root=tmp_path, variant="160")


def test_damaged_text_files(server, monkeypatch, tmp_path, capsys):
    text = "First Citizen:\nSpeak.\n"
    server.files["/t/input.txt"] = text.encode()
    monkeypatch.setitem(data.MIRRORS, "tinyshakespeare", [server.url + "/t/"])
    monkeypatch.setitem(data.CHECKSUMS, "input.txt", "sha256:" + hashlib.sha256(text.encode()).hexdigest())
    path = tmp_path / "tinyshakespeare" / "input.txt"
    path.parent.mkdir()
    for blob, problem in ((b"\xff\xfe garbage", "not UTF-8 text (invalid start byte at byte 0)"),
                          (b"", "empty file")):  # a raw UnicodeDecodeError / a silent "" before
        path.write_bytes(blob)
        with pytest.raises(data.DatasetDamagedError) as info:
            data.tiny_shakespeare(root=tmp_path, download=False)
        assert one_line(info).startswith(f"{path}: {problem}; delete it and re-run with download=True")
    assert server.requests == []
    assert data.tiny_shakespeare(root=tmp_path) == text  # download=True: fetched again
    assert path.read_text() == text and server.requests == ["/t/input.txt"]
    assert f"{path}: empty file; downloading it again" in capsys.readouterr().err

    (tmp_path / "names").mkdir()
    (tmp_path / "names" / "names.txt").write_bytes(b"\n\n")
    with pytest.raises(data.DatasetDamagedError, match="names.txt: empty file"):
        data.names(root=tmp_path, download=False)


def test_damaged_cifar10_files(tmp_path):
    folder = tmp_path / "cifar-10-batches-bin"
    folder.mkdir()
    (folder / "test_batch.bin").write_bytes(b"")  # silently 0 images before
    with pytest.raises(data.DatasetDamagedError) as info:
        data.cifar10("test", root=tmp_path, download=False)
    assert one_line(info) == (f"{folder / 'test_batch.bin'}: empty file; "
                              f"delete it and re-run to unpack it again from the archive")
    for blob, problem in ((b"\x89PNG\r\n\x1a\n\xff", "not UTF-8 text"),  # raw UnicodeDecodeError
                          (b"cat\ndog\n", "2 class names, expected 10")):
        (folder / "batches.meta.txt").write_bytes(blob)
        with pytest.raises(data.DatasetDamagedError, match=problem) as info:
            data.cifar10_classes(root=tmp_path, download=False)
        one_line(info)


def test_archive_missing_a_needed_file_is_one_clear_line(server, monkeypatch, tmp_path):
    archive, _ = fake_cifar_tar({"test_batch.bin": 2})  # no data_batch_*.bin
    serve_cifar(server, monkeypatch, archive)
    with pytest.raises(data.DatasetDamagedError) as info:  # was a raw FileNotFoundError
        data.cifar10("train", root=tmp_path)
    assert one_line(info) == (f"{tmp_path / 'cifar-10-binary.tar.gz'}: archive has no "
                              f"cifar-10-batches-bin/data_batch_1.bin, so it looks incomplete; "
                              f"delete it and re-run to download it again")


def test_oxford_pets_damaged_folder_is_one_clear_line(tmp_path):
    from PIL import Image
    base = tmp_path / "oxford-iiit-pet"
    (base / "images").mkdir(parents=True)
    (base / "annotations" / "trimaps").mkdir(parents=True)
    Image.fromarray(np.zeros((20, 20), np.uint8)).save(base / "annotations" / "trimaps" / "Abyssinian_1.png")
    (base / "images" / "Abyssinian_1.jpg").write_bytes(b"not a jpeg")
    (base / "annotations" / "trainval.txt").write_text("Abyssinian_1 1 1 1\n")
    with pytest.raises(data.DatasetDamagedError) as info:  # was a raw PIL.UnidentifiedImageError
        data.oxford_pets("train", size=8, root=tmp_path, download=False)
    assert one_line(info).startswith(f"{base}: photo 0 of the train split cannot be read (")
    (base / "annotations" / "trainval.txt").write_text("garbled\n")
    with pytest.raises(data.DatasetDamagedError, match="incomplete or garbled") as info:
        data.oxford_pets("train", size=8, root=tmp_path, download=False)  # was a raw ValueError
    one_line(info)
    with pytest.raises(data.DatasetDamagedError, match="incomplete or garbled") as info:
        data.oxford_pets("test", size=8, root=tmp_path, download=False)  # no test.txt
    one_line(info)


# ----------------------------------------------------------------------------- daily prices

PRICES = b"Date,Open,High,Low,Close,Volume\n2024-01-02,10,11,9,10.5,100\n2024-01-03,10.5,12,10,11.5,120\n2024-01-04,11.5,12,11,11.0,90\n"


def test_daily_prices_download_once_then_read_from_the_cache(server, monkeypatch, tmp_path):
    server.files["/stooq/?s=aapl.us&i=d"] = PRICES
    monkeypatch.setitem(data.MIRRORS, "stooq", [server.url + "/stooq/"])
    dates, closes = data.daily_prices(["aapl.us"], root=tmp_path)["aapl.us"]
    assert dates.dtype == np.dtype("datetime64[D]") and str(dates[0]) == "2024-01-02"
    np.testing.assert_array_equal(closes, [10.5, 11.5, 11.0])
    assert (tmp_path / "stooq" / "aapl.us.csv").exists()
    data.daily_prices(["aapl.us"], root=tmp_path, download=False)  # no network now
    assert server.requests == ["/stooq/?s=aapl.us&i=d"]


def test_daily_prices_reject_a_page_that_is_not_a_price_table(server, monkeypatch, tmp_path):
    server.files["/stooq/?s=nope.us&i=d"] = b"No data\n"
    monkeypatch.setitem(data.MIRRORS, "stooq", [server.url + "/stooq/"])
    with pytest.raises(data.DatasetNotFoundError, match="not a price table"):
        data.daily_prices(["nope.us"], root=tmp_path)
    assert not (tmp_path / "stooq" / "nope.us.csv").exists()  # nothing half-made is kept
    bad = tmp_path / "stooq" / "msft.us.csv"
    bad.write_text("Date,Close\n2024-01-03,5\n2024-01-02,6\n")
    with pytest.raises(data.DatasetDamagedError, match="dates are not increasing"):
        data.daily_prices(["msft.us"], root=tmp_path, download=False)
    with pytest.raises(ValueError, match="not a ticker symbol"):
        data.daily_prices(["aapl.us&i=x"], root=tmp_path)


def test_daily_prices_offline_error_names_the_url_and_path(tmp_path, offline):
    with pytest.raises(data.DatasetNotFoundError) as info:
        data.daily_prices(["goog.us"], root=tmp_path)
    message = str(info.value)
    assert "\n" not in message and "goog.us" in message
    assert str(tmp_path / "stooq" / "goog.us.csv") in message
