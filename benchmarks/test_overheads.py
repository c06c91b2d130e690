"""What a test process pays besides its tests, and what AdamW's implementation costs a step (docs/testing.md).

Measures, on this CPU with one thread:

- `import torch` in a fresh interpreter (every pytest-xdist worker and every subprocess a test starts);
- the first `torch.optim.AdamW(...)` of a fresh interpreter, which imports `torch._dynamo` (torch's own lazy
  import behind its optimizers' `_disable_dynamo` decorator);
- one AdamW step with the single-tensor loop (torch's CPU default), `foreach=True` and `fused=True`, for the
  `small` U-Net of the CPU recipe and for the tests' tiny U-Net (`tests/test_train.py`'s `tiny_flags`);
- loading a training checkpoint of each network (weights, EMA, AdamW state, RNG) with `load_checkpoint`, as
  `save_checkpoint` writes it (one buffer per dtype in each entry) and as plain `torch.save` writes the same
  state (one storage per tensor);
- collecting a test file that imports hypothesis, with pytest's default assertion rewriting of the whole
  hypothesis distribution (a plugin's) and with only its plugin module rewritten (`tests/conftest.py` does the
  latter).

    taskset -c 1 python benchmarks/test_overheads.py --out benchmarks/results/test_overheads_cpu.json

Each subprocess number is the median of --repeats fresh interpreters; each step time the median of 5 blocks of
20 steps. Pin it to a core that nothing else uses.
"""

import argparse
import datetime
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from cleardiffusion.experiments.report import cpu_model

ROOT = Path(__file__).resolve().parents[1]
FIRST_OPTIMIZER = (
    "import time, torch; m = torch.nn.Linear(2, 2); s = time.perf_counter(); torch.optim.AdamW(m.parameters()); "
    "print(time.perf_counter() - s)"
)
IMPORT_TORCH = "import time; s = time.perf_counter(); import torch; print(time.perf_counter() - s)"


def in_fresh_interpreter(code: str, repeats: int) -> float:
    env = {"OMP_NUM_THREADS": "1", "PATH": ""}
    runs = [float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                                 check=True).stdout) for _ in range(repeats)]  # fmt: skip
    return statistics.median(runs)


def adam_step_ms(net: torch.nn.Module, mode: str) -> float:
    for p in net.parameters():
        p.grad = torch.randn_like(p)
    kwargs = {"fused": True} if mode == "fused" else {"foreach": mode == "foreach"}
    opt = torch.optim.AdamW(net.parameters(), lr=1e-4, **kwargs)
    for _ in range(3):
        opt.step()
    blocks = []
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(20):
            opt.step()
        blocks.append((time.perf_counter() - start) / 20 * 1000)
    return statistics.median(blocks)


def checkpoint_load_ms(net: torch.nn.Module, folder: Path) -> dict[str, float]:
    """load_checkpoint's time for a checkpoint of `net` as save_checkpoint writes it and as plain torch.save does."""
    import copy

    from cleardiffusion.checkpoint import FORMAT, FORMAT_VERSION, load_checkpoint, save_checkpoint

    opt = torch.optim.AdamW(net.parameters(), lr=1e-4, fused=True)
    for p in net.parameters():
        p.grad = torch.randn_like(p)
    opt.step()
    rng = {"device": "cpu", "generator": torch.get_rng_state(), "torch": torch.get_rng_state()}
    state = {"model": net.state_dict(), "ema": copy.deepcopy(net).state_dict(), "optimizer": opt.state_dict(),
             "rng": rng, "step": 1}  # fmt: skip
    save_checkpoint(folder / "packed.pt", state)
    torch.save({"format": FORMAT, "format_version": FORMAT_VERSION, **state}, folder / "plain.pt")
    times = {}
    for name in ("plain", "packed"):
        load_checkpoint(folder / f"{name}.pt")
        blocks = []
        for _ in range(5):
            start = time.perf_counter()
            for _ in range(10):
                load_checkpoint(folder / f"{name}.pt")
            blocks.append((time.perf_counter() - start) / 10 * 1000)
        times[f"{name}_ms"] = round(statistics.median(blocks), 1)
    return times


def hypothesis_collection_s(folder: Path, repeats: int) -> dict[str, float]:
    """Wall time of `pytest --collect-only` on a file that imports hypothesis: with pytest's default assertion
    rewriting of the whole hypothesis distribution (a plugin's), and with hypothesis' package unmarked as
    tests/conftest.py does (its plugin module stays rewritten)."""
    unmark = (ROOT / "tests" / "conftest.py").read_text()
    unmark = unmark[unmark.index("    marked = getattr(") : unmark.index("    controller = ")]
    sources = {"whole_distribution_rewritten_s": "",
               "plugin_module_rewritten_s": f"import sys\n\n\ndef pytest_configure(config):\n{unmark}"}  # fmt: skip
    times = {}
    for name, conftest in sources.items():
        here = folder / name
        here.mkdir()
        (here / "conftest.py").write_text(conftest)
        (here / "test_h.py").write_text("import hypothesis.strategies\n\n\ndef test_nothing():\n    pass\n")
        command = [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", "test_h.py"]
        env = {"OMP_NUM_THREADS": "1", "PYTHONDONTWRITEBYTECODE": "1", "PATH": ""}
        runs = []
        for _ in range(repeats):
            start = time.perf_counter()
            subprocess.run(command, cwd=here, env=env, capture_output=True, check=True)
            runs.append(time.perf_counter() - start)
        times[name] = round(statistics.median(runs), 2)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/test_overheads_cpu.json")
    args = parser.parse_args()
    torch.set_num_threads(1)
    from cleardiffusion.models.unet import unet_from_preset

    networks = {
        "small U-Net (28x28, 10 classes)": unet_from_preset("small", in_channels=1, image_size=28, num_classes=10),
        "tests' tiny U-Net (8x8, 8 channels)": unet_from_preset(
            "small", in_channels=1, image_size=8, base_channels=8, norm_groups=4
        ),  # fmt: skip
    }
    adam = {}
    for name, net in networks.items():
        steps = {f"{mode}_ms": round(adam_step_ms(net, mode), 3) for mode in ("single", "foreach", "fused")}
        tensors = list(net.parameters())
        adam[name] = {"tensors": len(tensors), "parameters": sum(p.numel() for p in tensors), **steps}
        print(name, adam[name])
    with tempfile.TemporaryDirectory() as folder:
        loads = {name: checkpoint_load_ms(net, Path(folder)) for name, net in networks.items()}
        print("checkpoint load", loads)
        hypothesis = hypothesis_collection_s(Path(folder), args.repeats)
        print("collecting a file that imports hypothesis", hypothesis)
    result = {
        "command": "python benchmarks/test_overheads.py " + " ".join(sys.argv[1:]),
        "machine": f"{cpu_model()}, one thread",
        "torch": torch.__version__,
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "import_torch_s": round(in_fresh_interpreter(IMPORT_TORCH, args.repeats), 3),
        "first_optimizer_s": round(in_fresh_interpreter(FIRST_OPTIMIZER, args.repeats), 3),
        "adamw_step": adam,
        "checkpoint_load": loads,
        "collect_hypothesis_file": hypothesis,
    }
    print(f"import torch {result['import_torch_s']} s, first optimizer {result['first_optimizer_s']} s")
    args.out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
