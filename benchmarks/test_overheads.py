"""What a test process pays besides its tests, and what AdamW's implementation costs a step (docs/testing.md).

Measures, on this CPU with one thread:

- `import torch` in a fresh interpreter (every pytest-xdist worker and every subprocess a test starts);
- the first `torch.optim.AdamW(...)` of a fresh interpreter, which imports `torch._dynamo` (torch's own lazy
  import behind its optimizers' `_disable_dynamo` decorator);
- one AdamW step with the single-tensor loop (torch's CPU default), `foreach=True` and `fused=True`, for the
  `small` U-Net of the CPU recipe and for the tests' tiny U-Net (`tests/test_train.py`'s `tiny_flags`).

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
    result = {
        "command": "python benchmarks/test_overheads.py " + " ".join(sys.argv[1:]),
        "machine": f"{cpu_model()}, one thread",
        "torch": torch.__version__,
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "import_torch_s": round(in_fresh_interpreter(IMPORT_TORCH, args.repeats), 3),
        "first_optimizer_s": round(in_fresh_interpreter(FIRST_OPTIMIZER, args.repeats), 3),
        "adamw_step": adam,
    }
    print(f"import torch {result['import_torch_s']} s, first optimizer {result['first_optimizer_s']} s")
    args.out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
