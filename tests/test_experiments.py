"""`cleardiffusion experiment`: every quick recipe writes a report whose tables come from its results.json.

One module-scoped run of `experiment all --quick` feeds one test per experiment. It reads MNIST from
../shared/data/mnist when it exists, synthetic digits otherwise. The run uses quick mode with smaller training
and scoring sizes (TEST_SIZES): the tests check that every table and figure comes from results.json, which no
size changes, and the quick sizes' 2,000-image KID reference alone took half of the suite's time.
"""

import json
import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from cleardiffusion.cli import main
from cleardiffusion.experiments import EXPERIMENTS, common
from cleardiffusion.experiments.common import synthetic_digits
from cleardiffusion.experiments.ddim_steps import fewest_steps_within
from cleardiffusion.experiments.report import fmt, markdown_table
from cleardiffusion.experiments.sampling_cost import fit
from cleardiffusion.train_config import TrainConfig

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
# KID compares 100 subsets of min(1000, reference) vectors: 400 reference images cut its cost six-fold
TEST_SIZES = replace(
    common.QUICK, train={**common.QUICK.train, "steps": 20}, reference_images=400, classifier_images=1000
)


@pytest.fixture(scope="module")
def quick_all(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("experiments")
    threads = torch.get_num_threads()
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(common.SIZES, "quick", TEST_SIZES)
        assert main(["experiment", "all", "--quick", "--out", str(out), "--device", "cpu"]) == 0
    assert torch.get_num_threads() == threads, "the run must restore torch's thread count"
    return out


def load(out: Path, name: str) -> tuple[dict, str]:
    folder = out / name
    assert (folder / "report.md").is_file() and (folder / "results.json").is_file()
    return json.loads((folder / "results.json").read_text()), (folder / "report.md").read_text()


def check_common(out: Path, name: str) -> tuple[dict, str]:
    """Provenance, a markdown table, and every linked image is a PNG on disk."""
    results, report = load(out, name)
    for key in ("experiment", "mode", "command", "environment", "config", "sizes", "results", "seconds"):
        assert key in results, key
    assert results["experiment"] == name and results["mode"] == "quick"
    assert results["command"].startswith("cleardiffusion experiment all") and results["command"] in report
    env = results["environment"]
    assert env["torch"] == torch.__version__ and env["device"].startswith("cpu: ")
    for value in (env["device"], env["torch"], env["date"]):
        assert value in report
    assert re.search(r"^\| .+ \|\n\|(---\|)+$", report, re.M), "no markdown table header"
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", report)
    assert links, "the report embeds no image"
    for link in links:
        assert not Path(link).is_absolute()
        assert (out / name / link).read_bytes()[:8] == PNG_MAGIC, link
    return results, report


def assert_in_report(report: str, *values) -> None:
    for value in values:
        assert f"| {fmt(value)} |" in report or f"| {fmt(value)}\n" in report or fmt(value) in report, value


def test_index_links_every_experiment(quick_all):
    index = (quick_all / "report.md").read_text()
    summary = json.loads((quick_all / "results.json").read_text())
    assert set(summary["experiments"]) == set(EXPERIMENTS)
    for name, entry in summary["experiments"].items():
        assert f"]({name}/report.md)" in index
        assert f"| {name} | {fmt(entry['seconds'])} |" in index


def test_overfit_one_image(quick_all):
    results, report = check_common(quick_all, "overfit-one-image")
    r = results["results"]
    assert len(r["sample_mse"]) == results["config"]["n_samples"]
    assert r["mean_mse"] == pytest.approx(np.mean(r["sample_mse"]))
    assert r["reconstructs"] == (r["mean_mse"] < r["threshold"])
    assert 0 < r["nearest_other_digit_mse"] <= r["baseline_mse_other_digits"]
    assert_in_report(report, r["mean_mse"], r["baseline_mse_other_digits"], *r["sample_mse"])
    stages = r["stages"]
    assert [st["steps"] for st in stages] == list(results["config"]["stages"])
    assert stages[-1]["mean_mse"] == pytest.approx(r["mean_mse"])  # the last stage is the final model
    below = [st["steps"] for st in stages if st["mean_mse"] < r["threshold"]]
    assert r["steps_to_reconstruct"] == (below[0] if below else None)
    assert r["trajectory_timesteps"][0] > r["trajectory_timesteps"][-1] == 0  # from noise to t = 0
    assert (quick_all / "overfit-one-image" / "images" / "trajectory.png").is_file()


def test_ddpm_steps(quick_all):
    results, report = check_common(quick_all, "ddpm-steps")
    r = results["results"]
    assert [s["steps"] for s in r["settings"]] == list(results["config"]["steps"])
    fids = [s["fid"] for s in r["settings"]]
    assert r["fid_decreases_with_steps"] == all(a >= b for a, b in zip(fids, fids[1:], strict=False))
    for s in r["settings"]:
        assert s["fid"] >= 0 and s["seconds"] > 0
        assert f"| {s['steps']} | {fmt(s['fid'])} | {fmt(s['kid'])} |" in report
    assert results["features"]["features"].startswith("SmallClassifier")


def test_ddim_steps_answer_is_computed(quick_all):
    results, report = check_common(quick_all, "ddim-steps")
    r, c = results["results"], results["config"]
    assert len(r["ddim"]) == len(c["ddim_steps"]) * len(c["spacings"])
    assert r["ddpm"]["steps"] == r["T"] and r["ddpm"]["speedup"] == pytest.approx(1.0)
    expected = fewest_steps_within(r["ddim"], r["ddpm"]["fid"], c["tolerance"])
    if expected is None:
        assert r["fewest_overall"] is None and "None of the DDIM step counts" in report
    else:
        assert r["fewest_overall"]["steps"] == expected["steps"]
        assert f"**{expected['steps']}** ({expected['spacing']} spacing" in report
    for row in r["ddim"]:
        assert row["speedup"] == pytest.approx(r["ddpm"]["seconds"] / row["seconds"])
        assert f"| ddim | {row['spacing']} | {row['steps']} | {row['nfe']} | {fmt(row['fid'])} |" in report
    assert {row["sampler"] for row in r["solvers"]} == {s for s, _ in c["solvers"]}
    for row in r["solvers"]:  # Heun's NFE is odd: an even budget gets the odd one below it
        assert row["nfe"] in (*c["solver_nfe"], *(b - 1 for b in c["solver_nfe"]))
    noise = r["noise_floor"]
    assert noise["spread"] == pytest.approx(abs(noise["fid_seed"] - noise["fid_next_seed"]))
    assert noise["fid_seed"] == r["ddim"][len(c["ddim_steps"]) - 1]["fid"]
    assert (quick_all / "ddim-steps" / "images" / "ddim_speedup.png").is_file()


def test_time_embedding(quick_all):
    results, report = check_common(quick_all, "time-embedding")
    runs = results["results"]["runs"]
    assert set(runs) == {"middle", "every-block"}
    assert runs["every-block"]["parameters"] > runs["middle"]["parameters"]  # one projection per block
    curves = results["results"]["loss_curves"]
    assert curves["middle"]["step"] == curves["every-block"]["step"]  # equal budget, same logging
    for name, run in runs.items():
        assert len(run["heldout_loss_by_band"]) == results["config"]["bands"]
        assert f"| {name} | {run['parameters']} | {fmt(run['final_loss'])} |" in report
    lower = min(runs, key=lambda k: runs[k]["fid"])
    assert results["results"]["lower_fid"] == lower


def test_cfg_dropout(quick_all):
    results, report = check_common(quick_all, "cfg-dropout")
    c, rows = results["config"], results["results"]["settings"]
    assert {(r["label_dropout"], r["guidance"]) for r in rows} == {(p, s) for p in c["dropouts"] for s in c["scales"]}
    for r in rows:
        assert 0 <= r["accuracy"] <= 1
        assert (
            f"| {fmt(r['label_dropout'])} | {fmt(r['guidance'])} | {fmt(r['fid'])} | {fmt(r['accuracy'])} |" in report
        )
    assert results["results"]["best_fid"]["fid"] == min(r["fid"] for r in rows)


def test_sampling_cost_fit(quick_all):
    results, report = check_common(quick_all, "sampling-cost")
    r, c = results["results"], results["config"]
    kinds = {row["kind"] for row in r["timings"]}
    assert kinds == {"mlp", "unet"}
    assert {row["batch"] for row in r["timings"]} == set(c["batches"])
    for batch in c["batches"]:
        f = r["fits"][str(batch)]["params_x_pixels_x_steps"]
        assert f"| {batch} | params_x_pixels_x_steps | {fmt(f['a'])} | {fmt(f['b'])} | {fmt(f['r2'])} |" in report
    for row in r["timings"]:
        assert row["seconds"] > 0 and row["macs"] > 0


# ---- fast checks of the pieces


def test_fewest_steps_within_picks_fewest_qualifying():
    rows = [
        {"steps": 5, "fid": 30.0},
        {"steps": 10, "fid": 10.9},
        {"steps": 20, "fid": 9.0},
        {"steps": 50, "fid": 10.0},
    ]
    assert fewest_steps_within(rows, reference_fid=10.0, tolerance=0.10)["steps"] == 10
    assert fewest_steps_within(rows, reference_fid=10.0, tolerance=0.05)["steps"] == 20
    assert fewest_steps_within(rows, reference_fid=5.0, tolerance=0.10) is None


def test_every_experiment_has_every_size():
    import importlib

    from cleardiffusion.experiments import EXPERIMENTS

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

    with pytest.raises(ValueError, match="unknown experiment size"):
        run_experiment("ddim-steps", tmp_path / "c", size="huge")


def test_fit_recovers_a_linear_law():
    x = np.array([1e6, 2e6, 5e6, 1e7, 3e7])
    f = fit(x, 3e-9 * x + 0.02)
    assert f["a"] == pytest.approx(3e-9) and f["b"] == pytest.approx(0.02) and f["r2"] == pytest.approx(1.0)
    assert fit(x, 2e-9 * x)["loglog_slope"] == pytest.approx(1.0)


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


def test_cli_rejects_bad_input(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main(["experiment", "no-such-experiment", "--out", str(tmp_path)])
    assert e.value.code == 2 and "invalid choice" in capsys.readouterr().err
    code = main(["experiment", "ddpm-steps", "--quick", "--out", str(tmp_path), "--data-dir", str(tmp_path / "x")])
    err = capsys.readouterr().err
    assert code == 2 and "--data-dir" in err and len(err.strip().splitlines()) == 1


def test_sample_cache_reuses_a_draw_only_for_the_same_model_sampler_seed_and_labels(tmp_path, monkeypatch):
    calls = []

    def fake_generate(model, schedule, *, n, shape, seed, batch_size, device, **options):
        calls.append((seed, options))
        yield torch.full((n, *shape), float(len(calls)) / 10)

    monkeypatch.setattr(common, "generate_images", fake_generate)
    ctx = common.Context(
        name="x", out=tmp_path, cache=tmp_path, size="cpu", dataset="mnist", loader="mnist", data_dir=tmp_path,
        data_note="", device=torch.device("cpu"), device_arg="cpu", seed=0, command="",
    )  # fmt: skip
    run = common.TrainedRun("m", {"steps": 1}, torch.nn.Identity(), None, (1, 2, 2), [], [], 0.0, 0)
    run.model = lambda x, t: x  # the warm-up pass
    first, _ = common.sample_timed(ctx, run, 3, sampler="ddim", steps=5)
    again, _ = common.sample_timed(ctx, run, 3, sampler="ddim", steps=5)
    assert len(calls) == 1 and torch.equal(first, again)  # drawn once
    common.sample_timed(ctx, run, 3, sampler="ddim", steps=5, seed=1)
    common.sample_timed(ctx, run, 3, sampler="ddim", steps=5, labels=torch.tensor([0, 1, 2]))
    common.sample_timed(ctx, run, 3, sampler="ddim", steps=5, labels=torch.tensor([0, 1, 3]))
    common.sample_timed(ctx, run, 3, sampler="ddim", steps=5, callback=lambda *a: None)  # never cached
    common.sample_timed(ctx, run, 3, sampler="ddim", steps=5, callback=lambda *a: None)
    assert len(calls) == 6
    ctx.size = "quick"  # CI sizes never cache
    common.sample_timed(ctx, run, 3, sampler="ddim", steps=5)
    assert len(calls) == 7
