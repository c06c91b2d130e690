"""`cleardiffusion sample`: grids, .npz for evaluation, trajectories, guidance flags and their errors."""

import numpy as np
import pytest
import torch

from cleardiffusion import recipe, schedule
from cleardiffusion.checkpoint import load_checkpoint, save_checkpoint
from cleardiffusion.cli import main
from cleardiffusion.flow import FlowPath
from cleardiffusion.samplers import SAMPLERS
from test_train import tiny_flags, write_digits


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """A tiny unconditional and a tiny conditional checkpoint (8x8 digits, 100 diffusion steps)."""
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("sample")
    data = write_digits(root / "data")
    assert main(tiny_flags(data, root / "uncond", 6)) == 0
    assert main(tiny_flags(data, root / "cond", 6, conditional=True, label_dropout=0.2)) == 0
    return root / "uncond/checkpoints/last.pt", root / "cond/checkpoints/last.pt"


@pytest.fixture(scope="module")
def flow_checkpoint(checkpoints, tmp_path_factory):
    """The unconditional checkpoint relabelled as a flow matching one: its network is read as a velocity."""
    state = load_checkpoint(checkpoints[0])
    state["config"]["objective"] = "flow"
    return save_checkpoint(tmp_path_factory.mktemp("flow") / "flow.pt", state)


def run_sample(checkpoint, out, *extra):
    return main(["sample", "--checkpoint", str(checkpoint), "--out", str(out), "--device", "cpu", *map(str, extra)])


def exit_status(checkpoint, out, *extra):
    """run_sample's exit status, argparse's own errors (SystemExit) included."""
    try:
        return run_sample(checkpoint, out, *extra)
    except SystemExit as e:
        return e.code


def test_npz_holds_uint8_images_and_is_batch_size_independent(checkpoints, tmp_path):
    uncond, _ = checkpoints
    for batch in (3, 7):
        assert run_sample(uncond, tmp_path / f"b{batch}.npz", "--n", 7, "--steps", 5, "--batch-size", batch,
                          "--sampler", "ddpm", "--seed", 11) == 0  # fmt: skip
    a, b = np.load(tmp_path / "b3.npz"), np.load(tmp_path / "b7.npz")
    assert a["images"].shape == (7, 8, 8, 1) and a["images"].dtype == np.uint8
    assert "labels" not in a
    np.testing.assert_array_equal(a["images"], b["images"])
    run_sample(uncond, tmp_path / "other.npz", "--n", 7, "--steps", 5, "--sampler", "ddpm", "--seed", 12)
    assert not np.array_equal(np.load(tmp_path / "other.npz")["images"], a["images"])


def test_png_grid_and_trajectory(checkpoints, tmp_path):
    uncond, _ = checkpoints
    assert run_sample(uncond, tmp_path / "grid.png", "--n", 4, "--steps", 12,
                      "--trajectory", tmp_path / "traj.png") == 0  # fmt: skip
    from PIL import Image

    assert Image.open(tmp_path / "grid.png").size[0] > 16
    traj = Image.open(tmp_path / "traj.png")
    assert traj.size[0] > traj.size[1]  # 4 rows of samples, 11 columns (10 steps + the final image)
    gif = Image.open(tmp_path / "traj.gif")
    assert gif.n_frames == 12 + 1


def test_conditional_labels_and_guidance(checkpoints, tmp_path):
    _, cond = checkpoints
    assert run_sample(cond, tmp_path / "all.npz", "--n", 20, "--steps", 3, "--class-label", "all",
                      "--guidance", 3) == 0  # fmt: skip
    labels = np.load(tmp_path / "all.npz")["labels"]
    assert labels.tolist() == [k for k in range(10) for _ in range(2)]
    assert run_sample(cond, tmp_path / "k.npz", "--n", 3, "--steps", 3, "--class-label", 7) == 0
    assert np.load(tmp_path / "k.npz")["labels"].tolist() == [7, 7, 7]
    assert run_sample(cond, tmp_path / "none.npz", "--n", 3, "--steps", 3, "--class-label", "none") == 0
    assert "labels" not in np.load(tmp_path / "none.npz")


@pytest.mark.parametrize(
    "sampler, flags, steps, nfe, spacing",
    [
        ("dpm++2m", ["--steps", 6], 6, 6, "trailing"),
        ("dpm++2m-sde", ["--steps", 6, "--solver-type", "midpoint"], 6, 6, "trailing"),
        ("dpm++2m", ["--steps", 6, "--spacing", "logsnr"], 6, 6, "logsnr"),
        ("heun", ["--nfe", 9], 5, 9, "karras"),
        ("heun", ["--steps", 4, "--spacing", "uniform"], 4, 7, "uniform"),
        ("ddim", ["--nfe", 7, "--spacing", "karras"], 7, 7, "karras"),
    ],
)
def test_solvers_record_their_nfe(checkpoints, tmp_path, capsys, sampler, flags, steps, nfe, spacing):
    out = tmp_path / "s.npz"
    assert run_sample(checkpoints[0], out, "--n", 3, "--sampler", sampler, *flags) == 0
    z = np.load(out)
    assert z["images"].shape == (3, 8, 8, 1)
    assert (str(z["sampler"]), int(z["steps"]), int(z["nfe"]), str(z["spacing"])) == (sampler, steps, nfe, spacing)
    assert f"NFE {nfe}" in capsys.readouterr().out
    if sampler.startswith("dpm++"):  # the solver type is recorded for the dpm++ solvers only
        assert str(z["solver_type"]) == ("midpoint" if "midpoint" in flags else "exact")
    else:
        assert "solver_type" not in z


def test_default_sampler_is_dpm_solver_pp_sde_at_most_t_steps(checkpoints, tmp_path):
    assert run_sample(checkpoints[0], tmp_path / "d.npz", "--n", 2) == 0
    z = np.load(tmp_path / "d.npz")
    T = torch.load(checkpoints[0], weights_only=False)["config"]["timesteps"]
    assert (str(z["sampler"]), str(z["spacing"]), int(z["steps"])) == ("dpm++2m-sde", "trailing", min(50, T))


def test_flow_checkpoint_takes_flow_samplers(flow_checkpoint, tmp_path):
    assert run_sample(flow_checkpoint, tmp_path / "e.npz", "--n", 3, "--steps", 4) == 0
    z = np.load(tmp_path / "e.npz")
    assert (str(z["objective"]), str(z["sampler"]), int(z["nfe"])) == ("flow", "euler", 4)
    assert run_sample(flow_checkpoint, tmp_path / "h.npz", "--n", 3, "--sampler", "heun", "--nfe", 6) == 0
    assert (int(np.load(tmp_path / "h.npz")["steps"]), int(np.load(tmp_path / "h.npz")["nfe"])) == (3, 6)
    assert run_sample(flow_checkpoint, tmp_path / "t.png", "--n", 2, "--steps", 5, "--trajectory",
                      tmp_path / "traj.png") == 0  # fmt: skip


def test_every_sampler_runs_on_a_flow_checkpoint(flow_checkpoint, tmp_path):
    """The samplers are written once for any path: DDIM, DPM-Solver++ and ancestral DDPM sample a flow model."""
    for sampler in ("ddim", "dpm++2m", "dpm++2m-sde", "ddpm"):
        out = tmp_path / f"{sampler}.npz"
        assert run_sample(flow_checkpoint, out, "--n", 2, "--sampler", sampler, "--steps", 3) == 0
        z = np.load(out)
        assert str(z["sampler"]) == sampler and z["images"].shape[0] == 2 and z["images"].std() > 0


def test_the_recipe_names_what_the_library_has():
    assert recipe.SAMPLER_NAMES == tuple(SAMPLERS)
    assert schedule.SPACINGS == recipe.SPACINGS and FlowPath.spacings == recipe.FLOW_SPACINGS


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--spacing", "karras"], "does not fit a flow model"),
        (["--sampler", "ddim", "--variance", "posterior"], "is for the ddpm sampler"),
        (["--sampler", "heun", "--nfe", "7"], "NFE is even"),
    ],
)
def test_flow_checkpoint_rejects_what_does_not_fit(flow_checkpoint, tmp_path, capsys, extra, message):
    assert exit_status(flow_checkpoint, tmp_path / "x.png", "--n", 2, *extra) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


@pytest.mark.parametrize(
    "which, extra, message",
    [
        (0, ["--steps", "0"], "must be at least 1"),
        (0, ["--sampler", "heun", "--nfe", "10"], "NFE is odd"),
        (0, ["--spacing", "cubic"], "invalid choice"),
        (0, ["--sampler", "dpm++2m", "--eta", "1"], "(--eta) is DDIM's noise level"),
        (0, ["--sampler", "ddim", "--solver-type", "midpoint"], "(--solver-type) is for dpm++2m"),
        (0, ["--solver-type", "rk4"], "invalid choice"),
        (0, ["--steps", "5", "--nfe", "5"], "not allowed with"),
        (1, ["--class-label", "10"], "out of range"),
        (1, ["--class-label", "cat"], "class index"),
        (0, ["--class-label", "3"], "unconditional"),
        (0, ["--guidance", "3"], "conditional"),
        (0, ["--steps", "101"], "between 1 and 100 (T, the checkpoint's diffusion steps)"),
        (0, ["--out-suffix", ".jpg"], "--out must end in .png or .npz"),
        (1, ["--autoguide", "UNCOND"], "--autoguide guides unconditional samples"),
        (0, ["--autoguide", "COND"], "must be an unconditional model"),
        (0, ["--autoguide-from", "0.15"], "--autoguide-from limits autoguidance to the noisier levels"),
        (0, ["--autoguide", "UNCOND", "--autoguide-from", "1"], "--autoguide-from"),
        (0, ["--noise-scale", "0"], "(--noise-scale) must be a positive number"),
        (0, ["--noise-scale", "-0.5"], "(--noise-scale) must be a positive number"),
    ],
)
def test_bad_requests_get_one_line_errors(checkpoints, tmp_path, capsys, which, extra, message):
    out = tmp_path / "x.png"
    if extra[0] == "--out-suffix":
        out, extra = tmp_path / "x.jpg", []
    extra = [str({"UNCOND": checkpoints[0], "COND": checkpoints[1]}.get(a, a)) for a in extra]
    assert exit_status(checkpoints[which], out, "--n", 2, *extra) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_corrupt_checkpoint_is_a_clear_error(tmp_path, capsys):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    assert run_sample(bad, tmp_path / "x.png") == 2
    assert "bad.pt" in capsys.readouterr().err


@pytest.mark.parametrize("which", ["ddpm", "flow"])
def test_python_users_get_the_command_lines_default_sampler(checkpoints, flow_checkpoint, tmp_path, which):
    """generate_images with no recipe draws exactly what `cleardiffusion sample` draws with no sampler flags."""
    from cleardiffusion.checkpoint import load_for_sampling
    from cleardiffusion.generate import generate_images
    from cleardiffusion.viz import to_uint8

    checkpoint = checkpoints[0] if which == "ddpm" else flow_checkpoint
    assert run_sample(checkpoint, tmp_path / "cli.npz", "--n", 3, "--seed", 4) == 0
    cli = np.load(tmp_path / "cli.npz")
    model, path, meta = load_for_sampling(checkpoint)
    default = recipe.SamplingRecipe().resolve(path)
    assert (str(cli["sampler"]), str(cli["spacing"]), int(cli["steps"])) == (default.sampler, default.spacing,
                                                                            default.steps)  # fmt: skip
    images = torch.cat(list(generate_images(model, path, n=3, shape=meta["image_shape"], seed=4)))
    np.testing.assert_array_equal(to_uint8(images).permute(0, 2, 3, 1).numpy(), cli["images"])


def test_recipe_defaults_per_objective():
    ddpm, flow = schedule.NoiseSchedule.from_name("linear", 100), FlowPath()
    r = recipe.SamplingRecipe().resolve(ddpm)
    assert (r.sampler, r.steps, r.spacing, r.solver_type) == ("dpm++2m-sde", 50, "trailing", "exact")
    r = recipe.SamplingRecipe().resolve(flow)
    assert (r.sampler, r.steps, r.spacing, r.solver_type) == ("euler", 50, "uniform", None)
    assert recipe.SamplingRecipe(sampler="ddpm").resolve(ddpm).steps == 100  # every step of the schedule
    assert recipe.SamplingRecipe(sampler="heun").resolve(flow).steps == 25
    with pytest.raises(ValueError, match="between 1 and 10000"):
        recipe.SamplingRecipe(steps=5_000_000).resolve(flow)


def test_noise_scale_scales_the_starting_noise_and_nothing_else(checkpoints, tmp_path, monkeypatch):
    """--noise-scale S: the sampler starts from S times the x_T it starts from by default (the same per-sample
    draws), the .npz records S, and the default is 1 (the model's own distribution)."""
    from cleardiffusion.checkpoint import load_for_sampling
    from cleardiffusion.generate import generate_images

    model, path, meta = load_for_sampling(checkpoints[0])
    assert recipe.SamplingRecipe().resolve(path).noise_scale == 1.0
    starts = []

    def recorder(model, path, x_T, timesteps, **kwargs):
        starts.append(x_T.clone())
        return x_T.clamp(-1, 1)

    monkeypatch.setitem(SAMPLERS, "ddim", recorder)
    for s in (1.0, 0.5):
        r = recipe.SamplingRecipe(sampler="ddim", steps=3, noise_scale=s)
        list(generate_images(model, path, n=4, shape=meta["image_shape"], recipe=r, seed=7))
    torch.testing.assert_close(starts[1], 0.5 * starts[0], rtol=0, atol=0)
    assert starts[0].std() > 0.5  # unit noise: the default scale is 1
    monkeypatch.undo()
    assert run_sample(checkpoints[0], tmp_path / "t.npz", "--n", 2, "--steps", 3, "--noise-scale", 0.8) == 0
    assert float(np.load(tmp_path / "t.npz")["noise_scale"]) == 0.8
    assert run_sample(checkpoints[0], tmp_path / "d.npz", "--n", 2, "--steps", 3) == 0
    assert "noise_scale" not in np.load(tmp_path / "d.npz")


def test_autoguidance_by_the_model_itself_is_the_model_and_by_another_is_their_blend(checkpoints, flow_checkpoint,
                                                                                       tmp_path):  # fmt: skip
    """--autoguide CKPT --guidance S: eps_bad + S (eps - eps_bad). Guided by itself the samples are the plain ones,
    bit for bit, whatever S; a model of another kind (flow) is refused before any sampling."""
    uncond = checkpoints[0]
    common = ["--n", 3, "--steps", 4, "--sampler", "ddim", "--precision", "fp32"]
    assert run_sample(uncond, tmp_path / "plain.npz", *common) == 0
    assert run_sample(uncond, tmp_path / "self.npz", *common, "--autoguide", uncond, "--guidance", 3) == 0
    np.testing.assert_array_equal(np.load(tmp_path / "plain.npz")["images"], np.load(tmp_path / "self.npz")["images"])
    assert int(np.load(tmp_path / "self.npz")["nfe"]) == 2 * int(np.load(tmp_path / "plain.npz")["nfe"])
    assert exit_status(uncond, tmp_path / "x.npz", *common, "--autoguide", flow_checkpoint) == 2
    assert not (tmp_path / "x.npz").exists()
    state = load_checkpoint(uncond)  # a worse model: the same one with noise in its weights
    torch.manual_seed(0)
    state["ema"] = {k: v + 0.05 * torch.randn_like(v) if v.is_floating_point() else v for k, v in state["ema"].items()}
    worse = save_checkpoint(tmp_path / "worse.pt", state)
    for s in (1, 2):
        assert run_sample(uncond, tmp_path / f"g{s}.npz", *common, "--autoguide", worse, "--guidance", s) == 0
    plain, g1, g2 = (np.load(tmp_path / f"{n}.npz")["images"].astype(int) for n in ("plain", "g1", "g2"))
    assert np.abs(g1 - plain).max() <= 1  # S = 1: the model itself, up to rounding
    assert np.abs(g2 - plain).max() > 10  # S = 2: pushed away from the worse model
    # --autoguide-from F: guided only where t >= F T; above every visited timestep the model itself, from half way
    # up neither the model nor the fully guided samples
    for f in ("0.999", "0.5"):
        assert run_sample(uncond, tmp_path / f"f{f}.npz", *common, "--autoguide", worse, "--guidance", 2,
                          "--autoguide-from", f) == 0  # fmt: skip
    never, half = (np.load(tmp_path / f"f{f}.npz")["images"].astype(int) for f in ("0.999", "0.5"))
    with np.load(tmp_path / "f0.5.npz") as z, np.load(tmp_path / "plain.npz") as p:  # how each was drawn
        assert (float(z["guidance"]), str(z["autoguide"]), float(z["autoguide_from"])) == (2.0, str(worse), 0.5)
        assert not {"guidance", "autoguide", "autoguide_from"} & set(p.files)
    assert np.abs(never - plain).max() <= 1
    assert np.abs(half - plain).max() > 10 and np.abs(half - g2).max() > 10
