"""Synthesis throughput of course_lib.synth against a per-sample NumPy/Python loop of the same patch.

    python benchmarks/bench_synth.py            # 256 voices x 1 s at 16 kHz
    python benchmarks/bench_synth.py --quick    # tiny smoke run

Patches (all voices different, seeded):
  (a) subtractive bass: band-limited saw (PolyBLEP: the notes are below 123 Hz, so the library
      takes the same PolyBLEP path as the loop) -> ladder lowpass whose cutoff follows the ADSR
      (3 octaves) -> ADSR amp; the same patch with the RBJ biquad lowpass instead of the ladder;
  (b) 2-operator FM with a decaying index envelope and an ADSR amp.
The baseline renders the SAME patches sample by sample in Python/NumPy on a few voices; its
time is scaled to the full batch, and its output is compared with the library's (max abs diff).
"x real-time" = seconds of audio produced per second of compute (voices x duration / time).
The library's ladder runs a compiled (numba) kernel on the CPU; the same patch through the torch
reference path (``COURSE_NO_NUMBA=1``: a Python loop over samples, vectorised over voices) is timed
in the same run. torchsynth's stock Voice (2 VCOs + noise, envelopes, LFOs, no filter) is timed
beside (installed by ``make bench``: the ``bench`` extra) as an outside reference; it is not the
same patch. Every time is the median of ``--repeats`` runs (one torch thread by default, like the
loop); the loop baseline is the median over its voices. Results go to build/bench/synth.json.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
import types
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from timing import load_note, machine, median_time  # noqa: E402

from course_lib.synth.core import midi_to_hz  # noqa: E402
from course_lib.synth.envelopes import adsr  # noqa: E402
from course_lib.synth.fm import fm2  # noqa: E402
from course_lib.synth import kernels  # noqa: E402
from course_lib.synth.subtractive import subtractive_voice  # noqa: E402

SR = 16000
SUB = dict(cutoff_hz=150.0, resonance=0.4, filter_env_amount=3.0, attack=0.01, decay=0.3, sustain=0.3, release=0.2)
FM = dict(ratio=2.0, index=6.0, index_decay=0.4, attack=0.005, decay=0.5, sustain=0.2, release=0.2)


# ------------------------------------------------------------------------------------ library patches


def lib_subtractive(f0: torch.Tensor, seconds: float, filt: str, device: torch.device) -> torch.Tensor:
    """Patch (a) with course_lib: (voices,) f0 in Hz -> (voices, samples)."""
    return subtractive_voice(f0.to(device), seconds, SR, wave="saw", filter=filt, **SUB)


def lib_fm(f0: torch.Tensor, seconds: float, device: torch.device) -> torch.Tensor:
    """Patch (b) with course_lib: (voices,) f0 in Hz -> (voices, samples)."""
    f0 = f0.to(device)
    note = seconds - FM["release"]
    index_env = adsr(0.0, FM["index_decay"], 0.0, 0.0, seconds, seconds, SR, batch=len(f0), device=device)
    amp = adsr(FM["attack"], FM["decay"], FM["sustain"], FM["release"], note, seconds, SR, batch=len(f0), device=device)
    return fm2(f0, FM["ratio"], FM["index"], seconds, SR, index_envelope=index_env) * amp


# ------------------------------------------------------------------------------------ per-sample baseline


def _adsr_at(t: float, a: float, d: float, s: float, r: float, off: float) -> float:
    def pre(u: float) -> float:
        if u < a:
            return u / a if a > 0 else 1.0
        if u < a + d:
            return 1.0 - (1.0 - s) * (u - a) / d if d > 0 else s
        return s
    if t < off:
        return pre(t)
    return pre(off) * min(max(1.0 - (t - off) / r, 0.0), 1.0) if r > 0 else 0.0


def _polyblep(t: float, dt: float) -> float:
    if t < dt:
        x = t / dt
        return 2 * x - x * x - 1.0
    if t > 1.0 - dt:
        x = (t - 1.0) / dt
        return x * x + 2 * x + 1.0
    return 0.0


def loop_subtractive(f0: float, seconds: float, filt: str) -> np.ndarray:
    """One voice, one sample at a time: PolyBLEP saw -> ladder or block-rate RBJ lowpass -> ADSR."""
    n = int(round(seconds * SR))
    a, d, s, r = SUB["attack"], SUB["decay"], SUB["sustain"], SUB["release"]
    off = max(seconds - r, 0.0)
    out = np.zeros(n)
    phase, dt = 0.0, f0 / SR
    st = [0.0, 0.0, 0.0, 0.0]
    k = 4.0 * SUB["resonance"]
    q = 0.7071 * 2.0 ** (4.0 * SUB["resonance"])
    x1 = x2 = y1 = y2 = 0.0
    b0 = b1 = b2 = a1 = a2 = 0.0
    block = 32
    env_block = []
    for i in range(n):
        env = _adsr_at(i / SR, a, d, s, r, off)
        saw = 2.0 * phase - 1.0 - _polyblep(phase, dt)
        phase += dt
        phase -= math.floor(phase)
        if filt == "ladder":
            fc = min(max(SUB["cutoff_hz"] * 2.0 ** (SUB["filter_env_amount"] * env), 20.0), 0.45 * SR)
            g = math.tan(math.pi * fc / SR)
            G = g / (1.0 + g)
            S = [(1.0 - G) * v for v in st]
            sigma = G**3 * S[0] + G**2 * S[1] + G * S[2] + S[3]
            u = math.tanh((saw - k * sigma) / (1.0 + k * G**4))
            y = u
            for j in range(4):
                y = G * y + S[j]
                st[j] = 2.0 * y - st[j]
            out[i] = y * env
        else:
            if i % block == 0:  # coefficients from the block-mean cutoff
                j0, j1 = i, min(i + block, n)
                env_block = [_adsr_at(m / SR, a, d, s, r, off) for m in range(j0, j1)]
                fcs = [min(max(SUB["cutoff_hz"] * 2.0 ** (SUB["filter_env_amount"] * e), 20.0), 0.45 * SR) for e in env_block]
                w0 = 2 * math.pi * (sum(fcs) / len(fcs)) / SR
                alpha = math.sin(w0) / (2 * q)
                cw = math.cos(w0)
                a0 = 1 + alpha
                b0, b1, b2 = (1 - cw) / 2 / a0, (1 - cw) / a0, (1 - cw) / 2 / a0
                a1, a2 = -2 * cw / a0, (1 - alpha) / a0
            y = b0 * saw + b1 * x1 + b2 * x2 - a1 * y1 - a2 * y2
            x2, x1, y2, y1 = x1, saw, y1, y
            out[i] = y * env
    return out


def loop_fm(f0: float, seconds: float) -> np.ndarray:
    """One voice, one sample at a time: 2-op FM with decaying index and ADSR amp."""
    n = int(round(seconds * SR))
    out = np.zeros(n)
    pc = pm = 0.0
    fm_hz = f0 * FM["ratio"]
    off = seconds - FM["release"]
    for i in range(n):
        t = i / SR
        index = FM["index"] * _adsr_at(t, 0.0, FM["index_decay"], 0.0, 0.0, seconds)
        amp = _adsr_at(t, FM["attack"], FM["decay"], FM["sustain"], FM["release"], off)
        out[i] = amp * math.sin(2 * math.pi * pc + index * math.sin(2 * math.pi * pm))
        pc = (pc + f0 / SR) % 1.0
        pm = (pm + fm_hz / SR) % 1.0
    return out


# ------------------------------------------------------------------------------------ torchsynth


def torchsynth_voice(batch: int, seconds: float):
    """torchsynth's stock Voice, or a reason string. Shims two imports that torchsynth 1.0.2 needs
    and that current setuptools / pytorch-lightning no longer provide (local to this process)."""
    try:
        try:
            import pkg_resources  # noqa: F401
        except ModuleNotFoundError:
            import importlib.resources as res

            shim = types.ModuleType("pkg_resources")
            shim.resource_string = lambda pkg, name: (res.files(pkg.rsplit(".", 1)[0]) / name).read_bytes()
            sys.modules["pkg_resources"] = shim
        import pytorch_lightning.core.module as plm

        sys.modules.setdefault("pytorch_lightning.core.lightning", plm)
        from torchsynth.config import SynthConfig
        from torchsynth.synth import Voice
    except Exception as exc:  # noqa: BLE001 - any import failure means "skip, with the reason"
        return f"skipped: torchsynth not importable ({type(exc).__name__}: {exc})"
    if batch < 2:
        return "skipped: batch too small for torchsynth"
    cfg = SynthConfig(batch_size=batch, sample_rate=SR, buffer_size_seconds=seconds, reproducible=False)
    return Voice(synthconfig=cfg)


# ------------------------------------------------------------------------------------ timing


def torch_reference(fn):
    """``fn`` run with the compiled kernels switched off (the torch reference path)."""
    def run(*args):
        old = os.environ.get("COURSE_NO_NUMBA")
        os.environ["COURSE_NO_NUMBA"] = "1"
        try:
            return fn(*args)
        finally:
            if old is None:
                del os.environ["COURSE_NO_NUMBA"]
            else:
                os.environ["COURSE_NO_NUMBA"] = old
    return run


def main() -> int:
    """Time every patch, print the table, write build/bench/synth.json."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="tiny smoke run")
    ap.add_argument("--voices", type=int, default=None)
    ap.add_argument("--seconds", type=float, default=None)
    ap.add_argument("--repeats", type=int, default=None, help="timed runs per patch (median reported)")
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1, like the loop)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    voices = args.voices or (8 if args.quick else 256)
    seconds = args.seconds or (0.25 if args.quick else 1.0)
    loop_voices = 1 if args.quick else 9
    repeats = args.repeats or (1 if args.quick else 7)
    load_before = machine()["load_average"]

    gen = torch.Generator().manual_seed(0)
    midi = torch.randint(28, 47, (voices,), generator=gen).float()  # E1..A#2: 41-117 Hz (PolyBLEP path)
    f0 = midi_to_hz(midi)
    audio_s = voices * seconds
    rows: list[dict] = []
    cpu = torch.device("cpu")

    patches = {
        "subtractive (saw->ladder+env->ADSR)": (lambda dev: lib_subtractive(f0, seconds, "ladder", dev),
                                                lambda f: loop_subtractive(f, seconds, "ladder")),
        "subtractive (saw->biquad LP+env->ADSR)": (lambda dev: lib_subtractive(f0, seconds, "lowpass", dev),
                                                   lambda f: loop_subtractive(f, seconds, "lowpass")),
        "FM 2-op (index env, ADSR)": (lambda dev: lib_fm(f0, seconds, dev), lambda f: loop_fm(f, seconds)),
    }
    patches["subtractive (ladder), torch reference path"] = (
        torch_reference(patches["subtractive (saw->ladder+env->ADSR)"][0]), patches["subtractive (saw->ladder+env->ADSR)"][1])
    for name, (lib_fn, loop_fn) in patches.items():
        reference = name.endswith("torch reference path")
        t_lib = median_time(lambda: lib_fn(cpu), 3 if reference and not args.quick else repeats)
        ref = lib_fn(cpu)[:loop_voices].double().numpy()
        loop_out, loop_times = [], []
        for i in range(loop_voices):  # the loop's time per voice: median over its voices
            t0 = time.perf_counter()
            loop_out.append(loop_fn(float(f0[i])))
            loop_times.append(time.perf_counter() - t0)
        t_loop = statistics.median(loop_times) * voices  # scaled to the full batch
        row = {
            "patch": name, "device": "cpu", "voices": voices, "seconds": seconds,
            "time_s": t_lib, "x_realtime": audio_s / t_lib,
            "loop_time_s_scaled": t_loop, "loop_x_realtime": audio_s / t_loop,
            "speedup_vs_loop": t_loop / t_lib, "max_abs_diff_vs_loop": float(np.abs(ref - np.stack(loop_out)).max()),
            "compiled_kernels": kernels.available() and not reference,
        }
        if torch.cuda.is_available():
            gpu = torch.device("cuda")
            t_gpu = median_time(lambda: lib_fn(gpu), repeats, device=gpu)
            row.update(cuda_time_s=t_gpu, cuda_x_realtime=audio_s / t_gpu, cuda_speedup_vs_cpu=t_lib / t_gpu)
        rows.append(row)
    by_name = {r["patch"]: r for r in rows}
    lad, lad_ref = by_name["subtractive (saw->ladder+env->ADSR)"], by_name["subtractive (ladder), torch reference path"]
    lad["speedup_vs_torch_reference"] = lad_ref["time_s"] / lad["time_s"]

    ts = torchsynth_voice(voices, seconds)
    if isinstance(ts, str):
        torchsynth_row = {"status": ts}
    else:
        t_ts = median_time(lambda: ts(), repeats)
        torchsynth_row = {"status": "ok", "patch": "torchsynth Voice (2 VCO + noise, no filter)",
                          "time_s": t_ts, "x_realtime": audio_s / t_ts}

    print(f"\n{voices} voices x {seconds:g} s at {SR} Hz, torch {torch.__version__}, "
          f"{torch.get_num_threads()} CPU threads, median of {repeats}; loop baseline: median of "
          f"{loop_voices} voice(s), scaled; {load_note()}; compiled kernels: {kernels.available()}")
    print(f"{'patch':42s} {'lib s':>8s} {'lib xRT':>9s} {'loop xRT':>9s} {'speedup':>8s} {'max|diff|':>10s}")
    for r in rows:
        print(f"{r['patch']:42s} {r['time_s']:8.3f} {r['x_realtime']:9.1f} {r['loop_x_realtime']:9.2f} "
              f"{r['speedup_vs_loop']:7.1f}x {r['max_abs_diff_vs_loop']:10.2e}")
        if "cuda_time_s" in r:
            print(f"{'  on CUDA':42s} {r['cuda_time_s']:8.3f} {r['cuda_x_realtime']:9.1f} "
                  f"{'':9s} {r['cuda_speedup_vs_cpu']:7.1f}x vs CPU")
    print(f"ladder patch: {lad['speedup_vs_torch_reference']:.1f}x the torch reference path; goal >= 1,000x real "
          f"time and >= 50x the loop: {'met' if lad['x_realtime'] >= 1000 and lad['speedup_vs_loop'] >= 50 else 'NOT met'}")
    if torchsynth_row["status"] == "ok":
        print(f"{torchsynth_row['patch']:42s} {torchsynth_row['time_s']:8.3f} {torchsynth_row['x_realtime']:9.1f}")
    else:
        print("torchsynth:", torchsynth_row["status"])
    if not torch.cuda.is_available():
        print("CUDA: not available on this machine")

    out = ROOT / "build" / "bench" / "synth.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"sr": SR, "voices": voices, "seconds": seconds, "threads": torch.get_num_threads(),
                               "torch": torch.__version__, "cuda": torch.cuda.is_available(),
                               "repeats": repeats, "loop_voices": loop_voices, "load_average_before": load_before,
                               "machine": machine(), "patches": rows, "torchsynth": torchsynth_row}, indent=2))
    print(f"wrote {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
