"""`executor:` in backfill.yaml (DESIGN.md): local by default, a phase may override it; ray and
cloud_run run (tests/executors/test_ray.py, test_cloud_run.py), with one setting per kind per
file; a config they cannot run (a cloud_run phase whose processor names no Cloud Run Job) is
refused by every command with one line naming file:line and key, and exit 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.config import load_config
from core.config.model import LocalExecutor
from core.errors import ConfigError
from tests.helpers import invoke, write_config
from tests.reliability.test_hostile_config import GOOD, assert_refused, good_folder

RAY = "executor:\n  kind: ray\n  address: http://127.0.0.1:8265\n"


def config_with(tmp_path: Path, top: str = "", *, phase: str = "", processor: str = "") -> Path:
    text = top + GOOD
    if phase:
        text = text.replace("  - name: work\n", "  - name: work\n" + phase)
    if processor:
        text = text.replace(
            'command: ["true", "{start}"]\n', 'command: ["true", "{start}"]\n' + processor
        )
    return write_config(tmp_path, text)


def test_executor_defaults_to_local(tmp_path):
    config = load_config(config_with(tmp_path))
    assert config.executor == LocalExecutor()
    assert all(config.executor_of(phase).kind == "local" for phase in config.phases)


def test_a_phase_overrides_the_executor(tmp_path):
    config = load_config(config_with(tmp_path, phase="    executor: {kind: local}\n"))
    assert config.phase("work").executor == LocalExecutor()
    assert config.phase("raw").executor is None


def test_status_json_names_each_phases_executor(tmp_path, capsys):
    path = config_with(good_folder(tmp_path), phase="    executor: {kind: local}\n")
    code, out, err = invoke(["status", "--json", "--config", str(path)], capsys)
    assert code == 0, err
    assert [(p["name"], p["executor"]) for p in json.loads(out)["phases"]] == [
        ("raw", "local"),
        ("work", "local"),
    ]


def ray_config(tmp_path: Path, extra: str = "") -> Path:
    return config_with(tmp_path, RAY + extra)


@pytest.mark.parametrize("command", [["status"], ["plan", "2024-01-02"]])
def test_selecting_ray_is_accepted(tmp_path, capsys, command):
    path = ray_config(good_folder(tmp_path), "  resources: {CPU: 1}\n  token_env: RAY_TOKEN\n")
    code, _out, err = invoke([*command, "--config", str(path)], capsys)
    assert code == 0, err


def test_two_different_ray_settings_are_refused_naming_both_lines(tmp_path, capsys):
    path = config_with(
        tmp_path,
        RAY,
        phase="    executor: {kind: ray, address: 'http://127.0.0.1:9999'}\n",
    )
    result = invoke(["status", "--config", str(path)], capsys)
    line = next(i for i, text in enumerate(path.read_text().splitlines(), 1) if "9999" in text)
    assert_refused(result, path, str(line), "a second, different ray executor setting")
    assert f"the other is at {path.name}:1 executor" in result[2], result[2]


def test_the_same_ray_setting_twice_is_fine(tmp_path):
    config = load_config(
        config_with(
            tmp_path, RAY, phase="    executor: {kind: ray, address: 'http://127.0.0.1:8265'}\n"
        )
    )
    assert config.executor_of(config.phase("work")).kind == "ray"


def test_run_refuses_a_cloud_run_processor_naming_no_job_before_starting(tmp_path, capsys):
    path = config_with(
        tmp_path,
        phase="    executor: {kind: cloud_run, project: my-proj-1, region: europe-west1}\n",
    )
    result = invoke(["run", "2024-01-02", "--headless", "--config", str(path)], capsys)
    assert_refused(
        result,
        path,
        "15",
        "phases[1].processors[0]: processor job runs on executor cloud_run (phase work) but "
        "names no Cloud Run Job",
    )
    assert not list(tmp_path.glob(".backfill/logs/**/*.log")), "no attempt may have started"


def test_ray_keys_are_validated_before_availability(tmp_path):
    with pytest.raises(ConfigError) as missing:
        load_config(config_with(tmp_path, "executor: {kind: ray}\n"))
    assert "executor.address" in str(missing.value) and "required key is missing" in str(
        missing.value
    )
    with pytest.raises(ConfigError) as bad:
        load_config(ray_config(tmp_path, "  resources: {CPU: -1}\n"))
    assert "executor.resources.CPU" in str(bad.value), bad.value
    with pytest.raises(ConfigError) as token:
        load_config(ray_config(tmp_path, "  token_env: ${RAY_TOKEN}\n"))
    assert "executor.token_env" in str(token.value), token.value
    with pytest.raises(ConfigError) as address:
        load_config(config_with(tmp_path, "executor: {kind: ray, address: 127.0.0.1:8265}\n"))
    assert "executor.address" in str(address.value), address.value


def test_cloud_run_keys_are_validated(tmp_path):
    with pytest.raises(ConfigError) as region:
        load_config(
            config_with(tmp_path, "executor: {kind: cloud_run, project: p-12345, region: Europe}\n")
        )
    assert "executor.region" in str(region.value), region.value
    with pytest.raises(ConfigError) as job:
        load_config(config_with(tmp_path, processor="        cloud_run: {job: Player_Props}\n"))
    assert "cloud_run.job" in str(job.value), job.value
    with pytest.raises(ConfigError) as unknown:
        load_config(config_with(tmp_path, "executor: {kind: warp}\n"))
    assert "unknown kind 'warp'" in str(unknown.value), unknown.value


def test_a_processor_cloud_run_mapping_is_kept_for_a_local_run(tmp_path):
    """The mapping may stay in the file while the phase runs locally (as the seed's does)."""
    config = load_config(
        config_with(tmp_path, processor="        cloud_run: {job: player-props, args_from: 2}\n")
    )
    mapping = config.processor("job").cloud_run
    assert mapping is not None and (mapping.job, mapping.args_from) == ("player-props", 2)
