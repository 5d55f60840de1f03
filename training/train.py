"""The training loop: bucketed batches, AdamW with warm-up and cosine decay, CTC loss, validation
through the runtime's decoder, atomic checkpoints with exact resume, optional DDP under torchrun."""

from __future__ import annotations

import csv
import math
import os
import time
from dataclasses import dataclass, field
from datetime import timedelta

import numpy as np
import torch
import torch.distributed as dist

from asr.decoding import GreedyDecoder
from asr.audio import read_audio
from asr.features import FeatureConfig, FeatureExtractor
from asr.metrics import ErrorCounter
from asr.vocab import Vocabulary

from . import checkpoint as ckpt
from .config import TrainConfig
from .augment import WaveAugmenter
from .data import (DataError, FeatureSets, cached_features, collate, encode_utterances, feature_stats, make_batches,
                   read_manifest, speed_perturb)
from .model import ModelConfig, StreamingModel, build_model, passthrough_lookahead
from .onnx_import import InitError, load_init
from .targets import Heads, as_heads, heads_for, render


@dataclass
class Split:
    utts: list
    targets: list[list[int]]
    feats: dict[float, FeatureSets]  # by speed factor
    aux_targets: list[list[int]] | None = None  # the auxiliary phone head's

    @property
    def hours(self) -> float:
        return sum(u.duration for u in self.utts) / 3600


def _log(msg: str) -> None:
    if _rank() == 0:
        print(msg, flush=True)


def _rank() -> int:
    return dist.get_rank() if dist.is_initialized() else 0


def _world() -> int:
    return dist.get_world_size() if dist.is_initialized() else 1


def select(manifests: list[str], cfg: TrainConfig, feat_cfg: FeatureConfig, heads: Heads | Vocabulary,
           limits: bool = True, role: str = "") -> list[tuple[list, list[list[list[int]]]]]:
    """Per manifest, the utterances CTC can learn from and their targets (one list per head); DataError (naming
    the role and manifests) when none is left, since a split without utterances gives NaN statistics or no
    validation."""
    heads = as_heads(heads)
    hop = feat_cfg.hop_length / feat_cfg.sample_rate
    lo, hi = (cfg.min_seconds, cfg.max_seconds) if limits else (0.0, float("inf"))
    chosen, read = [], 0
    for m in manifests:
        utts = read_manifest(m)
        read += len(utts)
        heads.prepare(utts)
        chosen.append(encode_utterances(utts, heads.encoders, cfg.model.stack, hop, lo, hi,
                                        log=lambda msg: _log(f"{m}: {msg}")))
    if role and not any(kept for kept, _ in chosen):
        why = "the manifest is empty" if not read else f"all {read} were filtered out, for the reasons printed above"
        raise DataError(f"{', '.join(manifests)}: no {role} utterances: {why}")
    return chosen


def features_for(chosen, feat_cfg: FeatureConfig, speeds, cache_dir: str) -> Split:
    utts, targets, aux, parts = [], [], [], {s: [] for s in speeds}
    for kept, kept_targets in chosen:
        utts += kept
        targets += kept_targets[0]
        aux += kept_targets[1] if len(kept_targets) > 1 else []
        for s in speeds:
            parts[s].append(cached_features([u.audio for u in kept], feat_cfg, s, cache_dir))
    return Split(utts, targets, {s: FeatureSets(p) for s, p in parts.items()}, aux if aux else None)


def load_split(manifests: list[str], cfg: TrainConfig, feat_cfg: FeatureConfig, heads: Heads | Vocabulary,
               speeds, cache_dir: str, limits: bool = True) -> Split:
    return features_for(select(manifests, cfg, feat_cfg, heads, limits), feat_cfg, speeds, cache_dir)


def lr_lambda(cfg: TrainConfig, total_steps: int):
    def f(step: int) -> float:
        if step < cfg.warmup_steps:
            return (step + 1) / cfg.warmup_steps
        progress = min(1.0, (step - cfg.warmup_steps) / max(1, total_steps - cfg.warmup_steps))
        return cfg.final_lr_ratio + (1 - cfg.final_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))
    return f


def epoch_plan(split: Split, cfg: TrainConfig, epoch: int, batch_frames: int):
    """Deterministic per (seed, epoch): speed choice per utterance and the batch order, this rank's share."""
    rng = np.random.default_rng([cfg.seed, epoch])
    speeds = sorted(split.feats)
    choice = rng.integers(0, len(speeds), size=len(split.utts))
    lengths = np.array([split.feats[speeds[c]].length(i) for i, c in enumerate(choice)])
    batches = make_batches(lengths, batch_frames, rng)
    per_rank = len(batches) // _world()
    batches = batches[_rank() :: _world()][:per_rank]
    if cfg.max_steps_per_epoch:
        batches = batches[: cfg.max_steps_per_epoch]
    return [[(i, speeds[choice[i]]) for i in b] for b in batches]


def evaluate(model: StreamingModel, split: Split, feat_cfg: FeatureConfig, vocab: Vocabulary, device,
             batch_frames: int = 60000, units: str = "chars") -> dict:
    """Dev loss and greedy error rates (for a phone model: its phone error rate, word boundaries included)."""
    model.eval()
    fs = split.feats[1.0]
    mean, std = np.asarray(feat_cfg.mean), np.asarray(feat_cfg.std)
    lengths = np.array([fs.length(i) for i in range(len(fs))])
    errors, loss_sum, n = ErrorCounter(), 0.0, 0
    with torch.no_grad():
        for batch in make_batches(lengths, batch_frames, np.random.default_rng(0)):
            x, xl, y, yl = collate([fs.get(i) for i in batch], [split.targets[i] for i in batch],
                                   model.config.stack, mean, std, running=feat_cfg.running_norm())
            lp = model(torch.from_numpy(x).to(device))
            loss = torch.nn.functional.ctc_loss(lp.transpose(0, 1).float(), torch.from_numpy(y), torch.from_numpy(xl),
                                                torch.from_numpy(yl), blank=vocab.blank_id, reduction="sum",
                                                zero_infinity=True)
            loss_sum += float(loss)
            n += len(batch)
            lp = lp.float().cpu().numpy()
            for k, i in enumerate(batch):
                greedy = GreedyDecoder(vocab)
                greedy.accept(lp[k, : xl[k]])
                hyp = render([t.id for t in greedy.tokens], vocab, units)
                errors.add(render(split.targets[i], vocab, units), " ".join(hyp.split()))
    model.train()
    return {"loss": loss_sum / max(1, n), "wer": errors.wer, "cer": errors.cer}


@dataclass
class Run:
    """One training run between its set-up and its end: what the epochs share."""

    cfg: TrainConfig
    out_dir: str
    device: torch.device
    vocab: Vocabulary
    heads: Heads
    feat_cfg: FeatureConfig
    model: StreamingModel
    wrapped: torch.nn.Module  # the model, or its DDP wrapper
    opt: torch.optim.Optimizer
    sched: torch.optim.lr_scheduler.LambdaLR
    train_split: Split
    dev_split: Split
    meta: dict  # the run's description, in every checkpoint
    batch_frames: int
    augmenter: WaveAugmenter
    frontend: FeatureExtractor  # un-normalised features of augmented audio
    start_epoch: int = 0
    start_batch: int = 0
    best: dict = field(default_factory=lambda: {"wer": float("inf")})
    history: list = field(default_factory=list)
    board: object = None
    last_save: float = 0.0

    @property
    def state_path(self) -> str:
        return os.path.join(self.out_dir, "last.pt")

    def training_state(self, epoch: int, batch: int, dev: dict | None = None) -> dict:
        return ckpt.training_state(self.meta, self.model, self.opt, self.sched, epoch, batch, self.best, dev)

    def features(self, i: int, speed: float, rng: np.random.Generator) -> np.ndarray:
        """Utterance i's features at this speed: cached, or computed from augmented audio."""
        a, split = self.cfg.augment, self.train_split
        if not self.augmenter.wants(rng, a):
            return split.feats[speed].get(i)
        rate = self.feat_cfg.sample_rate
        samples = speed_perturb(read_audio(split.utts[i].audio, rate), speed, rate)
        self.frontend.reset()
        return self.frontend.accept(self.augmenter(samples, rng, a))


def train(train_manifests: list[str], dev_manifests: list[str], out_dir: str, cfg: TrainConfig,
          resume: bool = False, cache_dir: str | None = None, device: str | None = None) -> dict:
    run = setup(train_manifests, dev_manifests, out_dir, cfg, resume, cache_dir, device)
    for epoch in range(run.start_epoch, cfg.epochs):
        stats = train_epoch(run, epoch)
        if _rank() == 0:
            validate_and_save(run, epoch, stats)
    result = {"best": run.best, "history": run.history, "state_dict": run.model.state_dict()}
    if _rank() == 0 and cfg.average_last > 1:
        result["averaged"] = average_epochs(run, cfg.epochs, cfg.average_last)
    if dist.is_initialized():
        dist.barrier()
    return result


def setup(train_manifests: list[str], dev_manifests: list[str], out_dir: str, cfg: TrainConfig, resume: bool,
          cache_dir: str | None, device: str | None) -> Run:
    """DDP, the model (from init, or resumed), the data and its statistics, the optimiser and schedule.
    Everything that can refuse the run does so first, in seconds, not after hours of feature extraction."""
    if "WORLD_SIZE" in os.environ and int(os.environ["WORLD_SIZE"]) > 1 and not dist.is_initialized():
        # Long timeout: the other ranks wait while rank 0 computes the feature caches.
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo", timeout=timedelta(hours=3))
    if device is None:
        device = f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}" if torch.cuda.is_available() else "cpu"
    device = torch.device(device)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    os.makedirs(out_dir, exist_ok=True)
    cache_dir = cache_dir or os.path.join(out_dir, "cache")
    heads = heads_for(cfg.targets, cfg.aux_phone_weight)
    vocab = heads.vocab
    init = load_init(cfg.init) if cfg.init else None
    new_outputs = bool(init) and list(init["vocab"]) != list(vocab.tokens)
    if init:
        # The init's architecture, except that a plain model may grow a lookahead (model.lookahead = L).
        grow = cfg.model.lookahead if not init["train_config"]["model"].get("lookahead") else 0
        cfg.model = ModelConfig.from_dict({**init["train_config"]["model"], "dropout": cfg.model.dropout})
        if grow:
            cfg.model.lookahead = grow
            init["model"] = passthrough_lookahead(init["model"], cfg.model)
    cfg.model.vocab_size = len(vocab)
    cfg.model.aux_vocab_size = len(heads.aux_vocab) if heads.aux_vocab else 0
    if init and init["feature_config"].get("norm_seconds"):  # like the architecture: the init's own
        init_features = init["feature_config"]
        cfg.norm_seconds, cfg.norm_variance = init_features["norm_seconds"], init_features["norm_variance"]
    feat_cfg = FeatureConfig(n_mels=cfg.model.n_mels, norm_seconds=cfg.norm_seconds,
                             norm_variance=cfg.norm_variance).with_mel_matrix()

    torch.manual_seed(cfg.seed)
    model = build_model(cfg.model).to(device)
    if init:
        # The init's weights, but not an auxiliary head this run does not train, nor the output layer of other
        # targets than the init's (characters -> phones); heads the init lacks (exports drop aux) start fresh.
        own = model.state_dict()
        weights = {k: v for k, v in init["model"].items()
                   if not (k.startswith("aux.") and k not in own or new_outputs and k.startswith("out."))}
        fresh = {k: v for k, v in own.items() if k.startswith(("aux.", "out."))}
        ckpt.load_weights(model, {**fresh, **weights}, cfg.init)
    state_path = os.path.join(out_dir, "last.pt")
    resumed = (ckpt.load_training_state(state_path, model, cfg.lr, device)
               if resume and os.path.exists(state_path) else None)
    train_chosen = select(train_manifests, cfg, feat_cfg, heads, role="training")
    dev_chosen = select(dev_manifests, cfg, feat_cfg, heads, limits=False, role="dev")

    if _rank() != 0:  # rank 0 fills the feature caches, the others then read them
        dist.barrier()
    train_split = features_for(train_chosen, feat_cfg, cfg.augment.speeds or (1.0,), cache_dir)
    dev_split = features_for(dev_chosen, feat_cfg, (1.0,), cache_dir)
    if _rank() == 0 and dist.is_initialized():
        dist.barrier()
    if init:
        mean, std = (np.asarray(init["feature_config"][k], dtype=np.float32) for k in ("mean", "std"))
    else:
        mean, std = feature_stats(train_split.feats[1.0] if 1.0 in train_split.feats
                                  else next(iter(train_split.feats.values())))
    feat_cfg.mean, feat_cfg.std = mean.tolist(), std.tolist()
    _log(f"train: {len(train_split.utts)} utterances, {train_split.hours:.2f} h; "
         f"dev: {len(dev_split.utts)} utterances, {dev_split.hours:.2f} h")
    if init:
        fresh_outputs = (f"; its {len(init['vocab'])} outputs are not the {len(vocab)} of targets = {cfg.targets!r}: "
                         "a fresh output layer") if new_outputs else ""
        _log(f"weights from {cfg.init} (epoch {init.get('epoch')}){fresh_outputs}")
    n_params = sum(p.numel() for p in model.parameters())
    _log(f"model: {n_params / 1e6:.2f} M parameters, {cfg.model}")

    wrapped = torch.nn.parallel.DistributedDataParallel(model) if dist.is_initialized() else model
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    batch_frames = int(cfg.batch_seconds * feat_cfg.sample_rate / feat_cfg.hop_length)
    steps_per_epoch = len(epoch_plan(train_split, cfg, 0, batch_frames))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(cfg, steps_per_epoch * cfg.epochs))
    meta = {
        "train_config": cfg.to_dict(),
        "feature_config": feat_cfg.to_dict(),
        "vocab": list(vocab.tokens),
        "blank_id": vocab.blank_id,
        "units": heads.units,
        "data": {"train": train_manifests, "train_hours": round(train_split.hours, 3),
                 "train_utterances": len(train_split.utts), "dev": dev_manifests},
        "parameters": n_params,
    }
    run = Run(cfg, out_dir, device, vocab, heads, feat_cfg, model, wrapped, opt, sched, train_split, dev_split, meta,
              batch_frames, WaveAugmenter(cfg.augment.noise_dir, cfg.augment.rir_dir, feat_cfg.sample_rate),
              FeatureExtractor(feat_cfg, normalize=False), board=_tensorboard(out_dir))
    if resumed:
        opt.load_state_dict(resumed["optimizer"])
        sched.load_state_dict(resumed["scheduler"])
        run.start_epoch, run.start_batch = resumed["epoch"], resumed["batch"]
        run.best = resumed.get("best", run.best)
        _log(f"resumed from {state_path} at epoch {run.start_epoch + 1}, batch {run.start_batch}")
    run.last_save = time.monotonic()
    return run


def train_epoch(run: Run, epoch: int) -> dict:
    """One pass over this rank's batches of the epoch (from run.start_batch when resuming), saving the
    training state every checkpoint_minutes; the epoch's training figures."""
    cfg, device, model = run.cfg, run.device, run.model
    mean, std = np.asarray(run.feat_cfg.mean), np.asarray(run.feat_cfg.std)
    plan = epoch_plan(run.train_split, cfg, epoch, run.batch_frames)
    bar = _bar(plan, epoch, cfg.epochs, run.start_batch)
    t0, audio_s, loss_sum, loss_n, skipped = time.monotonic(), 0.0, 0.0, 0, 0
    for b in range(run.start_batch, len(plan)):
        items = plan[b]
        # Every batch seeds its own RNGs, so a resumed run replays exactly what it would have done.
        rng = np.random.default_rng([cfg.seed, epoch, b, _rank()])
        torch.manual_seed(hash((cfg.seed, epoch, b, _rank())) & 0x7FFFFFFF)
        x, xl, y, yl = collate([run.features(i, s, rng) for i, s in items],
                               [run.train_split.targets[i] for i, _ in items], cfg.model.stack, mean, std,
                               rng, cfg.augment, run.feat_cfg.running_norm())
        aux = cfg.aux_phone_weight
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            out = run.wrapped(torch.from_numpy(x).to(device), aux=bool(aux))
        lp, aux_lp = out if aux else (out, None)
        loss = _ctc(lp, y, xl, yl, run.vocab.blank_id, device) / len(items)
        if aux:
            ay = [run.train_split.aux_targets[i] for i, _ in items]
            ay_flat = np.concatenate([np.asarray(t, dtype=np.int64) for t in ay])
            ayl = np.array([len(t) for t in ay], dtype=np.int64)
            aux_loss = _ctc(aux_lp, ay_flat, xl, ayl, run.heads.aux_vocab.blank_id, device) / len(items)
            loss = (1 - aux) * loss + aux * aux_loss
        run.opt.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        if torch.isfinite(loss) and torch.isfinite(grad_norm):
            run.opt.step()
            loss_sum += loss.item()
            loss_n += 1
        else:
            skipped += 1
            _log(f"epoch {epoch + 1} batch {b}: non-finite loss or gradient, batch skipped")
        run.sched.step()
        audio_s += float(xl.sum()) * cfg.model.stack * run.feat_cfg.hop_length / run.feat_cfg.sample_rate
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{loss_sum / max(1, loss_n):.3f}", lr=f"{run.sched.get_last_lr()[0]:.2e}",
                            audio_per_s=f"{audio_s / max(1e-9, time.monotonic() - t0):.0f}")
        if _rank() == 0 and time.monotonic() - run.last_save > cfg.checkpoint_minutes * 60:
            ckpt.save(run.training_state(epoch, b + 1), run.state_path)
            run.last_save = time.monotonic()
    if bar is not None:
        bar.close()
    run.start_batch = 0
    return {"train_loss": loss_sum / max(1, loss_n), "audio_seconds": audio_s, "skipped_batches": skipped,
            "seconds": time.monotonic() - t0}


def _ctc(lp, y, xl, yl, blank: int, device) -> torch.Tensor:
    return torch.nn.functional.ctc_loss(lp.transpose(0, 1).float(), torch.from_numpy(y).to(device),
                                        torch.from_numpy(xl).to(device), torch.from_numpy(yl).to(device),
                                        blank=blank, reduction="sum", zero_infinity=True)


def validate_and_save(run: Run, epoch: int, stats: dict) -> None:
    """After epoch (0-based) on rank 0: dev scores, the metrics row, and the best, epoch and resume checkpoints."""
    dev = evaluate(run.model, run.dev_split, run.feat_cfg, run.vocab, run.device, units=run.heads.units)
    elapsed = stats["seconds"]
    row = {"epoch": epoch + 1, "train_loss": round(stats["train_loss"], 4),
           "dev_loss": round(dev["loss"], 4), "dev_wer": round(dev["wer"], 4), "dev_cer": round(dev["cer"], 4),
           "lr": run.sched.get_last_lr()[0], "audio_per_second": round(stats["audio_seconds"] / max(1e-9, elapsed), 1),
           "skipped_batches": stats["skipped_batches"], "seconds": round(elapsed, 1)}
    run.history.append(row)
    _log(" ".join(f"{k}={v}" for k, v in row.items()))
    _append_csv(os.path.join(run.out_dir, "metrics.csv"), row)
    if run.board is not None:
        for k, v in row.items():
            if k != "epoch":
                run.board.add_scalar(k, v, epoch + 1)
        run.board.flush()
    if dev["wer"] < run.best["wer"]:
        run.best = {"wer": dev["wer"], "cer": dev["cer"], "epoch": epoch + 1}
        ckpt.save(run.training_state(epoch + 1, 0, dev), os.path.join(run.out_dir, "best.pt"))
    ckpt.save(ckpt.weights(run.meta, run.model.state_dict(), epoch + 1, dev),
              os.path.join(run.out_dir, f"epoch-{epoch + 1}.pt"))
    ckpt.save(run.training_state(epoch + 1, 0), run.state_path)
    run.last_save = time.monotonic()


def average_epochs(run: Run, last_epoch: int, n: int) -> dict | None:
    """Average the weights of the last n epoch checkpoints into averaged.pt and validate it."""
    paths = [os.path.join(run.out_dir, f"epoch-{e}.pt") for e in range(last_epoch - n + 1, last_epoch + 1)]
    paths = [p for p in paths if os.path.exists(p)]
    if len(paths) < 2:
        return None
    averaged = ckpt.average(paths)
    run.model.load_state_dict(averaged["model"])
    dev = evaluate(run.model, run.dev_split, run.feat_cfg, run.vocab, run.device, units=run.heads.units)
    ckpt.save({**averaged, "dev": dev}, os.path.join(run.out_dir, "averaged.pt"))
    _log(f"averaged {len(paths)} checkpoints: dev wer={dev['wer']:.4f} cer={dev['cer']:.4f}")
    return dev


def _tensorboard(out_dir: str):
    """A SummaryWriter when tensorboard is installed (optional), else None."""
    if _rank() != 0:
        return None
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter(os.path.join(out_dir, "tensorboard"))


def _append_csv(path: str, row: dict) -> None:
    new = not os.path.exists(path)
    with open(path, "a", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(row))
        if new:
            w.writeheader()
        w.writerow(row)


def _bar(plan, epoch, epochs, start):
    if _rank() != 0:
        return None
    from tqdm import tqdm

    return tqdm(total=len(plan), initial=start, desc=f"epoch {epoch + 1}/{epochs}", unit="batch", dynamic_ncols=True,
                mininterval=5)
