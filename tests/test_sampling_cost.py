"""`experiment sampling-cost`: the arithmetic on measured steps, the step count of a slow network, the plot.

The measured report itself (results.json against report.md) is checked with the other experiments in
test_experiments.py; here every timing is made up, so nothing depends on this machine's speed.
"""

import math

import pytest
import torch

from cleardiffusion.experiments import sampling_cost as sc


def point(model: str, size: int, median: float, bf16: float | None = None, gflops: float | None = None) -> dict:
    """A measured row as measure_point writes it, with made-up seconds."""
    timing = {"first_call_s": median, "step_s": [median], "median_s": median, "min_s": median, "max_s": median}
    other = None if bf16 is None else {**timing, "median_s": bf16, "min_s": bf16, "max_s": bf16, "step_s": [bf16]}
    return {
        "model": model,
        "image_size": size,
        "pixels": size * size,
        "tokens": None,
        "gflops": gflops,
        "library": timing,
        "bf16": other,
    }


def test_cost_per_image_is_steps_times_the_median_step():
    rows = [point("a", 256, 0.5, bf16=0.3), point("b", 256, 2.0)]
    costs = sc.costs(rows, (100, 1000))
    assert {(c["model"], c["precision"]) for c in costs} == {("a", "library"), ("a", "bf16"), ("b", "library")}
    for c in costs:
        row = next(r for r in rows if r["model"] == c["model"])
        assert c["seconds"] == pytest.approx(c["steps"] * row[c["precision"]]["median_s"])
    assert sc.per_image_seconds(0.25, 1000) == pytest.approx(250.0)


@pytest.mark.parametrize(
    ("seconds", "name"),
    [(0.5, "under a second"), (1.0, "seconds"), (59.9, "seconds"), (60.0, "minutes"), (3599, "minutes"),
     (3600, "hours")],
)  # fmt: skip
def test_regime_names_the_seeds_units(seconds, name):
    assert sc.regime(seconds) == name


def test_verdict_holds_only_when_every_step_count_is_seconds_or_minutes():
    fast = sc.costs([point("jit", 256, 0.5, bf16=1e-4)], (100, 1000))  # 50 s and 500 s; bf16 is not asked
    assert sc.verdict(fast, "jit")["holds"] and sc.verdict(fast, "jit")["regimes"] == {100: "seconds", 1000: "minutes"}
    slow = sc.costs([point("jit", 256, 4.0)], (100, 1000))  # 400 s, then 4,000 s: over an hour
    v = sc.verdict(slow, "jit")
    assert not v["holds"] and v["regimes"][1000] == "hours" and v["text"].startswith("does not hold")
    assert not sc.verdict(fast, "another model")["holds"]  # nothing measured: no verdict in its favour


@pytest.mark.parametrize("power", [1.0, 2.0, 0.5])
def test_loglog_slopes_recover_a_power_law(power):
    rows = [point("m", s, 1e-3 * (s * s) ** power, gflops=0.1 * s * s) for s in (32, 64, 128, 256)]
    slopes = sc.loglog_slopes(rows[::-1])  # any order: sorted by pixels
    assert [(s["from"], s["to"]) for s in slopes] == [(32, 64), (64, 128), (128, 256)]
    assert all(s["slope"] == pytest.approx(power) and s["flop_slope"] == pytest.approx(1.0) for s in slopes)
    assert sc.loglog_slopes([point("m", 32, 1.0), point("m", 64, 2.0)])[0]["flop_slope"] is None  # not counted


def test_a_slow_warm_up_times_fewer_steps_but_never_fewer_than_min_steps(monkeypatch):
    config = sc.Config(32, 1, (), (), (), steps=7, min_steps=3, slow_s=20.0, bf16=False, flops=False)
    model, x = (lambda x, t: x), torch.zeros(1, 1, 4, 4)
    for first, expected in ((25.0, 3), (5.0, 7)):
        clock = iter([first, 1.0, 3.0, 2.0, 9.0, 1.5, 2.5, 4.0])
        monkeypatch.setattr(sc, "clock", lambda device, fn, clock=clock: next(clock))
        timing = sc.time_steps(model, x, "library", config)
        assert len(timing["step_s"]) == expected and timing["first_call_s"] == first
        assert timing["median_s"] == sorted(timing["step_s"])[expected // 2]
        assert (timing["min_s"], timing["max_s"]) == (min(timing["step_s"]), max(timing["step_s"]))


def test_the_plot_joins_one_point_per_resolution_for_each_backbone():
    sizes, models = (32, 64, 128), ("U-Net", "ViT", "scan")
    sweep = [point(m, s, 1e-3 * (i + 1) * s) for i, m in enumerate(models) for s in sizes]
    fig = sc.cost_figure({"results": {"sweep": sweep, "library_precision": "fp32", "threads": 1}})
    lines = {line.get_label(): line for line in fig.axes[0].lines}
    for m in models:
        assert list(lines[m].get_xdata()) == [s * s for s in sizes] and len(lines[m].get_ydata()) == len(sizes)
    for slope in (1, 2):
        (ref,) = [line for label, line in lines.items() if label.startswith(f"slope {slope}")]
        x, y = ref.get_xdata(), ref.get_ydata()
        assert math.log(y[-1] / y[0]) / math.log(x[-1] / x[0]) == pytest.approx(slope)


def test_tokens_grow_with_pixels_at_a_fixed_patch():
    net = sc.Net("vit", "vit", "vit-small", {"hidden": 32, "depth": 3, "heads": 2, "patch_size": 4})
    for size in (16, 32):
        assert sc.tokens(sc.build(net, (3, size, size)), size) == (size // 4) ** 2
    assert sc.tokens(sc.build(sc.SEED_MLP, (3, 16, 16)), 16) is None


@pytest.mark.slow  # FlopCounterMode's first use imports torch._dynamo: a few seconds
def test_flops_of_the_seed_mlp_are_two_per_multiply_add_of_its_linear_layers():
    d, h, e = 16 * 16 * 3, 1024, 128  # data, hidden, time-embedding widths
    model = sc.build(sc.SEED_MLP, (3, 16, 16))
    assert sc.count_flops(model, torch.zeros(1, 3, 16, 16)) == 2 * (e * d + d * h + h * h + h * d)


@pytest.mark.slow  # (torch._dynamo, as above)
def test_flops_count_attention_as_its_two_matmuls_also_where_a_fused_kernel_would_run():
    class Attention(torch.nn.Module):
        def forward(self, x, t):  # x (1, L, D) attends to itself
            return torch.nn.functional.scaled_dot_product_attention(x[:, None], x[:, None], x[:, None])

    L, D = 64, 32
    assert sc.count_flops(Attention(), torch.zeros(1, L, D)) == 2 * (2 * L * L * D)  # q k^T, then (.) v
