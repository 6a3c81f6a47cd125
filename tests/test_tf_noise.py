"""experiments.tf_noise: the CLIs keep TensorFlow's start-up noise out of their output, and nothing else."""

import os
import re
import subprocess
import sys
import textwrap

import pytest

from experiments import tf_noise

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CPP_RECORD = re.compile(r"^[IWE]\d{4} [\d:.]+ +\d+ [\w.]+:\d+\] ", re.M)

# What importing TensorFlow 2.21 printed on this project's 2-core CPU machine (no GPU), between real lines.
CAPTURED = """\
WARNING: All log messages before absl::InitializeLog() is called are written to STDERR
I0000 00:00:1796315860.675848   16848 port.cc:153] oneDNN custom operations are on. You may see slightly different numerical results.
I0000 00:00:1796315860.681012   16848 cudart_stub.cc:31] Could not find cuda drivers on your machine, GPU will not be used.
a real line a library printed
I0000 00:00:1796315860.982979   16848 cpu_feature_guard.cc:227] This TensorFlow binary is optimized to use available CPU instructions in performance-critical operations.
To enable the following instructions: AVX2 AVX512F AVX512_VNNI AVX512_BF16 FMA, in other operations, rebuild TensorFlow with the appropriate compiler flags.
W0000 00:00:1758131437.322781 3722519 computation_placer.cc:177] computation placer already registered.
E0000 00:00:1796315867.922658   16848 cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA error: Failed call to cuInit: UNKNOWN ERROR (303)
E0000 00:00:1758131437.297298 3722519 cuda_dnn.cc:8579] Unable to register cuDNN factory
/x/y.py:3: FutureWarning: something changes
"""


def test_filter_keeps_real_lines_and_errors_and_drops_info_warnings_and_the_expected_cuinit_error():
    kept = tf_noise.filter_lines(CAPTURED).splitlines()
    assert kept == ["a real line a library printed",
                    "E0000 00:00:1758131437.297298 3722519 cuda_dnn.cc:8579] Unable to register cuDNN factory",
                    "/x/y.py:3: FutureWarning: something changes"]
    # where TensorFlow did not report a missing CUDA driver, a failed cuInit is a real error: kept
    with_driver = "\n".join(line for line in CAPTURED.splitlines() if "cudart_stub" not in line)
    assert any("failed call to cuInit" in line for line in tf_noise.filter_lines(with_driver).splitlines())


FAKE_TF = """\
import os, sys
os.write(2, b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\\n")
os.write(2, b"I0000 00:00:1.5   7 port.cc:153] noise\\n")
print("python text on stderr", file=sys.stderr)
os.write(2, b"E0000 00:00:1.6   7 other.cc:9] a real error\\n")
if os.environ.get("FAKE_TF_FAIL"):
    raise ImportError("fake tensorflow is broken")


class config:
    @staticmethod
    def list_physical_devices():
        os.write(2, b"W0000 00:00:1.7   7 devices.cc:1] more noise\\n")
        return []
"""

IMPORTER = textwrap.dedent("""\
    import sys
    import experiments
    print("before", file=sys.stderr, flush=True)
    import tensorflow
    print("after", tensorflow.__spec__.loader is tensorflow.__loader__, type(tensorflow.__loader__).__name__,
          file=sys.stderr)
""")


def _run_fake(tmp_path, **env):
    pkg = tmp_path / "fake" / "tensorflow"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text(FAKE_TF)
    environ = {k: v for k, v in os.environ.items() if k != tf_noise.USER_SWITCH}
    environ.update(env, PYTHONPATH=os.pathsep.join([str(tmp_path / "fake"), ROOT]))
    return subprocess.run([sys.executable, "-c", IMPORTER], env=environ, capture_output=True, text=True,
                          timeout=60, cwd=tmp_path)


def test_first_tensorflow_import_in_a_cli_package_drops_only_the_noise_in_order(tmp_path):
    result = _run_fake(tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines() == ["before", "python text on stderr",
                                          "E0000 00:00:1.6   7 other.cc:9] a real error",
                                          "after True SourceFileLoader"]


def test_a_failed_import_shows_everything_it_printed(tmp_path):
    result = _run_fake(tmp_path, FAKE_TF_FAIL="1")
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert lines[:5] == ["before", "WARNING: All log messages before absl::InitializeLog() is called are "
                         "written to STDERR", "I0000 00:00:1.5   7 port.cc:153] noise", "python text on stderr",
                         "E0000 00:00:1.6   7 other.cc:9] a real error"]
    assert lines[-1] == "ImportError: fake tensorflow is broken"


def test_the_user_switch_turns_the_filter_off(tmp_path):
    result = _run_fake(tmp_path, TF_CPP_MIN_LOG_LEVEL="0")
    assert "I0000 00:00:1.5   7 port.cc:153] noise" in result.stderr.splitlines()


def _import_real_tensorflow(through_cli_package: bool) -> str:
    code = ("import experiments\n" if through_cli_package else "") + "import tensorflow as tf\ntf.constant(1) + 1\n"
    environ = {k: v for k, v in os.environ.items() if k != tf_noise.USER_SWITCH}
    result = subprocess.run([sys.executable, "-c", code], env=environ, capture_output=True, text=True,
                            timeout=300, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stderr


def test_real_tensorflow_import_through_a_cli_package_prints_no_cpp_records():
    plain = _import_real_tensorflow(through_cli_package=False)
    if not CPP_RECORD.search(plain):
        pytest.skip("this TensorFlow build prints no start-up records: nothing to filter")
    quiet = _import_real_tensorflow(through_cli_package=True)
    assert not re.search(r"^[IW]\d{4} [\d:.]+ +\d+ [\w.]+:\d+\] ", quiet, re.M), quiet  # errors may stay
    assert "InitializeLog" not in quiet
