"""``course_lib.hw2.train_generator`` trains the model built from the student's own HW2 parts.

The instructor's solution cells (from the nbgrader source) stand in for a student's notebook; the
saved checkpoint must be a course-format generator that reproduces the student-built model.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from course_lib import hw2
from course_lib.models import stylegan2 as sg

SOURCE_NB = Path(__file__).resolve().parents[1] / "grading" / "source" / "hw2" / "hw2.ipynb"


@pytest.fixture(scope="module")
def student() -> dict:
    """The notebook's setup and solution cells run in a fresh namespace (what a student's kernel holds)."""
    nb = json.loads(SOURCE_NB.read_text(encoding="utf-8"))
    ns: dict = {"__name__": "__main__"}
    for cell in nb["cells"]:
        if cell["metadata"].get("nbgrader", {}).get("grade_id") in ("setup", "modconv", "mapping", "r1"):
            exec(compile("".join(cell["source"]), "<notebook>", "exec"), ns)
    return ns


def test_the_students_parts_train_and_the_checkpoint_is_course_format(student, tmp_path):
    calls = {"modconv": 0, "mapping": 0, "r1": 0}

    def modconv(*args, **kwargs):
        calls["modconv"] += 1
        return student["modulated_conv2d"](*args, **kwargs)

    class Mapping(student["MappingNetwork"]):
        def forward(self, z):
            calls["mapping"] += 1
            return super().forward(z)

    def r1(*args):
        calls["r1"] += 1
        return student["r1_penalty"](*args)

    path = hw2.train_generator(tmp_path / "checkpoint.pt", preset="fast", seed=0, progress=False, steps=4,
                               modulated_conv2d=modconv, mapping_network=Mapping, r1_penalty=r1)
    assert calls["modconv"] > 0 and calls["mapping"] > 0 and calls["r1"] > 0, calls
    generator = sg.load_stylegan2(path)  # weights_only load of a course-format generator
    assert type(generator.mapping_net) is sg.MappingNetwork
    assert generator.meta["steps"] == 4 and generator.meta["course_architecture_max_diff"] < 1e-4
    assert float(generator.mapping_net.w_avg.abs().sum()) > 0  # the running mean of w was kept


def test_the_course_library_is_refused(student, tmp_path):
    with pytest.raises(ValueError, match="modulated_conv2d: pass your own"):
        hw2.train_generator(tmp_path / "c.pt", preset="fast", steps=1, modulated_conv2d=sg.modulated_conv2d,
                            mapping_network=student["MappingNetwork"], r1_penalty=student["r1_penalty"])
    with pytest.raises(ValueError, match="mapping_network: pass your own"):
        hw2.train_generator(tmp_path / "c.pt", preset="fast", steps=1, modulated_conv2d=student["modulated_conv2d"],
                            mapping_network=type("M", (sg.MappingNetwork,), {}), r1_penalty=student["r1_penalty"])
    with pytest.raises(ValueError, match="r1_penalty: pass your own"):
        hw2.train_generator(tmp_path / "c.pt", preset="fast", steps=1, modulated_conv2d=student["modulated_conv2d"],
                            mapping_network=student["MappingNetwork"], r1_penalty=sg.r1_penalty)
    assert not (tmp_path / "c.pt").exists()


def test_the_students_generator_equals_the_course_architecture_with_its_weights(student):
    from course_lib.train.gan import PRESETS

    torch.manual_seed(0)
    g = sg.Generator(sg.StyleGAN2Config(image_size=sg.MelImageSpec().size, **PRESETS["stylegan2"]["fast"]["arch"]))
    hw2.use_student_parts(g, student["modulated_conv2d"], student["MappingNetwork"])
    assert hw2._max_diff(g, hw2.to_course_generator(g)) < 1e-4


def test_a_class_conditional_preset_trains_with_the_students_parts(student, tmp_path):
    """n_classes > 0 (the lecture preset's loop styles): the class offset lives outside the student's mapping
    network, so the same parts train it and the course architecture reproduces it."""
    path = hw2.train_generator(tmp_path / "checkpoint.pt", preset="fast", seed=0, progress=False, steps=2,
                               arch={"n_classes": 11}, modulated_conv2d=student["modulated_conv2d"],
                               mapping_network=student["MappingNetwork"], r1_penalty=student["r1_penalty"])
    generator = sg.load_stylegan2(path)
    assert generator.n_classes == 11 and generator.meta["course_architecture_max_diff"] < 1e-4
    assert generator.meta["class_names"][:3] == ["house", "techno", "hiphop"]


def test_a_mapping_network_stored_another_way_is_explained(student):
    from course_lib.train.gan import PRESETS

    class Transposed(torch.nn.Module):
        def __init__(self, z_dim, w_dim, n_layers, lr_mul):
            super().__init__()
            self.w = torch.nn.Parameter(torch.randn(z_dim, w_dim))

        def forward(self, z):
            return z @ self.w

    g = sg.Generator(sg.StyleGAN2Config(image_size=sg.MelImageSpec().size, **PRESETS["stylegan2"]["fast"]["arch"]))
    hw2.use_student_parts(g, student["modulated_conv2d"], Transposed)
    with pytest.raises(ValueError, match=r"expected an \(out, in\) weight"):
        hw2.to_course_generator(g)


def test_set_truncation_psi_records_it_for_the_grader(tmp_path):
    import pytest
    import torch

    from course_lib.hw2 import set_truncation_psi
    from course_lib.models.stylegan2 import load_stylegan2
    from grading.demo import tiny_checkpoint

    ckpt = tiny_checkpoint(tmp_path / "g.pt", seed=0)
    before = load_stylegan2(ckpt).state_dict()
    set_truncation_psi(ckpt, 0.7)
    g = load_stylegan2(ckpt)
    assert g.meta["truncation_psi"] == 0.7
    assert all(torch.equal(before[k], v) for k, v in g.state_dict().items())  # weights untouched
    with pytest.raises(ValueError, match="psi"):
        set_truncation_psi(ckpt, 1.5)
    torch.save({"kind": "something else"}, tmp_path / "x.pt")
    with pytest.raises(ValueError, match="not a StyleGAN2"):
        set_truncation_psi(tmp_path / "x.pt", 0.5)
