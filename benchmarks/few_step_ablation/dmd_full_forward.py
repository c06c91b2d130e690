"""`cleardiffusion` with dmd's discriminator reading the fake network's middle block through its whole forward, as
the library did before session 25 (a hook on the middle; the decoder's output thrown away), instead of
`UNet.encode` (the encoder and the middle only). The same features, the same numbers (a test checks it); the cost
of the decoder's forward, three times per dmd step, is what `dmd_encode_speed.py` measures against the library.

    python benchmarks/few_step_ablation/dmd_full_forward.py distill --distill-method dmd ...
"""

import sys

import cleardiffusion.consistency as consistency
from cleardiffusion.cli import main

gan_features = consistency.gan_features


def through_the_whole_network(net):
    """features(x_t, t[, y]): the middle block's output, taken by a hook during the network's full forward."""
    gan_features(net)  # the library's check: a U-Net
    kept = []
    net.middle.register_forward_hook(lambda module, inputs, out: kept.append(out))

    def features(*inputs):
        kept.clear()
        net(*inputs)
        return kept[0]

    return features


if __name__ == "__main__":
    consistency.gan_features = through_the_whole_network
    sys.exit(main())
