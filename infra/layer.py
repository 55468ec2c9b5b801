"""The dependency layer, built without Docker: pip cross-installs wheels for the Lambda's platform."""

import hashlib
import subprocess
import sys
from pathlib import Path

import jsii
from aws_cdk import AssetHashType, BundlingOptions, DockerImage, ILocalBundling
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

# For these platforms pip takes only wheels tagged manylinux2014 (glibc 2.17) or older, which all
# run on Lambda's Amazon Linux 2023 (glibc 2.34); infra.check_layer verifies the result.
PIP_PLATFORMS = {"arm64": "manylinux2014_aarch64", "x86_64": "manylinux2014_x86_64"}
# Bump to rebuild every layer when the recipe below changes without its pip options changing.
RECIPE_VERSION = "1"


@jsii.implements(ILocalBundling)
class PipLocalBundling:
    """`pip install --target` for another platform: only wheels, never a local build."""

    def __init__(self, *, requirements: Path, platform: str, python_version: str) -> None:
        self.requirements = requirements
        self.platform = platform
        self.python_version = python_version

    def pip_options(self) -> list[str]:
        return [
            "--quiet",
            "--disable-pip-version-check",
            # .pyc compiled by the build machine's Python would not match the Lambda's Python.
            "--no-compile",
            "--platform", self.platform,
            "--implementation", "cp",
            "--python-version", self.python_version,
            "--only-binary=:all:",
        ]

    def pip_arguments(self, target: str) -> list[str]:
        return ["install", *self.pip_options(), "--target", target, "--requirement", str(self.requirements)]

    def asset_hash(self) -> str:
        """From what decides the layer's content only, not from paths: equal on every machine."""
        recipe = [RECIPE_VERSION, self.requirements.read_text(), *self.pip_options()]
        return hashlib.sha256("\n".join(recipe).encode()).hexdigest()

    def try_bundle(self, output_dir: str, options: BundlingOptions) -> bool:
        # Lambda puts /opt/python on sys.path for Python layers.
        command = [sys.executable, "-m", "pip", *self.pip_arguments(f"{output_dir}/python")]
        subprocess.run(command, check=True)
        return True


class DependencyLayer(Construct):
    """A Python layer from `<requirements_dir>/requirements.txt` for one runtime and architecture."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        requirements_dir: Path,
        runtime: lambda_.Runtime,
        architecture: lambda_.Architecture,
    ) -> None:
        super().__init__(scope, construct_id)
        bundling = PipLocalBundling(
            requirements=requirements_dir / "requirements.txt",
            platform=PIP_PLATFORMS[architecture.name],
            python_version=runtime.name.removeprefix("python"),
        )
        code = lambda_.Code.from_asset(
            str(requirements_dir),
            asset_hash_type=AssetHashType.CUSTOM,
            asset_hash=bundling.asset_hash(),
            bundling=BundlingOptions(
                # Never pulled: local bundling always succeeds or raises.
                image=DockerImage.from_registry("unused-local-bundling-only"),
                local=bundling,
            ),
        )
        self.layer = lambda_.LayerVersion(
            self,
            "Layer",
            code=code,
            compatible_runtimes=[runtime],
            compatible_architectures=[architecture],
            description=f"{requirements_dir.name} dependencies for {runtime.name} {architecture.name}",
        )
