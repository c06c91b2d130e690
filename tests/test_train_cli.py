"""`cleardiffusion train`'s flags are TrainConfig's fields: one declaration, one parser, one place of checks.

The CLI tests replace `train()` with a recorder, so they check parse -> TrainConfig -> validate without
training anything (test_train.py trains).
"""

import argparse
import sys
import typing
from dataclasses import fields

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cleardiffusion import train as train_module
from cleardiffusion.cli import build_parser, main
from cleardiffusion.errors import UsageError
from cleardiffusion.options import base_type, choices_of, flag_of
from cleardiffusion.train_config import (
    EVAL_DEFAULT_EVERY,
    PRECISIONS,
    TIMESTEPS_MAX,
    UNLIMITED_STEPS,
    Precision,
    TrainConfig,
    validate,
)

BASE = ["train", "--dataset", "mnist", "--out", "run"]


def train_parser() -> argparse.ArgumentParser:
    subparsers = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return subparsers.choices["train"]


def actions() -> dict[str, argparse.Action]:
    return {a.dest: a for a in train_parser()._actions if a.dest != "help"}


@pytest.fixture
def trained(monkeypatch):
    """Run `main` with train() replaced: returns (exit status, the TrainConfig train() got or None)."""
    got = []
    monkeypatch.setattr(train_module, "train", lambda config: got.append(config) or {"exit_code": 0})

    def run(*flags: str) -> tuple[int, TrainConfig | None]:
        code = main([*BASE, *flags])
        return code, (got.pop() if got else None)

    return run


def refused(run, capsys, *flags: str) -> str:
    """Assert exit status 2, one line on stderr and train() never called; return the line."""
    try:
        code, config = run(*flags)
    except SystemExit as e:  # argparse's own refusals (a choice, a type) exit from parse_args
        code, config = e.code, None
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and config is None and len(err) == 1, (code, err)
    return err[0]


def test_every_field_has_exactly_one_flag_built_from_it():
    by_dest = actions()
    assert set(by_dest) == {f.name for f in fields(TrainConfig)}  # no field without a flag, no flag without a field
    for f in fields(TrainConfig):
        action = by_dest[f.name]
        assert flag_of(f) in action.option_strings
        assert action.default is argparse.SUPPRESS  # a flag not given leaves the field's default alone
        assert f.metadata["help"] and f.metadata["group"], f.name


def test_each_literal_is_the_parsers_choices():
    by_dest, literals = actions(), 0
    for f in fields(TrainConfig):
        kind, _ = base_type(f)
        if typing.get_origin(kind) is typing.Literal:
            literals += 1
            assert tuple(by_dest[f.name].choices) == typing.get_args(kind), f.name
        elif choices_of(f) is not None:
            assert tuple(by_dest[f.name].choices) == choices_of(f), f.name
    assert literals >= 8  # dataset, time_embedding, schedule, objective, prediction, loss_weighting, device, ...
    assert PRECISIONS == typing.get_args(Precision)


def test_no_flags_give_the_configs_defaults(trained):
    code, config = trained("--steps", "7")
    assert code == 0
    assert config == TrainConfig(dataset="mnist", out="run", steps=7)
    code, config = trained("--dataset", "cifar10", "--time-budget", "2")
    assert config == TrainConfig(dataset="cifar10", data_dir="data/cifar10", out="run", steps=UNLIMITED_STEPS,
                                 time_budget=2.0)  # fmt: skip


@pytest.mark.parametrize(
    "flags, field, value",
    [(["--hflip"], "hflip", True), (["--no-hflip"], "hflip", False), (["--no-progress"], "progress", False),
     (["--eval-every"], "eval_every", EVAL_DEFAULT_EVERY), (["--eval-every", "7"], "eval_every", 7),
     (["--adam-betas", "0.8", "0.99"], "adam_betas", (0.8, 0.99)), (["--time-embedding", "middle"],
     "time_embedding", "middle"), (["--model-option", "norm_groups=4", "--model-option", "channel_mults=[1, 2]"],
     "model_options", {"norm_groups": 4, "channel_mults": (1, 2)}), (["--timesteps", str(TIMESTEPS_MAX)],
     "timesteps", TIMESTEPS_MAX), (["--objective", "flow"], "objective", "flow"), (["--lr", "2e-4"], "lr", 2e-4)],
)  # fmt: skip
def test_a_flag_sets_its_field(trained, flags, field, value):
    code, config = trained("--steps", "3", *flags)
    assert code == 0 and getattr(config, field) == value


@pytest.mark.parametrize(
    "flags, words",
    [(["--steps", "0"], ["--steps", "at least 1"]), (["--batch-size", "-3"], ["--batch-size"]),
     (["--lr", "nan"], ["--lr"]), (["--lr", "0"], ["--lr"]), (["--ema-decay", "1"], ["--ema-decay", "[0, 1)"]),
     (["--adam-betas", "0.9", "1"], ["--adam-betas"]), (["--seed", "-1"], ["--seed"]),
     (["--timesteps", "1"], ["--timesteps"]), (["--timesteps", str(TIMESTEPS_MAX + 1)], ["--timesteps", "10000"]),
     (["--timesteps", "100000000000"], ["--timesteps"]), (["--dropout", "1"], ["--dropout"]),
     (["--label-dropout", "-0.1"], ["--label-dropout"]), (["--eval-every", "-1"], ["--eval-every"]),
     (["--eval-every", "--eval-n", "3"], ["--eval-n"]), (["--time-budget", "inf"], ["--time-budget"]),
     (["--image-size", "0"], ["--image-size"]), (["--model", "nope"], ["invalid choice"]),
     (["--steps", "many"], ["--steps"]), (["--schedule", "linear-scaled", "--timesteps", "10"], ["T >= 21"]),
     (["--model-option", "nonsense=1"], ["not a U-Net setting"]), (["--model-option", "image_size=8"],
     ["comes from"])],
)  # fmt: skip
def test_bad_values_are_one_line_errors_before_training(trained, capsys, flags, words):
    line = refused(trained, capsys, *([] if "--steps" in flags else ["--steps", "3"]), *flags)
    assert all(word in line for word in words), line


def test_how_long_to_train_must_be_said(trained, capsys):
    assert "--time-budget" in refused(trained, capsys)


@pytest.mark.parametrize(
    "flags, dropped",
    [(["--prediction", "v"], "drop --prediction"), (["--loss-weighting", "none"], "drop --loss-weighting"),
     (["--prediction", "eps", "--loss-weighting", "min-snr"], "drop --prediction and --loss-weighting")],
)  # fmt: skip
def test_ddpm_options_given_with_the_flow_objective_are_refused(trained, capsys, flags, dropped):
    """Even the default value, given explicitly, would do nothing: refused, naming what to drop."""
    line = refused(trained, capsys, "--steps", "3", "--objective", "flow", *flags)
    assert dropped in line and "flow" in line
    code, config = trained("--steps", "3", *flags)  # the same flags train a ddpm model
    assert code == 0 and config.objective == "ddpm"


@pytest.mark.parametrize("flags", [["--eval-n", "64"], ["--classifier", "clf.pt"], ["--eval-n", "256"]])
def test_evaluation_options_without_eval_every_are_refused(trained, capsys, flags):
    line = refused(trained, capsys, "--steps", "3", *flags)
    assert "--eval-every" in line and f"drop {flags[0]}" in line
    code, config = trained("--steps", "3", "--eval-every", "10", *flags)
    assert code == 0 and config.eval_every == 10


def test_an_eval_n_that_cannot_fit_is_refused_with_an_estimate_before_training(trained, capsys):
    line = refused(trained, capsys, "--steps", "3", "--eval-every", "--eval-n", str(10**11))
    assert "--eval-n" in line and "needs at least" in line and "memory" in line


def test_compile_without_a_compiler_is_refused_before_training(trained, capsys, monkeypatch):
    """Inductor's own compiler search (torch._inductor.cpp_builder), pointed at a compiler that does not exist,
    then at one that answers `--version` (this interpreter): refused in one line, then accepted."""
    cpp_builder = pytest.importorskip("torch._inductor.cpp_builder")
    from torch._inductor import config as inductor

    monkeypatch.setattr(inductor.cpp, "cxx", ("cleardiffusion-no-such-compiler",))
    cpp_builder.cpp_compiler_search.cache_clear()
    try:
        line = refused(trained, capsys, "--steps", "3", "--device", "cpu", "--compile")
        assert "--compile" in line and "C++ compiler" in line and "drop --compile" in line, line
        monkeypatch.setattr(inductor.cpp, "cxx", (sys.executable,))
        cpp_builder.cpp_compiler_search.cache_clear()
        code, config = trained("--steps", "3", "--device", "cpu", "--compile")
        assert code == 0 and config.compile
    finally:
        cpp_builder.cpp_compiler_search.cache_clear()  # the next search finds the machine's own compiler


def test_the_python_api_gets_the_same_checks():
    validate(TrainConfig(objective="flow"))  # the defaults of prediction and weighting were not chosen
    validate(TrainConfig(eval_every=5, eval_n=16))
    bad_configs = [
        dict(objective="flow", prediction="eps"),
        dict(eval_n=16),
        dict(timesteps=TIMESTEPS_MAX + 1),
        dict(precision="fp16"),
        dict(device="tpu"),
        dict(adam_betas=(0.9, float("nan"))),
        dict(steps=0),
    ]
    for bad in bad_configs:
        with pytest.raises(UsageError):
            validate(TrainConfig(**bad))
    validate(TrainConfig(objective="flow", prediction="v"), given=())  # the CLI says what was given
    with pytest.raises(UsageError, match="drop --prediction"):
        validate(TrainConfig(objective="flow", prediction="v"), given={"objective", "prediction"})


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    flag=st.sampled_from(["--steps", "--batch-size", "--timesteps", "--log-every"]),
    value=st.integers(-(10**6), 10**6),
)
def test_cli_integer_validation_property(trained, capsys, flag, value):
    """A count out of its range exits 2 with one line naming the flag and the value; one in range is the field's."""
    low, high = (2, TIMESTEPS_MAX) if flag == "--timesteps" else (1, None)
    flags = ["--steps", "5", flag, str(value)]
    if low <= value and (high is None or value <= high):
        code, config = trained(*flags)
        assert code == 0 and getattr(config, flag[2:].replace("-", "_")) == value
        return
    line = refused(trained, capsys, *flags)
    assert flag in line and str(value) in line


def test_every_sampler_and_spacing_works_at_the_largest_T():
    """TIMESTEPS_MAX is not arbitrary: at T = 10,000 the linear schedule's alpha_bar_T (e^-100) still samples."""
    from cleardiffusion.generate import generate_images
    from cleardiffusion.recipe import SAMPLERS_OF, SamplingRecipe
    from cleardiffusion.samplers import SPACINGS
    from cleardiffusion.schedule import NoiseSchedule

    class Zero(torch.nn.Module):  # eps = 0: only the sampler's own arithmetic can turn a value non-finite
        def forward(self, x, t, y=None):
            return torch.zeros_like(x)

    schedule = NoiseSchedule.from_name("linear", TIMESTEPS_MAX)
    for sampler in SAMPLERS_OF["ddpm"]:  # the few-step samplers are for their own models (test_meanflow.py)
        for spacing in SPACINGS:
            recipe = SamplingRecipe(sampler=sampler, steps=10, spacing=spacing)
            images = torch.cat(list(generate_images(Zero(), schedule, n=2, shape=(1, 4, 4), recipe=recipe)))
            assert torch.isfinite(images).all(), (sampler, spacing)
