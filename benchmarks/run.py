"""The benchmark harness (`make bench`): frontend, models in every runtime and format, end to end, memory,
cold start and sizes, side by side in one run, single-threaded by default.

    python -m benchmarks.run [--threads N] [--seconds S] [--out benchmarks/results] [--quick] [--readme]

Writes ``benchmarks/results/<machine>.json`` (every number, the machine, its load before and after, the protocol)
and ``<machine>.md`` (the table), and with ``--readme`` puts the table into docs/benchmarks.md's bench block.  Ratios are
the headline; absolute times hold for the machine named in the file.  The targets of issue 6 are recorded with
each result (pass/fail), they are not timed tests.
"""
from __future__ import annotations

import argparse
import os
import sys


def _threads_from_argv(argv) -> int:
    for i, a in enumerate(argv):
        if a == "--threads" and i + 1 < len(argv):
            return int(argv[i + 1])
        if a.startswith("--threads="):
            return int(a.split("=", 1)[1])
    return 1


# Single-threaded unless asked: set before numpy/onnxruntime/TensorFlow load their thread pools.
_T = str(_threads_from_argv(sys.argv))
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ.setdefault(_var, _T)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import json  # noqa: E402
import re  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import soundfile as sf  # noqa: E402

from edge_ser import bench  # noqa: E402
from edge_ser.audio import load_audio  # noqa: E402
from edge_ser.features import clip_windows  # noqa: E402
from edge_ser.frontend import FrontendConfig  # noqa: E402
from edge_ser.manifest import read_manifest  # noqa: E402
from edge_ser.registry import DEFAULT_MODELS_DIR, load_model  # noqa: E402

from . import e2e_bench, frontend_bench, listen_memory, models_bench  # noqa: E402
from .report import TARGETS, check_targets, markdown, update_readme  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
# every shipped model the harness measures, listen's default and the fine16 models first (those installed)
DEFAULT_NAMES = ("fine16-linear", "fine16-rfc", "fine16-cnn", "fine16-timnet", "fine16-fusion", "fine16-aae", "fine16-ensemble",
                 "fine15-rfc", "fine15-cnn", "basic6-rfc", "basic6-cnn")


def data_root() -> Path:
    return Path(os.environ.get("EDGE_SER_DATA", REPO.parent / "shared" / "data")).resolve()


def real_clips(n: int) -> list[Path]:
    """``n`` CREMA-D clips spread over the actors (every k-th file, sorted: deterministic), or [] if absent."""
    folder = data_root() / "cremad" / "AudioWAV"
    if not folder.is_dir():
        return []
    files = sorted(list(folder.glob("*.flac")) + list(folder.glob("*.wav")))
    step = max(1, len(files) // n)
    return files[::step][:n]


def model_windows(model_dir: Path, clips: list[np.ndarray], limit: int = 600) -> np.ndarray:
    m = load_model(model_dir)
    xs = []
    for y in clips:
        x = np.stack([m.input_for(w) for w in clip_windows(m.frames(y), m.n_frames, m.hop_frames(), m.pad)])
        # as the model sees them: a speaker-normalised model adapts to the clip, as `classify FILE` does
        xs.extend(m.normalize(x, m.speaker_stats().update(x)) if m.speaker_norm is not None else x)
        if len(xs) >= limit:
            break
    return np.stack(xs[:limit]).astype(np.float32)


def default_models() -> list[Path]:
    return [DEFAULT_MODELS_DIR / n for n in DEFAULT_NAMES if (DEFAULT_MODELS_DIR / n / "manifest.json").is_file()]


def machine_slug(m: dict) -> str:
    cpu = re.sub(r"[^a-z0-9]+", "-", (m.get("cpu") or "cpu").lower()).strip("-")[:32]
    return f"{m['arch']}-{cpu}-{m['cores']}core"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=1, help="threads for numpy/onnxruntime/TFLite/Keras (default 1)")
    ap.add_argument("--seconds", type=float, default=30.0, help="audio streamed per end-to-end measurement")
    ap.add_argument("--rounds", type=int, default=7, help="interleaved timing rounds")
    ap.add_argument("--clips", type=int, default=120, help="real clips for the int8 agreement windows")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    ap.add_argument("--name", help="result file name (default: from the machine)")
    ap.add_argument("--quick", action="store_true", help="fewer rounds and seconds (smoke run)")
    ap.add_argument("--docs", "--readme", dest="readme", action="store_true",
                    help="write the table into docs/benchmarks.md's bench block")
    ap.add_argument("--model", action="append", type=Path, help="model directory to bench instead of the defaults "
                    "(repeatable)")
    args = ap.parse_args(argv)
    if args.quick:
        args.rounds, args.seconds, args.clips = 3, 8.0, 20
    threads = args.threads
    log = lambda msg: print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)  # noqa: E731

    machine_before = bench.machine()
    started = time.time()
    results: dict = {"machine": machine_before, "threads": threads, "started_utc": time.strftime(
        "%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)), "targets": TARGETS}

    models = [Path(d) for d in args.model] if args.model else default_models()
    if not models:
        log(f"no default models in {DEFAULT_MODELS_DIR}: model sections skipped")
    sample = load_audio(bench.SAMPLE_CLIP)
    cfg = read_manifest(models[0]).frontend_config if models else FrontendConfig()
    window_s = max((read_manifest(m).window_seconds for m in models), default=3.0)

    # --- frontend ---------------------------------------------------------------------------------------------
    log("frontend vs librosa (whole clip), vs its rfft floor, streaming update vs recompute")
    ten_s = np.resize(sample, int(10 * cfg.sample_rate)).astype(np.float32)
    long_clip = np.resize(sample, int(30 * cfg.sample_rate)).astype(np.float32)
    results["frontend"] = {
        "config": cfg.to_dict(),
        "whole_clip": [frontend_bench.whole_clip(sample, cfg, "sample.wav (CREMA-D 1008_IEO_ANG_HI)", args.rounds),
                       frontend_bench.whole_clip(ten_s, cfg, "10 s (sample.wav looped)", args.rounds),
                       frontend_bench.whole_clip(long_clip, cfg, "30 s (sample.wav looped)", args.rounds)],
        "streaming": frontend_bench.streaming(cfg, window_s, 0.5, np.resize(sample, int(120 * cfg.sample_rate))
                                              .astype(np.float32), args.rounds),
        "protocol": (f"interleaved rounds ({args.rounds}), min over calls (median also kept); {threads} thread(s); "
                     "librosa 0.11 power_to_db(melspectrogram(...)) with the same settings; floor = numpy rfft "
                     "of the same (unwindowed) frames, whole or in blocks of 64, whichever is faster"),
    }

    # --- models in every runtime -----------------------------------------------------------------------------
    clip_paths = real_clips(args.clips)
    clips = [sample] + [load_audio(p) for p in clip_paths]
    results["models"] = []
    for d in models:
        log(f"model {d.name}: runtimes and formats")
        X = model_windows(d, clips)
        r = models_bench.bench_model(d, X, threads=threads, rounds=args.rounds)
        r["windows"] = (f"{len(X)} windows (clip_windows, hop 0.5 s) of sample.wav + {len(clip_paths)} CREMA-D "
                        "clips spread over all actors (training and test speakers alike: agreement, not accuracy)")
        results["models"].append(r)

    # --- end to end -------------------------------------------------------------------------------------------
    results["end_to_end"] = []
    results["listen"] = []
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "replay.wav"
        sf.write(wav, np.resize(sample, int(30 * cfg.sample_rate)), cfg.sample_rate, subtype="PCM_16")
        for d in models:
            for fmt in read_manifest(d).formats:
                log(f"end to end: {d.name} {fmt}")
                try:
                    results["end_to_end"].append(e2e_bench.hop_cost(str(d), fmt, threads, args.seconds))
                except Exception as exc:  # recorded, the run goes on
                    results["end_to_end"].append({"model": d.name, "format": fmt, "error": str(exc)})
                log(f"listen --fast: {d.name} {fmt}")
                lr = e2e_bench.listen(str(d), fmt, wav, runs=3, threads=threads)
                results["listen"].append(dict(model=read_manifest(d).name, format=fmt, input="30 s replay (sample.wav looped)",
                                              **lr))
        log("listen memory by stage")
        results["listen_memory"] = [listen_memory.stages(str(d), fmt, wav, threads) for d in models
                                    for fmt in read_manifest(d).formats]

    if models:
        cnn = next((d for d in models if read_manifest(d).kind == "cnn"), models[0])
        fmt = read_manifest(cnn).formats[0]
        log(f"BLAS threads: {cnn.name} {fmt} with numpy's BLAS on every core vs one thread")
        results["blas_threads"] = dict(model=cnn.name, format=fmt, **e2e_bench.blas_threads(str(cnn), fmt))

    results["machine_after"] = {"loadavg_1_5_15": bench.machine()["loadavg_1_5_15"]}
    results["duration_s"] = round(time.time() - started, 1)
    results["target_results"] = check_targets(results)
    args.out.mkdir(parents=True, exist_ok=True)
    name = args.name or machine_slug(machine_before)
    (args.out / f"{name}.json").write_text(json.dumps(results, indent=2, default=float) + "\n")
    md = markdown(results, f"benchmarks/results/{name}.json")
    (args.out / f"{name}.md").write_text(md)
    print(md)
    if args.readme:
        update_readme(REPO / "docs" / "benchmarks.md", md)
        log("README.md bench block updated")
    log(f"wrote {args.out / (name + '.json')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
