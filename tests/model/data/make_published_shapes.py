"""Writes the published DiffuSETS state-dict layouts (key -> shape) used as loader fixtures.

Transcribed by hand from the published code (PKUDigitalHealth/DiffuSETS; identical in
tuhlnaa/DiffuSETS_Exp-Extended ``unet/unet_conditional.py`` and ``vae/vae_model.py``): the constructors'
channel-list loops and each module's parameters in definition order. It deliberately does not import
``uniecg_edge``, so the fixtures are an independent check of the package's module names and shapes. The totals
must equal the counts measured on the published modules (model-facts.md §3.3/§3.4), which the tests assert.

Run: python tests/model/data/make_published_shapes.py  (rewrites the JSON files beside it)
"""

from __future__ import annotations

import json
from pathlib import Path

HERE = Path(__file__).resolve().parent
Shapes = dict[str, list[int]]


def linear(out: Shapes, name: str, n_in: int, n_out: int) -> None:
    out[f"{name}.weight"] = [n_out, n_in]
    out[f"{name}.bias"] = [n_out]


def conv(out: Shapes, name: str, n_in: int, n_out: int, k: int) -> None:
    out[f"{name}.weight"] = [n_out, n_in, k]
    out[f"{name}.bias"] = [n_out]


def conv_transpose(out: Shapes, name: str, n_in: int, n_out: int, k: int) -> None:
    out[f"{name}.weight"] = [n_in, n_out, k]
    out[f"{name}.bias"] = [n_out]


def norm(out: Shapes, name: str, c: int) -> None:  # LayerNorm(c) and GroupNorm(g, c) alike
    out[f"{name}.weight"] = [c]
    out[f"{name}.bias"] = [c]


def mha(out: Shapes, name: str, e: int) -> None:  # nn.MultiheadAttention(e, heads), no bias_k/v
    out[f"{name}.in_proj_weight"] = [3 * e, e]
    out[f"{name}.in_proj_bias"] = [3 * e]
    linear(out, f"{name}.out_proj", e, e)


# ---- unet/unet_conditional.py -------------------------------------------------------------------------------
def time_embedding(out: Shapes, p: str, steps: int, n_channels: int) -> None:
    linear(out, p + "fc1", 64, 128)
    linear(out, p + "fc2", 128, n_channels)
    out[p + "embeddings"] = [steps, 64]


def self_attention(out: Shapes, p: str, channels: int, hidden: int) -> None:
    for q in ("to_q", "to_k", "to_v"):
        linear(out, p + q, channels, hidden)
    linear(out, p + "to_out", hidden, channels)
    mha(out, p + "attention", hidden)
    norm(out, p + "norm", channels)


def cross_attention(out: Shapes, p: str, vector_size: int, hidden: int, text_dim: int) -> None:
    for q in ("to_q", "to_k", "to_v"):
        linear(out, p + q, vector_size, hidden)
    linear(out, p + "to_out", hidden, vector_size)
    mha(out, p + "attention", hidden)
    norm(out, p + "normalization", vector_size)
    linear(out, p + "value_combiner", text_dim + 3 * 1, vector_size)
    norm(out, p + "condition_normalization", vector_size)


def block(out: Shapes, p: str, n_in: int, n_out: int, steps: int, k: int, hidden: int, text_dim: int) -> None:
    n_short = int((n_in + n_out) // 2)
    conv(out, p + "pre_shortcut_convs", n_in, n_short, k)
    conv(out, p + "shortcut_convs", n_short, n_short, 1)
    conv(out, p + "post_shortcut_convs", n_short, n_out, k)
    conv(out, p + "down", n_out, n_out, 3)
    norm(out, p + "layer_norm1", n_short)
    norm(out, p + "layer_norm2", n_out)
    if n_in != n_out:
        conv(out, p + "res_conv", n_in, n_out, 1)
    self_attention(out, p + "self_attention.", n_short, hidden)
    cross_attention(out, p + "cross_attention.", n_short, hidden, text_dim)
    norm(out, p + "attention_norm", n_short)
    time_embedding(out, p + "time_emb.", steps, n_in)


def bottleneck(out: Shapes, p: str, n: int, steps: int, text_dim: int, k: int = 3, hidden: int = 32) -> None:
    time_embedding(out, p + "time_emb.", steps, n)
    for name in ("bottleneck_conv1", "bottleneck_conv1_2", "bottleneck_conv2"):
        conv(out, p + name, n, n, k)
    norm(out, p + "bottleneck_layer_norm1", n)
    norm(out, p + "bottleneck_layer_norm2", n)
    norm(out, p + "attention_norm", n)
    self_attention(out, p + "self_attention.", n, hidden)
    cross_attention(out, p + "cross_attention.", n, hidden, text_dim)


def ecg_conditional(steps: int = 1000, kernel_size: int = 7, num_levels: int = 7, n_channels: int = 4,
                    text_dim: int = 1536) -> Shapes:  # fmt: skip
    ins: list[int] = []
    outs: list[int] = []
    for i in range(num_levels - 1):
        ins.append(n_channels * 2**i)
    for i in range(num_levels - 1):
        ins.append(2 * ins[num_levels - i - 2])
    for i in range(num_levels - 1):
        outs.append(2 * ins[i])
    for i in range(num_levels - 1):
        outs.append(outs[num_levels - i - 2] // 2)
    for i in range(num_levels - 2):
        ins[2 * (num_levels - 1) - i - 1] += outs[i]
    hidden = [c * 2 for c in ins]

    out: Shapes = {}
    for i in range(num_levels - 1):
        p = f"downsampling_blocks.{i}."
        conv(out, p + "down", outs[i], outs[i], 3)
        block(out, p + "block.", ins[i], outs[i], steps, kernel_size, hidden[i], text_dim)
    bottleneck(out, "bottelneck.", ins[num_levels], steps, text_dim)
    for j, i in enumerate(range(num_levels - 1, 2 * num_levels - 2)):
        p = f"upsampling_blocks.{j}."
        block(out, p + "block.", ins[i], outs[i], steps, kernel_size, hidden[i], text_dim)
        up = ins[i] if j == 0 else ins[i] // 2
        conv_transpose(out, p + "up", up, up, 4)
    conv(out, "output_conv.0", outs[-1], n_channels, 3)
    conv(out, "output_conv.2", n_channels, n_channels, 1)
    return out


# ---- vae/vae_model.py ---------------------------------------------------------------------------------------
def residual(out: Shapes, p: str, c_in: int, c_out: int) -> None:
    norm(out, p + "groupnorm_1", c_in)
    conv(out, p + "conv_1", c_in, c_out, 3)
    norm(out, p + "groupnorm_2", c_out)
    conv(out, p + "conv_2", c_out, c_out, 3)
    if c_in != c_out:
        conv(out, p + "residual_layer", c_in, c_out, 1)


def attention_block(out: Shapes, p: str, c: int) -> None:
    norm(out, p + "groupnorm", c)
    linear(out, p + "attention.in_proj", c, 3 * c)
    linear(out, p + "attention.out_proj", c, c)


def vae_encoder() -> Shapes:
    out: Shapes = {}
    conv(out, "0", 12, 128, 3)
    residual(out, "1.", 128, 128)
    residual(out, "2.", 128, 128)
    conv(out, "3", 128, 128, 3)
    residual(out, "4.", 128, 256)
    residual(out, "5.", 256, 256)
    conv(out, "6", 256, 256, 3)
    residual(out, "7.", 256, 512)
    residual(out, "8.", 512, 512)
    conv(out, "9", 512, 512, 3)
    residual(out, "10.", 512, 512)
    residual(out, "11.", 512, 512)
    residual(out, "12.", 512, 512)
    attention_block(out, "13.", 512)
    residual(out, "14.", 512, 512)
    norm(out, "15", 512)  # 16: SiLU
    conv(out, "17", 512, 8, 3)
    conv(out, "18", 8, 8, 1)
    return out


def vae_decoder() -> Shapes:
    out: Shapes = {}
    conv(out, "0", 4, 4, 1)
    conv(out, "1", 4, 512, 3)
    residual(out, "2.", 512, 512)
    attention_block(out, "3.", 512)
    for i in (4, 5, 6, 7):
        residual(out, f"{i}.", 512, 512)
    conv(out, "9", 512, 512, 3)  # 8: Upsample
    for i in (10, 11, 12):
        residual(out, f"{i}.", 512, 512)
    conv(out, "14", 512, 512, 3)  # 13: Upsample
    residual(out, "15.", 512, 256)
    residual(out, "16.", 256, 256)
    residual(out, "17.", 256, 256)
    conv(out, "19", 256, 256, 3)  # 18: Upsample
    residual(out, "20.", 256, 128)
    residual(out, "21.", 128, 128)
    residual(out, "22.", 128, 128)
    norm(out, "23", 128)  # 24: SiLU
    conv(out, "25", 128, 12, 3)
    return out


def main() -> None:
    for dim in (1536, 8192):
        (HERE / f"diffusets_unet_d{dim}.json").write_text(json.dumps(ecg_conditional(text_dim=dim)) + "\n")
    vae = {"encoder": vae_encoder(), "decoder": vae_decoder()}
    (HERE / "diffusets_vae.json").write_text(json.dumps(vae) + "\n")


if __name__ == "__main__":
    main()
