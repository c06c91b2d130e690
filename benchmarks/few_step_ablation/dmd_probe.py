"""Probe: does distribution matching lift a trajectory student above the ODE it copies? (issue 24, 4 steps)

Trajectory distillation copies the teacher's probability-flow ODE, which on the unconditional MNIST teacher
scores worse than its default SDE sampler (docs/few_step.md, `ode_ceiling.jsonl`). Distribution matching
distillation (DMD: Yin et al. 2024, "One-step Diffusion with Distribution Matching Distillation"; DMD2, Yin et
al. 2024, for several steps) instead moves the generator's samples along the difference of two scores: the
frozen teacher's ("real") and that of a second network trained on the generator's own samples ("fake"),
grad = x0_fake(x_t, t) - x0_real(x_t, t) at the generator's samples noised to a random t, normalised per
sample by mean |x0 - x0_real| (DMD, Eq. 8). Its target is the teacher's data distribution, not its ODE map.

This fine-tunes a trajectory student for --minutes with that gradient, the fake network (a copy of the
teacher) updated --fake-steps times per generator step on the generator's samples of that step, each at
fresh times and noise (DMD2's two time-scale rule, without DMD2's fresh samples per update), no regression
loss. The generator is trained at every point of its own multistep sampling chain
(DMD2's backward simulation: the chain on the jump grid run without gradients up to a random step, then one
step with gradients), so that 1, 2 and 4 steps all learn. The result is written as a checkpoint of the
student's kind and scored with grid_search.py on the same 1,000 seeds as the other rows:

    taskset -c 0 python benchmarks/few_step_ablation/dmd_probe.py runs/mnist-uncond/checkpoints/last.pt \\
        runs/mnist-uncond-trajectory/checkpoints/last.pt runs/dmd-probe.pt --minutes 8
    taskset -c 0 python benchmarks/few_step_ablation/grid_search.py runs/dmd-probe.pt "[999]" "[999,293]" \\
        "[999,293,131,48]"

The prototype behind `cleardiffusion distill --distill-method dmd` (consistency.DistributionMatchingLoss, the
same algorithm in the training loop): one unconditional teacher, no guidance, no resume.
"""

import argparse
import copy
import json
import time

import torch

from cleardiffusion.checkpoint import load_checkpoint, load_for_sampling, save_checkpoint
from cleardiffusion.consistency import consistency_x0
from cleardiffusion.denoiser import jump_grid
from cleardiffusion.export import network_of
from cleardiffusion.objective import as_eps_model

p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
p.add_argument("teacher")
p.add_argument("student")
p.add_argument("out")
p.add_argument("--minutes", type=float, default=8.0)
p.add_argument("--batch", type=int, default=64)
p.add_argument("--lr", type=float, default=1e-5, help="generator learning rate")
p.add_argument("--fake-lr", type=float, default=1e-4)
p.add_argument("--fake-steps", type=int, default=2, help="fake-score updates per generator update")
p.add_argument("--steps", type=int, default=4, help="the sampling chain the generator is trained along")
p.add_argument("--ema", type=float, default=0.99, help="EMA decay of the generator's weights (0: none)")
p.add_argument("--seed", type=int, default=0)
args = p.parse_args()
torch.set_num_threads(1)
torch.manual_seed(args.seed)

teacher_model, schedule, meta = load_for_sampling(args.teacher)
student_model, _, student_meta = load_for_sampling(args.student)
assert meta["num_classes"] == 0 and student_meta["objective"] == "consistency", "an unconditional pair"
prediction = meta["prediction"]
real = teacher_model.requires_grad_(False)  # eps-model of the frozen teacher
gen_net = network_of(student_model).train().requires_grad_(True)
fake_net = copy.deepcopy(network_of(teacher_model)).train().requires_grad_(True)
gen, fake = as_eps_model(gen_net, schedule, prediction), as_eps_model(fake_net, schedule, prediction)
ema = copy.deepcopy(gen_net).requires_grad_(False)
opt_g = torch.optim.AdamW(gen_net.parameters(), lr=args.lr, weight_decay=0.0)
opt_f = torch.optim.AdamW(fake_net.parameters(), lr=args.fake_lr, weight_decay=0.0)
grid = jump_grid(schedule, args.steps)
shape = (args.batch, *meta["image_shape"])
T = schedule.T


def amp():
    return torch.autocast("cpu", dtype=torch.bfloat16)


def x0_of(eps_model, x_t, t):
    with amp():
        return consistency_x0(eps_model, schedule, x_t, t, None).float()


def generate(k: int) -> torch.Tensor:
    """The generator's x0 at step k of its own chain: steps 0..k-1 without gradients, step k with them."""
    x = torch.randn(shape)
    with torch.no_grad():
        for j in range(k):
            x0 = x0_of(gen, x, torch.full((args.batch,), grid[j]))
            t_next = torch.full((args.batch,), grid[j + 1])
            x = schedule.q_sample(x0, t_next, torch.randn(shape))  # fresh noise: Algorithm 1 of Song et al.
    return x0_of(gen, x, torch.full((args.batch,), grid[k]))


log, start, step = [], time.perf_counter(), 0
while time.perf_counter() - start < 60 * args.minutes:
    # the generator: DMD's gradient at its samples, noised to a random t in [0.02 T, 0.98 T)
    x0 = generate(int(torch.randint(0, args.steps, ())))
    t = torch.randint(int(0.02 * T), int(0.98 * T), (args.batch,))
    x_t = schedule.q_sample(x0.detach(), t, torch.randn(shape))
    with torch.no_grad():
        p_real, p_fake = x0_of(real, x_t, t), x0_of(fake, x_t, t)
        weight = 1.0 / (x0 - p_real).abs().mean(dim=(1, 2, 3), keepdim=True).clamp(min=1e-4)
        grad = (p_fake - p_real) * weight
    loss_g = 0.5 * torch.nn.functional.mse_loss(x0, (x0 - grad).detach())
    opt_g.zero_grad(set_to_none=True)
    loss_g.backward()
    torch.nn.utils.clip_grad_norm_(gen_net.parameters(), 1.0)
    opt_g.step()
    if args.ema:
        with torch.no_grad():
            torch._foreach_lerp_(list(ema.parameters()), list(gen_net.parameters()), 1 - args.ema)
    # the fake score: the denoising loss on the generator's samples (eps-prediction error)
    data = x0.detach()  # the same samples, at fresh times and noise for each update
    for _ in range(args.fake_steps):
        t = torch.randint(0, T, (args.batch,))
        eps = torch.randn(shape)
        with amp():
            loss_f = torch.nn.functional.mse_loss(fake(schedule.q_sample(data, t, eps), t).float(), eps)
        opt_f.zero_grad(set_to_none=True)
        loss_f.backward()
        torch.nn.utils.clip_grad_norm_(fake_net.parameters(), 1.0)
        opt_f.step()
    step += 1
    if step % 25 == 0:
        log.append({"step": step, "seconds": round(time.perf_counter() - start), "loss_g": round(loss_g.item(), 5),
                    "loss_fake": round(loss_f.item(), 4), "grad_norm": round(grad.norm().item(), 3)})  # fmt: skip
        print(json.dumps(log[-1]), flush=True)

state = load_checkpoint(args.student)
final = ema if args.ema else gen_net
state["ema"] = {k: v.detach().clone() for k, v in final.state_dict().items()}
state["model"] = {k: v.detach().clone() for k, v in gen_net.state_dict().items()}
save_checkpoint(args.out, state)
with open(f"{args.out}.json", "w") as f:  # how it was made, beside it
    json.dump({**vars(args), "generator_steps": step, "log": log}, f, indent=1)
print(json.dumps({"wrote": args.out, "generator_steps": step}))
