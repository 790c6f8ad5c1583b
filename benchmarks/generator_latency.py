"""Measure the parameter generator's latency per instance on the CPU.

    python benchmarks/generator_latency.py [--model weights/hywu-lite] [--threads 2] [--repeats 20]

Loads the generator and the condition encoder of a model folder. When the folder is missing, it builds the default
configuration with random weights instead. It prints parameter counts and the median time to generate one
instance's LoRA factors for every target layer, at batch sizes 1 and 8.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch


def build_default():
    from hywu_cli.editor import LORA_TARGET_PATTERNS, LiteEditorNetwork
    from hywu_cli.generator import ParameterGeneratorNetwork
    from hywu_cli.injection import inject_generated_lora
    from hywu_cli.training import TrainConfig, generator_kwargs

    targets = inject_generated_lora(LiteEditorNetwork(), LORA_TARGET_PATTERNS)
    return ParameterGeneratorNetwork(**generator_kwargs(targets, TrainConfig()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=Path("weights/hywu-lite"))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from hywu_cli.condition import ConditionEncoderNetwork
    from hywu_cli.generator import ParameterGeneratorNetwork
    from hywu_cli.network_io import load_network

    if (args.model / "generator" / "config.json").is_file():
        generator = load_network(ParameterGeneratorNetwork, args.model / "generator")
        condition = load_network(ConditionEncoderNetwork, args.model / "condition_encoder")
        source = str(args.model)
    else:
        generator, condition, source = (
            build_default(),
            ConditionEncoderNetwork(),
            "default configuration, random weights",
        )
    generator.eval()
    layout = generator.layout
    print(f"generator: {source}")
    print(f"generator parameters: {generator.count_parameters():,}")
    print(f"condition encoder parameters: {sum(p.numel() for p in condition.parameters()):,}")
    print(
        f"targets: {layout.num_layers} layers, grid {layout.num_layers} x {layout.tokens_per_layer} tokens,"
        f" {layout.num_valid_tokens} real tokens of shape [{generator.hparams.rank}, {generator.hparams.token_dim}]"
    )
    generated = sum(t.in_features + t.out_features for t in layout.targets) * generator.hparams.rank
    print(f"LoRA values generated per instance: {generated:,}")

    cond_tokens = 32 + 16  # instruction tokens (at most) + image tokens
    for batch in (1, 8):
        cond = torch.randn(batch, cond_tokens, generator.hparams.cond_dim)
        times = []
        with torch.no_grad():
            generator(cond)
            for _ in range(args.repeats):
                start = time.perf_counter()
                generator(cond)
                times.append(time.perf_counter() - start)
        median = statistics.median(times)
        print(
            f"batch {batch}: {median * 1000:.1f} ms per call, {median / batch * 1000:.1f} ms per instance (median of {args.repeats}, {args.threads} threads)"
        )


if __name__ == "__main__":
    main()
