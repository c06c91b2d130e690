"""What a coded student's codes carry (`distill --student-codes K`): the teacher's trajectories, as the trajectory
stage makes them (autoguided, the same solver; --seed picks the starts), their ends' codes (consistency.end_codes),
and the project's MNIST reference classifier's digit for each end. Prints one JSON line: how pure the clusters are
in digits (over the ends the classifier reads at --threshold, readability_proxy.py's: the share in each cluster's
most frequent digit, summed), the same for K random codes (the floor), and, for each --student, what its head's
code at each trajectory's start carries (its own clusters, numbered as its training run's k-means numbered them,
not as this one's): the share of the starts in their head code's most frequent end cluster (a head that read the
end's cluster from the start would score 1), of the read ends in their head code's most frequent end digit, and of
its read one-step samples in their head code's most frequent digit of its own; and how often its one-step digit
from a start is the teacher's end's digit (both read).

    python benchmarks/few_step_ablation/code_purity.py --teacher runs/s17-uncond-s1/checkpoints/last.pt \
        --autoguide runs/s17-bad2/checkpoints/last.pt --guidance 1.5 --k 20 --n 2000 --seed 7 --threshold 0.771 \
        --student runs/s26-s1-coded20-dmd/checkpoints/last.pt
"""

import argparse
import json

import numpy as np
import torch

from cleardiffusion import evaluate as M
from cleardiffusion.checkpoint import load_for_sampling
from cleardiffusion.data import from_model_range
from cleardiffusion.evaluation_runner import classifier_or_help
from cleardiffusion.generate import teacher_trajectories
from cleardiffusion.recipe import SamplingRecipe
from cleardiffusion.samplers import SAMPLERS, make_timesteps


def purity(codes: np.ndarray, labels: np.ndarray, k: int) -> float:
    """The share of the items whose label (a digit, or another clustering's code) is their code's most frequent."""
    return sum(np.bincount(labels[codes == c]).max() for c in range(k) if (codes == c).any()) / len(codes)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--teacher", required=True)
    p.add_argument("--autoguide", required=True)
    p.add_argument("--guidance", type=float, default=1.5)
    p.add_argument("--k", type=int, default=20)
    p.add_argument("--n", type=int, default=2000, help="trajectories")
    p.add_argument("--steps", type=int, default=16, help="the teacher's solver steps (distill --teacher-steps)")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--threshold", type=float, required=True, help="readability_proxy.py's threshold")
    p.add_argument("--student", action="append", default=[], help="a coded student's checkpoint (repeatable)")
    args = p.parse_args()
    torch.set_num_threads(1)
    teacher, schedule, meta = load_for_sampling(args.teacher)
    bad, _, _ = load_for_sampling(args.autoguide)
    shape = tuple(meta["image_shape"])
    bank = teacher_trajectories(teacher.eval(), schedule, n=args.n, steps=args.steps, guidance=args.guidance,
                                shape=shape, num_classes=0, null_label=None, label_dropout=0.0, seed=args.seed,
                                autoguide=bad.eval(), codes=args.k)  # fmt: skip
    start = bank.t == bank.t.max()  # one point per trajectory: its start x_T
    x_T, ends, codes = bank.x[start], bank.x0[start], bank.code[start].numpy()
    clf = classifier_or_help("mnist", 1, None, "cpu", (28, 28))
    probs = M.softmax(clf.features_and_logits(from_model_range(ends))[1])
    digit, read = probs.argmax(1), probs.max(1) >= args.threshold
    random = np.random.default_rng(args.seed).integers(0, args.k, len(codes))
    line = {"teacher": args.teacher, "guidance": args.guidance, "k": args.k, "n": args.n, "seed": args.seed,
            "ends_read": round(float(read.mean()), 3), "purity": round(purity(codes[read], digit[read], args.k), 3),
            "purity_random_codes": round(purity(random[read], digit[read], args.k), 3), "students": []}  # fmt: skip
    for path in args.student:
        model, student_path, _ = load_for_sampling(path)
        net = getattr(model, "net", model)
        timesteps = make_timesteps(student_path, 1, SamplingRecipe(sampler="consistency", steps=1).resolve(
            student_path).spacing)  # fmt: skip
        heads, samples = [], []
        with torch.no_grad():
            for i in range(0, len(x_T), 500):
                samples.append(SAMPLERS["consistency"](model.eval(), student_path, x_T[i : i + 500], timesteps))
                heads.append(net.code_logits.argmax(1))
        head = torch.cat(heads).numpy()
        sp = M.softmax(clf.features_and_logits(from_model_range(torch.cat(samples)))[1])
        own, own_read = sp.argmax(1), sp.max(1) >= args.threshold
        both, k = read & own_read, net.config.code_classes
        line["students"].append({"checkpoint": path, "head_in_end_clusters": round(purity(head, codes, k), 3),
                                 "head_in_end_digits": round(purity(head[read], digit[read], k), 3),
                                 "head_in_own_digits": round(purity(head[own_read], own[own_read], k), 3),
                                 "same_digit_both_read": round(float((own == digit)[both].mean()), 3),
                                 "both_read": round(float(both.mean()), 3)})  # fmt: skip
    print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()
