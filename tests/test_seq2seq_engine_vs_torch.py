"""The attention GRU of the attention chapter (NumPy engine) and of the Transformer
chapter (PyTorch) are one model: same parameter names and shapes, and after
``load_state_dict`` the same logits, attention weights and gradients (float64).

So the Transformer chapter's comparison with "the attention GRU" compares the model
the attention chapter built, not a look-alike.
"""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from scratch.engine import Tensor  # noqa: E402
from scratch.engine.models import Seq2Seq as EngineSeq2Seq  # noqa: E402
from scratch.models.seq2seq import Seq2Seq as TorchSeq2Seq  # noqa: E402
from scratch.text import numbers_task  # noqa: E402


@pytest.mark.parametrize("attention", [True, False])
def test_engine_and_torch_attention_gru_are_the_same_model(attention):
    data = numbers_task(40, 5, 5, min_digits=1, max_digits=6, seed=3)
    a = data.arrays("train")
    V_src, V_tgt = len(data.src_vocab), len(data.tgt_vocab)
    torch.manual_seed(0)
    theirs = TorchSeq2Seq(V_src, V_tgt, embed_dim=6, hidden_size=5, attention=attention).double()
    ours = EngineSeq2Seq(V_src, V_tgt, embed_dim=6, hidden_size=5, attention=attention)
    names = [n for n, _ in ours.named_parameters()]
    assert names == [n for n, _ in theirs.named_parameters()]
    for (n, p), (_, q) in zip(ours.named_parameters(), theirs.named_parameters()):
        assert p.shape == tuple(q.shape), n
    ours.load_state_dict(theirs.state_dict())

    batch = {k: v[:7] for k, v in a.items()}  # lengths 1..6 mixed: padding inside the batch
    assert len(set(batch["src_len"].tolist())) > 1
    logits = ours(batch["src"], batch["src_len"], batch["tgt_in"])
    t_logits = theirs(*(torch.tensor(batch[k]) for k in ("src", "src_len", "tgt_in")))
    t_logits = t_logits[0] if isinstance(t_logits, tuple) else t_logits
    logits = logits[0] if isinstance(logits, tuple) else logits
    np.testing.assert_allclose(logits.data, t_logits.detach().numpy(), rtol=1e-9, atol=1e-11)

    g = np.random.default_rng(0).standard_normal(logits.shape)
    (logits * Tensor(g)).sum().backward()
    (t_logits * torch.tensor(g)).sum().backward()
    for (n, p), (_, q) in zip(ours.named_parameters(), theirs.named_parameters()):
        np.testing.assert_allclose(p.grad, q.grad.numpy(), rtol=1e-8, atol=1e-11, err_msg=n)
