"""Pictures: sample grids, denoising trajectories as strips and GIFs, loss curves.

Images are (N, C, H, W) tensors, either floats in the model's range [-1, 1] or uint8. Grids and GIFs are
written with Pillow; matplotlib is imported only by `plot_curves`.
"""

import math
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .data.dataset import from_model_range
from .files import atomic_write


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """[-1, 1] floats (or uint8, unchanged) -> uint8 in [0, 255], same shape (data.from_model_range)."""
    if images.dtype == torch.uint8:
        return images
    return from_model_range(images.detach())


def make_grid(images: torch.Tensor, nrow: int | None = None, padding: int = 2, scale: int = 1) -> np.ndarray:
    """Tile (N, C, H, W) images into one (rows * H, nrow * W, C) uint8 array, `nrow` images per row."""
    images = to_uint8(images).cpu()
    n, c, h, w = images.shape
    nrow = nrow or math.ceil(math.sqrt(n))
    rows = math.ceil(n / nrow)
    grid = np.zeros((rows * (h + padding) + padding, nrow * (w + padding) + padding, c), dtype=np.uint8)
    for i, image in enumerate(images.permute(0, 2, 3, 1).numpy()):  # (H, W, C)
        r, col = divmod(i, nrow)
        y, x = padding + r * (h + padding), padding + col * (w + padding)
        grid[y : y + h, x : x + w] = image
    if scale > 1:
        grid = grid.repeat(scale, axis=0).repeat(scale, axis=1)  # nearest-neighbour upscaling
    return grid


def _pil(array: np.ndarray) -> Image.Image:
    return Image.fromarray(array[..., 0] if array.shape[-1] == 1 else array)


def save_grid(images: torch.Tensor, path: str | Path, nrow: int | None = None, scale: int = 1) -> Path:
    """Write a grid of images as a PNG; `scale` enlarges each pixel so small images can be seen."""
    path = Path(path)
    with atomic_write(path) as f:  # never a half-written PNG
        _pil(make_grid(images, nrow, scale=scale)).save(f, format="PNG")
    return path


def save_gif(
    frames: list[torch.Tensor],
    path: str | Path,
    nrow: int | None = None,
    scale: int = 1,
    duration_ms: int = 40,
    final_hold_ms: int = 1000,
) -> Path:
    """Write an animation: one grid of (N, C, H, W) images per frame, the last frame held longer."""
    path = Path(path)
    pictures = [_pil(make_grid(f, nrow, scale=scale)) for f in frames]
    durations = [duration_ms] * (len(pictures) - 1) + [final_hold_ms]
    with atomic_write(path) as f:
        pictures[0].save(f, format="GIF", save_all=True, append_images=pictures[1:], duration=durations, loop=0)
    return path


def evenly_spaced(n_items: int, n_picks: int) -> list[int]:
    """`n_picks` indices spread evenly over range(n_items), first and last included."""
    if n_picks >= n_items:
        return list(range(n_items))
    return [round(i * (n_items - 1) / (n_picks - 1)) for i in range(n_picks)]


def plot_curves(
    curves: dict[str, list[float]],
    path: str | Path,
    xlabel: str = "step",
    ylabel: str = "loss",
    logy: bool = True,
    title: str | None = None,
    x: list[float] | None = None,
) -> Path:
    """Line plot of named curves (e.g. a loss per step) to a PNG; `x` defaults to 1, 2, ..."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    for name, values in curves.items():
        ax.plot(x if x is not None else range(1, len(values) + 1), values, label=name, linewidth=1)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if logy:
        ax.set_yscale("log")
    if title:
        ax.set_title(title)
    if len(curves) > 1:
        ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    with atomic_write(path) as f:
        fig.savefig(f, format=path.suffix.lstrip(".") or "png")
    plt.close(fig)
    return path
