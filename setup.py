"""ram-tf: the Recurrent Attention Model in TensorFlow 2 / Keras 3."""

from setuptools import find_packages
from setuptools import setup

setup(
    name="ram-tf",
    version="0.1.0",
    description="Recurrent Attention Model (Mnih et al. 2014) in TF2/Keras 3",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["ram_tf", "ram_tf.*"]) + ["ram_tf_cli"],
    package_dir={"ram_tf_cli": "cli"},
    install_requires=[
        "tensorflow~=2.21.0",
        "tf-keras~=2.21.0",  # TFP 0.25 imports it; our models are Keras 3
        "tensorflow-probability[tf]~=0.25.0",
        "tensorflow-datasets~=4.9.10",
        "importlib_resources",  # TFDS 4.9.10 imports it undeclared (#11212)
        "setuptools",  # TFP's distutils import on Python >= 3.12
        "numpy>=1.26",
        "click>=8.2",
        "matplotlib>=3.8",
        "tensorboard~=2.21",
    ],
    extras_require={
        "tflite": ["ai-edge-litert==2.3.0; sys_platform != 'win32'"],
        "onnx": ["tf2onnx==1.17.0", "onnx>=1.16", "onnxruntime>=1.17"],
        "test": ["pytest>=8", "pytest-xdist>=3"],
    },
    entry_points={"console_scripts": ["ram-tf = ram_tf_cli.main:main"]},
)
