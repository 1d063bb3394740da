"""The architecture's hard rule: the core and visualize import no framework."""

from __future__ import annotations

import json
import subprocess
import sys

FRAMEWORK_MODULES = ("torch", "tensorflow", "jax", "jaxlib", "keras", "flax")


def test_core_visualize_and_adapters_package_import_no_framework():
    code = (
        "import json, sys\n"
        "import saliency_core, visualize, adapters\n"
        "import saliency_core.types\n"
        f"print(json.dumps([m for m in {FRAMEWORK_MODULES!r} if m in sys.modules]))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


def test_public_names_are_declared():
    import saliency_core

    for name in saliency_core.__all__:
        assert hasattr(saliency_core, name), name
    assert {"smoothgrad", "vanilla_gradient", "gradient_x_input", "integrated_gradients",
            "GradientFn"} <= set(saliency_core.__all__)
