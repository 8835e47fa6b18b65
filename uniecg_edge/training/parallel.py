"""The recipe's two independent branches at once: stage 1 here, the VAE and UNet in a second process.

Stage 1 (encoder, language model, grounding) needs the tokenizer and the ``train`` stream; the VAE and the UNet
need only the example pool and its MiniLM embeddings. Neither reads the other's weights, and every step draws its
data and noise from ``(seed, stage, step)``, so training them side by side gives the same weights as one after
the other. The second process trains them into their phase folders (``done.json`` when finished); the main
process then runs stage 2 as usual, which reloads both and goes on with the alignment (it needs the trained LLM).
On a 2-core machine that takes the VAE and UNet (about 55 of the student's 150 training minutes) off the path.
"""

from __future__ import annotations

import logging
import multiprocessing
from pathlib import Path
from typing import Any

from ..errors import UniEcgError

log = logging.getLogger(__name__)


class CachedEmbeddings:
    """Stands in for the text embedder where every embedding is already cached (the main process made them)."""

    def __init__(self, name: str, dim: int) -> None:
        self.name, self.dim = name, dim

    def encode(self, texts: Any) -> Any:
        raise UniEcgError(f"{len(texts)} text embeddings of {self.name} missing from the pool's cache")


def train_generator_branch(config: dict[str, Any], work: str, embedder: tuple[str, int], threads: int,
                           log_level: int) -> None:
    """VAE then UNet of the run in ``work`` (tokenizer, pool and its embeddings must exist); for a child process."""
    import torch

    from .components import Vocabulary, build_components
    from .dataset import ExampleSampler
    from .pool import build_pool
    from .presets import RecipeConfig
    from .recipe import get_tokenizer
    from .stage2 import train_generator

    logging.basicConfig(level=log_level, format="%(asctime)s %(levelname)s %(name)s [generator]: %(message)s")
    torch.set_num_threads(threads)
    cfg = RecipeConfig.from_dict(config)
    folder = Path(work)
    sampler = ExampleSampler(cfg.seed, cfg.data)
    pool = build_pool(sampler, "pool", cfg.pool_size, folder / "pool", CachedEmbeddings(*embedder))  # read back
    parts = build_components(cfg.sizes, Vocabulary.of(get_tokenizer(cfg, sampler, folder)), cfg.seed)
    train_generator(parts, pool, cfg, folder)


class GeneratorBranch:
    """``start()`` the VAE + UNet process, ``wait()`` for it (raises if it failed) or ``stop()`` it."""

    def __init__(self, cfg: Any, work: Path, embedder: Any, threads: int) -> None:
        context = multiprocessing.get_context("spawn")  # no fork of a process holding torch threads
        level = logging.getLogger("uniecg_edge").getEffectiveLevel()
        self.process = context.Process(
            target=train_generator_branch, name="uniecg-generator",
            args=(cfg.to_dict(), str(work), (embedder.name, int(embedder.dim)), int(threads), level))

    def start(self) -> GeneratorBranch:
        self.process.start()
        log.info("VAE and UNet training in a second process (pid %s)", self.process.pid)
        return self

    def stop(self) -> None:
        """End the process (stage 1 failed); its phases continue from their last checkpoint with --resume."""
        if self.process.is_alive():
            self.process.terminate()
            log.warning("stopped the VAE/UNet process; --resume continues it from its last checkpoint")
        self.process.join()

    def wait(self) -> None:
        self.process.join()
        if self.process.exitcode != 0:
            raise UniEcgError(f"the VAE/UNet process failed (exit code {self.process.exitcode}); "
                              "its finished phases are kept, run again with --resume")
