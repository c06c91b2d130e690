"""`cleardiffusion` (or a benchmark script) as mixture_prior.py K A, and in `dmd` an InfoGAN term of weight LAMBDA that
makes the K components of x_T's mixture produce samples one can tell apart.

A screening aid for docs/few_step.md ("A deeper student"): mixture_prior.py alone gives the one-step map gaps in
its noise to put the blends between digits in, but nothing makes it use them. InfoGAN (Chen et al. 2016) makes a
generator's discrete code matter by maximising a lower bound on the mutual information between code and sample: a
head Q guesses the code from the sample, and generator and Q both minimise Q's cross-entropy. On MNIST a 10-way
code comes to carry the digit's class; if it does here, each component draws one digit and no blends. Q reads the
fake network's middle block (as DMD2's discriminator does) at the sample noised below GAN_T_MAX, learns at 100 x
the student's step on the detached samples after each fake update, and the student adds LAMBDA x Q's cross-entropy
on its own sample (the fake network and Q frozen for it). Scoring needs only mixture_prior.py K A's sampler, which
this installs too:

    python benchmarks/few_step_ablation/mixture_info.py 10 8 1.0 distill --distill-method dmd ...
    python benchmarks/few_step_ablation/mixture_prior.py 10 8 benchmarks/few_step_ablation/readability_proxy.py ...
"""

import sys
from pathlib import Path

import torch
import torch.nn.functional as F

import cleardiffusion.consistency as consistency
from cleardiffusion.models.unet import CodeHead

sys.path.insert(0, str(Path(__file__).resolve().parent))
import mixture_prior  # noqa: E402

Q_LR_RATIO = 100  # Q starts from scratch, as the discriminator's head does (consistency.GAN_HEAD_LR_RATIO)


def install(k: int, norm: float, weight: float) -> None:
    mixture_prior.install(k, norm)
    mixture_sample = consistency.DistributionMatchingLoss.sample
    library_call = consistency.DistributionMatchingLoss.__call__

    def sample(self, student, like, y):  # mixture_sample keeps each sample's component in self.codes
        self.last_sample = mixture_sample(self, student, like, y)
        return self.last_sample

    def code_logits(self, x0: torch.Tensor) -> torch.Tensor:
        t = self.gan_t(x0)
        x_t = self.schedule.q_sample(x0, t, torch.randn_like(x0))
        features = consistency.gan_features(self.fake_net)(x_t, t)
        if not hasattr(self, "q"):
            _, channels, *size = features.shape
            self.q = CodeHead(channels, tuple(size), self.fake_net.config.norm_groups, k).to(x0.device)
            lr = self.fake_optimizer.param_groups[0]["lr"] / consistency.FAKE_LR_RATIO * Q_LR_RATIO
            self.q_optimizer = torch.optim.AdamW(self.q.parameters(), lr=lr, weight_decay=0.0)
        return consistency.full(self.q(consistency.full(features)))

    def call(self, net, x0, t, eps, y=None):
        loss = library_call(self, net, x0, t, eps, y)
        sample, codes = self.last_sample, self.codes
        self.fake_net.requires_grad_(False)
        try:  # Q learns the codes of the (detached) samples, the fake network's features fixed; then the student's term
            q_loss = F.cross_entropy(code_logits(self, sample.detach()), codes)
            self.q_optimizer.zero_grad(set_to_none=True)
            q_loss.backward()
            self.q_optimizer.step()
            self.q.requires_grad_(False)
            info = F.cross_entropy(code_logits(self, sample), codes)  # its gradient reaches only the sample
        finally:
            self.fake_net.requires_grad_(True)
            self.q.requires_grad_(True)
        self.calls = getattr(self, "calls", 0) + 1
        if self.calls % 100 == 0:  # how well Q tells the components apart (log 10 = 2.30: not at all)
            print(f"mixture_info: step {self.calls}: Q's cross-entropy {info.item():.3f}", file=sys.stderr, flush=True)
        return loss + weight * info

    consistency.DistributionMatchingLoss.sample = sample
    consistency.DistributionMatchingLoss.__call__ = call


if __name__ == "__main__":
    install(int(sys.argv.pop(1)), float(sys.argv.pop(1)), float(sys.argv.pop(1)))
    from run_rest import run_rest  # this folder is on sys.path when the wrapper runs as a script

    run_rest()
