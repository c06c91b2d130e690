"""The GPU throughput benchmark has never run on a GPU here; its CPU smoke mode keeps it from rotting. cpu_quality's
command lines and refusals, checked without its peer environment."""

import argparse
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


def load_script(path: Path):
    """A benchmark script as a module, so its main() runs in this process (no second torch start-up)."""
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.usefixtures("one_thread")  # the script sets one thread in --quick mode; the fixture restores it
def test_gpu_throughput_quick_runs_on_the_cpu(tmp_path):
    out = tmp_path / "throughput.md"
    benchmark = load_script(ROOT / "benchmarks" / "gpu_throughput.py")
    with torch.random.fork_rng():  # it seeds the global generator; later tests keep theirs
        assert benchmark.main(["--quick", "--device", "cpu", "--skip-peers", "--out", str(out)]) == 0
    text = out.read_text()
    # the measured values come from the JSON the script writes beside its table: the table's numbers are
    # formatted for people ("1,153"), so parsing them would make this test depend on the machine's speed
    jobs = json.loads(out.with_suffix(".json").read_text())
    measured = {(j["network"], j["case"]) for j in jobs}
    for network in ("ddpm-cifar10", "seed-minimal"):
        for case in ("train-128", "train-512", "forward-1024"):
            assert (network, case) in measured, (network, case)
    for j in jobs:
        assert j["status"] == "ok" and j["images_per_sec"] > 0, j
    assert "bf16 matmul peak (measured)" in text


# ------------------------------------------------------------------ cpu_quality: the diffusers-recipe system
def cpu_quality_args(our_flags: str = "") -> argparse.Namespace:
    return argparse.Namespace(data_dir="data", budget=15.0, n=2000, our_flags=our_flags, our_sampler="ddim")


def test_diffusers_recipe_runs_the_peer_with_our_recipe_and_our_carried_flags():
    cpu_quality = load_script(ROOT / "benchmarks" / "cpu_quality.py")
    args = cpu_quality_args("--precision fp32 --conditional --label-dropout 0.2")
    [cmd] = cpu_quality.system_commands("diffusers-recipe", args, Path("w"), "peer-python")
    assert cmd[:2] == ["peer-python", str(ROOT / "benchmarks" / "peers" / "diffusers_train.py")]
    flags = " ".join(cmd[2:])
    assert "--recipe ours" in flags and "--steps 50" in flags and "--budget 15.0" in flags
    assert "--precision fp32 --conditional --label-dropout 0.2" in flags
    assert cmd[-2:] == ["--out", str(Path("w") / "diffusers-recipe.npz")]
    # diffusers' own recipe ignores ours' flags: it is the recipe as diffusers ships it
    [plain] = cpu_quality.system_commands("diffusers", args, Path("w"), "peer-python")
    assert "--recipe diffusers" in " ".join(plain) and "--precision" not in plain and "--conditional" not in plain


def test_recipe_flags_take_only_what_the_peer_can_follow():
    cpu_quality = load_script(ROOT / "benchmarks" / "cpu_quality.py")
    assert cpu_quality.recipe_flags("") == []
    assert cpu_quality.recipe_flags("--precision=bf16") == ["--precision", "bf16"]
    for bad, named in (("--lr 2e-3", "--lr"), ("--precision fp16", "--precision"), ("--precision", "--precision")):
        with pytest.raises(ValueError, match=named):
            cpu_quality.recipe_flags(bad)


def test_a_recipe_run_has_its_own_results_file():
    cpu_quality = load_script(ROOT / "benchmarks" / "cpu_quality.py")
    assert cpu_quality.results_name("mnist", ["ours", "diffusers"]) == "cpu_quality_mnist"
    assert cpu_quality.results_name("mnist", ["ours", "diffusers-recipe"]) == "cpu_quality_mnist_recipe"


@pytest.mark.parametrize(
    "extra,message",
    [(["--our-sampler", "dpm++2m"], "--our-sampler dpm++2m"), (["--our-flags=--lr 2e-3"], "--our-flags --lr")],
)
def test_cpu_quality_refuses_what_diffusers_recipe_cannot_copy_before_any_work(tmp_path, capsys, extra, message):
    cpu_quality = load_script(ROOT / "benchmarks" / "cpu_quality.py")
    work = tmp_path / "work"
    argv = ["--systems", "ours,diffusers-recipe", "--sequential", "--work", str(work), *extra]
    with pytest.raises(SystemExit) as e:
        cpu_quality.main(argv)
    assert e.value.code == 2 and message in capsys.readouterr().err
    assert not work.exists()


def test_every_known_bug_names_one_line_of_the_code_and_an_existing_test(monkeypatch):
    """tools/known_bugs.py puts issue 28's bugs back by their text: a line renamed since would drop its bug
    from the check (reported only when the tool runs), and a renamed test would leave nothing to fail."""
    monkeypatch.syspath_prepend(str(ROOT / "tools"))  # known_bugs imports its paths from mutation.py
    known = load_script(ROOT / "tools" / "known_bugs.py")
    assert len(known.KNOWN_BUGS) >= 21
    for name, file, line, bug, tests in known.KNOWN_BUGS:
        assert (ROOT / known.PACKAGE / file).read_text().count(line) == 1, f"{name}: {line!r} not once in {file}"
        assert bug != line
        for test in tests.split():
            module, function = test.split("::")
            assert f"def {function}(" in (ROOT / "tests" / module).read_text(), f"{name}: no test {test}"


def test_sampler_speed_divides_by_the_in_process_today_row_of_the_same_guidance():
    """`today (own process)` and `today (freed memory kept)` come after `today` and must not replace it."""
    speed = load_script(ROOT / "benchmarks" / "sampler_speed.py")
    rows = [{"name": name, "guidance": g, "images_per_s": v} for name, g, v in [
        ("today", 1.0, 10.0), ("today guided s=3", 3.0, 4.0), ("default", 1.0, 17.0),
        ("today (own process)", 1.0, 6.0), ("today (freed memory kept)", 1.0, 11.0)]]  # fmt: skip
    rows.append({"name": "today guided s=3", "guidance": 3.0, "skipped": "not measured"})
    assert speed.baselines(rows) == {1.0: rows[0], 3.0: rows[1]}
    assert [v.name for v in speed.VARIANTS if v.name in speed.TODAY] == list(speed.TODAY)


def test_ema_rules_rebuilds_the_loops_ema_from_every_step():
    """few_step_ablation/ema_rules.py: with a point kept at every step, its weights are the EMA recurrence's own
    (ema_s = d_s ema_{s-1} + (1 - d_s) theta_s, train.ema_decay's d_s), they sum to 1, and a point standing for
    several steps carries their weights together."""
    from cleardiffusion.train import ema_decay

    rules = load_script(ROOT / "benchmarks" / "few_step_ablation" / "ema_rules.py")
    for decay, warmup in ((0.9, 10), (0.8, 0)):
        theta = torch.randn(8, dtype=torch.float64)  # theta[0]: the starting weights, theta[s]: after step s
        ema = theta[0].clone()
        for s in range(1, 8):
            d = ema_decay(s, decay, warmup)
            ema = d * ema + (1 - d) * theta[s]
        c = rules.coefficients(list(range(8)), decay, warmup)
        assert sum(c) == pytest.approx(1.0, abs=1e-12)
        assert float(sum(ci * t for ci, t in zip(c, theta))) == pytest.approx(float(ema), abs=1e-12)
        coarse = rules.coefficients([0, 3, 7], decay, warmup)
        assert coarse == pytest.approx([c[0], sum(c[1:4]), sum(c[4:8])], abs=1e-12)


def test_blind_count_gives_each_source_back_its_own_marks(tmp_path):
    """benchmarks/blind_count.py: cells dealt into shuffled sheets come back to their source and index. Each
    synthetic sample's pixels name it (source, index); marking, on the sheets as read back from their PNGs, the
    cells that show source 'b' samples 0-6 must count 'b' 93 and every other source 100."""
    from PIL import Image

    blind = load_script(ROOT / "benchmarks" / "blind_count.py")
    pngs = {}
    for s, name in enumerate("abc"):
        cells = np.zeros((100, 28, 28), np.uint8)
        cells[:, :14] = np.arange(100, dtype=np.uint8)[:, None, None]  # top half: the index
        cells[:, 14:] = 100 + 50 * s  # bottom half: the source
        grid = np.zeros((302, 302), np.uint8)
        for i, cell in enumerate(cells):
            r, c = divmod(i, 10)
            grid[2 + 30 * r : 30 + 30 * r, 2 + 30 * c : 30 + 30 * c] = cell
        pngs[name] = tmp_path / f"{name}.png"
        Image.fromarray(grid).save(pngs[name])
    out = tmp_path / "deal"
    argv = ["deal", "--out", str(out), "--seed", "3"] + [f"--source={n}={p}" for n, p in pngs.items()]
    assert blind.main(argv) == 0
    marks = {}
    for k in (1, 2, 3):
        sheet = np.asarray(Image.open(out / f"sheet_{k}.png"))
        marks[f"sheet_{k}"] = []
        for i in range(100):
            r, c = divmod(i, 10)
            y, x = 24 + r * (84 + 6), 24 + c * (84 + 6)  # the sheet's layout: 3x cells, 6-pixel gaps, 24 margin
            index, source = sheet[y + 10, x + 10], sheet[y + 70, x + 10]
            if source == 150 and index < 7:
                marks[f"sheet_{k}"].append(f"{'ABCDEFGHIJ'[r]}{c}")
    assert sum(map(len, marks.values())) == 7
    first = (out / "sheet_1.png").read_bytes()
    (out / "sheet_1.png").unlink()
    assert blind.main(["sheets", str(out)]) == 0  # the key alone writes the same sheets again
    assert (out / "sheet_1.png").read_bytes() == first
    (out / "marks.json").write_text(json.dumps(marks))
    assert blind.main(["reveal", str(out)]) == 0
    counts = json.loads((out / "counts.json").read_text())
    assert counts == {"a": {"readable": 100, "unreadable": []}, "b": {"readable": 93, "unreadable": list(range(7))},
                      "c": {"readable": 100, "unreadable": []}}  # fmt: skip
    with pytest.raises(SystemExit) as refused:  # a deal is never overwritten
        blind.main(argv)
    assert refused.value.code == 2
    (out / "marks.json").write_text(json.dumps({"sheet_1": ["K1"], "sheet_2": [], "sheet_3": []}))
    with pytest.raises(SystemExit) as refused:  # not a cell
        blind.main(["reveal", str(out)])
    assert refused.value.code == 2


def test_guidance_interval_guides_inside_the_band_only_and_is_autoguidance_on_every_level():
    """few_step_ablation/guidance_interval.py: per sample, eps_bad + w (eps - eps_bad) where LO <= t / T < HI and
    the good model's eps elsewhere; the band [0, 1) is guidance.AutoGuidance itself."""
    from cleardiffusion.guidance import AutoGuidance

    band = load_script(ROOT / "benchmarks" / "few_step_ablation" / "guidance_interval.py")
    good, bad = (lambda x, t: x * (1 + t[:, None] / 1000)), (lambda x, t: -x)  # noqa: E731
    guided = AutoGuidance(good, bad, 3.0)
    x, t = torch.randn(4, 5, dtype=torch.float64), torch.tensor([0, 149, 150, 999])
    band.LO, band.HI = 0.0, 1.0
    torch.testing.assert_close(band.banded(guided, x, t), guided(x, t), rtol=0, atol=1e-12)
    band.LO, band.HI = 0.15, 1.0
    out, everywhere, plain = band.banded(guided, x, t), guided(x, t), good(x, t)
    torch.testing.assert_close(out[:2], plain[:2], rtol=0, atol=1e-12)  # t = 0 and 149: below 0.15 T
    torch.testing.assert_close(out[2:], everywhere[2:], rtol=0, atol=1e-12)
    assert not torch.allclose(out[:2], everywhere[:2])  # the weight matters where it is dropped
    # distill --autoguide-from 0.15 (guidance.AutoGuidance's from_t) is this band
    torch.testing.assert_close(AutoGuidance(good, bad, 3.0, from_t=150)(x, t), out, rtol=0, atol=1e-12)


def test_grow_level_moves_the_grown_blocks_to_the_decoder_and_keeps_the_function():
    """few_step_ablation/grow_level.py 14: the `extra_middle_blocks` of a grown U-Net sit after the decoder's last
    residual block at 14x14, at that level's width, each the identity at the start, so the grown network computes
    the trained one's function; the middle keeps its own blocks and only the new ones are returned."""
    import dataclasses

    import cleardiffusion.models.unet as unet

    grow = load_script(ROOT / "benchmarks" / "few_step_ablation" / "grow_level.py")
    build = unet.UNet._build_resnet
    cfg = unet.PRESETS["small"]
    try:
        unet.UNet._build_resnet = grow.build_at_level(14)
        torch.manual_seed(0)
        small, grown = unet.UNet(cfg), unet.UNet(dataclasses.replace(cfg, extra_middle_blocks=2))
    finally:
        unet.UNet._build_resnet = build
    assert len(grown.middle) == len(small.middle)
    assert [name for name, _ in grown.grown_at_level] == ["decoder.4.1.", "decoder.4.2."]
    assert all(block.conv1.in_channels == 32 for _, block in grown.grown_at_level)  # the 14x14 level's width
    with torch.no_grad():  # a trained network: no zero convolutions left
        for p in small.parameters():
            p.normal_(0, 0.05)
    new = grow.grow_into(grown, small.state_dict(), 2)
    assert {id(p) for p in new} == {id(p) for _, b in grown.grown_at_level for p in b.parameters()}
    x, t = torch.randn(2, 1, 28, 28), torch.tensor([10, 900])
    torch.testing.assert_close(grown(x, t), small(x, t), rtol=0, atol=1e-6)
    with torch.no_grad():
        grown.grown_at_level[0][1].conv2.weight.normal_(0, 0.05)
    assert not torch.allclose(grown(x, t), small(x, t), atol=1e-4)
    with pytest.raises(ValueError, match="not those of this U-Net"):
        grow.grow_into(grown, {k: v for k, v in small.state_dict().items() if not k.startswith("head")}, 2)


def test_grown_fast_in_dmd_hands_a_grown_students_extra_blocks_to_the_fast_group():
    """few_step_ablation/grown_fast_in_dmd.py: dmd from a grown --student (no blocks grown in this run) gets the
    student's extra middle blocks back as the optimizer's fast parameters; a run that grows its own, or starts from
    the teacher's network, keeps what start_from_teacher returned."""
    import dataclasses
    from types import SimpleNamespace

    import cleardiffusion.models.unet as unet

    fast = load_script(ROOT / "benchmarks" / "few_step_ablation" / "grown_fast_in_dmd.py")
    grown = unet.UNet(dataclasses.replace(unet.PRESETS["small"], extra_middle_blocks=2))
    plain = unet.UNet(unet.PRESETS["small"])
    own = [torch.nn.Parameter(torch.zeros(1))]
    extra = {id(p) for block in list(grown.middle)[-2:] for p in block.parameters()}
    for config, model, returned, expected in (
        (SimpleNamespace(student="s.pt"), grown, [], extra),  # dmd from a grown student
        (SimpleNamespace(student="s.pt"), grown, own, {id(own[0])}),  # blocks grown in this run: as they are
        (SimpleNamespace(student=None), grown, [], set()),  # from the teacher: nothing fast
        (SimpleNamespace(student="s.pt"), plain, [], set()),  # an ungrown student: nothing fast
    ):
        fast.start_from_teacher = lambda *args, returned=returned: ("teacher", returned)
        teacher, params = fast.start_with_fast_blocks(config, model, None, "cpu")
        assert teacher == "teacher" and {id(p) for p in params} == expected


def test_start_share_draws_the_trajectories_starting_points_at_its_share():
    """few_step_ablation/start_share.py P: each index is one of the bank's starting points (its largest t, pure
    noise) with probability P and a uniform bank entry otherwise; P = 1 trains only the one-step map, and the draw
    follows the loop's generator, so a run is reproducible."""
    from cleardiffusion.consistency import TrajectoryBank

    share = load_script(ROOT / "benchmarks" / "few_step_ablation" / "start_share.py")
    t = torch.tensor([999, 500, 10] * 40)  # 40 trajectories of 3 points each
    bank = TrajectoryBank(torch.zeros(120, 1), t, torch.zeros(120, 1), torch.zeros(120, dtype=torch.long), False)
    n = 20_000
    for p, expected in ((0.5, 0.5 + 0.5 / 3), (1.0, 1.0), (0.0, 1 / 3)):
        idx = share.draw_with_start_share(p)(bank, n, torch.Generator().manual_seed(0))
        assert idx.shape == (n,) and idx.min() >= 0 and idx.max() < len(bank)
        assert abs((t[idx] == 999).float().mean().item() - expected) < 0.02
    draw = share.draw_with_start_share(0.5)
    a, b = (draw(bank, 50, torch.Generator().manual_seed(3)) for _ in range(2))
    assert torch.equal(a, b)


def test_mixture_prior_starts_each_sample_at_one_of_k_fixed_patterns():
    """few_step_ablation/mixture_prior.py K A: the K patterns have norm A and are the same in every process; the
    consistency sampler starts from x_T + m_c with c from each sample's generator (reproducible, and at A = 0 the
    library's sampler itself); dmd's student samples start from eps + m_c, only at the chain's start."""
    from types import SimpleNamespace

    from cleardiffusion.denoiser import jump_grid
    from cleardiffusion.schedule import NoiseSchedule

    mix = load_script(ROOT / "benchmarks" / "few_step_ablation" / "mixture_prior.py")
    shape = (1, 8, 8)
    m = mix.patterns(5, shape, 3.0)
    assert m.shape == (5, *shape) and torch.allclose(m.flatten(1).norm(dim=1), torch.full((5,), 3.0))
    assert torch.equal(m, mix.patterns.__wrapped__(5, shape, 3.0))  # drawn again, uncached: the same
    seen = []
    sampler = mix.mixture_sampler(lambda model, path, x_T, timesteps=None, **kw: seen.append(x_T) or x_T, 5, 3.0)
    x_T = torch.randn(6, *shape)
    for _ in range(2):
        sampler(None, None, x_T, generator=[torch.Generator().manual_seed(i) for i in range(6)])
    assert torch.equal(seen[0], seen[1])
    shift = (seen[0] - x_T).flatten(1)
    assert all(any(torch.allclose(row, p, atol=1e-6) for p in m.flatten(1)) for row in shift)
    zero = mix.mixture_sampler(lambda model, path, x_T, timesteps=None, **kw: x_T, 5, 0.0)
    assert torch.equal(zero(None, None, x_T, generator=[torch.Generator() for _ in range(6)]), x_T)

    schedule = NoiseSchedule.from_name("linear", 100)
    starts = []

    def student(x, t):  # eps = 0: f(x_t, t) = x_t / alpha_t; records where each evaluation starts
        starts.append((x.clone(), t.clone()))
        return torch.zeros_like(x)

    fake_self = SimpleNamespace(grid=jump_grid(schedule, 1), schedule=schedule)
    torch.manual_seed(0)
    mix.mixture_sample(5, 6.0)(fake_self, student, torch.zeros(400, *shape), None)
    ((x, t),) = starts
    assert (t == schedule.T - 1).all()
    mean_pattern = (x - 2 * m.mean(0)).mean(0)  # even draws of the patterns at norm 6 (2 m), noise of mean 0
    assert mean_pattern.abs().max() < 0.3
    assert (x.flatten(1).norm(dim=1).mean() - (64 + 36) ** 0.5).abs() < 0.5  # plain noise: 8


def test_dmd_full_forward_reads_the_same_features_as_the_library():
    """few_step_ablation/dmd_full_forward.py: the middle block's output through the whole network (the library before
    session 25) is the library's encoder-and-middle features to the bit, so dmd_encode_speed.py compares only cost;
    a backbone without a middle block is refused as by the library."""
    import cleardiffusion.models.unet as unet
    from cleardiffusion.consistency import gan_features
    from cleardiffusion.errors import UsageError

    full = load_script(ROOT / "benchmarks" / "few_step_ablation" / "dmd_full_forward.py")
    torch.manual_seed(0)
    net = unet.UNet(unet.PRESETS["small"]).eval()
    with torch.no_grad():
        for p in net.parameters():
            p.normal_(0, 0.05)
        x, t = torch.randn(3, 1, 28, 28), torch.tensor([0, 400, 999])
        assert torch.equal(full.through_the_whole_network(net)(x, t), gan_features(net)(x, t))
    with pytest.raises(UsageError, match="middle block"):
        full.through_the_whole_network(torch.nn.Linear(2, 2))


def test_dmd_steps_the_student_alike_through_the_encoder_and_through_the_whole_network():
    """Three dmd steps with the GAN term, the same seeds, the discriminator's input through UNet.encode (the
    library) or through the whole forward (dmd_full_forward.py): the same student weights to the bit."""
    import copy

    from cleardiffusion.consistency import DistributionMatchingLoss
    from cleardiffusion.denoiser import jump_grid
    from cleardiffusion.schedule import NoiseSchedule
    from test_fastpath import tiny_unet

    full = load_script(ROOT / "benchmarks" / "few_step_ablation" / "dmd_full_forward.py")
    schedule, teacher = NoiseSchedule.from_name("linear", 100), tiny_unet().eval()
    students = []
    for whole in (False, True):
        torch.manual_seed(0)
        dmd = DistributionMatchingLoss(schedule, "eps", teacher, grid=jump_grid(schedule, 1), lr=1e-3, gan_weight=0.3)
        if whole:
            dmd.features = full.through_the_whole_network(dmd.fake_net)
        student = copy.deepcopy(teacher).train()
        optimizer = torch.optim.AdamW(student.parameters(), lr=1e-3)
        for _ in range(3):
            x0, t, eps = torch.rand(4, 3, 8, 8) * 2 - 1, torch.randint(0, 100, (4,)), torch.randn(4, 3, 8, 8)
            optimizer.zero_grad(set_to_none=True)
            dmd(student, x0, t, eps).backward()
            optimizer.step()
        students.append(student.state_dict())
    assert any(not torch.equal(v, teacher.state_dict()[k]) for k, v in students[0].items())  # it learned
    assert all(torch.equal(v, students[1][k]) for k, v in students[0].items())


def test_mixture_info_adds_q_cross_entropy_to_dmd_and_trains_q(monkeypatch):
    """few_step_ablation/mixture_info.py K A LAMBDA: dmd's loss from the mixture plus LAMBDA x Q's cross-entropy of
    the sample's component; at LAMBDA = 0 the student's gradient is mixture_prior.py's alone, at 1 it is not; Q
    learns to tell the components apart (its cross-entropy on the same samples falls)."""
    import copy

    import cleardiffusion.consistency as consistency
    import cleardiffusion.generate as generate
    from cleardiffusion.denoiser import jump_grid
    from cleardiffusion.schedule import NoiseSchedule
    from test_fastpath import tiny_unet

    loss_class = consistency.DistributionMatchingLoss
    library = {name: getattr(loss_class, name) for name in ("sample", "__call__")}
    library_sampler = generate.SAMPLERS["consistency"]
    info = load_script(ROOT / "benchmarks" / "few_step_ablation" / "mixture_info.py")
    schedule, teacher = NoiseSchedule.from_name("linear", 100), tiny_unet().eval()
    x0, t, eps = torch.rand(8, 3, 8, 8) * 2 - 1, torch.randint(0, 100, (8,)), torch.randn(8, 3, 8, 8)

    def student_grad(weight: float) -> tuple[torch.Tensor, consistency.DistributionMatchingLoss]:
        for name, method in library.items():  # install() patches the class: from the library's each time, and
            monkeypatch.setattr(loss_class, name, method)  # the library's again after the test
        monkeypatch.setitem(generate.SAMPLERS, "consistency", library_sampler)
        info.install(4, 3.0, weight)
        torch.manual_seed(0)
        dmd = consistency.DistributionMatchingLoss(schedule, "eps", teacher, grid=jump_grid(schedule, 1), lr=1e-3,
                                                   gan_weight=0.3)  # fmt: skip
        student = copy.deepcopy(teacher).train()
        dmd(student, x0, t, eps).backward()
        return torch.cat([p.grad.flatten() for p in student.parameters()]), dmd

    base, _ = student_grad(0.0)
    torch.testing.assert_close(student_grad(0.0)[0], base, rtol=0, atol=0)  # reproducible
    weighted, dmd = student_grad(1.0)
    assert not torch.allclose(weighted, base)
    samples, codes, clean = dmd.last_sample.detach(), dmd.codes, torch.zeros(8, dtype=torch.long)

    def q_loss() -> torch.Tensor:  # Q's cross-entropy of the step's samples' components
        return torch.nn.functional.cross_entropy(dmd.q(dmd.features(samples, clean)), codes)

    with torch.no_grad():
        before = q_loss().item()
    for _ in range(30):
        dmd.q_optimizer.zero_grad(set_to_none=True)
        loss = q_loss()
        loss.backward()
        dmd.q_optimizer.step()
    assert loss.item() < before


def test_code_purity_counts_the_items_in_their_codes_most_frequent_label():
    """few_step_ablation/code_purity.py's purity: 1 when each code holds one label (whatever the codes' numbering),
    the majority's share when a code mixes labels; items only, not codes, weigh."""
    import numpy as np

    purity = load_script(ROOT / "benchmarks" / "few_step_ablation" / "code_purity.py").purity
    labels = np.array([3, 3, 7, 7, 1, 1])
    assert purity(np.array([5, 5, 0, 0, 2, 2]), labels, 6) == 1.0
    assert purity(np.array([0, 0, 0, 0, 1, 1]), labels, 2) == 4 / 6  # code 0: two 3s and two 7s
    assert purity(np.zeros(6, dtype=int), labels, 1) == 2 / 6
