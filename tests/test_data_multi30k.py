"""Tests of scratch.data.multi30k: download with checksum, cache, read the pair out
of the archive, one-line errors. No test reaches the internet: the archives are
built here and served from 127.0.0.1."""

import hashlib
import io
import tarfile

import pytest

from data_server import offline, serving  # noqa: F401 (offline: autouse)
from scratch import data

DE = ["Zwei Männer stehen am Strand.", "Ein Hund rennt.", "Eine Frau liest."]
EN = ["Two men stand on the beach.", "A dog runs.", "A woman reads."]


def archive(members):
    """A tar.gz holding ``members`` (name -> str), the layout of the releases."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, text in members.items():
            blob = text.encode("utf-8")
            info = tarfile.TarInfo(name)
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
    return buffer.getvalue()


def pair(prefix, de=DE, en=EN, trailing="\n\n"):
    # The official training file ends with an empty line, as here.
    return archive(
        {
            f"{prefix}.de": "\n".join(de) + trailing,
            f"{prefix}.en": "\n".join(en) + trailing,
        }
    )




@pytest.fixture
def server(monkeypatch):
    """Serves ``files`` (URL path -> bytes) and records the paths asked for."""
    yield from serving(monkeypatch, "multi30k", "m30k")


def serve(files, name, blob, checksum=None):
    files[f"/m30k/{name}"] = blob
    data.CHECKSUMS[name] = "sha256:" + (checksum or hashlib.sha256(blob).hexdigest())


def test_the_official_archives_are_pinned():
    # torchtext.datasets.Multi30k's sha256s (its dictionary is named MD5).
    assert data.CHECKSUMS["training.tar.gz"].startswith("sha256:20140d013d05dd9a")
    assert data.CHECKSUMS["validation.tar.gz"].startswith("sha256:a7aa20e9ebd5ba5a")
    assert data.CHECKSUMS["mmt16_task1_test.tar.gz"].startswith(
        "sha256:0681be16a5329122"
    )


def test_download_read_and_cache(server, tmp_path):
    files, requests = server
    blob = pair("train")
    serve(files, "training.tar.gz", blob)
    de, en = data.multi30k("train", root=tmp_path)
    assert de == DE and en == EN  # the trailing empty lines are gone
    assert (tmp_path / "multi30k" / "training.tar.gz").read_bytes() == blob
    en2, de2 = data.multi30k("train", src="en", tgt="de", root=tmp_path, download=False)
    assert en2 == EN and de2 == DE and requests == ["/m30k/training.tar.gz"]


def test_each_split_reads_its_own_archive(server, tmp_path):
    files, _ = server
    serve(files, "validation.tar.gz", pair("val", DE[:2], EN[:2]))
    serve(files, "mmt16_task1_test.tar.gz", pair("test", DE[2:], EN[2:], "\n"))
    assert data.multi30k("valid", root=tmp_path) == (DE[:2], EN[:2])
    assert data.multi30k("test", root=tmp_path) == (DE[2:], EN[2:])


def test_wrong_checksum_is_refused_and_nothing_is_kept(server, tmp_path):
    files, requests = server
    serve(files, "training.tar.gz", pair("train"), checksum="0" * 64)
    with pytest.raises(data.DatasetNotFoundError, match="sha256 mismatch") as info:
        data.multi30k("train", root=tmp_path)
    assert "\n" not in str(info.value)
    assert len(requests) == 2  # fetched once more, then given up
    assert not (tmp_path / "multi30k" / "training.tar.gz").exists()


def test_damaged_copy_offline_is_one_line(server, tmp_path):
    files, _ = server
    blob = pair("train")
    serve(files, "training.tar.gz", blob)  # pins its checksum
    path = tmp_path / "multi30k" / "training.tar.gz"
    path.parent.mkdir()
    path.write_bytes(blob[:40])
    with pytest.raises(data.DatasetDamagedError, match="sha256 mismatch") as info:
        data.multi30k("train", root=tmp_path, download=False)
    assert "\n" not in str(info.value) and str(path) in str(info.value)


@pytest.mark.parametrize(
    "blob, problem",
    [
        (archive({"train.de": "\n".join(DE)}), "no train.en in archive"),
        (b"<html>Not Found</html>\n", "cannot unpack"),
        (pair("train", DE, EN[:2]), "3 de but 2 en sentences"),
        (archive({"train.de": "x\n", "train.en": "\n\n"}), "train.en is empty"),
    ],
)
def test_an_archive_that_is_not_multi30k_is_one_line(server, tmp_path, blob, problem):
    files, _ = server
    serve(files, "training.tar.gz", blob)  # right checksum, wrong contents
    with pytest.raises(data.DatasetDamagedError, match=problem) as info:
        data.multi30k("train", root=tmp_path)
    assert "\n" not in str(info.value)


def test_offline_error_names_url_and_path_and_bad_arguments(tmp_path):
    with pytest.raises(data.DatasetNotFoundError) as info:
        data.multi30k("test", root=tmp_path)
    message = str(info.value)
    assert "\n" not in message
    assert str(tmp_path / "multi30k" / "mmt16_task1_test.tar.gz") in message
    with pytest.raises(ValueError, match="split must be"):
        data.multi30k("validation", root=tmp_path)
    with pytest.raises(ValueError, match="language must be"):
        data.multi30k("train", src="fr", root=tmp_path)
    with pytest.raises(ValueError, match="must differ"):
        data.multi30k("train", src="en", tgt="en", root=tmp_path)
