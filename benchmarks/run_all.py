"""Run every benchmark (``benchmarks/bench_*.py``) in turn; each writes build/bench/<topic>.json.

    python benchmarks/run_all.py            # full sizes (make bench)
    python benchmarks/run_all.py --quick    # tiny smoke run of each
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> int:
    extra = sys.argv[1:]
    failed = []
    for script in sorted(HERE.glob("bench_*.py")):
        print(f"\n=== {script.name} ===", flush=True)
        start = time.perf_counter()
        rc = subprocess.call([sys.executable, str(script), *extra], cwd=HERE.parent)
        print(f"--- {script.name}: {'ok' if rc == 0 else f'exit {rc}'} in {time.perf_counter() - start:.1f} s")
        if rc:
            failed.append(script.name)
    if failed:
        print("failed:", ", ".join(failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
