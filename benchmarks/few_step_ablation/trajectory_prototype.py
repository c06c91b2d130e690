"""Prototype: trajectory (knowledge) distillation: teacher ODE trajectories -> f(x_tk, tk) = x0_teacher."""

import argparse
import copy
import json
import math
import time

import torch

from cleardiffusion.checkpoint import load_for_sampling
from cleardiffusion.data import from_model_range
from cleardiffusion.evaluation_runner import evaluate_samples
from cleardiffusion.generate import generate_images, sample_generator
from cleardiffusion.recipe import SamplingRecipe
from cleardiffusion.schedule import x0_from_eps

p = argparse.ArgumentParser()
p.add_argument("--teacher", default="runs/mnist/checkpoints/last.pt")
p.add_argument("--minutes", type=float, default=4)
p.add_argument("--gen-frac", type=float, default=0.3)
p.add_argument("--lr", type=float, default=1e-4)
p.add_argument("--tsteps", type=int, default=16)
p.add_argument("--tsolver", default="dpm++2m")
p.add_argument("--dist", default="huber")
p.add_argument("--ema", type=float, default=0.999)
p.add_argument("--tguid", type=float, default=3.0)
p.add_argument("--n", type=int, default=500)
p.add_argument("--dataset", default="mnist")
p.add_argument("--tag", default="x")
a = p.parse_args()
torch.manual_seed(0)
torch.set_num_threads(1)
teacher, sched, meta = load_for_sampling(a.teacher)
null = teacher.null_label
shape = tuple(meta["image_shape"])
T = sched.T
start = time.time()
# phase 1: trajectories
XS, TS, X0, YS = [], [], [], []
recipe = SamplingRecipe(
    sampler=a.tsolver,
    steps=a.tsteps,
    spacing="trailing",
    clip_x0=True,
    guidance=a.tguid,
    solver_type="exact" if a.tsolver.startswith("dpm") else None,
)
seed = 1000
ntraj = 0
while time.time() - start < a.gen_frac * a.minutes * 60:
    B = 128
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 10, (B,), generator=g)
    y = torch.where(torch.rand(B, generator=g) < 0.1, null, y)
    states = []

    def cb(i, t, x_t, x0p, states=states):
        states.append((t, x_t.clone()))

    # guided for labels, unguided for the null label: do the two groups separately
    for mask, w in ((y != null, a.tguid), (y == null, 1.0)):
        w = float(w)
        if mask.sum() == 0:
            continue
        yy = y[mask]
        states.clear()
        labels = None if w == 1.0 and False else yy
        rec = recipe.replace(guidance=w)
        out = torch.cat(
            list(
                generate_images(
                    teacher,
                    sched,
                    n=len(yy),
                    shape=shape,
                    recipe=rec,
                    seed=seed,
                    labels=None if w == 1.0 else yy,
                    batch_size=256,
                    callback=cb,
                )
            )
        )
        for t, x_t in states:
            XS.append(x_t)
            TS.append(torch.full((len(yy),), t))
            X0.append(out)
            YS.append(yy)
    ntraj += B
    seed += 1
XS, TS, X0, YS = torch.cat(XS), torch.cat(TS), torch.cat(X0), torch.cat(YS)
gen_s = time.time() - start
print(f"{a.tag}: {ntraj} trajectories, {len(XS)} pairs in {gen_s:.0f}s", flush=True)

student = copy.deepcopy(teacher).train().requires_grad_(True)
ema = copy.deepcopy(teacher).eval().requires_grad_(False)
opt = torch.optim.AdamW(student.parameters(), lr=a.lr)
g = torch.Generator().manual_seed(0)
c_huber = 0.00054 * math.sqrt(math.prod(shape))


def coef(t):
    ab = sched.alpha_bar[t]
    return ab.sqrt().view(-1, 1, 1, 1), (1 - ab).sqrt().view(-1, 1, 1, 1)


def f(model, x, t, y):
    a_, s_ = coef(t)
    return x0_from_eps(x, model(x, t, y).float(), a_, s_)


step = 0
losses = []
while time.time() - start < a.minutes * 60:
    step += 1
    idx = torch.randint(0, len(XS), (64,), generator=g)
    x_t, t, x0, y = XS[idx], TS[idx], X0[idx], YS[idx]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        pred = f(student, x_t, t, y)
    d = (pred - x0).float().flatten(1)
    loss = ((d.pow(2).sum(1) + c_huber**2).sqrt() - c_huber).mean() if a.dist == "huber" else d.pow(2).mean()
    opt.zero_grad()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(student.parameters(), 1.0)
    opt.step()
    dec = min(a.ema, (1 + step) / (10 + step))
    with torch.no_grad():
        for e_, p_ in zip(ema.parameters(), student.parameters()):
            e_.lerp_(p_, 1 - dec)
    losses.append(loss.item())
print(f"{a.tag}: {step} steps, loss first {sum(losses[:50]) / 50:.4f} last {sum(losses[-50:]) / 50:.4f}", flush=True)


@torch.no_grad()
def sample(model, steps, n, labels=None, w=1.0):
    ts = [T - 1 - round(i * T / steps) for i in range(steps)]
    out = []
    for b in range(0, n, 250):
        gens = [sample_generator(0, i) for i in range(b, min(b + 250, n))]
        x = torch.stack([torch.randn(shape, generator=gg) for gg in gens])
        yy = torch.full((len(x),), null) if labels is None else labels[b : b + 250]
        for j, tt in enumerate(ts):
            x0 = f(model, x, torch.full((len(x),), tt), yy).clamp(-1, 1)
            if j + 1 < len(ts):
                an, sn = coef(torch.full((len(x),), ts[j + 1]))
                z = torch.stack([torch.randn(shape, generator=gg) for gg in gens])
                x = an * x0 + sn * z
            else:
                x = x0
        out.append(x)
    return torch.cat(out)


res = {"tag": a.tag, "steps": step, "pairs": len(XS), "args": vars(a)}
for steps in (1, 2, 4):
    s = sample(ema, steps, a.n)
    r_ = evaluate_samples(from_model_range(s), None, a.dataset, f"../shared/data/{a.dataset}")
    res[f"u{steps}"] = round(r_["fid"], 2)
    lab = torch.arange(a.n) % 10
    s = sample(ema, steps, a.n, lab)
    r_ = evaluate_samples(from_model_range(s), lab, a.dataset, f"../shared/data/{a.dataset}")
    res[f"g{steps}"] = round(r_["fid"], 2)
    if steps == 1:
        from PIL import Image

        arr = from_model_range(s[:100]).numpy()
        Image.fromarray(arr.reshape(10, 10, 28, 28).transpose(0, 2, 1, 3).reshape(280, 280)).save(
            f"benchmarks/results/one_step_cpu/ablation_{a.tag}_g1.png"
        )
        s = sample(ema, 1, 100)
        arr = from_model_range(s[:100]).numpy()
        Image.fromarray(arr.reshape(10, 10, 28, 28).transpose(0, 2, 1, 3).reshape(280, 280)).save(
            f"benchmarks/results/one_step_cpu/ablation_{a.tag}_u1.png"
        )
print(json.dumps(res), flush=True)
with open("benchmarks/results/one_step_cpu/ablation_mnist.jsonl", "a") as fh:
    fh.write(json.dumps(res) + "\n")
