"""Data sets for the book: MNIST, CIFAR-10, tiny Shakespeare and names.

Design
------
* Every loader returns plain NumPy arrays (or a ``str`` / ``list``). Torch is kept
  out of this module so that the chapters that build a NumPy engine can use it too.
* Files live under one root folder, :func:`data_root`: ``$SCRATCH_DATA`` if set,
  else a per-user cache folder. Every loader also takes ``root=``. The layouts are
  the ones the official downloads unpack to (torchvision's ``MNIST/raw`` for MNIST),
  so a cache filled by torchvision or by hand works as is.
* A loader that finds its unpacked files reads them and never touches the network.
  Only when they are missing does it download the official archive (``download=True``),
  verify its checksum and unpack it.
* Record counts are read from the files (IDX headers, file sizes), never assumed:
  the offline copies used to build the book are smaller than the real data sets.
* Files are parsed with NumPy; nothing is unpickled.

Downloads go through :func:`download`: urllib only, mirrors tried in order, the
file is written to ``PATH.part`` and renamed into place only once it is complete
and its checksum matches, so an interrupted run never leaves a broken file behind.
When no mirror can be reached it raises :class:`DatasetNotFoundError`, whose
message says which file to fetch and exactly where to put it.

Bad input gives one clear line, never a raw traceback: a file that is there but
truncated, corrupted or not what it should be raises :class:`DatasetDamagedError`
(a ``ValueError``) naming the file and what to do; a data folder that cannot be
written raises :class:`DataFolderNotWritableError` naming the folder and
``SCRATCH_DATA``. Where a loader may download (``download=True``), a damaged
official file is replaced like one whose checksum does not match. Archives are
checked against their checksums before they are unpacked, also with ``download=False``.

Chapter: "Running the chapters yourself" (book/appendix/running.md).
"""

import gzip
import hashlib
import http.client
import operator
import os
import shutil
import struct
import sys
import tarfile
import tempfile
import urllib.request
import zlib
from pathlib import PurePosixPath

import numpy as np

__all__ = [
    "DatasetNotFoundError",
    "DatasetDamagedError",
    "DataFolderNotWritableError",
    "data_root",
    "download",
    "read_idx",
    "mnist",
    "cifar10",
    "cifar10_classes",
    "tiny_shakespeare",
    "names",
    "daily_prices",
    "imagenette",
    "imagenette_classes",
    "ag_news",
    "AG_NEWS_CLASSES",
    "multi30k",
    "MULTI30K_LANGUAGES",
    "oxford_pets",
    "as_float",
    "subsample",
    "channel_stats",
    "normalize",
]

# Base URLs of each data set, tried in order. Tests (and users behind a proxy)
# replace these; setting $SCRATCH_DATA_MIRROR to one base URL replaces them all.
MIRRORS = {
    "mnist": [
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "http://yann.lecun.com/exdb/mnist/",
    ],
    "cifar10": ["https://www.cs.toronto.edu/~kriz/"],
    "tinyshakespeare": [
        "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/"
    ],
    "names": ["https://raw.githubusercontent.com/karpathy/makemore/master/"],
    "imagenette": ["https://s3.amazonaws.com/fast-ai-imageclas/"],
    # Stooq's free end-of-day CSVs: /q/d/l/?s=aapl.us&i=d
    "stooq": ["https://stooq.com/q/d/l/"],
}

# Checksums of the official files ("algorithm:hexdigest"), keyed by file name.
CHECKSUMS = {
    "train-images-idx3-ubyte.gz": "md5:f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "md5:d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "md5:9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "md5:ec29112dd5afa0611ce80d1b7f02629c",
    "cifar-10-binary.tar.gz": "md5:c32a1d4ab5d03f1284b67883e8d87530",
    "input.txt": "sha256:86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed",  # noqa: E501
    # fast.ai's Imagenette (the md5s torchvision.datasets.Imagenette checks too)
    "imagenette2.tgz": "md5:fe2fc210e6bb7c5664d602c3cd71e612",
    "imagenette2-320.tgz": "md5:3df6f0d01a2c9592104656642f5e78a3",
    "imagenette2-160.tgz": "md5:e793b78cc4c9e9a4ccc0c1155377a412",
    "names.txt": "sha256:0a30b5557f192f32ab962680889aac5f6fda0f4cecf40a6d0b5694f58ea8cc4d",  # noqa: E501
}

TIMEOUT = 60  # seconds without data before a download counts as failed


class DatasetNotFoundError(RuntimeError):
    """A data set file is missing and could not be downloaded."""


class DatasetDamagedError(ValueError):
    """A data set file is there but damaged: truncated, corrupted or not the file it
    should be."""


class DataFolderNotWritableError(DatasetNotFoundError):
    """The data folder cannot be created or written (read-only, under a file, disk
    full)."""


def data_root():
    """The folder that holds the data sets.

    ``$SCRATCH_DATA`` if set, else ``$XDG_CACHE_HOME/scratch`` (``~/.cache/scratch``).
    """
    if os.environ.get("SCRATCH_DATA"):
        return os.path.expanduser(os.environ["SCRATCH_DATA"])
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(
        os.path.expanduser("~"), ".cache"
    )
    return os.path.join(cache, "scratch")


# ----------------------------------------------------------------------------- download


def download(url, path, md5=None, sha256=None):
    """Download ``url`` (a URL or a list of mirror URLs) to ``path`` and return
    ``path``.

    A file already at ``path`` whose checksum matches is kept (no network). Otherwise
    each mirror is tried in order; a copy that arrives truncated (fewer bytes than its
    Content-Length) or with the wrong checksum is fetched once more before moving on.
    Raises :class:`DatasetNotFoundError` when every attempt failed.
    """
    urls = [url] if isinstance(url, str) else list(url)
    path = os.fspath(path)
    if os.path.exists(path):
        if _checksum_problem(path, md5, sha256) is None:
            return path
        _remove(path)  # a damaged copy must not be mistaken for the data set later
    folder = os.path.dirname(path) or "."
    _makedirs(folder)
    part = path + ".part"  # same folder, so os.replace is an atomic rename
    problems = []
    try:
        try:
            open(part, "wb").close()  # an unwritable folder is not a network problem
        except OSError as e:
            raise _unwritable(folder, e) from None
        for u in urls:
            for _ in range(
                2
            ):  # a damaged copy gets one retry; a network error does not
                print(f"downloading {u} -> {path}", file=sys.stderr)
                try:
                    problem = _fetch(u, part) or _checksum_problem(part, md5, sha256)
                except (
                    OSError,
                    http.client.HTTPException,
                ) as e:  # URLError is an OSError
                    problems.append(f"{u}: {_one_line(e)}")
                    break
                if problem is None:
                    os.replace(part, path)
                    return path
                problems.append(f"{u}: {problem}")
    finally:
        if os.path.exists(part):
            os.remove(part)
    why = "could not download it (" + "; ".join(problems) + ")"
    raise DatasetNotFoundError(_missing_message(path, urls[0], why))


def _fetch(url, part):
    """Write ``url`` to ``part``; return a problem description, or None if complete."""
    request = urllib.request.Request(url, headers={"User-Agent": "scratch-data"})
    size = 0
    with (
        urllib.request.urlopen(request, timeout=TIMEOUT) as response,
        open(part, "wb") as f,
    ):
        expected = response.headers.get("Content-Length")
        try:
            while chunk := response.read(1 << 20):
                f.write(chunk)
                size += len(chunk)
        except (http.client.IncompleteRead, OSError) as e:
            return f"interrupted after {size} bytes ({_one_line(e)})"
    # http.client does not complain when the server closes the connection early.
    if expected is not None and size != int(expected):
        return f"truncated: got {size} of {expected} bytes"
    return None


def _checksum_problem(path, md5=None, sha256=None):
    for name, want in (("md5", md5), ("sha256", sha256)):
        if want:
            digest = hashlib.new(name)
            with open(path, "rb") as f:
                while chunk := f.read(1 << 20):
                    digest.update(chunk)
            if digest.hexdigest() != want.lower():
                return f"{name} mismatch: got {digest.hexdigest()}, expected {want}"
    return None


def _one_line(error):
    return " ".join(str(error).split()) or type(error).__name__


def _damaged(path, problem, advice="delete it and re-run to download it again"):
    """The one-line :class:`DatasetDamagedError` for ``path``."""
    error = DatasetDamagedError(" ".join(f"{path}: {problem}; {advice}".split()))
    error.path, error.problem = path, problem
    return error


def _replace_advice(path, url, download_allowed):
    """What to do about a damaged official file ``path`` that a loader found."""
    if download_allowed:
        return "delete it and re-run to download it again"
    return (
        f"delete it and re-run with download=True to download it again, "
        f"or save the official file from {url} as {path}"
    )


def _unwritable(folder, error):
    """The one-line :class:`DataFolderNotWritableError` for ``folder`` (an OSError's
    cause)."""
    why = getattr(error, "strerror", None) or _one_line(error)
    parent = os.path.abspath(folder)
    while parent != os.path.dirname(
        parent
    ):  # name the file that is in the way, if one is
        if os.path.exists(parent) and not os.path.isdir(parent):
            why = f"{parent} is a file, not a folder"
            break
        parent = os.path.dirname(parent)
    return DataFolderNotWritableError(
        " ".join(
            f"cannot write to {folder} ({why}); set SCRATCH_DATA to a writable folder "
            "with room "
            f"for the data sets (or pass root=)".split()
        )
    )


def _makedirs(folder):
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as e:
        raise _unwritable(folder, e) from None


def _remove(path):
    try:
        os.remove(path)
    except FileNotFoundError:
        pass
    except OSError as e:
        raise _unwritable(os.path.dirname(path) or ".", e) from None


def _missing_message(path, url, why):
    # One line, so it reads well at the bottom of a notebook traceback.
    return (
        f"{os.path.basename(path)}: {why}; download {url} yourself and save it as "
        f"{path}"
        f" (or set SCRATCH_DATA to a folder that already holds the data sets)"
    )


def _urls(dataset, filename):
    mirror = os.environ.get("SCRATCH_DATA_MIRROR")
    bases = [mirror] if mirror else MIRRORS[dataset]
    return [base.rstrip("/") + "/" + filename for base in bases]


def _checksum(filename):
    algorithm, digest = CHECKSUMS[filename].split(":")
    return {algorithm: digest}


def _get(dataset, filename, path, download_allowed):
    """Fetch an official file of ``dataset`` to ``path`` (or explain where to put
    it)."""
    urls = _urls(dataset, filename)
    if not download_allowed:
        raise DatasetNotFoundError(
            _missing_message(path, urls[0], "not found and download=False")
        )
    return download(urls, path, **_checksum(filename))


def _archive(dataset, filename, root, download_allowed):
    """``ROOT/filename``, an official archive whose checksum matches, ready to unpack.

    With ``download=True`` this is :func:`download` (an intact copy is kept, a damaged
    one fetched again); with ``download=False`` a copy found there is verified.
    """
    path = os.path.join(root, filename)
    if download_allowed or not os.path.exists(path):
        return _get(dataset, filename, path, download_allowed)
    problem = _checksum_problem(path, **_checksum(filename))
    if problem is not None:
        raise _damaged(
            path, problem, _replace_advice(path, _urls(dataset, filename)[0], False)
        )
    return path


def _write_atomic(path, data):
    try:
        with open(path + ".part", "wb") as f:
            f.write(data)
        os.replace(path + ".part", path)
    except OSError as e:
        if os.path.isfile(path + ".part"):
            os.remove(path + ".part")
        raise _unwritable(os.path.dirname(path) or ".", e) from None


def _root(root):
    return os.fspath(root) if root is not None else data_root()


def _check_split(split):
    if split not in ("train", "test"):
        raise ValueError(f'split must be "train" or "test", not {split!r}')


# ----------------------------------------------------------------------------- MNIST


def read_idx(path, magic=None):
    """Read an IDX file of unsigned bytes (raw or ``.gz``) into a uint8 array.

    The shape comes from the header. ``magic`` (e.g. 0x803 for images, 0x801 for
    labels) is checked if given; a file whose length disagrees with its header is
    an error.
    """
    path = os.fspath(path)
    return _parse_idx(_read_bytes(path), path, magic)


def _read_bytes(path):
    """The bytes of ``path``, gunzipped if it ends in ``.gz``; a bytearray, so
    writable."""
    try:
        with (gzip.open if path.endswith(".gz") else open)(path, "rb") as f:
            return bytearray(f.read())
    except (
        EOFError,
        gzip.BadGzipFile,
        zlib.error,
    ) as e:  # truncated, not gzip, corrupted
        raise _damaged(path, f"damaged gzip file ({_one_line(e)})") from None


def _parse_idx(data, source, magic=None):
    # Header: 2 zero bytes, a type code (0x08 = unsigned byte), the number of
    # dimensions, then one big-endian uint32 per dimension.
    got = struct.unpack(">I", data[:4])[0] if len(data) >= 4 else None
    if got is None or got >> 8 != 0x08 or (magic is not None and got != magic):
        want = (
            f"0x{magic:08x}" if magic is not None else "an IDX uint8 magic (0x000008NN)"
        )
        shown = "none (file too short)" if got is None else f"0x{got:08x}"
        raise _damaged(source, f"bad IDX magic number {shown}, expected {want}")
    ndim = got & 0xFF
    offset = 4 + 4 * ndim
    if len(data) < offset:
        raise _damaged(source, f"IDX header truncated ({len(data)} bytes)")
    shape = struct.unpack(f">{ndim}I", data[4:offset])
    if len(data) - offset != int(np.prod(shape)):
        raise _damaged(
            source,
            f"IDX header says shape {shape} ({int(np.prod(shape))} bytes) "
            f"but the file holds {len(data) - offset} bytes",
        )
    return np.frombuffer(data, np.uint8, offset=offset).reshape(shape)


def _mnist_file(folder, name, magic, download_allowed):
    raw = os.path.join(folder, name)
    if os.path.exists(raw):
        return read_idx(raw, magic)
    gz = raw + ".gz"
    if os.path.exists(gz):  # e.g. a cache where only the archives were kept
        try:
            return read_idx(gz, magic)
        except (
            DatasetDamagedError
        ) as e:  # like a checksum mismatch: fetched again if allowed
            problem = e.problem
            if not download_allowed:
                url = _urls("mnist", name + ".gz")[0]
                raise _damaged(gz, problem, _replace_advice(gz, url, False)) from None
            print(f"{gz}: {problem}; downloading it again", file=sys.stderr)
            _remove(gz)
    _get("mnist", name + ".gz", gz, download_allowed)
    data = _read_bytes(gz)
    array = _parse_idx(data, gz, magic)
    _write_atomic(raw, data)  # unpack once, so later loads skip the decompression
    return array


def mnist(split="train", root=None, download=True):
    """MNIST digits: ``(images, labels)``, uint8 ``(N, 28, 28)`` and int64 ``(N,)``.

    Reads ``ROOT/MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte`` (or their
    ``.gz``), torchvision's layout; downloads the ``.gz`` files if neither is there.
    """
    _check_split(split)
    folder = os.path.join(_root(root), "MNIST", "raw")
    prefix = "train" if split == "train" else "t10k"
    images = _mnist_file(folder, f"{prefix}-images-idx3-ubyte", 0x803, download)
    labels = _mnist_file(folder, f"{prefix}-labels-idx1-ubyte", 0x801, download)
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise _damaged(
            folder,
            f"{prefix} images {images.shape} do not match labels {labels.shape}",
            f"delete the {prefix} files there and re-run to download them again",
        )
    return images, labels.astype(np.int64)


# ----------------------------------------------------------------------------- CIFAR-10

CIFAR10_FOLDER = "cifar-10-batches-bin"
CIFAR10_ARCHIVE = "cifar-10-binary.tar.gz"
CIFAR10_FILES = {
    "train": [f"data_batch_{i}.bin" for i in range(1, 6)],
    "test": ["test_batch.bin"],
}
_CIFAR10_RECORD = 1 + 3 * 32 * 32  # one label byte, then the R, G and B planes


def _cifar10_folder(root, download_allowed, needed):
    """``ROOT/cifar-10-batches-bin``, unpacked from the official archive if needed."""
    root = _root(root)
    folder = os.path.join(root, CIFAR10_FOLDER)
    if all(os.path.exists(os.path.join(folder, name)) for name in needed):
        return folder
    archive = _archive(
        "cifar10", CIFAR10_ARCHIVE, root, download_allowed
    )  # no network if intact
    _extract(archive, root, CIFAR10_FOLDER)
    missing = [
        name for name in needed if not os.path.exists(os.path.join(folder, name))
    ]
    if missing:
        raise _damaged(
            archive,
            f"archive has no {CIFAR10_FOLDER}/{missing[0]}, so it looks incomplete",
        )
    return folder


def _extract(archive, root, top):
    """Unpack the regular files under ``top/`` of a tar archive into ``root/top``.

    Member names are checked (no absolute paths, no ``..``, no links), so a hostile
    archive cannot write outside ``root``. Unpacking goes to a temporary folder in
    ``root`` that is renamed into place at the end, so a half-unpacked folder is
    never mistaken for the data set.
    """
    try:
        tmp = tempfile.mkdtemp(prefix=f".{top}-", dir=root)
    except OSError as e:
        raise _unwritable(root, e) from None
    try:
        with tarfile.open(archive, "r:*") as tar:
            for member in tar:
                parts = PurePosixPath(member.name).parts
                if PurePosixPath(member.name).is_absolute() or ".." in parts:
                    raise _damaged(archive, f"unsafe path {member.name!r} in archive")
                if not parts or parts[0] != top or member.isdir():
                    continue
                if not member.isfile():
                    raise _damaged(
                        archive, f"unexpected link or device {member.name!r}"
                    )
                target = os.path.join(tmp, *parts)
                os.makedirs(os.path.dirname(target), exist_ok=True)
                with tar.extractfile(member) as src, open(target, "wb") as dst:
                    shutil.copyfileobj(src, dst)
            while tar.fileobj.read(1 << 20):  # to the end, so that gzip checks its CRC
                pass
        if not os.path.isdir(os.path.join(tmp, top)):
            raise _damaged(archive, f"no {top}/ folder in archive")
        final = os.path.join(root, top)
        if os.path.isdir(
            final
        ):  # an incomplete earlier copy: move it aside, deleted below
            os.rename(final, os.path.join(tmp, "old"))
        os.rename(os.path.join(tmp, top), final)
    except (tarfile.TarError, EOFError, zlib.error, OSError) as e:
        if isinstance(e, OSError) and e.errno is not None and e.filename != archive:
            raise _unwritable(
                root, e
            ) from None  # writing failed (read-only, disk full)
        raise _damaged(archive, f"cannot unpack ({_one_line(e)})") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


_REUNPACK = "delete it and re-run to unpack it again from the archive"


def _read_cifar10_batch(path):
    size = os.path.getsize(path)
    if size == 0:
        raise _damaged(path, "empty file", _REUNPACK)
    if size % _CIFAR10_RECORD:
        raise _damaged(
            path,
            f"{size} bytes is not a whole number of "
            f"{_CIFAR10_RECORD}-byte CIFAR-10 records",
            _REUNPACK,
        )
    records = np.fromfile(path, np.uint8).reshape(-1, _CIFAR10_RECORD)
    if records[:, 0].max() > 9:
        raise _damaged(
            path,
            f"label {records[:, 0].max()} out of range 0-9; not a CIFAR-10 batch",
            _REUNPACK,
        )
    return records[:, 1:].reshape(-1, 3, 32, 32), records[:, 0]


def cifar10(split="train", root=None, download=True):
    """CIFAR-10: ``(images, labels)``, uint8 ``(N, 3, 32, 32)`` and int64 ``(N,)``.

    Reads the official binary version, ``ROOT/cifar-10-batches-bin/*.bin`` (the
    five ``data_batch_*`` files for ``"train"``, ``test_batch`` for ``"test"``).
    """
    _check_split(split)
    folder = _cifar10_folder(root, download, CIFAR10_FILES[split])
    batches = [
        _read_cifar10_batch(os.path.join(folder, name)) for name in CIFAR10_FILES[split]
    ]
    images = np.concatenate(
        [b[0] for b in batches]
    )  # concatenate also makes them contiguous
    labels = np.concatenate([b[1] for b in batches]).astype(np.int64)
    return images, labels


def cifar10_classes(root=None, download=True):
    """The ten CIFAR-10 class names, in label order (from ``batches.meta.txt``)."""
    path = os.path.join(
        _cifar10_folder(root, download, ["batches.meta.txt"]), "batches.meta.txt"
    )
    text, problem = _read_text(path)
    classes = [line.strip() for line in (text or "").splitlines() if line.strip()]
    if problem is None and len(classes) != 10:
        problem = f"{len(classes)} class names, expected 10"
    if problem is not None:
        raise _damaged(path, problem, _REUNPACK)
    return classes


# -----------------------------------------------------------------------------
# photographs Imagenette and Oxford-IIIT Pet are folders of JPEGs of many sizes. They
# are used by the `full` profiles only (on a GPU), so they are decoded once, resized to
# one square size and cached as a .npy file next to the images: later runs load them in
# seconds.

IMAGENETTE_CLASSES = {  # WordNet id -> name, in the (sorted-id) label order
    "n01440764": "tench",
    "n02102040": "English springer",
    "n02979186": "cassette player",
    "n03000684": "chain saw",
    "n03028079": "church",
    "n03394916": "French horn",
    "n03417042": "garbage truck",
    "n03425413": "gas pump",
    "n03445777": "golf ball",
    "n03888257": "parachute",
}


def _square(image, size, resample):
    """Resize the shorter side to ``size`` and crop the centre: a ``size`` x ``size``
    image."""

    w, h = image.size
    scale = size / min(w, h)
    image = image.resize(
        (max(size, round(w * scale)), max(size, round(h * scale))), resample
    )
    w, h = image.size
    left, top = (w - size) // 2, (h - size) // 2
    return image.crop((left, top, left + size, top + size))


def _load_cache(*paths):
    """The arrays saved at ``paths`` (all of the same length), or None to rebuild them.

    A damaged cache is only a slow start: it is reported and rebuilt.
    """
    if not all(os.path.exists(path) for path in paths):
        return None
    arrays = []
    for path in paths:
        try:
            arrays.append(np.load(path))
        except (ValueError, OSError, EOFError) as e:
            print(
                f"{path}: damaged cache ({_one_line(e)}); building it again",
                file=sys.stderr,
            )
            return None
    if len({len(a) for a in arrays}) != 1:
        print(
            f"{paths[0]}: cache files of different lengths; building them again",
            file=sys.stderr,
        )
        return None
    return tuple(arrays)


def _save_cache(path, array):
    """Save ``array`` atomically to ``path``; a folder that cannot be written only
    costs speed."""
    tmp = path + ".part.npy"
    try:
        np.save(tmp, array)
        os.replace(tmp, path)
    except OSError as e:
        if os.path.isfile(tmp):
            os.remove(tmp)
        print(
            f"cannot cache {path} ({e.strerror or _one_line(e)}); later runs decode "
            "the images "
            f"again (set SCRATCH_DATA to a writable folder to keep the cache)",
            file=sys.stderr,
        )


def _check_size(size):
    try:
        whole = operator.index(size)
    except TypeError:
        whole = 0
    if whole < 1:
        raise ValueError(
            f"size must be a positive whole number of pixels, not {size!r}"
        )
    return whole


def _decode(path, size, resample, advice):
    """``path`` as a ``size`` x ``size`` RGB array; one clear line if it cannot be
    decoded."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            return np.asarray(_square(im.convert("RGB"), size, resample))
    except (
        OSError,
        ValueError,
        SyntaxError,
    ) as e:  # PIL's errors for unreadable images
        raise _damaged(
            path, f"cannot decode the image ({_one_line(e)})", advice
        ) from None


def imagenette(split="train", size=160, root=None, download=True, variant="320"):
    """Imagenette (fast.ai's ten easy ImageNet classes): ``(images, labels)``.

    ``images`` are uint8 ``(N, 3, size, size)``: each photo's shorter side resized to
    ``size``, then centre-cropped. ``split`` is ``"train"`` (9,469 images in the
    official release) or ``"test"`` (the 3,925 of its ``val`` folder). ``variant``
    picks the archive: ``"160"``, ``"320"`` (shorter side in pixels) or ``"full"``.
    """
    from PIL import Image

    _check_split(split)
    size = _check_size(size)
    if variant not in ("160", "320", "full"):
        raise ValueError(f"variant must be '160', '320' or 'full', not {variant!r}")
    top = "imagenette2" if variant == "full" else f"imagenette2-{variant}"
    root = _root(root)
    base = os.path.join(root, top)
    folder = os.path.join(base, "train" if split == "train" else "val")
    images_path = os.path.join(base, f"cache-{split}-{size}-images.npy")
    labels_path = os.path.join(base, f"cache-{split}-{size}-labels.npy")
    cached = _load_cache(images_path, labels_path)
    if cached is not None:
        return cached

    wnids = sorted(IMAGENETTE_CLASSES)
    missing = [w for w in wnids if not os.path.isdir(os.path.join(folder, w))]
    if missing:  # not unpacked, or unpacked only in part: unpack the archive (again)
        archive = os.path.join(root, top + ".tgz")
        if os.path.isdir(folder) and not download and not os.path.exists(archive):
            url = _urls("imagenette", top + ".tgz")[0]
            raise _damaged(
                os.path.join(folder, missing[0]),
                "class folder missing, so the unpacked Imagenette archive looks "
                "incomplete",
                f"delete {base} and re-run with download=True to download and unpack "
                f"it again, or save the official {url} as {archive} to unpack it again",
            )
        archive = _archive(
            "imagenette", top + ".tgz", root, download
        )  # no network if intact
        _extract(archive, root, top)
        missing = [w for w in wnids if not os.path.isdir(os.path.join(folder, w))]
        if missing:
            raise _damaged(
                archive,
                f"archive has no {os.path.relpath(folder, root)}/{missing[0]}/ "
                f"class folder, so it looks incomplete",
            )

    files = [
        (os.path.join(folder, w, f), label)
        for label, w in enumerate(wnids)
        for f in sorted(os.listdir(os.path.join(folder, w)))
        if not f.startswith(".")
    ]
    images = np.empty((len(files), 3, size, size), np.uint8)
    advice = (
        f"the unpacked archive looks damaged: delete {base} and re-run to unpack it "
        "again"
    )
    for i, (path, _) in enumerate(files):
        images[i] = _decode(path, size, Image.BILINEAR, advice).transpose(2, 0, 1)
    labels = np.array([label for _, label in files], np.int64)
    _save_cache(labels_path, labels)
    _save_cache(images_path, images)
    return images, labels


def imagenette_classes():
    """The ten Imagenette class names, in label order."""
    return [IMAGENETTE_CLASSES[w] for w in sorted(IMAGENETTE_CLASSES)]


def oxford_pets(split="train", size=128, root=None, download=True):
    """Oxford-IIIT Pet foreground segmentation: ``(images, masks)``.

    uint8 ``(N, 3, size, size)`` photos and uint8 ``(N, size, size)`` masks, 1 on
    the pet (the trimap's "foreground" and "boundary" classes), 0 on the background.
    ``split`` ``"train"`` is the official ``trainval`` list (3,680 images), ``"test"``
    its ``test`` list (3,669). Files come from torchvision's ``OxfordIIITPet``
    (downloaded by it into ``ROOT/oxford-iiit-pet``).
    """
    from PIL import Image

    _check_split(split)
    size = _check_size(size)
    root = _root(root)
    base = os.path.join(root, "oxford-iiit-pet")
    images_path = os.path.join(base, f"cache-{split}-{size}-images.npy")
    masks_path = os.path.join(base, f"cache-{split}-{size}-masks.npy")
    cached = _load_cache(images_path, masks_path)
    if cached is not None:
        return cached
    try:
        from torchvision.datasets import OxfordIIITPet

        pets = OxfordIIITPet(
            root,
            split="trainval" if split == "train" else "test",
            target_types="segmentation",
            download=download,
        )
    except RuntimeError as e:  # torchvision's "Dataset not found" when download=False
        raise DatasetNotFoundError(
            f"Oxford-IIIT Pet not found under {base} ({_one_line(e)})"
        ) from None
    except (OSError, ValueError) as e:  # ValueError: a garbled list of a split
        in_copy = isinstance(e, FileNotFoundError) and os.fspath(
            e.filename or ""
        ).startswith(base)
        if (
            isinstance(e, ValueError) or not download or in_copy
        ):  # a copy there, incomplete
            raise _damaged(
                base,
                f"incomplete or garbled Oxford-IIIT Pet folder ({_one_line(e)})",
                "delete it and re-run with download=True to download it again",
            ) from None
        raise DatasetNotFoundError(
            f"Oxford-IIIT Pet: could not download it into {root} "
            f"({_one_line(e)}); set SCRATCH_DATA to a writable folder that "
            f"can reach the internet, or put torchvision's oxford-iiit-pet "
            f"folder there"
        ) from None
    images = np.empty((len(pets), 3, size, size), np.uint8)
    masks = np.empty((len(pets), size, size), np.uint8)
    advice = f"the folder looks damaged: delete {base} and re-run with download=True"
    for i in range(len(pets)):
        try:
            photo, trimap = pets[i]
            photo = np.asarray(_square(photo.convert("RGB"), size, Image.BILINEAR))
            # Trimap: 1 pet, 2 background, 3 the border between them (part of the
            # outline).
            t = np.asarray(_square(trimap, size, Image.NEAREST))
        except (
            OSError,
            ValueError,
            SyntaxError,
        ) as e:  # PIL's errors for unreadable images
            raise _damaged(
                base,
                f"photo {i} of the {split} split cannot be read ({_one_line(e)})",
                advice,
            ) from None
        images[i] = photo.transpose(2, 0, 1)
        masks[i] = (t == 1) | (t == 3)
    _save_cache(masks_path, masks)
    _save_cache(images_path, images)
    return images, masks


# ----------------------------------------------------------------------------- text


def _read_text(path):
    """``(text, None)``, or ``(None, problem)`` for a file that is empty or not
    UTF-8."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except UnicodeDecodeError as e:
        return None, f"not UTF-8 text ({e.reason} at byte {e.start})"
    return (text, None) if text.strip() else (None, "empty file")


def _text(dataset, filename, root, download_allowed):
    path = os.path.join(_root(root), dataset, filename)
    if os.path.exists(path):
        text, problem = _read_text(path)
        if problem is None:
            return text
        if not download_allowed:  # like a checksum mismatch: fetched again if allowed
            raise _damaged(
                path, problem, _replace_advice(path, _urls(dataset, filename)[0], False)
            )
        print(f"{path}: {problem}; downloading it again", file=sys.stderr)
        _remove(path)
    _get(dataset, filename, path, download_allowed)
    text, problem = _read_text(path)
    if problem is not None:
        raise _damaged(path, problem)
    return text


def tiny_shakespeare(root=None, download=True):
    """The tiny-Shakespeare corpus (``ROOT/tinyshakespeare/input.txt``) as one
    string."""
    return _text("tinyshakespeare", "input.txt", root, download)


def names(root=None, download=True):
    """The makemore names (``ROOT/names/names.txt``), one string per name."""
    text = _text("names", "names.txt", root, download)
    return [line.strip() for line in text.splitlines() if line.strip()]


_download_file = download  # the loaders' `download` argument shadows the function


def _parse_prices(path):
    """(dates as datetime64[D], closes as float64) of a Stooq daily CSV, or a
    problem string."""
    text, problem = _read_text(path)
    if problem is not None:
        return None, problem
    lines = text.strip().splitlines()
    header = [h.strip().lower() for h in lines[0].split(",")]
    if "date" not in header or "close" not in header:
        return None, f"not a price table (its first line is {lines[0][:60]!r})"
    i, j = header.index("date"), header.index("close")
    try:
        rows = [line.split(",") for line in lines[1:]]
        dates = np.array([r[i] for r in rows], dtype="datetime64[D]")
        closes = np.array([float(r[j]) for r in rows])
    except (ValueError, IndexError) as e:
        return None, f"unreadable row ({e})"
    if len(dates) < 2 or not (np.diff(dates) > np.timedelta64(0, "D")).all():
        return None, "dates are not increasing"
    if not (np.isfinite(closes).all() and (closes > 0).all()):
        return None, "closing prices must be finite and positive"
    return (dates, closes), None


def daily_prices(symbols, root=None, download=True):
    """Daily closing prices from Stooq, ``{symbol: (dates, closes)}``.

    Each symbol (Stooq's, e.g. ``"aapl.us"``) is downloaded once into
    ``ROOT/stooq/<symbol>.csv`` and read from there afterwards: prices change every
    day, so the file has no checksum to verify, and a run uses whatever the cache
    holds (delete the file to refresh it). A file that is not a price table is
    reported, and fetched again if downloads are allowed.
    """
    out = {}
    for symbol in symbols:
        name = str(symbol).lower()
        if not name or any(c in name for c in "/\\?&= "):
            raise ValueError(f"not a ticker symbol: {symbol!r}")
        path = os.path.join(_root(root), "stooq", f"{name}.csv")
        url = _urls("stooq", f"?s={name}&i=d")[0]
        if os.path.exists(path):
            parsed, problem = _parse_prices(path)
            if problem is None:
                out[symbol] = parsed
                continue
            if not download:
                raise _damaged(path, problem, _replace_advice(path, url, False))
            print(f"{path}: {problem}; downloading it again", file=sys.stderr)
            _remove(path)
        if not download:
            raise DatasetNotFoundError(
                _missing_message(path, url, "not found and download=False")
            )
        _download_file(url, path)
        parsed, problem = _parse_prices(path)
        if problem is not None:
            _remove(path)
            raise DatasetNotFoundError(f"{url}: {problem}; no prices for {symbol!r}")
        out[symbol] = parsed
    return out


# ----------------------------------------------------------------------------- helpers


def as_float(images):
    """uint8 pixels -> float32 in [0, 1]."""
    return np.asarray(images, dtype=np.float32) / 255.0


def channel_stats(images):
    """Per-channel mean and standard deviation of uint8 ``(N, C, H, W)`` images.

    In [0, 1] units, float32 arrays of shape ``(C,)``: computed from the training
    images a chapter actually uses (never pasted from elsewhere), in chunks so that
    50,000 CIFAR images need no float copy of the whole set.
    """
    images = np.asarray(images)
    if images.ndim != 4:
        raise ValueError(f"expected (N, C, H, W) images, got shape {images.shape}")
    sums, squares = np.zeros(images.shape[1]), np.zeros(images.shape[1])
    for i in range(0, len(images), 4096):
        chunk = images[i : i + 4096].astype(np.float64) / 255.0
        sums += chunk.sum(axis=(0, 2, 3))
        squares += (chunk**2).sum(axis=(0, 2, 3))
    count = images.shape[0] * images.shape[2] * images.shape[3]
    mean = sums / count
    std = np.sqrt(np.maximum(squares / count - mean**2, 0.0))
    return mean.astype(np.float32), std.astype(np.float32)


def normalize(images, mean, std):
    """uint8 ``(N, C, H, W)`` images -> standardised float32 ``torch`` tensor.

    ``(x / 255 - mean) / std`` per channel. The only function here that needs torch
    (imported on use, so the NumPy-only chapters never load it).
    """
    import torch

    x = torch.from_numpy(np.ascontiguousarray(images)).float().div_(255)
    mean = torch.as_tensor(np.asarray(mean, np.float32)).view(1, -1, 1, 1)
    std = torch.as_tensor(np.asarray(std, np.float32)).view(1, -1, 1, 1)
    return (x - mean) / std


def subsample(x, y, n, seed=0):
    """At most ``n`` items of ``(x, y)``, a seeded class-stratified random subset.

    Each class keeps its share of the data (up to rounding), so small build profiles
    see the same class balance as the full data set. Items stay in their original
    order. ``y=None`` draws a plain random subset. Returns ``(x_sub, y_sub)``.
    """
    try:
        count = operator.index(n)
    except TypeError:  # a whole float such as 1e4 is fine
        count = int(n) if isinstance(n, float) and n.is_integer() else None
    if count is None or count < 0:
        raise ValueError(
            f"subsample: n must be a whole number >= 0 (how many items to keep), "
            f"not {n!r}"
        )
    n = count
    total = len(x)
    if y is not None and len(y) != total:
        raise ValueError(
            f"subsample: x has {total} items but y has {len(y)}; they must pair up"
        )
    if (
        n >= total
    ):  # callers pass the configured size, which may exceed a small copy: keep all
        return x, y
    order = np.random.default_rng(seed).permutation(total)
    if y is None:
        keep = order[:n]
    else:
        # Rank each item within its class (in shuffled order) as a fraction of the
        # class size, and keep the n smallest: every class is cut at the same fraction.
        shuffled = np.asarray(y)[order]
        rank = np.empty(total)
        for c in np.unique(shuffled):
            members = shuffled == c
            rank[members] = (np.arange(members.sum()) + 0.5) / members.sum()
        keep = order[np.argsort(rank, kind="stable")[:n]]
    keep = np.sort(keep)
    return x[keep], (None if y is None else y[keep])


# ----------------------------------------------------------------------------- AG News

# AG News as Zhang et al. (2015) released it (ag_news_csv: 120,000 training and
# 7,600 test articles, 4 classes), the copy torchtext downloads, with torchtext's
# md5s (torchtext/datasets/ag_news.py).
MIRRORS["ag_news"] = [
    "https://raw.githubusercontent.com/mhjabreel/CharCnn_Keras/master/data/ag_news_csv/"
]
CHECKSUMS["train.csv"] = "md5:b1a00f826fdfbd249f79597b59e1dc12"
CHECKSUMS["test.csv"] = "md5:d52ea96a97a2d943681189a97654912d"
AG_NEWS_CLASSES = ("World", "Sports", "Business", "Sci/Tech")  # labels 1..4 -> 0..3


def _parse_ag_news(path):
    """``((texts, labels), None)`` of an AG News CSV, or ``(None, problem)``."""
    import csv

    text, problem = _read_text(path)
    if problem is not None:
        return None, problem
    texts, labels = [], []
    for i, row in enumerate(csv.reader(text.splitlines()), 1):
        if len(row) != 3 or row[0] not in ("1", "2", "3", "4"):
            return None, f"line {i} is not 'class,title,description' with class 1-4"
        # The release escapes line breaks inside a field as a backslash and n.
        body = row[2].replace("\\n", " ").replace("\\", " ")
        texts.append(" ".join(f"{row[1]} {body}".split()))
        labels.append(int(row[0]) - 1)
    return (texts, np.array(labels, dtype=np.int64)), None


def ag_news(split="train", root=None, download=True):
    """AG News (``ROOT/ag_news/{train,test}.csv``): ``(texts, labels)``, a list of
    "title description" strings and int64 labels 0..3 (:data:`AG_NEWS_CLASSES`).

    The official CSVs are downloaded once, checked against their md5s (also a copy
    found with ``download=False``) and parsed on every call (about a second).
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', not {split!r}")
    filename = f"{split}.csv"
    path = _archive("ag_news", filename, os.path.join(_root(root), "ag_news"), download)
    parsed, problem = _parse_ag_news(path)
    if problem is not None:
        raise _damaged(path, problem)
    return parsed


# ---------------------------------------------------------------------------- Multi30k

# Multi30k task 1 (Elliott et al., 2016): English image captions with German (and
# French, Czech) translations, 29,000 training, 1,014 validation and 1,000 test
# (Flickr 2016) pairs, as the WMT16 multimodal task released it: the archives
# torchtext.datasets.Multi30k downloads, with the sha256s it pins (torchtext's
# datasets/multi30k.py calls its dictionary MD5 but checks sha256). The second
# mirror is a copy on GitHub many tutorials switched to when the first went down;
# the checksums decide whether a copy is the official file.
MIRRORS["multi30k"] = [
    "http://www.quest.dcs.shef.ac.uk/wmt16_files_mmt/",
    "https://raw.githubusercontent.com/neychev/small_DL_repo/master/datasets/Multi30k/",
]
MULTI30K_FILES = {  # split -> (archive, prefix of the files inside it)
    "train": ("training.tar.gz", "train"),
    "valid": ("validation.tar.gz", "val"),
    "test": ("mmt16_task1_test.tar.gz", "test"),
}
CHECKSUMS["training.tar.gz"] = (
    "sha256:20140d013d05dd9a72dfde46478663ba05737ce983f478f960c1123c6671be5e"
)
CHECKSUMS["validation.tar.gz"] = (
    "sha256:a7aa20e9ebd5ba5adce7909498b94410996040857154dab029851af3a866da8c"
)
CHECKSUMS["mmt16_task1_test.tar.gz"] = (
    "sha256:0681be16a532912288a91ddd573594fbdd57c0fbb81486eff7c55247e35326c2"
)
MULTI30K_LANGUAGES = ("de", "en")  # the pair every archive holds


def _multi30k_lines(archive, prefix, language):
    """``(lines, None)``: the sentences of ``<prefix>.<language>`` in the tar.gz
    ``archive`` (read without unpacking), or ``(None, problem)``."""
    wanted = f"{prefix}.{language}"
    try:
        with tarfile.open(archive, "r:gz") as tar:
            for member in tar:
                if member.isfile() and PurePosixPath(member.name).name == wanted:
                    with tar.extractfile(member) as f:
                        raw = f.read()
                    break
            else:
                return None, f"no {wanted} in archive"
            while tar.fileobj.read(1 << 20):  # to the end, so that gzip checks its CRC
                pass
    except (tarfile.TarError, EOFError, zlib.error, OSError) as e:
        return None, f"cannot unpack ({_one_line(e)})"
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        return None, f"{wanted} is not UTF-8 text ({e.reason} at byte {e.start})"
    # The training and validation files end with an empty line; drop trailing ones.
    lines = [line.strip() for line in text.rstrip("\n").split("\n")]
    if not any(lines):
        return None, f"{wanted} is empty"
    return lines, None


def multi30k(split="train", src="de", tgt="en", root=None, download=True):
    """Multi30k task 1 (``ROOT/multi30k/*.tar.gz``): ``(src_sentences,
    tgt_sentences)``, two equally long lists of untokenised str, the ``src`` and
    ``tgt`` sides (``"de"`` or ``"en"``) of ``split`` (``"train"``, ``"valid"`` or
    ``"test"``, the Flickr 2016 test set).

    The official archives are downloaded once, checked against their sha256s (also
    a copy found with ``download=False``) and read on every call (about a second).
    """
    if split not in MULTI30K_FILES:
        raise ValueError(f"split must be 'train', 'valid' or 'test', not {split!r}")
    for side in (src, tgt):
        if side not in MULTI30K_LANGUAGES:
            raise ValueError(f"language must be 'de' or 'en', not {side!r}")
    if src == tgt:
        raise ValueError(f"src and tgt must differ, both are {src!r}")
    filename, prefix = MULTI30K_FILES[split]
    path = _archive(
        "multi30k", filename, os.path.join(_root(root), "multi30k"), download
    )
    sides = []
    for language in (src, tgt):
        lines, problem = _multi30k_lines(path, prefix, language)
        if problem is not None:
            raise _damaged(path, problem)
        sides.append(lines)
    if len(sides[0]) != len(sides[1]):
        raise _damaged(
            path, f"{len(sides[0])} {src} but {len(sides[1])} {tgt} sentences"
        )
    return sides[0], sides[1]
