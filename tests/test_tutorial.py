"""docs/writing-a-plugin.md, followed literally: its code blocks build a plugin that trains and tests."""

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

DOC = Path(__file__).resolve().parents[1] / "docs" / "writing-a-plugin.md"


def blocks(language: str, part: int = 0) -> list[str]:
    """Code blocks of one part of the page: 0 is the hinge-GAN walk-through (sections 1-6),
    1 the later sections (a conditional model, changing a built-in)."""
    text = DOC.read_text().split("\n## 7.")[part]
    return re.findall(rf"```{language}\n(.*?)```", text, flags=re.S)


def test_tutorial_blocks_build_a_working_plugin(tmp_path, tiny_data):
    root = tmp_path / "gentk-hinge-gan"
    (root / "gentk_hinge_gan").mkdir(parents=True)
    (root / "tests").mkdir()
    toml, = blocks("toml")
    (root / "pyproject.toml").write_text(toml)
    assert tomllib.loads(toml)["project"]["entry-points"]["gentk"] == {"hinge-gan": "gentk_hinge_gan"}
    *module_parts, test_file = blocks("python")
    (root / "gentk_hinge_gan" / "__init__.py").write_text("\n\n".join(module_parts))
    (root / "tests" / "test_hinge_gan.py").write_text(test_file)

    env = dict(os.environ, PYTHONPATH=str(root))
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
                            cwd=root, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:]
    assert "1 passed" in result.stdout
