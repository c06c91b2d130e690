"""`cleardiffusion experiment`: measure -> results.json -> report.md, reruns, data and cache keys.

`experiment all --quick` runs once with fake training and scoring (an untrained one-parameter denoiser, metrics
from the pixels): that every report table comes from results.json, and that --render-only writes the same report
again, does not depend on what was trained. One real quick run (overfit-one-image) trains and reruns.
"""

import importlib
import json
import re
import shutil
from dataclasses import asdict, replace
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from cleardiffusion.cli import main
from cleardiffusion.errors import UsageError
from cleardiffusion.experiments import EXPERIMENTS, common, overfit, scoring
from cleardiffusion.experiments.common import synthetic_digits
from cleardiffusion.experiments.ddim_steps import fewest_steps_within
from cleardiffusion.experiments.report import fmt, markdown_table
from cleardiffusion.features import SmallClassifier, save_classifier
from cleardiffusion.schedule import NoiseSchedule
from cleardiffusion.train_config import TrainConfig

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
COMMITTED = Path(__file__).resolve().parents[1] / "benchmarks" / "results" / "experiments_cpu" / "mnist"


class FakeDenoiser(nn.Module):
    """eps = w x: untrained, one parameter, conditional when asked (guidance needs config.num_classes)."""

    def __init__(self, num_classes: int):
        super().__init__()
        self.w = nn.Parameter(torch.tensor(0.5))
        self.config, self.null_label = SimpleNamespace(num_classes=num_classes), num_classes

    def forward(self, x, t, y=None):
        return self.w * x


def fake_train_run(ctx, config):
    shape = tuple(ctx.load("train").images.shape[1:])
    steps = list(range(1, config.steps + 1, max(config.log_every, 1)))
    return common.TrainedRun(
        Path(config.out).name, json.loads(json.dumps(asdict(config))),
        FakeDenoiser(10 if config.conditional else 0), NoiseSchedule.from_name(config.schedule, config.timesteps),
        shape, steps, [1.0 / s for s in steps], 0.5, 100 + (config.time_embedding == "every-block"),
    )  # fmt: skip


class FakeScorer:
    """Metrics from the pixels: different samples score differently, no classifier is trained."""

    description = {"features": "fake", "classifier_test_accuracy": None, "classifier_epochs": 0,
                   "classifier_train_images": 0, "reference": "none"}  # fmt: skip

    def __call__(self, images, labels=None):
        x = images.float() / 255
        bright = (x > 0.5).float().mean()
        return {"fid": float(x.mean() * 100 + x.std()), "kid": float(x.std()), "precision": float(bright),
                "recall": float(1 - bright), "accuracy": None if labels is None else float(x.max() / 2),
                "n": len(images)}  # fmt: skip


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory) -> Path:
    """The synthetic digits, drawn once (seconds of PIL) and copied into the caches of the tests that use them."""
    cache = tmp_path_factory.mktemp("synthetic")
    return common.resolve_data("synthetic", None, cache)[1]


@pytest.fixture(scope="module")
def fake_all(tmp_path_factory, synthetic) -> Path:
    out = tmp_path_factory.mktemp("experiments") / "all"
    shutil.copytree(synthetic, out / "cache" / synthetic.name)
    threads = torch.get_num_threads()
    with pytest.MonkeyPatch.context() as patch:
        for name in ("common", "scoring", *EXPERIMENTS.values()):  # wherever a module bound the names
            module = importlib.import_module(f"cleardiffusion.experiments.{name}")
            if hasattr(module, "train_run"):
                patch.setattr(module, "train_run", fake_train_run)
            if hasattr(module, "scorer"):
                patch.setattr(module, "scorer", lambda ctx: FakeScorer())
        argv = ["experiment", "all", "--quick", "--dataset", "synthetic", "--out", str(out), "--device", "cpu"]
        assert main(argv) == 0
    assert torch.get_num_threads() == threads, "the run must restore torch's thread count"
    return out


def check_common(out: Path, name: str) -> tuple[dict, str]:
    """Provenance, a markdown table, and every linked image is a PNG on disk."""
    results = json.loads((out / name / "results.json").read_text())
    report = (out / name / "report.md").read_text()
    assert results["experiment"] == name and results["mode"] == "quick"
    assert results["command"].startswith("cleardiffusion experiment all") and results["command"] in report
    env = results["environment"]
    assert env["torch"] == torch.__version__ and env["device"].startswith("cpu: ")
    for value in (env["device"], env["torch"], env["date"], results["data"]):
        assert value in report
    assert re.search(r"^\| .+ \|\n\|(---\|)+$", report, re.M), "no markdown table header"
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", report)
    assert links, "the report embeds no image"
    for link in links:
        assert not Path(link).is_absolute()
        assert (out / name / link).read_bytes()[:8] == PNG_MAGIC, link
    return results, report


def test_index_links_every_experiment(fake_all):
    index = (fake_all / "report.md").read_text()
    summary = json.loads((fake_all / "results.json").read_text())
    assert set(summary["experiments"]) == set(EXPERIMENTS)
    for name, entry in summary["experiments"].items():
        assert f"]({name}/report.md)" in index
        assert f"| {name} | {fmt(entry['seconds'])} |" in index


def test_overfit_one_image_report_shows_its_results(fake_all):
    results, report = check_common(fake_all, "overfit-one-image")
    r = results["results"]
    assert len(r["sample_mse"]) == results["config"]["n_samples"]
    assert [st["steps"] for st in r["stages"]] == list(results["config"]["stages"])
    assert r["trajectory_timesteps"][0] > r["trajectory_timesteps"][-1] == 0  # from noise to t = 0
    for i, mse in enumerate(r["sample_mse"]):
        assert f"| {i} | {fmt(mse)} |" in report
    assert f"**{fmt(r['mean_mse'])}**" in report and fmt(r["baseline_mse_other_digits"]) in report


def test_ddpm_steps_report_shows_its_results(fake_all):
    results, report = check_common(fake_all, "ddpm-steps")
    settings = results["results"]["settings"]
    assert [s["steps"] for s in settings] == list(results["config"]["steps"])
    for s in settings:
        assert f"| {s['steps']} | {fmt(s['fid'])} | {fmt(s['kid'])} | {fmt(s['precision'])} |" in report
    assert "FID features" in report and results["features"]["features"] == "fake"


def test_ddim_steps_report_shows_its_results(fake_all):
    results, report = check_common(fake_all, "ddim-steps")
    r, c = results["results"], results["config"]
    grid = [(s, n) for s in c["spacings"] for n in c["ddim_steps"]]
    assert [(row["spacing"], row["steps"]) for row in r["ddim"]] == grid
    assert r["ddpm"]["steps"] == r["T"]
    expected = fewest_steps_within(r["ddim"], r["ddpm"]["fid"], c["tolerance"])
    if expected is None:
        assert r["fewest_overall"] is None and "None of the DDIM step counts" in report
    else:
        assert f"**{expected['steps']}** ({expected['spacing']} spacing" in report
    for row in [r["ddpm"], *r["ddim"], *r["solvers"]]:
        assert f"| {row['sampler']} | {row['spacing']} | {row['steps']} | {row['nfe']} | {fmt(row['fid'])} |" in report
    assert {row["sampler"] for row in r["solvers"]} == {s for s, _ in c["solvers"]}
    for row in r["solvers"]:  # Heun's NFE is odd: an even budget gets the odd one below it
        assert row["nfe"] in (*c["solver_nfe"], *(b - 1 for b in c["solver_nfe"]))


def test_time_embedding_report_shows_its_results(fake_all):
    results, report = check_common(fake_all, "time-embedding")
    runs = results["results"]["runs"]
    assert set(runs) == {"middle", "every-block"}  # quick size: no repeat with the next seed
    for name, run in runs.items():
        assert len(run["heldout_loss_by_band"]) == results["config"]["bands"]
        assert f"| {name} | {run['parameters']} | {fmt(run['final_loss'])} |" in report
    assert f"**{results['results']['lower_fid']}**" in report


def test_cfg_dropout_report_shows_its_results(fake_all):
    results, report = check_common(fake_all, "cfg-dropout")
    c, rows = results["config"], results["results"]["settings"]
    assert {(r["label_dropout"], r["guidance"]) for r in rows} == {(p, s) for p in c["dropouts"] for s in c["scales"]}
    for r in rows:
        cells = (r["label_dropout"], r["guidance"], r["fid"], r["accuracy"])
        assert "| " + " | ".join(fmt(v) for v in cells) + " |" in report


def test_sampling_cost_report_shows_its_results(fake_all):
    results, report = check_common(fake_all, "sampling-cost")
    r, c = results["results"], results["config"]
    assert [row["model"] for row in r["networks"]] == [net["label"] for net in c["networks"]]
    assert [(row["model"], row["image_size"]) for row in r["sweep"]] == [
        (net["label"], size) for net in c["sweep"] for size in c["sweep_resolutions"]
    ]
    # a second bf16 column only where the library samples in fp32 (a CPU without native bf16)
    precisions = ("library", "bf16") if r["library_precision"] == "fp32" else ("library",)
    for row in [*r["networks"], *r["sweep"]]:
        assert (row["bf16"] is None) == (r["library_precision"] == "bf16")
        for precision in precisions:
            timing = row[precision]
            assert len(timing["step_s"]) == c["steps"] and timing["median_s"] == np.median(timing["step_s"])
            assert f"| {fmt(1000 * timing['median_s'])} | {fmt(1000 * timing['min_s'])}-" in report
    for cost in r["costs"]:
        row = next(row for row in r["networks"] if row["model"] == cost["model"])
        assert cost["seconds"] == pytest.approx(cost["steps"] * row[cost["precision"]]["median_s"])
        assert f"| {cost['model']} | {cost['precision']} | {cost['steps']} | {fmt(cost['seconds'])} |" in report
    assert len(r["costs"]) == len(precisions) * len(c["networks"]) * len(c["sampling_steps"])
    assert r["verdict"]["text"] in report and r["verdict"]["text"] in results["headline"]
    for s in r["slopes"]:
        assert f"| {s['model']} | {s['from']} | {s['to']} | {fmt(s['slope'])} | {fmt(s['flop_slope'])} |" in report
    assert fmt(r["seed_mlp"]["median_s"]) in report and fmt(r["seed_mlp"]["steps_x_median_step_s"]) in report


def test_render_only_writes_the_same_reports_from_results_json(fake_all, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(fake_all, copy, ignore=shutil.ignore_patterns("cache"))
    plots = ("ddim-steps/images/ddim_speedup.png", "cfg-dropout/images/cfg.png", "overfit-one-image/images/loss.png")
    for path in (*[Path(name) / "report.md" for name in ("", *EXPERIMENTS)], *plots):
        (copy / path).unlink()
    assert main(["experiment", "all", "--render-only", "--out", str(copy)]) == 0
    for name in ("", *EXPERIMENTS):
        assert (copy / name / "report.md").read_text() == (fake_all / name / "report.md").read_text(), name
    for plot in plots:
        assert (copy / plot).read_bytes()[:8] == PNG_MAGIC


@pytest.mark.skipif(not COMMITTED.is_dir(), reason="benchmarks/results/experiments_cpu is not in this checkout")
def test_committed_results_render_again_or_are_refused_in_one_line(tmp_path, capsys):
    for name in ("sampling-cost", "ddim-steps"):
        shutil.copytree(COMMITTED / name, tmp_path / name)
    (tmp_path / "sampling-cost" / "report.md").unlink()
    assert main(["experiment", "sampling-cost", "--render-only", "--out", str(tmp_path / "sampling-cost")]) == 0
    assert (tmp_path / "sampling-cost" / "report.md").read_text() == (COMMITTED / "sampling-cost/report.md").read_text()
    # ddim-steps was written before results.json held the model's `training` summary
    assert main(["experiment", "ddim-steps", "--render-only", "--out", str(tmp_path / "ddim-steps")]) == 2
    err = capsys.readouterr().err.strip()
    assert "lacks 'training'" in err and len(err.splitlines()) == 1
    for kept in ("report.md", "images/ddim_speedup.png"):  # nothing written over
        assert (tmp_path / "ddim-steps" / kept).read_bytes() == (COMMITTED / "ddim-steps" / kept).read_bytes()


def test_render_only_refuses_what_it_cannot_render(fake_all, tmp_path, capsys):
    assert main(["experiment", "ddpm-steps", "--render-only", "--out", str(tmp_path)]) == 2
    assert "no results.json" in capsys.readouterr().err
    shutil.copytree(fake_all / "ddim-steps", tmp_path / "d", ignore=shutil.ignore_patterns("images"))
    assert main(["experiment", "ddpm-steps", "--render-only", "--out", str(tmp_path / "d")]) == 2
    err = capsys.readouterr().err
    assert "not written by `experiment ddpm-steps`" in err and len(err.strip().splitlines()) == 1


# ---- a real quick run: trains, reruns into the same --out, and again with another seed

TINY = overfit.Config(0, 25, "linear-scaled", (6, 12), 8, 1e-3, 2, 4, 32)


def test_rerun_into_the_same_out_reuses_its_models_and_another_seed_trains_its_own(
    tmp_path, monkeypatch, capsys, synthetic
):
    monkeypatch.setitem(overfit.CONFIGS, "quick", TINY)
    shutil.copytree(synthetic, tmp_path / "o" / "cache" / synthetic.name)
    argv = ["experiment", "overfit-one-image", "--quick", "--dataset", "synthetic", "--out", str(tmp_path / "o"),
            "--device", "cpu"]  # fmt: skip
    (tmp_path / "o" / "images").mkdir()
    (tmp_path / "o" / "images" / "mine.png").write_bytes(b"not ours")
    assert main(argv) == 0
    first = json.loads((tmp_path / "o" / "results.json").read_text())
    capsys.readouterr()
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "training:" not in out and "resuming" not in out  # the cached runs answer: nothing trains again
    again = json.loads((tmp_path / "o" / "results.json").read_text())
    assert again["results"]["sample_mse"] == first["results"]["sample_mse"]  # the same model, the same seeds
    assert main([*argv, "--seed", "1"]) == 0
    assert "training:" in capsys.readouterr().out  # seed 1 is another model, trained into its own folder
    runs = sorted(p.name for p in (tmp_path / "o" / "cache").glob("runs-quick/*/overfit-one-image-*") if p.is_dir())
    assert len(runs) == 2 and {r.split("-seed")[1][0] for r in runs} == {"0", "1"}
    assert (tmp_path / "o" / "images" / "mine.png").read_bytes() == b"not ours"


def test_an_out_holding_files_the_experiment_did_not_write_is_refused(tmp_path, capsys):
    (tmp_path / "report.md").write_text("my notes")
    code = main(["experiment", "ddpm-steps", "--quick", "--dataset", "synthetic", "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and "report.md" in err and len(err.strip().splitlines()) == 1
    assert (tmp_path / "report.md").read_text() == "my notes"


# ---- data, cache keys and the classifier


def test_a_named_dataset_that_is_missing_is_refused_not_replaced(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # no data/mnist here
    for extra in ([], ["--data-dir", str(tmp_path / "nowhere")]):
        code = main(["experiment", "ddpm-steps", "--quick", "--out", str(tmp_path / "o"), *extra])
        err = capsys.readouterr().err.strip()
        assert code == 2 and len(err.splitlines()) == 1
        assert "--data-dir" in err and "--dataset synthetic" in err
    assert not (tmp_path / "o" / "cache" / "synthetic-digits").exists()


def context(tmp_path, **changes) -> common.Context:
    ctx = common.Context(
        name="x", out=tmp_path, cache=tmp_path, size="cpu", dataset="mnist", loader="mnist", data_dir=tmp_path,
        data_note="", data_key="d0", device=torch.device("cpu"), device_arg="cpu", seed=0, command="",
    )  # fmt: skip
    ctx.shared[("data", "mnist", str(tmp_path), "train")] = SimpleNamespace(channels=1)
    return replace(ctx, **changes)


def test_cache_keys_hold_data_seed_size_and_recipe(tmp_path):
    base = context(tmp_path)
    out = common.train_config(base, "m").out
    assert common.train_config(base, "m").out == out  # the same request finds the same run
    for other in (context(tmp_path, seed=1), context(tmp_path, data_key="d1"), context(tmp_path, size="quick")):
        assert common.train_config(other, "m").out != out
    assert common.train_config(base, "m", lr=1e-4).out != out
    assert common.train_config(base, "m", steps=10).out == out  # a longer run resumes a shorter one
    files = {scoring.classifier_file(c) for c in (base, context(tmp_path, seed=1), context(tmp_path, data_key="d1"))}
    assert len(files) == 3
    assert common.data_key("mnist", tmp_path) != common.data_key("fashion-mnist", tmp_path)


def test_experiment_checks_its_classifier_as_eval_does(tmp_path, capsys, synthetic):
    shutil.copytree(synthetic, tmp_path / "o" / "cache" / synthetic.name)
    rgb, other = tmp_path / "rgb.pt", tmp_path / "cifar.pt"
    save_classifier(rgb, SmallClassifier(3, 10, 28), {"dataset": "synthetic"})
    save_classifier(other, SmallClassifier(1, 10, 28), {"dataset": "cifar10"})
    for path, why in ((rgb, "3-channel"), (other, "cifar10"), (tmp_path / "none.pt", "no classifier")):
        argv = ["experiment", "ddpm-steps", "--quick", "--dataset", "synthetic", "--classifier", str(path),
                "--out", str(tmp_path / "o")]  # fmt: skip
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert why in err and len(err.splitlines()) == 1
    assert not list((tmp_path / "o" / "cache").glob("runs*"))  # refused before any training


# ---- fast checks of the pieces


def test_fewest_steps_within_picks_fewest_qualifying():
    rows = [{"steps": s, "fid": f} for s, f in ((5, 30.0), (10, 10.9), (20, 9.0), (50, 10.0))]
    assert fewest_steps_within(rows, reference_fid=10.0, tolerance=0.10)["steps"] == 10
    assert fewest_steps_within(rows, reference_fid=10.0, tolerance=0.05)["steps"] == 20
    assert fewest_steps_within(rows, reference_fid=5.0, tolerance=0.10) is None


def test_every_experiment_has_every_size():
    for module in EXPERIMENTS.values():
        configs = importlib.import_module(f"cleardiffusion.experiments.{module}").CONFIGS
        assert set(configs) == set(common.SIZES), module
    # the CPU size trains the CPU recipe: what `cleardiffusion train` does by default, for fewer steps
    recipe = {"model", "base_channels", "model_options", "prediction", "loss_weighting", "ema_decay", "lr",
              "batch_size", "warmup", "schedule", "timesteps", "time_embedding"}  # fmt: skip
    assert not recipe & set(common.SIZES["cpu"].train)
    for size in common.SIZES.values():  # every training field is one TrainConfig takes
        TrainConfig(**size.train)


def test_cli_size_reaches_the_experiment_and_its_command(tmp_path, monkeypatch):
    seen = {}

    def fake(name, out, **options):
        seen.update(options, name=name)

    monkeypatch.setattr("cleardiffusion.experiments.run_experiment", fake)
    assert main(["experiment", "ddim-steps", "--size", "cpu", "--out", str(tmp_path / "a")]) == 0
    assert seen["name"] == "ddim-steps" and seen["size"] == "cpu" and "--size cpu" in seen["command"]
    assert main(["experiment", "ddim-steps", "--quick", "--out", str(tmp_path / "b")]) == 0
    assert seen["size"] == "quick" and "--quick" in seen["command"]
    monkeypatch.undo()
    from cleardiffusion.experiments import run_experiment

    with pytest.raises(UsageError, match="unknown experiment size"):
        run_experiment("ddim-steps", tmp_path / "c", size="huge")


def test_markdown_table_formats_every_cell():
    table = markdown_table(["a", "b"], [(1, 0.123456), (None, True)])
    assert table.splitlines() == ["| a | b |", "|---|---|", "| 1 | 0.1235 |", "| n/a | yes |"]
    with pytest.raises(ValueError, match="2 headers"):
        markdown_table(["a", "b"], [(1,)])


def test_synthetic_digits_differ_by_class():
    images, labels = synthetic_digits(200, seed=0)
    assert images.shape == (200, 28, 28) and images.dtype == np.uint8 and set(labels) == set(range(10))
    means = np.stack([images[labels == k].mean(0) for k in range(10)])  # (10, 28, 28)
    distances = np.abs(means[:, None] - means[None]).mean((2, 3))
    assert distances[~np.eye(10, dtype=bool)].min() > 5  # every class has its own glyph


def test_sample_cache_reuses_a_draw_only_for_the_same_model_sampler_seed_and_labels(tmp_path, monkeypatch):
    calls = []

    def fake_generate(model, schedule, *, n, shape, seed, batch_size, device, **options):
        calls.append((seed, options))
        yield torch.full((n, *shape), float(len(calls)) / 10)

    monkeypatch.setattr(common, "generate_images", fake_generate)
    ctx = context(tmp_path)
    run = common.TrainedRun("m", {"steps": 1}, torch.nn.Identity(), None, (1, 2, 2), [], [], 0.0, 0)
    run.model = lambda x, t: x  # the warm-up pass
    first, _ = common.sample_timed(ctx, run, 3, sampler="ddim", steps=5)
    again, _ = common.sample_timed(ctx, run, 3, sampler="ddim", steps=5)
    assert len(calls) == 1 and torch.equal(first, again)  # drawn once
    never = lambda *a: None  # noqa: E731  (a callback is never cached)
    for other in ({"seed": 1}, {"labels": torch.tensor([0, 1, 2])}, {"labels": torch.tensor([0, 1, 3])},
                  {"callback": never}, {"callback": never}):  # fmt: skip
        common.sample_timed(ctx, run, 3, sampler="ddim", steps=5, **other)
    assert len(calls) == 6
    ctx.size = "quick"  # CI sizes never cache
    common.sample_timed(ctx, run, 3, sampler="ddim", steps=5)
    assert len(calls) == 7


def test_git_commit_names_the_commit_and_says_when_tracked_files_differ_from_it(tmp_path):
    """What a benchmark records as its code: the short hash, and "+ uncommitted changes" while a tracked file of
    code differs from it (an untracked file, a committed result rewritten or a changed *.md do not count)."""
    import subprocess

    from cleardiffusion.experiments.report import git_commit

    def git(*args):
        return subprocess.run(["git", "-C", str(tmp_path), "-c", "user.name=t", "-c", "user.email=t@t", *args],
                              check=True, capture_output=True, text=True).stdout.strip()  # fmt: skip

    git("init", "-q")
    results = tmp_path / "benchmarks" / "results"
    results.mkdir(parents=True)
    for name in ("code.py", "docs.md", "benchmarks/results/old.json"):
        (tmp_path / name).write_text("x = 1\n")
    git("add", ".")
    git("commit", "-q", "-m", "first")
    head = git("rev-parse", "--short", "HEAD")
    (tmp_path / "results.json").write_text("{}\n")
    (results / "old.json").write_text("{}\n")
    (tmp_path / "docs.md").write_text("more\n")
    assert git_commit(tmp_path) == git_commit(results) == head
    (tmp_path / "code.py").write_text("x = 2\n")
    assert git_commit(tmp_path) == f"{head} + uncommitted changes"
