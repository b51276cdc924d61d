"""A CPU-only stand-in for an accelerator, to catch device bugs before anyone has a GPU.

Inside ``with FakeDevice("mps"):`` the CPU plays an accelerator: ``x.to("mps")``, ``device="mps"``
and ``module.to("mps")`` run on the CPU but tag the resulting tensors as living on the fake
device; ``x.device`` of a tagged tensor answers ``mps``, ``x.cpu()`` drops the tag. Every torch
call is checked (a :class:`torch.overrides.TorchFunctionMode`) and a :class:`DeviceGuardError`
names the call when

* it mixes tensors on the fake device with CPU tensors of one or more elements (a 0-dim CPU
  tensor is allowed, as on CUDA);
* it creates a float64 or complex128 tensor on the fake device (Apple MPS has neither; on CUDA
  they are many times slower than float32);
* it draws random numbers for the fake device with a CPU generator, or for the CPU with a generator
  made on the fake device (a real device refuses both; ``torch.Generator(device=...)`` is replaced
  by a CPU generator tagged as the device's while the guard is on);
* it turns a fake-device tensor into NumPy without ``.cpu()`` first.

What it cannot see: work done below the Python API (inside one ATen kernel), the random streams of
a real device generator (here they are the CPU's) and differences in numerics.
"""

from __future__ import annotations

from typing import Any, Callable

import torch
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_flatten, tree_map

_TAG = "_course_fake_device"
_NO_FLOAT64 = (torch.float64, torch.complex128)
_CPU = torch.device("cpu")
_Generator = torch.Generator  # the real class (``torch.Generator`` is replaced while a guard is on)


class DeviceGuardError(RuntimeError):
    """An operation that would fail (or silently go slow) on a real accelerator."""


class _FakeDeviceGenerator(_Generator):
    """A CPU generator standing for one made on the fake device."""


def _tagged(t: Any) -> bool:
    return isinstance(t, torch.Tensor) and getattr(t, _TAG, False)


def _name(func: Callable) -> str:
    return getattr(func, "__qualname__", None) or getattr(func, "__name__", None) or repr(func)


class FakeDevice(TorchFunctionMode):
    """Context manager: the CPU plays device ``kind`` (``"mps"`` or ``"cuda"``); see the module doc."""

    def __init__(self, kind: str = "mps") -> None:
        if kind not in ("mps", "cuda"):
            raise ValueError(f"fake device kind must be 'mps' or 'cuda', got {kind!r}")
        super().__init__()
        self.kind = kind
        self.device = torch.device(kind)
        self.calls = 0

    # -- helpers -------------------------------------------------------------------------------
    @staticmethod
    def _as_device(d: Any) -> torch.device | None:
        """``d`` as a ``torch.device`` when it is one or a string naming one, else None."""
        if isinstance(d, torch.device):
            return d
        if isinstance(d, str):
            try:
                return torch.device(d)
            except RuntimeError:
                return None
        return None

    def _is_fake(self, d: Any) -> bool:
        dev = self._as_device(d)
        return dev is not None and dev.type == self.kind

    def _is_device_like(self, d: Any) -> bool:
        return self._as_device(d) is not None

    def _fail(self, func: Callable, why: str) -> None:
        raise DeviceGuardError(f"{_name(func)}: {why} (fake {self.kind} device)")

    def __enter__(self):
        self._real_generator = torch.Generator
        assert self._real_generator is _Generator, "device guards do not nest"
        guard = self

        class _AnyGenerator(type(_Generator)):
            def __instancecheck__(cls, obj):
                return isinstance(obj, _Generator)

        class Generator(_Generator, metaclass=_AnyGenerator):  # ``torch.Generator`` while the guard is on
            def __new__(cls, device=None):
                if device is not None and guard._is_fake(device):
                    return _FakeDeviceGenerator()
                return _Generator(device) if device is not None else _Generator()

        torch.Generator = Generator
        # ``nn.Parameter(data)`` wraps data below the Python API (deepcopy of a module does this)
        self._parameter_new = param_new = torch.nn.Parameter.__dict__["__new__"]

        def parameter(cls, data=None, requires_grad=True):
            out = param_new.__func__(cls, data, requires_grad)
            if _tagged(data):
                setattr(out, _TAG, True)
            return out

        torch.nn.Parameter.__new__ = staticmethod(parameter)
        return super().__enter__()

    def __exit__(self, *exc):
        torch.Generator = self._real_generator
        torch.nn.Parameter.__new__ = self._parameter_new
        return super().__exit__(*exc)

    # -- the mode ------------------------------------------------------------------------------
    def __torch_function__(self, func, types, args=(), kwargs=None):  # noqa: C901 - one dispatcher
        kwargs = dict(kwargs or {})
        self.calls += 1
        getters = {
            torch.Tensor.device.__get__: lambda t: self.device if _tagged(t) else t.device,
            torch.Tensor.is_cuda.__get__: lambda t: (_tagged(t) and self.kind == "cuda") or t.is_cuda,
            torch.Tensor.is_mps.__get__: lambda t: (_tagged(t) and self.kind == "mps") or t.is_mps,
            torch.Tensor.is_cpu.__get__: lambda t: (not _tagged(t)) and t.is_cpu,
        }
        if func in getters:
            return getters[func](args[0])
        if func in (torch.Tensor.numpy, torch.Tensor.__array__) and _tagged(args[0]):
            self._fail(func, "a device tensor cannot become a NumPy array; call .cpu() first")

        # where the result lives: an explicit device argument decides, else the inputs
        target: bool | None = None  # True: fake device, False: CPU, None: follow the inputs
        if "device" in kwargs and kwargs["device"] is not None:
            target = self._is_fake(kwargs["device"])
            if target:
                kwargs["device"] = _CPU
        new_args = list(args)
        if func in (torch.Tensor.to, torch.Tensor.new_empty, torch.Tensor.new_zeros, torch.Tensor.new_ones,
                    torch.Tensor.new_full, torch.Tensor.new_tensor, torch.Tensor.type_as):
            for i, a in enumerate(new_args[1:], start=1):
                if self._is_device_like(a):
                    target = self._is_fake(a)
                    if target:
                        new_args[i] = _CPU
                elif isinstance(a, torch.Tensor) and func is torch.Tensor.to:
                    target = _tagged(a)
        if func is torch.Tensor.cpu:
            target = False
        elif func is torch.Tensor.cuda:
            if self.kind != "cuda":
                self._fail(func, ".cuda() called")
            target = True
            new_args, kwargs = [new_args[0]], {}
            func = torch.Tensor.clone

        # mixing: fake-device tensors with CPU tensors that hold more than a scalar
        flat, _ = tree_flatten((new_args, kwargs))
        tensors = [t for t in flat if isinstance(t, torch.Tensor)]
        on_fake = [t for t in tensors if _tagged(t)]
        on_cpu = [t for t in tensors if not _tagged(t) and t.dim() > 0]
        if func == torch.Tensor.data.__set__:
            on_fake = on_cpu = []  # Module.to swaps parameter data: the target decides, below
        elif func is torch.Tensor.__deepcopy__:  # the memo holds unrelated tensors: the copy stays put
            on_fake, on_cpu = [t for t in new_args[:1] if _tagged(t)], []
        elif func in (torch.Tensor.to, torch.Tensor.cpu, torch.Tensor.copy_, torch._has_compatible_shallow_copy_type):
            on_cpu = []  # moving or copying between devices is what these are for
        if on_fake and on_cpu:
            shapes = ", ".join(str(tuple(t.shape)) for t in on_cpu[:3])
            self._fail(func, f"mixes device tensors with CPU tensors of shape {shapes}")
        gen = kwargs.get("generator")
        if isinstance(gen, _Generator) and gen.device.type == "cpu":
            on_device = bool(target or (target is None and on_fake))
            if on_device and not isinstance(gen, _FakeDeviceGenerator):
                self._fail(func, "draws device random numbers with a CPU generator")
            if not on_device and isinstance(gen, _FakeDeviceGenerator):
                self._fail(func, "draws CPU random numbers with a generator made on the device")

        out = func(*new_args, **kwargs)
        if (target is not None and new_args and out is new_args[0] and isinstance(out, torch.Tensor)
                and _tagged(out) != target):
            out = torch.Tensor.clone(out)  # a move between devices is a copy, never the same tensor

        if func == torch.Tensor.data.__set__:
            setattr(new_args[0], _TAG, _tagged(new_args[1]))
            return out
        fake_out = target if target is not None else bool(on_fake)

        def mark(t: Any) -> Any:
            if isinstance(t, torch.Tensor):
                if fake_out:
                    if t.dtype in _NO_FLOAT64:
                        self._fail(func, f"creates a {t.dtype} tensor of shape {tuple(t.shape)} on the device")
                    setattr(t, _TAG, True)
                elif target is False and _tagged(t):
                    setattr(t, _TAG, False)
            return t

        if new_args and isinstance(out, torch.Tensor) and out is new_args[0] and target is None:
            return out  # an in-place op (or a no-op ``.to``): the tensor stays where it was
        return tree_map(mark, out)


def on_fake_device(t: torch.Tensor) -> bool:
    """Whether ``t`` was tagged as living on the fake device (for tests)."""
    return bool(_tagged(t))
