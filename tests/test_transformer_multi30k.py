"""The Transformer chapter's --task=multi30k path end to end, offline: stand-in
archives in the official layout are served from 127.0.0.1, the chapter runs in
the tiny profile in its own process, and its results table shows this run's BLEU
next to the published reference. The BLEU of a few hundred made-up captions
means nothing; the test checks the wiring: data -> BPE -> training -> decoding ->
BLEU -> metrics.json and the table."""

import hashlib
import json
import os
import random
import re
import subprocess
import sys

from conftest import ROOT
from data_server import offline  # noqa: F401 (autouse: every mirror offline)
from test_data_multi30k import pair, server  # noqa: F401 (server: a fixture)

SCRIPT = ROOT / "code" / "sequences" / "transformer.py"

SUBJECTS = [("Ein Hund", "A dog"), ("Eine Frau", "A woman"), ("Ein Mann", "A man"),
            ("Ein Kind", "A child")]
VERBS = [("rennt", "runs"), ("sitzt", "sits"), ("springt", "jumps"), ("liest", "reads")]
PLACES = [("am Strand", "on the beach"), ("im Park", "in the park"),
          ("auf der Straße", "on the street")]


def captions(n, seed):
    rng = random.Random(seed)
    de, en = [], []
    for _ in range(n):
        (sd, se), (vd, ve), (pd, pe) = (rng.choice(x) for x in (SUBJECTS, VERBS, PLACES))
        de.append(f"{sd} {vd} {pd}.")
        en.append(f"{se} {ve} {pe}.")
    return de, en


def test_multi30k_task_end_to_end(server, tmp_path):
    files, requests = server
    checksums = {}
    sizes = {"train": 240, "val": 20, "test": 30}
    for (name, prefix), seed in zip(
        [("training.tar.gz", "train"), ("validation.tar.gz", "val"),
         ("mmt16_task1_test.tar.gz", "test")], range(3)
    ):
        de, en = captions(sizes[prefix], seed)
        blob = pair(prefix, de, en)
        files[f"/m30k/{name}"] = blob
        checksums[name] = "sha256:" + hashlib.sha256(blob).hexdigest()
    from scratch import data

    url = data.MIRRORS["multi30k"][0]  # the local server (the fixture set it)
    # The chapter in its own process, with the stand-ins' checksums pinned instead
    # of the official ones and the local server as the mirror.
    launcher = (
        "import runpy, sys; from scratch import data; "
        f"data.CHECKSUMS.update({checksums!r}); "
        f"data.MIRRORS['multi30k'] = [{url!r}]; "
        f"sys.argv = [{str(SCRIPT)!r}] + sys.argv[1:]; "
        f"runpy.run_path({str(SCRIPT)!r}, run_name='__main__')"
    )
    env = {**os.environ, "SCRATCH_PROFILE": "tiny", "SCRATCH_PROGRESS": "0",
           "MPLBACKEND": "Agg", "SCRATCH_DATA": str(tmp_path / "data")}
    env.pop("SCRATCH_BUILD", None)
    env.pop("SCRATCH_DATA_MIRROR", None)
    result = subprocess.run(
        [sys.executable, "-c", launcher, "--task=multi30k", "--mt_epochs=2",
         "--bpe_vocab=300", f"--out_dir={tmp_path / 'runs'}"],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert sorted(requests) == sorted(files)  # each archive fetched once
    metrics = json.loads((tmp_path / "runs/transformer/metrics.json").read_text())["metrics"]
    assert metrics["mt_test_pairs"] == sizes["test"]
    for method in ("greedy", "beam"):
        assert 0 <= metrics[f"mt_bleu_{method}"] <= 100
    out = result.stdout
    assert "Multi30k de-en: BLEU on the 1,000 pairs of the 2016 test set" in out
    table = out[out.index("Multi30k de-en: BLEU on the 1,000 pairs"):]
    this_run = next(line for line in table.splitlines() if line.startswith("this run"))
    # this run's row: its profile, then its greedy and beam BLEU
    assert this_run.startswith("this run (tiny")
    bleus = f"{metrics['mt_bleu_greedy']:.2f}  +{metrics['mt_bleu_beam']:.2f}"
    assert re.search(bleus, this_run), this_run
    assert "38.38" in out and "Lample" in out  # the reference row, with its source
    assert "2 epochs on the 240 training pairs" in out
