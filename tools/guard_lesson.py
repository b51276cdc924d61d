"""Run a lesson's code cells in this process with the CPU playing a device (the device guard).

    COURSE_FAST=1 python tools/guard_lesson.py lessons/01_dsp_synthesis.ipynb [--kind mps|cuda]

``pick_device()`` answers the fake device and every torch call is checked by
:class:`course_lib.runtime.device_guard.FakeDevice` (device mixing, float64 on the device, NumPy
reads of device tensors). Stops at the first failing cell and prints it; exit status 1 then.
Plots go to the Agg backend, players are built and dropped.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("notebook", type=Path)
    ap.add_argument("--kind", default="mps", choices=("mps", "cuda"))
    args = ap.parse_args()
    os.environ.setdefault("COURSE_FAST", "1")
    import matplotlib

    matplotlib.use("Agg")
    import torch

    import course_lib.runtime.device as rdev
    from course_lib.runtime.device_guard import FakeDevice

    fake = torch.device(args.kind)
    original = rdev.pick_device

    def pick_device(prefer=None):
        return fake if prefer is None or torch.device(prefer).type == args.kind else original(prefer)

    def patch_loaded() -> None:  # every module that imported pick_device by name
        for mod in list(sys.modules.values()):
            if getattr(mod, "pick_device", None) is original:
                mod.pick_device = pick_device

    rdev.pick_device = pick_device
    patch_loaded()
    torch.cuda.synchronize = lambda *a, **k: None  # nothing is queued on a fake device
    torch.mps.synchronize = lambda *a, **k: None
    import IPython.display as ipd

    class _Handle:  # what ``display(..., display_id=True)`` gives in a kernel (outside one: None)
        def update(self, *objs, **kw) -> None:
            pass

    shown = ipd.display

    def display(*objs, display_id=None, **kw):
        shown(*objs, **kw)
        return _Handle() if display_id else None

    ipd.display = display
    cells = [c for c in json.loads(args.notebook.read_text())["cells"] if c["cell_type"] == "code"]
    scope: dict = {"__name__": "__main__"}
    os.chdir(args.notebook.resolve().parent)
    import matplotlib.pyplot as plt

    with FakeDevice(args.kind):
        for i, cell in enumerate(cells):
            src = "".join(cell["source"])
            src = "\n".join(line for line in src.splitlines() if not line.lstrip().startswith(("%", "!")))
            try:
                exec(compile(src, f"<{args.notebook.name} code cell {i}>", "exec"), scope)
            except Exception:
                traceback.print_exc()
                print(f"\nFAILED in code cell {i} of {args.notebook.name}:\n{src[:2000]}", file=sys.stderr)
                return 1
            finally:
                patch_loaded()
                plt.close("all")
    print(f"{args.notebook.name}: {len(cells)} code cells ran on a fake {args.kind} device")
    return 0


if __name__ == "__main__":
    sys.exit(main())
