"""One command, one seed: ``python -m uniecg_edge.training.recipe --seed 0 --out DIR [--preset P] [--resume]``.

Writes ``DIR/model/`` (a :class:`~uniecg_edge.model.uniecg.UniEcgModel` checkpoint), ``DIR/training_config.json``
(the frozen :class:`~.presets.RecipeConfig`), ``DIR/metrics.json`` (stage summaries, held-out evaluation,
parameter budget, timings) and ``DIR/work/`` (tokenizer, example pools, embeddings cache, per-stage checkpoints,
``losses.jsonl`` files and ``recipe.log``). Both JSON files are copied into ``DIR/model/`` too.
``--estimate`` runs a few steps of every phase instead and writes ``DIR/estimate.json``: the full run's projected
time on this machine (:mod:`.estimate`).

Order: tokenizer -> example pools (+ MiniLM embeddings) -> stage 1 (encoder, then encoder + projector + LLM) ->
stage 2 (VAE, UNet, [ECG]-token alignment) -> checkpoint -> evaluation. With ``--resume`` every finished phase is
reloaded and an interrupted one continues from its last checkpoint (saved every ``checkpoint_every_s``).
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from ..errors import ConfigError, UniEcgError
from .presets import RECIPE_PRESETS, RecipeConfig, recipe_config

log = logging.getLogger(__name__)

CONFIG_FILE = "training_config.json"
METRICS_FILE = "metrics.json"
MODEL_DIR = "model"
WORK_DIR = "work"
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
ANSWER_MARGIN_TOKENS = 32  # max_new_tokens = the longest report of the corpus + this


def prepare_output(out: Path, cfg: RecipeConfig, resume: bool) -> None:
    """Create ``out`` (fresh, or refuse a non-empty one) or check that a resumed run has the same config."""
    saved = out / CONFIG_FILE
    if resume:
        if not saved.is_file():
            raise ConfigError(f"{out}: nothing to resume ({CONFIG_FILE} missing)")
        if json.loads(saved.read_text()) != cfg.to_dict():
            raise ConfigError(f"{saved}: the run there used another config (preset or seed differs); "
                              "choose another --out")
        return
    if out.exists() and any(out.iterdir()):
        raise ConfigError(f"{out}: folder exists and is not empty (pass --resume to continue a run)")
    (out / WORK_DIR).mkdir(parents=True, exist_ok=True)
    saved.write_text(json.dumps(cfg.to_dict(), indent=2) + "\n")


def tokenizer_corpus(cfg: RecipeConfig, sampler: Any) -> list[str]:
    """Reports and requests of the ``corpus`` stream plus the prompt texts the model reads."""
    from ..model.uniecg import PromptConfig
    from .reports import generation_requests

    prompt = PromptConfig()
    texts = [prompt.interpret_prompt().replace("<ecg>", ""), prompt.generate_prompt("")]
    for i in range(cfg.corpus_size):
        ex = sampler.example("corpus", i)
        texts.append(ex.report)
        texts.extend(generation_requests(ex.truth, ex.report).values())
    return texts


def get_tokenizer(cfg: RecipeConfig, sampler: Any, work: Path) -> Any:
    from ..model.tokenizer import load_tokenizer, save_tokenizer, train_tokenizer

    folder = work / "tokenizer"
    if (folder / "tokenizer.json").is_file():
        return load_tokenizer(folder)
    tokenizer = train_tokenizer(tokenizer_corpus(cfg, sampler), cfg.sizes.vocab_size, cfg.sizes.num_ecg_tokens)
    save_tokenizer(tokenizer, folder)
    return load_tokenizer(folder)  # the saved form, so a resumed run tokenizes identically


def answer_budget(batcher: Any, cfg: RecipeConfig, sampler: Any, encoder_tokens: int) -> int:
    """max_new_tokens for the model: the longest report of the corpus in tokens, plus a margin."""
    longest = max(len(batcher.answer_ids(sampler.example("corpus", i).report))
                  for i in range(min(cfg.corpus_size, 400)))
    budget = longest + ANSWER_MARGIN_TOKENS
    total = len(batcher.interpret_ids) - 1 + encoder_tokens + budget
    if total > cfg.sizes.llm_max_positions:
        raise ConfigError(f"prompt + ECG + report = {total} tokens exceeds llm_max_positions "
                          f"{cfg.sizes.llm_max_positions}")
    return budget


def assemble(cfg: RecipeConfig, parts: Any, tokenizer: Any, max_new_tokens: int) -> Any:
    from ..model.schedulers import SchedulerConfig
    from ..model.uniecg import UniEcgConfig, UniEcgModel

    trained = cfg.preset != "smoke"
    config = UniEcgConfig(
        name=f"uniecg-edge-{cfg.preset}-seed{cfg.seed}", num_ecg_tokens=cfg.sizes.num_ecg_tokens,
        max_new_tokens=max_new_tokens, trained=trained, grounded=cfg.stage1.ground_steps > 0, licence="Apache-2.0",
        description=(f"Trained by uniecg_edge.training.recipe (preset {cfg.preset}, seed {cfg.seed}) on synthetic "
                     "ECGs with evidence-based reports; not for clinical use."
                     + ("" if trained else " Smoke-test run: a handful of steps, output is meaningless.")),
    )
    scheduler = SchedulerConfig(kind="ddim", num_inference_steps=cfg.sampler_steps, clip_sample=False)
    return UniEcgModel(config, ecg_encoder=parts.ecg_encoder, projector=parts.projector, llm=parts.llm,
                       tokenizer=tokenizer, gen_head=parts.gen_head, unet=parts.unet,
                       vae_decoder=parts.vae.decoder, scheduler=scheduler).eval()


def save_model(model: Any, target: Path) -> Path:
    tmp = target.with_name(target.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    model.save_pretrained(tmp)
    if target.exists():
        shutil.rmtree(target)
    tmp.rename(target)
    return target


def run_recipe(cfg: RecipeConfig, out: str | Path, resume: bool = False, embedder: Any | None = None,
               log_file: bool = False, jobs: int = 1) -> dict[str, Any]:
    """Run the whole recipe into ``out``; returns the metrics (also written to ``metrics.json``).

    ``log_file`` also appends the package's log records to ``out/work/recipe.log`` while the run lasts.
    ``jobs`` 2 trains the VAE and UNet in a second process while stage 1 trains here (:mod:`.parallel`): the same
    weights, sooner on a machine with two cores or more.
    """
    if jobs not in (1, 2):
        raise ConfigError(f"jobs must be 1 or 2, got {jobs!r}")
    out = Path(out)
    prepare_output(out, cfg, resume)
    handler: logging.Handler | None = None
    if log_file:
        handler = logging.FileHandler(out / WORK_DIR / "recipe.log")
        handler.setFormatter(logging.Formatter(LOG_FORMAT))
        logging.getLogger("uniecg_edge").addHandler(handler)
    try:
        return _run(cfg, out, embedder, jobs, resume)
    finally:
        if handler is not None:
            logging.getLogger("uniecg_edge").removeHandler(handler)
            handler.close()


def _run(cfg: RecipeConfig, out: Path, embedder: Any | None, jobs: int, resume: bool) -> dict[str, Any]:
    import torch

    from ..model.pipeline import TorchPipeline
    from . import evaluate
    from .batching import Batcher
    from .components import Vocabulary, build_components, parameter_budget
    from .dataset import ExampleSampler
    from .parallel import GeneratorBranch
    from .pool import build_pool
    from .stage1 import train_stage1
    from .stage2 import train_stage2
    from .text_embed import MiniLmEmbedder

    work = out / WORK_DIR
    timings: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal clock
        timings[name] = round(time.perf_counter() - clock, 1)
        clock = time.perf_counter()
        log.info("%s done in %.1f s", name, timings[name])

    sampler = ExampleSampler(cfg.seed, cfg.data)
    tokenizer = get_tokenizer(cfg, sampler, work)
    lap("tokenizer")
    embedder = embedder or MiniLmEmbedder()
    pool = build_pool(sampler, "pool", cfg.pool_size, work / "pool", embedder)
    n_eval = max(cfg.eval.generate_examples, cfg.eval.loss_examples, 1)
    eval_pool = build_pool(sampler, "eval", n_eval, work / "eval", embedder, name="eval")
    lap("data")

    parts = build_components(cfg.sizes, Vocabulary.of(tokenizer), cfg.seed)
    batcher = Batcher(tokenizer, cfg.sizes.num_ecg_tokens)
    max_new_tokens = answer_budget(batcher, cfg, sampler, parts.ecg_encoder.num_tokens)
    branch = GeneratorBranch(cfg, work, embedder, threads=torch.get_num_threads()).start() if jobs == 2 else None
    try:
        stages: dict[str, Any] = {"stage1": train_stage1(parts, batcher, sampler, cfg, work)}
    except BaseException:
        if branch is not None:
            branch.stop()
        raise
    if branch is not None:
        branch.wait()
    lap("stage1")
    stages["stage2"] = train_stage2(parts, batcher, pool, sampler, cfg, work)
    lap("stage2")

    model = assemble(cfg, parts, tokenizer, max_new_tokens)
    model_dir = save_model(model, out / MODEL_DIR)
    pipeline = TorchPipeline.from_pretrained(model_dir)
    lap("save")

    torch.manual_seed(cfg.seed)
    metrics: dict[str, Any] = {
        "preset": cfg.preset, "seed": cfg.seed, "torch_threads": torch.get_num_threads(), "jobs": jobs,
        "resumed": resume,
        "parameter_budget": parameter_budget(parts.shipped()),
        "text_embedder": getattr(embedder, "version", type(embedder).__name__),
        "max_new_tokens": max_new_tokens, "stages": stages,
        "heldout": evaluate.heldout_losses(parts, batcher, sampler, eval_pool, cfg.eval.loss_examples,
                                           cfg.text_scale, cfg.seed),
        "alignment": evaluate.evaluate_alignment(parts, batcher, eval_pool, cfg.text_scale),
        "interpret": evaluate.evaluate_interpret(pipeline, sampler, cfg.eval.interpret_examples),
        "choice": evaluate.evaluate_choice(pipeline, eval_pool, cfg.eval.generate_examples),
        "generation": evaluate.evaluate_generation(pipeline, eval_pool, cfg.eval.generate_examples,
                                                   cfg.eval.generate_steps),
    }
    lap("evaluation")
    metrics["timings_s"] = timings
    metrics["total_s"] = round(sum(timings.values()), 1)
    text = json.dumps(metrics, indent=2, default=sorted) + "\n"
    (out / METRICS_FILE).write_text(text)
    (model_dir / METRICS_FILE).write_text(text)
    shutil.copyfile(out / CONFIG_FILE, model_dir / CONFIG_FILE)
    return metrics


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m uniecg_edge.training.recipe", description=__doc__.split("\n")[0])
    parser.add_argument("--seed", type=int, default=0, help="the run's seed (data, initialisation, batches)")
    parser.add_argument("--out", required=True, help="output folder (model/, metrics.json, work/)")
    parser.add_argument("--preset", default="small", choices=list(RECIPE_PRESETS),
                        help="sizes and steps: smoke, student (shipped size), small / teacher (the full recipe)")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out")
    parser.add_argument("--estimate", action="store_true",
                        help="run a few steps of every phase into --out and project the full run's time")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads per process (default: torch's choice)")
    parser.add_argument("--jobs", type=int, default=1, choices=(1, 2),
                        help="2: train the VAE and UNet in a second process beside stage 1 (same weights, sooner)")
    parser.add_argument("--log-level", default="INFO")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    out = Path(args.out)
    try:
        cfg = recipe_config(args.preset, args.seed)
        if args.threads:
            import torch

            torch.set_num_threads(args.threads)
        logging.basicConfig(level=args.log_level.upper(), format=LOG_FORMAT)
        if args.estimate:
            from .estimate import project, shrink

            short = shrink(cfg)
            estimate = project(cfg, short, run_recipe(short, out, resume=args.resume, log_file=True, jobs=1),
                               jobs=args.jobs)
            (out / "estimate.json").write_text(json.dumps(estimate, indent=2) + "\n")
            print(json.dumps(estimate, indent=2))
            return 0
        metrics = run_recipe(cfg, out, resume=args.resume, log_file=True, jobs=args.jobs)
    except UniEcgError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return int(exc.exit_code)
    log.info("done in %.0f s: %s", metrics["total_s"], out / MODEL_DIR)
    return 0


if __name__ == "__main__":
    sys.exit(main())
