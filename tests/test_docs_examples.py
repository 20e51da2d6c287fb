"""The examples of docs/extending.md run as written: each python block is executed (in a fresh interpreter, so
its registrations do not leak into other tests) and the new attack, backbone, layer, diagnostic and suite are
then used through the public registries."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

PROGRAM = r'''
import json, sys
import torch
blocks = json.loads(sys.argv[1])
import honestbench.diagnostics.flags as flags_mod
import honestbench.diagnostics.records as records_mod
import honestbench.diagnostics.rules as rules_mod
import types
for i, code in enumerate(blocks):
    module = types.ModuleType(f"doc_block_{i}")
    sys.modules[module.__name__] = module  # dataclasses look their module up there
    ns = module.__dict__
    if "record_check" in code:  # the diagnostic example is written as excerpts of flags.py and rules.py
        for mod in (flags_mod, records_mod, rules_mod):
            ns.update({k: v for k, v in vars(mod).items() if not k.startswith("__")})
        ns["Iterable"] = __import__("collections.abc").abc.Iterable
    exec(compile(code, f"extending.md block {i}", "exec"), ns)

from honestbench.attacks import create_attack
from honestbench.nets import build_backbone
from honestbench.nets.registry import act_factory
from honestbench.nets.layers.stochastic import is_stochastic
from honestbench.suites import get_suite
from honestbench.diagnostics.rules import RECORD_CHECKS

torch.manual_seed(0)
net = build_backbone("conv4", num_classes=10).eval()
x = torch.rand(4, 3, 32, 32)
y = torch.randint(0, 10, (4,))
out = {"logits": list(net(x).shape)}
adv = create_attack("rfgsm")(net, x, y)
out["rfgsm_linf"] = float((adv - x).abs().max())
noisy = build_backbone("conv4", act=act_factory("noisy-relu", sigma=0.5)).eval()
out["noisy_stochastic"] = bool(is_stochastic(noisy))
out["suite"] = get_suite("quick-linf").labels
out["checks"] = sorted(RECORD_CHECKS.names())
print(json.dumps(out))
'''


def python_blocks() -> list[str]:
    text = (ROOT / "docs" / "extending.md").read_text()
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def test_extending_examples_run():
    blocks = python_blocks()
    assert len(blocks) >= 5
    proc = subprocess.run([sys.executable, "-c", PROGRAM, json.dumps(blocks)], capture_output=True, text=True,
                          cwd=ROOT, timeout=1800)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["logits"] == [4, 10]
    assert out["rfgsm_linf"] <= 8 / 255 + 1e-5
    assert out["noisy_stochastic"] is True
    assert out["suite"] == ["FGSM", "R+FGSM", "PGD"]
    assert "noise-stronger" in out["checks"]
