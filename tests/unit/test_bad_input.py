"""Bad input that spans modules: a checkpoint that needs its own modelling code, at every place a model is loaded.

Pre-flight (tests/unit/test_manifest.py, test_build.py) refuses such a checkpoint unless its catalog entry sets
``trust_remote_code``; these tests check that each loader then honours the entry's setting both ways, so a trusted
checkpoint really loads and an untrusted one never runs its code.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
from tiny_llm import add_custom_code, write_rows

from simmerge.catalog.finetune import finetune
from simmerge.catalog.manifest import PreflightError
from simmerge.catalog.skills import write_skill_data
from simmerge.catalog.toy import build_tiny_checkpoint
from simmerge.features.probe_pass import probe_pass
from simmerge.merges.merging import merge_pair
from simmerge.merges.operators import default_operators
from simmerge.merges.scoring import score_checkpoint

REPO = Path(__file__).resolve().parents[2]
# transformers refuses a checkpoint's own code with a ValueError that names the argument to set
REFUSED = r"(?s)contains custom code.*`trust_remote_code=True`"


@pytest.fixture(scope="module")
def modules_cache(tmp_path_factory):
    """transformers copies a checkpoint's code into HF_MODULES_CACHE to import it: keep that out of the home dir.

    Module-scoped because the imported ``transformers_modules`` package stays in ``sys.modules`` with the first
    cache folder as its path.
    """
    import transformers.dynamic_module_utils as dynamic

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(dynamic, "HF_MODULES_CACHE", str(tmp_path_factory.mktemp("hf_modules")))
        patch.setattr(sys, "path", list(sys.path))
        yield


def perturbed_copy(source: Path, out: Path, *, seed: int) -> Path:
    """A fake fine-tune of ``source``: same files, weights plus seeded noise."""
    shutil.copytree(source, out)
    generator = torch.Generator().manual_seed(seed)
    tensors = load_file(out / "model.safetensors")
    noisy = {name: t + 0.01 * torch.randn(t.shape, generator=generator) for name, t in tensors.items()}
    save_file(noisy, out / "model.safetensors", metadata={"format": "pt"})
    return out


@pytest.fixture(scope="module")
def custom(tmp_path_factory, modules_cache):
    """A custom-code base and two experts of it."""
    root = tmp_path_factory.mktemp("custom_code")
    build_tiny_checkpoint(root / "base", seed=0, hidden_size=32, num_layers=2, num_heads=4)
    add_custom_code(root / "base")
    return {
        "base": root / "base",
        "a": perturbed_copy(root / "base", root / "a", seed=1),
        "b": perturbed_copy(root / "base", root / "b", seed=2),
    }


# torch's thread count changes float results in the last bits; these tests compare runs
pytestmark = pytest.mark.usefixtures("one_torch_thread")


PROBE_SETTINGS = dict(
    top_k=3,
    full_vocab_max_mb=0,
    hidden_max_mb=1,
    attention_max_mb=1,
    projection_dim=8,
    projection_seed=0,
    batch_size=2,
    max_length=16,
    device="cpu",
)


def test_probe_pass_runs_the_checkpoints_code_only_when_trusted(custom, tmp_path):
    probes = {"t": write_rows(tmp_path / "probe.jsonl", [{"id": "p0", "entity": "0", "prompt": "Hello"}])}
    with pytest.raises(ValueError, match=REFUSED):
        probe_pass(custom["a"], probes, **PROBE_SETTINGS, trust_remote_code=False)
    arrays, meta = probe_pass(custom["a"], probes, **PROBE_SETTINGS, trust_remote_code=True)
    assert meta["num_layers"] == 2 and arrays["t/lengths"].tolist() == [5]


def test_lm_eval_gets_the_entrys_setting(custom, tmp_path):
    write_skill_data("n2w_fr", tmp_path / "n2w_fr", seed=0, n_train=2, n_eval=2, n_probe=1)
    data = {"n2w_fr": tmp_path / "n2w_fr" / "eval.jsonl"}
    kwargs = dict(batch_size=2, limit=2, device="cpu", max_gen_toks=4)
    with pytest.raises(ValueError, match=REFUSED):
        score_checkpoint(custom["a"], REPO / "config" / "tasks", data, **kwargs, trust_remote_code=False)
    scores = score_checkpoint(custom["a"], REPO / "config" / "tasks", data, **kwargs, trust_remote_code=True)
    assert scores["tasks"]["n2w_fr"]["n"] == 2


def test_finetune_gets_the_parents_setting(custom, tmp_path):
    train = write_rows(tmp_path / "train.jsonl", [{"id": "0", "entity": "0", "prompt": "0 is", "answer": "zero"}])
    kwargs = dict(steps=1, batch_size=1, lr=1e-3, warmup_steps=0, seed=0, max_length=16, device="cpu")
    with pytest.raises(ValueError, match=REFUSED):
        finetune(custom["base"], [train], tmp_path / "refused", **kwargs, trust_remote_code=False)
    assert not (tmp_path / "refused").exists()
    finetune(custom["base"], [train], tmp_path / "tuned", **kwargs, trust_remote_code=True)
    # save_pretrained keeps the custom classes, so the fine-tune needs the same permission as its parent
    assert (tmp_path / "tuned" / "custom_llama.py").is_file()


def test_merge_refuses_untrusted_custom_code_before_mergekit_and_runs_it_when_trusted(custom, tmp_path):
    linear = default_operators()["linear"]
    # refused up front, not recorded as a failed merge (which would become a 0 label)
    with pytest.raises(PreflightError, match=r"checkpoint 'a'.*trust_remote_code"):
        merge_pair(linear, custom["a"], custom["b"], custom["base"], tmp_path / "refused", seed=0, device="cpu")
    assert not (tmp_path / "refused").exists()
    record = merge_pair(
        linear, custom["a"], custom["b"], custom["base"], tmp_path / "out", seed=0, device="cpu", trust_remote_code=True
    )
    assert record["status"] == "ok", record["error"]
    assert record["trust_remote_code"] is True
    # mergekit carries the modelling code along, so the merge can be scored with the same permission
    assert (tmp_path / "out" / "custom_llama.py").is_file()
