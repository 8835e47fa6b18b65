"""Parameters, fp32 bytes and torch CPU latency of the model's components.

Presets: the package's default (untrained, tiny) model and the GEM / DiffuSETS-shaped components of
model-facts.md (the 7 B LLM is counted on the meta device, never allocated). Latencies are medians of repeats
after a warm-up, on this machine's CPU with the thread count printed.

    python benchmarks/model_report.py [--repeats 10] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
from collections.abc import Callable

import torch

from uniecg_edge.bench.timing import median_ms


def _params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters()) + sum(b.numel() for b in module.buffers())


def _median_ms(fn: Callable[[], object], repeats: int) -> float:
    return median_ms(fn, repeats, warmup=1)


def sizes() -> list[dict[str, object]]:
    from transformers import AutoModelForCausalLM

    from uniecg_edge.model.default import build_default_model
    from uniecg_edge.model.ecg_encoder import EcgEncoder, EcgEncoderConfig
    from uniecg_edge.model.gen_head import GenerationHead, GenHeadConfig
    from uniecg_edge.model.llm import llm_config, vicuna_7b
    from uniecg_edge.model.projector import EcgProjector, ProjectorConfig
    from uniecg_edge.model.unet import ConditionalUNet1d, UNetConfig
    from uniecg_edge.model.vae import VaeConfig, VaeDecoder, VaeEncoder

    rows: list[dict[str, object]] = []
    default = build_default_model()
    for name, count in default.parameter_counts().items():
        rows.append({"preset": "default (untrained)", "component": name, "params": count, "fp32_bytes": 4 * count})
    with torch.device("meta"):
        vicuna = AutoModelForCausalLM.from_config(llm_config(vicuna_7b()))
    gem_parts: dict[str, torch.nn.Module] = {
        "ecg_encoder (ECG-CoCa)": EcgEncoder(EcgEncoderConfig.gem()),
        "projector (GEM)": EcgProjector(ProjectorConfig.gem()),
        "llm (Vicuna-7B, meta)": vicuna,
        "gen_head (K=8, D=1536)": GenerationHead(GenHeadConfig.diffusets(hidden_dim=4096)),
        "unet (DiffuSETS, D=1536)": ConditionalUNet1d(UNetConfig.diffusets()),
        "unet (DiffuSETS-KT, D=8192)": ConditionalUNet1d(UNetConfig.diffusets_kt()),
        "vae_decoder (DiffuSETS)": VaeDecoder(VaeConfig()),
        "vae_encoder (training only)": VaeEncoder(VaeConfig()),
    }
    for name, module in gem_parts.items():
        count = sum(p.numel() for p in module.parameters())
        if "unet" in name:
            count = _params(module)  # model-facts counts the frozen sinusoid tables too
        rows.append({"preset": "GEM / DiffuSETS", "component": name, "params": count, "fp32_bytes": 4 * count})
    return rows


def latencies(repeats: int) -> list[dict[str, object]]:
    from uniecg_edge.data import EXAMPLE_RECORD
    from uniecg_edge.model.default import default_model_dir
    from uniecg_edge.model.ecg_encoder import EcgEncoder, EcgEncoderConfig
    from uniecg_edge.model.pipeline import TorchPipeline
    from uniecg_edge.model.unet import ConditionalUNet1d, UNetConfig
    from uniecg_edge.model.vae import VaeConfig, VaeDecoder
    from uniecg_edge.wfdb_io import read_record

    rows: list[dict[str, object]] = []
    pipe = TorchPipeline.from_pretrained(default_model_dir())
    record = read_record(EXAMPLE_RECORD)
    prefill, per_token = [], []
    for _ in range(repeats):
        report = pipe.interpret(record, max_new_tokens=32)
        t = report.provenance["timings_s"]
        prefill.append(t["prefill_s"] * 1e3)
        per_token.append(t["decode_per_token_s"] * 1e3)
    rows.append({"preset": "default", "stage": "interpret prefill", "ms": statistics.median(prefill)})
    rows.append({"preset": "default", "stage": "interpret decode per token", "ms": statistics.median(per_token)})
    with torch.no_grad():
        for preset, unet_cfg, vae_cfg in (("default", pipe.model.unet.config, None),
                                          ("DiffuSETS D=1536", UNetConfig.diffusets(), VaeConfig())):
            unet = pipe.model.unet if vae_cfg is None else ConditionalUNet1d(unet_cfg).eval()
            vae = pipe.model.vae_decoder if vae_cfg is None else VaeDecoder(vae_cfg).eval()
            cond = torch.randn(1, 1, unet_cfg.cond_dim)
            one = torch.ones(1, 1, 1)
            terms = unet.condition_terms(cond, one, one * 60, one * 70)
            x, t = torch.randn(1, 4, 128), torch.tensor([500])
            step = lambda unet=unet, terms=terms, x=x, t=t: unet(x, t, terms)  # noqa: E731
            rows.append({"preset": preset, "stage": "unet step", "ms": _median_ms(step, repeats)})
            decode = lambda vae=vae, x=x: vae(x)  # noqa: E731
            rows.append({"preset": preset, "stage": "vae decode", "ms": _median_ms(decode, repeats)})
        gem = EcgEncoder(EcgEncoderConfig.gem()).eval()
        ecg = torch.randn(1, 12, 5000)
        encode_ms = _median_ms(lambda: gem(ecg), max(3, repeats // 3))
        rows.append({"preset": "GEM", "stage": "ecg encoder", "ms": encode_ms})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    machine = {"cpu": platform.processor() or platform.machine(), "torch_threads": torch.get_num_threads(),
               "torch": torch.__version__}
    size_rows, time_rows = sizes(), latencies(args.repeats)
    print(f"machine: {machine}")
    print(f"{'preset':<22} {'component':<30} {'params':>14} {'fp32 MB':>10}")
    for r in size_rows:
        print(f"{r['preset']:<22} {r['component']:<30} {r['params']:>14,} {r['fp32_bytes'] / 1e6:>10.1f}")
    print(f"\n{'preset':<22} {'stage':<30} {'median ms':>10}")
    for r in time_rows:
        print(f"{r['preset']:<22} {r['stage']:<30} {r['ms']:>10.2f}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"machine": machine, "sizes": size_rows, "latency": time_rows}, fh, indent=2)


if __name__ == "__main__":
    main()
