"""Probe: does DMD's regression term help `distill --distill-method dmd` within the same 5 minutes? (issue 24)

DMD (Yin et al. 2024, Eq. 9) adds to the distribution-matching loss a regression of the generator's output onto
the teacher's ODE output from the same noise, weighted by lambda, against mode collapse. Here that term is
trajectory distillation's own loss (`consistency.TrajectoryLoss`: every point of the teacher's DPM-Solver++(2M)
trajectories regressed onto their ends, pseudo-Huber) over a fresh bank of --trajectories trajectories, drawn
with the global generator and added to `DistributionMatchingLoss` at weight --lam. The bank's minutes are taken
out of the 5-minute budget, so the run is compared at equal wall clock with plain dmd (`dmd_chain_mnist_uncond`):

    taskset -c 0 python benchmarks/few_step_ablation/dmd_regression.py 0.01 500 -- \\
        --teacher runs/mnist-uncond/checkpoints/last.pt --data-dir ../shared/data/mnist --distill-method dmd \\
        --student runs/mnist-uncond-traj10/checkpoints/last.pt --eval-every 100 --dmd-chain 4 --dmd-fake-steps 2 \\
        --dmd-gan 0 --lr 1e-5 --ema-decay 0.99 --ema-warmup 10 --batch-size 64 --out runs/dmd-reg-0.01
    taskset -c 0 python benchmarks/few_step_ablation/grid_search.py runs/dmd-reg-0.01/checkpoints/last.pt \\
        "[999]" "[999,293]" "[999,293,131,48]"

The weights: pseudo-Huber's gradient per sample is about a unit vector over the batch, dmd's about
1 / sqrt(pixels) of that (its per-pixel gradient is normalised to about 1), so lambda near 1/28 on 28x28 makes
the two comparable; 0.01 and 0.05 were run. Unconditional teachers only.
"""

import sys
import time

import torch

import cleardiffusion.consistency as consistency
from cleardiffusion.checkpoint import load_for_sampling
from cleardiffusion.cli import main
from cleardiffusion.generate import teacher_trajectories

BUDGET_MINUTES = 5.0


def run(lam: float, trajectories: int, distill_args: list[str]) -> int:
    torch.set_num_threads(1)
    start = time.perf_counter()
    teacher, schedule, meta = load_for_sampling(distill_args[distill_args.index("--teacher") + 1])
    assert meta["num_classes"] == 0, "an unconditional teacher"
    bank = teacher_trajectories(teacher, schedule, n=trajectories, steps=16, guidance=1.0,
                                shape=tuple(meta["image_shape"]), num_classes=0, null_label=None, label_dropout=0.0,
                                seed=0)  # fmt: skip
    bank_minutes = (time.perf_counter() - start) / 60
    print(f"bank of {len(bank)} points in {bank_minutes:.2f} min", flush=True)
    dmd_loss = consistency.DistributionMatchingLoss.__call__

    def with_regression(self, net, x0, t, eps, y=None):
        picks = torch.randint(0, len(bank), (x0.shape[0],))
        regression = consistency.TrajectoryLoss(self.schedule, self.prediction, bank)(net, x0, picks, eps, None)
        return dmd_loss(self, net, x0, t, eps, y) + lam * regression

    consistency.DistributionMatchingLoss.__call__ = with_regression
    return main(["distill", *distill_args, "--time-budget", f"{BUDGET_MINUTES - bank_minutes:.3f}"])


if __name__ == "__main__":
    sys.exit(run(float(sys.argv[1]), int(sys.argv[2]), sys.argv[sys.argv.index("--") + 1 :]))
