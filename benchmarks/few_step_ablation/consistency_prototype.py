"""Prototype: consistency distillation / tuning from the headline teacher; prints FIDs at 1,2,4 steps."""

import argparse
import copy
import json
import math
import time

import torch

from cleardiffusion.checkpoint import load_for_sampling
from cleardiffusion.data import from_model_range, load_dataset
from cleardiffusion.evaluation_runner import evaluate_samples
from cleardiffusion.generate import sample_generator
from cleardiffusion.schedule import x0_from_eps

p = argparse.ArgumentParser()
p.add_argument("--teacher", default="runs/mnist/checkpoints/last.pt")
p.add_argument("--method", default="cd")  # cd | ect
p.add_argument("--minutes", type=float, default=3)
p.add_argument("--lr", type=float, default=1e-4)
p.add_argument("--delta", default="20")  # fixed k, or "shrink"
p.add_argument("--dist", default="huber")
p.add_argument("--ema", type=float, default=0.999)
p.add_argument("--tguid", type=float, default=1.0)
p.add_argument("--n", type=int, default=500)
p.add_argument("--dataset", default="mnist")
p.add_argument("--tag", default="x")
p.add_argument("--fp32", action="store_true")
a = p.parse_args()
torch.manual_seed(0)
torch.set_num_threads(1)
teacher, sched, meta = load_for_sampling(a.teacher)
teacher.eval().requires_grad_(False)
student = copy.deepcopy(teacher).train().requires_grad_(True)
ema = copy.deepcopy(teacher).eval().requires_grad_(False)
data = load_dataset(a.dataset, f"../shared/data/{a.dataset}", "train")
imgs, labels = data.images, data.labels
T = sched.T
null = teacher.null_label
opt = torch.optim.AdamW(student.parameters(), lr=a.lr)
g = torch.Generator().manual_seed(0)
c_huber = 0.00054 * math.sqrt(imgs[0].numel())


def coef(t):
    ab = torch.where(t >= 0, sched.alpha_bar[t.clamp(min=0)], torch.ones_like(t, dtype=torch.float32))
    return ab.sqrt().view(-1, 1, 1, 1), (1 - ab).sqrt().view(-1, 1, 1, 1)


def f(model, x, t, y):
    a_, s_ = coef(t)
    return x0_from_eps(x, model(x, t, y).float(), a_, s_)


start = time.time()
step = 0
losses = []
while time.time() - start < a.minutes * 60:
    step += 1
    idx = torch.randint(0, len(imgs), (64,), generator=g)
    x0 = imgs[idx].float() / 127.5 - 1
    y = torch.where(torch.rand(64, generator=g) < 0.1, null, labels[idx])
    t = torch.randint(0, T, (64,), generator=g)
    eps = torch.randn(x0.shape, generator=g)
    if a.delta == "shrink":
        frac = (time.time() - start) / (a.minutes * 60)
        k = max(1, int(round(200 * 0.5 ** (frac * 6))))  # 200 -> ~3
    else:
        k = int(a.delta)
    r = (t - k).clamp(min=-1)
    at, st = coef(t)
    ar, sr = coef(r)
    x_t = at * x0 + st * eps
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=not a.fp32):
        with torch.no_grad():
            if a.method == "cd":
                if a.tguid != 1.0:
                    e2 = teacher(
                        torch.cat([x_t, x_t]), torch.cat([t, t]), torch.cat([y, torch.full_like(y, null)])
                    ).float()
                    ec, eu = e2.chunk(2)
                    et = torch.where((y == null).view(-1, 1, 1, 1), eu, eu + a.tguid * (ec - eu))
                else:
                    et = teacher(x_t, t, y).float()
                x0t = x0_from_eps(x_t, et, at, st)
                x_r = ar * x0t + sr * et
            else:
                x_r = ar * x0 + sr * eps
            tgt = torch.where((r >= 0).view(-1, 1, 1, 1), f(student, x_r, r.clamp(min=0), y), x_r)
        pred = f(student, x_t, t, y)
    d = (pred - tgt).float().flatten(1)
    if a.dist == "huber":
        loss = ((d.pow(2).sum(1) + c_huber**2).sqrt() - c_huber).mean()
    else:
        loss = d.pow(2).mean()
    opt.zero_grad()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(student.parameters(), 1.0)
    opt.step()
    dec = min(a.ema, (1 + step) / (10 + step))
    with torch.no_grad():
        for e_, p_ in zip(ema.parameters(), student.parameters()):
            e_.lerp_(p_, 1 - dec)
    losses.append(loss.item())
print(
    f"{a.tag}: {step} steps"
    if not losses
    else f"{a.tag}: {step} steps, loss first {sum(losses[:50]) / 50:.4f} last {sum(losses[-50:]) / 50:.4f}",
    flush=True,
)


@torch.no_grad()
def sample(model, steps, n, labels=None, w=1.0):
    ts = [T - 1 - round(i * T / steps) for i in range(steps)]  # trailing
    out = []
    for b in range(0, n, 250):
        gens = [sample_generator(0, i) for i in range(b, min(b + 250, n))]
        x = torch.stack([torch.randn(imgs.shape[1:], generator=gg) for gg in gens])
        yy = None if labels is None else labels[b : b + 250]
        for j, tt in enumerate(ts):
            tv = torch.full((len(x),), tt)
            if yy is None:
                x0 = f(model, x, tv, None)
            else:
                if w == 1:
                    x0 = f(model, x, tv, yy)
                else:
                    x0c = f(model, x, tv, yy)
                    x0u = f(model, x, tv, torch.full_like(yy, null))
                    x0 = x0u + w * (x0c - x0u)
            x0 = x0.clamp(-1, 1)
            if j + 1 < len(ts):
                an, sn = coef(torch.full((len(x),), ts[j + 1]))
                z = torch.stack([torch.randn(imgs.shape[1:], generator=gg) for gg in gens])
                x = an * x0 + sn * z
            else:
                x = x0
        out.append(x)
    return torch.cat(out)


res = {"tag": a.tag, "steps": step, "args": vars(a)}
for model_name, m in [("ema", ema)]:
    for steps in (1, 2, 4):
        s = sample(m, steps, a.n)
        r_ = evaluate_samples(from_model_range(s), None, a.dataset, f"../shared/data/{a.dataset}")
        res[f"{model_name}_u{steps}"] = round(r_["fid"], 2)
        lab = torch.arange(a.n) % 10
        s = sample(m, steps, a.n, lab, 3.0 if a.tguid == 1 else 1.0)
        r_ = evaluate_samples(from_model_range(s), lab, a.dataset, f"../shared/data/{a.dataset}")
        res[f"{model_name}_g{steps}"] = round(r_["fid"], 2)
        if steps == 1:
            from PIL import Image

            arr = from_model_range(s[:100]).numpy()
            grid = arr.reshape(10, 10, 28, 28).transpose(0, 2, 1, 3).reshape(280, 280)
            Image.fromarray(grid).save(f"benchmarks/results/one_step_cpu/ablation_{a.tag}_g1.png")
print(json.dumps(res), flush=True)
with open("benchmarks/results/one_step_cpu/ablation_mnist.jsonl", "a") as fh:
    fh.write(json.dumps(res) + "\n")
