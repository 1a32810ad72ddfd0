"""engine/ops.py is the hop from a layer to its kernel: each kernel family's section opens with the files that hold
its NumPy reference, C++ kernel and binding, and tests. Every file named there exists, and every op that calls a
kernel sits in a section that names its reference."""
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OPS = ROOT / "engine" / "ops.py"
SECTION = "# " + "-" * 93 + " "
NAMED = re.compile(r"\b(?:engine|csrc|tests)/[\w/]+\.(?:py|cpp|h)\b")


def sections():
    """{section title: its lines}, in file order."""
    out, title = {}, None
    for line in OPS.read_text().splitlines():
        if line.startswith(SECTION):
            title = line[len(SECTION):]
            out[title] = []
        elif title is not None:
            out[title].append(line)
    return out


def test_every_file_a_section_names_exists():
    named = {path for lines in sections().values() for line in lines if line.startswith("# ")
             for path in NAMED.findall(line)}
    assert len(named) > 30
    assert sorted(path for path in named if not (ROOT / path).is_file()) == []


def test_every_op_on_a_kernel_is_in_a_section_that_names_its_files():
    for title, lines in sections().items():
        if any("kernels(" in line for line in lines):
            header = [line for line in lines[:4] if line.startswith("# ")]
            assert [line.split(":")[0] for line in header[:3]] == ["# reference", "# kernel", "# tests"], title


def test_every_kernel_a_section_calls_is_bound_in_the_file_it_names():
    for title, lines in sections().items():
        called = set(re.findall(r"\bk\.(\w+)\(", "\n".join(lines)))
        bindings = [path for line in lines[:4] for path in NAMED.findall(line) if path.startswith("csrc/bind_cpu/")]
        if not called:
            continue
        text = "".join((ROOT / path).read_text() for path in bindings)
        assert sorted(name for name in called if f'"{name}"' not in text) == [], title
