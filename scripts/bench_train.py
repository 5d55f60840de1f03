"""Training throughput of a configuration: audio seconds processed per wall second.

    python scripts/bench_train.py [--config recipes/bundled.toml] [--steps 10] [--device cpu|cuda]

Times forward + CTC loss + backward + optimiser step on full batches of random features shaped like
the configuration's batches (batch_seconds of audio, 10 s utterances), after two warm-up steps.
"""

import argparse
import json
import time

import torch

from training.config import load_config
from training.model import build_model


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--config")
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--utterance-seconds", type=float, default=10.0)
    args = p.parse_args()
    cfg = load_config(args.config)
    device = torch.device(args.device)
    model = build_model(cfg.model).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr)
    n = max(1, int(cfg.batch_seconds // args.utterance_seconds))
    frames = int(args.utterance_seconds * 100) // cfg.model.stack * cfg.model.stack
    x = torch.randn(n, frames, cfg.model.n_mels, device=device)
    y = torch.randint(1, cfg.model.vocab_size, (n, frames // cfg.model.stack // 3), device=device)
    xl = torch.full((n,), frames // cfg.model.stack, dtype=torch.long)
    yl = torch.full((n,), y.shape[1], dtype=torch.long)

    def step():
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            lp = model(x)
        loss = torch.nn.functional.ctc_loss(lp.transpose(0, 1).float(), y, xl, yl, reduction="sum") / n
        opt.zero_grad()
        loss.backward()
        opt.step()

    for _ in range(2):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(args.steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    elapsed = time.perf_counter() - t0
    audio = args.steps * n * args.utterance_seconds
    print(json.dumps({"device": str(device), "threads": torch.get_num_threads(),
                      "parameters": sum(p.numel() for p in model.parameters()), "batch_utterances": n,
                      "audio_seconds_per_second": round(audio / elapsed, 1), "steps": args.steps}))


if __name__ == "__main__":
    main()
