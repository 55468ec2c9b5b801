"""Check a synthesized layer: every compiled wheel in it must run on the layer's Lambda.

    python -m infra.check_layer cdk.out

Finds each Python layer of the cloud assembly (its runtime and architecture are read from the
template), then reads the WHEEL file of every installed distribution. A wheel built for another
platform or Python (pip falling back to the build machine's own) would import fine here and fail
with an ImportError on Lambda: this is where that is caught. Exits 1 on any mismatch.
"""

import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path

# Lambda's Python 3.12+ runtimes run on Amazon Linux 2023, whose glibc is 2.34.
LAMBDA_GLIBC = (2, 34)
MACHINES = {"arm64": "aarch64", "x86_64": "x86_64"}
# Legacy manylinux aliases and the glibc they stand for (PEP 600).
LEGACY_MANYLINUX = {"manylinux1": (2, 5), "manylinux2010": (2, 12), "manylinux2014": (2, 17)}


@dataclass(frozen=True)
class Target:
    python: str  # "3.14"
    machine: str  # "aarch64"

    @property
    def cpython_tag(self) -> str:
        return "cp" + self.python.replace(".", "")


@dataclass(frozen=True)
class Layer:
    directory: Path
    target: Target


def tag_fits(tag: str, target: Target) -> bool:
    """One `python-abi-platform` wheel tag against the Lambda's interpreter and platform."""
    python, abi, platform = tag.split("-")
    if platform == "any":
        return python.startswith("py3") or python == target.cpython_tag
    if abi == "abi3":
        minimum = int(python.removeprefix("cp3"))
        python_fits = python.startswith("cp3") and minimum <= int(target.python.split(".")[1])
    elif abi == "none":  # a platform binary without Python C-API use, e.g. py3-none-<platform>
        python_fits = python.startswith("py3") or python == target.cpython_tag
    else:
        python_fits = python == target.cpython_tag and abi == target.cpython_tag
    return python_fits and platform_fits(platform, target.machine)


def platform_fits(platform: str, machine: str) -> bool:
    match = re.fullmatch(r"(manylinux1|manylinux2010|manylinux2014|manylinux_(\d+)_(\d+))_(\w+)", platform)
    if not match or match.group(4) != machine:
        return False
    glibc = LEGACY_MANYLINUX.get(match.group(1)) or (int(match.group(2)), int(match.group(3)))
    return glibc <= LAMBDA_GLIBC


def wheel_tags(wheel_file: Path) -> tuple[bool, list[str]]:
    """(is pure Python, tags) from a dist-info WHEEL file."""
    lines = wheel_file.read_text().splitlines()
    purelib = any(line.strip().lower() == "root-is-purelib: true" for line in lines)
    tags = [line.split(":", 1)[1].strip() for line in lines if line.startswith("Tag:")]
    return purelib, tags


def find_layers(assembly: Path) -> list[Layer]:
    """Every AWS::Lambda::LayerVersion of every stack template, with its staged asset folder."""
    layers = []
    for template_file in sorted(assembly.glob("*.template.json")):
        assets_file = template_file.with_name(template_file.name.replace(".template.json", ".assets.json"))
        assets = json.loads(assets_file.read_text())["files"] if assets_file.exists() else {}
        for resource in json.loads(template_file.read_text())["Resources"].values():
            if resource["Type"] != "AWS::Lambda::LayerVersion":
                continue
            props = resource["Properties"]
            runtimes = [r for r in props.get("CompatibleRuntimes", []) if r.startswith("python")]
            if not runtimes:
                continue
            asset_hash = props["Content"]["S3Key"].removesuffix(".zip")
            directory = assembly / assets[asset_hash]["source"]["path"]
            architecture = props.get("CompatibleArchitectures", ["x86_64"])[0]
            for runtime in runtimes:
                target = Target(python=runtime.removeprefix("python"), machine=MACHINES[architecture])
                layers.append(Layer(directory=directory, target=target))
    return layers


def check_layer(layer: Layer) -> list[str]:
    """Problems found, as lines to print; empty when every compiled wheel fits."""
    site = layer.directory / "python"
    if not site.is_dir():
        return [f"{layer.directory}: no python/ folder (was the layer bundled? bundling skipped?)"]
    problems, pure, compiled = [], 0, 0
    for wheel_file in sorted(site.glob("*.dist-info/WHEEL")):
        purelib, tags = wheel_tags(wheel_file)
        if purelib and all(tag.endswith("-any") for tag in tags):
            pure += 1
            continue
        compiled += 1
        if not any(tag_fits(tag, layer.target) for tag in tags):
            problems.append(f"{wheel_file.parent.name}: tags {', '.join(tags)} do not fit {layer.target}")
    print(
        f"{layer.directory.name}: python {layer.target.python} {layer.target.machine}: "
        f"{compiled} compiled wheel(s) checked, {pure} pure-Python, {len(problems)} mismatch(es)"
    )
    return problems


def main(argv: list[str]) -> int:
    assembly = Path(argv[1] if len(argv) > 1 else "cdk.out")
    layers = find_layers(assembly)
    if not layers:
        print(f"no Python layer found in {assembly}", file=sys.stderr)
        return 1
    problems = [problem for layer in layers for problem in check_layer(layer)]
    for problem in problems:
        print(f"MISMATCH {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
