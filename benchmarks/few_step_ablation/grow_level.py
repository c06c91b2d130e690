"""`cleardiffusion` (or a benchmark script) with a grown student's extra blocks at another resolution.

A screening aid for docs/few_step.md ("A deeper student"): `distill --grow-student N` appends N residual blocks,
each the identity at the start, after the U-Net's middle, at its lowest resolution (7x7 on MNIST's `small`). This
puts the same N blocks at the end of the decoder's level SIZE instead (14: after its last residual block at 14x14,
at that level's width), so that one can ask whether the one-step map lacks capacity there rather than at the
middle. The config is the same (`extra_middle_blocks`), so every process that builds such a network, the scoring
one included, must run through this wrapper with the same SIZE:

    python benchmarks/few_step_ablation/grow_level.py 14 distill --grow-student 4 ...
    python benchmarks/few_step_ablation/grow_level.py 14 benchmarks/few_step_ablation/readability_proxy.py ...
"""

import sys

import cleardiffusion.models.unet as unet
import cleardiffusion.train_run as train_run

build_resnet = unet.UNet._build_resnet


def build_at_level(size: int):
    def build(self, cfg, e_dim):
        encoder, middle, decoder, head = build_resnet(self, cfg, e_dim)
        extra = list(middle)[len(middle) - cfg.extra_middle_blocks :]
        if not extra:
            return encoder, middle, decoder, head
        middle = unet.Step(list(middle)[: len(middle) - cfg.extra_middle_blocks])
        widths = [cfg.base_channels * m for m in cfg.channel_mults]
        level = [cfg.image_size // 2**i for i in range(len(widths))].index(size)
        # the decoder runs the levels from the lowest resolution up: num_res_blocks + 1 residual steps each, then
        # an upsampling step (none after level 0); the extra blocks follow level `level`'s last residual step
        last = sum(cfg.num_res_blocks + 2 for _ in range(len(widths) - 1 - level)) + cfg.num_res_blocks
        kw = dict(norm_groups=cfg.norm_groups, activation=cfg.activation, dropout=cfg.dropout)
        moved = [unet.ResBlock(widths[level], widths[level], e_dim, **kw) for _ in extra]
        decoder[last].extend(moved)
        first = len(decoder[last]) - len(moved)
        self.grown_at_level = [(f"decoder.{last}.{first + i}.", block) for i, block in enumerate(moved)]
        return encoder, middle, decoder, head

    return build


def grow_into(model, weights, new):
    own = model.state_dict()
    grown = getattr(model, "grown_at_level", [])
    blocks = grown[len(grown) - new :] if new else []
    fresh = {name for name in own if any(name.startswith(prefix) for prefix, _ in blocks)}
    if new < 0 or set(weights) != set(own) - fresh:
        raise ValueError(f"the weights are not those of this U-Net less its last {new} grown blocks")
    model.load_state_dict(weights, strict=False)
    return [p for _, block in blocks for p in block.parameters()]


if __name__ == "__main__":
    unet.UNet._build_resnet = build_at_level(int(sys.argv.pop(1)))
    unet.grow_into = train_run.grow_into = grow_into
    from run_rest import run_rest  # this folder is on sys.path when the wrapper runs as a script

    run_rest()
