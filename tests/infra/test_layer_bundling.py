"""The Docker-free layer build and the check `make synth` runs on its result."""

import json
from pathlib import Path

import pytest

from infra import check_layer
from infra.check_layer import Target, tag_fits
from infra.layer import PipLocalBundling

LAMBDA = Target(python="3.14", machine="aarch64")
REQUIREMENTS = Path(__file__).resolve().parents[2] / "layers" / "agent" / "requirements.txt"


def bundling(requirements: Path = REQUIREMENTS) -> PipLocalBundling:
    return PipLocalBundling(
        requirements=requirements, platform="manylinux2014_aarch64", python_version="3.14"
    )


def test_pip_installs_only_wheels_for_the_lambdas_platform_and_python():
    args = bundling().pip_arguments("/out/python")

    def value(flag):
        return args[args.index(flag) + 1]

    assert (value("--platform"), value("--implementation"), value("--python-version")) == (
        "manylinux2014_aarch64",
        "cp",
        "3.14",
    )
    assert "--only-binary=:all:" in args
    assert value("--target") == "/out/python"
    assert value("--requirement") == str(REQUIREMENTS)


def test_layer_asset_hash_is_stable_and_follows_the_requirements(tmp_path):
    changed = tmp_path / "requirements.txt"
    changed.write_text(REQUIREMENTS.read_text() + "six==1.17.0\n")

    elsewhere = tmp_path / "checkout" / "requirements.txt"
    elsewhere.parent.mkdir()
    elsewhere.write_text(REQUIREMENTS.read_text())

    assert bundling().asset_hash() == bundling(elsewhere).asset_hash()  # the same on every machine
    assert bundling(changed).asset_hash() != bundling().asset_hash()
    other_python = PipLocalBundling(
        requirements=REQUIREMENTS, platform="manylinux2014_aarch64", python_version="3.13"
    )
    assert other_python.asset_hash() != bundling().asset_hash()


def test_layer_requirements_pin_every_package():
    lines = [line.strip() for line in REQUIREMENTS.read_text().splitlines()]
    requirements = [line for line in lines if line and not line.startswith("#")]
    assert all("==" in line for line in requirements), requirements
    assert any(line.startswith("boto3==") for line in requirements)


def test_synthesized_layer_matches_the_function(synth):
    (layer,) = check_layer.find_layers(synth.outdir)
    function = synth.function()["Properties"]

    assert layer.target == Target(python=function["Runtime"].removeprefix("python"), machine="aarch64")


@pytest.mark.parametrize(
    "tag",
    [
        "cp314-cp314-manylinux2014_aarch64",
        "cp314-cp314-manylinux_2_17_aarch64",
        "cp314-cp314-manylinux_2_28_aarch64",
        "cp314-cp314-manylinux_2_34_aarch64",
        "cp38-abi3-manylinux2014_aarch64",
        "py3-none-manylinux2014_aarch64",
        "py3-none-any",
    ],
)
def test_tags_that_run_on_lambda_python_3_14_arm64(tag):
    assert tag_fits(tag, LAMBDA)


@pytest.mark.parametrize(
    "tag",
    [
        "cp314-cp314-manylinux2014_x86_64",  # wrong machine
        "cp311-cp311-manylinux2014_aarch64",  # wrong Python
        "cp314-cp314t-manylinux2014_aarch64",  # free-threaded ABI
        "cp314-cp314-manylinux_2_35_aarch64",  # newer glibc than Amazon Linux 2023's 2.34
        "cp314-cp314-musllinux_1_2_aarch64",
        "cp314-cp314-macosx_11_0_arm64",
        "cp315-abi3-manylinux2014_aarch64",  # stable ABI from a newer Python
        "py2-none-any",
    ],
)
def test_tags_that_do_not(tag):
    assert not tag_fits(tag, LAMBDA)


def fake_assembly(tmp_path: Path, wheels: dict[str, list[str]]) -> Path:
    """A cloud assembly with one python3.14 arm64 layer holding dist-infos with these tags."""
    site = tmp_path / "asset.abc" / "python"
    for name, tags in wheels.items():
        purelib = all(tag.endswith("-any") for tag in tags)
        info = site / f"{name}.dist-info"
        info.mkdir(parents=True)
        header = ["Wheel-Version: 1.0", f"Root-Is-Purelib: {str(purelib).lower()}"]
        lines = header + [f"Tag: {t}" for t in tags]
        info.joinpath("WHEEL").write_text("\n".join(lines) + "\n")
    layer = {
        "Type": "AWS::Lambda::LayerVersion",
        "Properties": {
            "CompatibleRuntimes": ["python3.14"],
            "CompatibleArchitectures": ["arm64"],
            "Content": {"S3Key": "abc.zip"},
        },
    }
    (tmp_path / "S.template.json").write_text(json.dumps({"Resources": {"L": layer}}))
    (tmp_path / "S.assets.json").write_text(json.dumps({"files": {"abc": {"source": {"path": "asset.abc"}}}}))
    return tmp_path


def test_check_passes_a_layer_built_for_the_lambda(tmp_path, capsys):
    assembly = fake_assembly(
        tmp_path,
        {
            "pydantic_core-2.50.4": [
                "cp314-cp314-manylinux_2_17_aarch64",
                "cp314-cp314-manylinux2014_aarch64",
            ],
            "anthropic-2.10.0": ["py3-none-any"],
        },
    )

    assert check_layer.main(["check_layer", str(assembly)]) == 0
    assert "1 compiled wheel(s) checked, 1 pure-Python, 0 mismatch(es)" in capsys.readouterr().out


def test_check_fails_on_a_wheel_for_the_build_machine(tmp_path, capsys):
    assembly = fake_assembly(tmp_path, {"jiter-0.19.0": ["cp311-cp311-manylinux_2_17_x86_64"]})

    assert check_layer.main(["check_layer", str(assembly)]) == 1
    assert "MISMATCH jiter-0.19.0.dist-info" in capsys.readouterr().err


def test_check_fails_when_the_layer_was_not_bundled(synth, capsys):
    # bundling is skipped in these tests, so the staged layer has no python/ folder
    assert check_layer.main(["check_layer", str(synth.outdir)]) == 1
