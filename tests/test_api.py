"""The Python API: docs/api.md's example runs as written (on tiny data), and its defaults are the CLI's."""

import re
from pathlib import Path

import pytest
import torch

import cleardiffusion as cd
from test_train import tiny_config, write_digits

DOC = Path(__file__).resolve().parents[1] / "docs" / "api.md"


def python_blocks(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def test_the_documented_example_runs(tmp_path, monkeypatch):
    """docs/api.md's first block, with TrainConfig bent to a tiny run: train, load, sample with three recipes."""
    monkeypatch.chdir(tmp_path)
    digits = write_digits(tmp_path / "digits")
    real = cd.TrainConfig

    def tiny(**fields):  # the documented call, on 8x8 digits for 3 steps instead of MNIST for 15 minutes
        assert fields["dataset"] == "mnist" and real(**fields)  # the documented fields are real ones
        return tiny_config(digits, Path(fields["out"]), steps=3)

    monkeypatch.setattr(cd, "TrainConfig", tiny, raising=False)
    namespace: dict = {}
    exec(python_blocks(DOC.read_text())[0], namespace)  # noqa: S102
    images = namespace["images"]
    assert images.dtype == torch.uint8 and images.shape == (16, 1, 8, 8)
    assert namespace["summary"]["step"] == 3
    assert not torch.equal(namespace["fast"], images)  # 10 steps are not 50


def test_the_api_names_are_not_module_names():
    """`from . import evaluate` inside the package must find the module, not an API function."""
    import pkgutil

    assert not set(cd.__all__) & {m.name for m in pkgutil.iter_modules(cd.__path__)}
    assert all(getattr(cd, name) is not None for name in cd.__all__)
    with pytest.raises(AttributeError):
        cd.no_such_name  # noqa: B018


def test_model_sample_reproduces_per_sample_seeds_and_takes_labels(tmp_path):
    digits = write_digits(tmp_path / "digits")
    cd.train_model(tiny_config(digits, tmp_path / "run", steps=2, conditional=True))
    model = cd.load(tmp_path / "run" / "checkpoints" / "last.pt")
    a = model.sample(5, seed=3, steps=4, batch_size=2)
    b = model.sample(5, seed=3, steps=4, batch_size=5)
    assert torch.equal(a, b) and a.shape == (5, 1, 8, 8)
    assert not torch.equal(model.sample(5, seed=4, steps=4), a)
    guided = model.sample(3, labels=[0, 1, 2], guidance=2.0, steps=4)
    plain = model.sample(3, labels=[0, 1, 2], steps=4)
    assert guided.shape == plain.shape and not torch.equal(guided, plain)


def test_model_sample_autoguided_by_itself_is_the_plain_sample_and_checks_the_worse_model(tmp_path):
    """Model.sample(autoguide=worse, guidance=S): eps_bad + S (eps - eps_bad), as `sample --autoguide`. Guided by
    itself the samples are the plain ones; by another model they move; a conditional guide is refused first."""
    digits = write_digits(tmp_path / "digits")
    for name, steps, conditional in (("a", 2, False), ("b", 1, False), ("c", 1, True)):
        cd.train_model(tiny_config(digits, tmp_path / name, steps=steps, conditional=conditional))
    a, b, c = (cd.load(tmp_path / name / "checkpoints" / "last.pt") for name in "abc")
    common = dict(seed=1, steps=4, sampler="ddim", precision="fp32")
    plain = a.sample(3, **common)
    assert torch.equal(a.sample(3, autoguide=a, guidance=3.0, **common), plain)
    torch.manual_seed(0)
    with torch.no_grad():  # a clearly worse model: b with noise in its weights
        for p in b.model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    guided = a.sample(3, autoguide=b, guidance=3.0, **common)
    assert not torch.equal(guided, plain)
    # autoguide_from F: guided only where t >= F T; above every visited timestep the model alone (up to rounding
    # of eps_bad + 1 (eps - eps_bad)), from half way up neither the plain nor the fully guided samples
    never = a.sample(3, autoguide=b, guidance=3.0, autoguide_from=0.999, **common)
    assert (never.int() - plain.int()).abs().max() <= 1
    half = a.sample(3, autoguide=b, guidance=3.0, autoguide_from=0.5, **common)
    assert (half.int() - plain.int()).abs().max() > 10 and (half.int() - guided.int()).abs().max() > 10
    with pytest.raises(ValueError, match="unconditional model"):
        a.sample(3, autoguide=c, guidance=2.0, **common)
    for bad in (dict(autoguide_from=0.5), dict(autoguide=b, autoguide_from=1.0)):  # no autoguide; F not below 1
        with pytest.raises(ValueError, match="autoguide_from must lie in"):
            a.sample(3, **bad, **common)
