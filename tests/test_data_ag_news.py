"""Tests of scratch.data.ag_news: download with checksum, cache, parse, one-line
errors. No test reaches the internet: the CSVs are served from 127.0.0.1."""

import hashlib

import numpy as np
import pytest

from data_server import offline, serving  # noqa: F401 (offline: autouse)
from scratch import data

CSV = (
    b'"3","Wall St. Bears Claw Back","Reuters - Short-sellers, Wall Street\'s\\band"\n'
    b'"2","Phelps Wins","ATHENS (Reuters) - Michael Phelps won.\\nAgain."\n'
    b'"4","New Chip","A faster chip, they say."\n'
)




@pytest.fixture
def server(monkeypatch):
    """Serves ``files`` (URL path -> bytes) and records the paths asked for."""
    yield from serving(monkeypatch, "ag_news", "ag")


def serve(files, name, blob, checksum=None):
    files[f"/ag/{name}"] = blob
    data.CHECKSUMS[name] = "md5:" + (checksum or hashlib.md5(blob).hexdigest())


def test_the_official_files_are_pinned():
    assert data.CHECKSUMS["train.csv"] == "md5:b1a00f826fdfbd249f79597b59e1dc12"
    assert data.CHECKSUMS["test.csv"] == "md5:d52ea96a97a2d943681189a97654912d"
    assert data.AG_NEWS_CLASSES == ("World", "Sports", "Business", "Sci/Tech")


def test_download_parse_and_cache(server, tmp_path):
    files, requests = server
    serve(files, "train.csv", CSV)
    texts, labels = data.ag_news("train", root=tmp_path)
    assert texts == [
        "Wall St. Bears Claw Back Reuters - Short-sellers, Wall Street's band",
        "Phelps Wins ATHENS (Reuters) - Michael Phelps won. Again.",
        "New Chip A faster chip, they say.",
    ]
    assert labels.dtype == np.int64 and labels.tolist() == [2, 1, 3]
    assert (tmp_path / "ag_news" / "train.csv").read_bytes() == CSV
    again = data.ag_news("train", root=tmp_path, download=False)  # no network now
    assert again[0] == texts and requests == ["/ag/train.csv"]


def test_wrong_checksum_is_refused_and_nothing_is_kept(server, tmp_path):
    files, requests = server
    serve(files, "test.csv", CSV, checksum="0" * 32)
    with pytest.raises(data.DatasetNotFoundError, match="md5 mismatch") as info:
        data.ag_news("test", root=tmp_path)
    assert "\n" not in str(info.value)
    assert len(requests) == 2  # fetched once more, then given up
    assert not (tmp_path / "ag_news" / "test.csv").exists()


def test_damaged_copy_offline_is_one_line(tmp_path):
    path = tmp_path / "ag_news" / "test.csv"
    path.parent.mkdir()
    path.write_bytes(CSV[:50])
    with pytest.raises(data.DatasetDamagedError, match="md5 mismatch") as info:
        data.ag_news("test", root=tmp_path, download=False)
    assert "\n" not in str(info.value) and str(path) in str(info.value)


def test_a_file_that_is_not_ag_news_is_one_line(server, tmp_path):
    files, _ = server
    serve(files, "train.csv", b"<html>Not Found</html>\n")
    with pytest.raises(data.DatasetDamagedError, match="line 1 is not") as info:
        data.ag_news("train", root=tmp_path)
    assert "\n" not in str(info.value)


def test_offline_error_names_url_and_path(tmp_path):
    with pytest.raises(data.DatasetNotFoundError) as info:
        data.ag_news("train", root=tmp_path)
    message = str(info.value)
    assert "\n" not in message and str(tmp_path / "ag_news" / "train.csv") in message
    with pytest.raises(ValueError, match="split must be"):
        data.ag_news("validation", root=tmp_path)
