"""Recipe shell machinery: options, stage guards, job runners, recipe environment, install/test."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
UTILS = REPO / "recipes" / "utils"
TIMESTAMP = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d"
ISOLATED_VARIABLES = (
    "SLURM_OPTS",
    "INSTALL_OPTS",
    "PYTHON",
    "OMP_NUM_THREADS",
    "OMP_THREAD_LIMIT",
    "MKL_NUM_THREADS",
)


def clean_env(**overrides: str) -> dict[str, str]:
    """The test process environment without variables the scripts read, plus ``overrides``."""
    env = {k: v for k, v in os.environ.items() if k not in ISOLATED_VARIABLES}
    env.update(overrides)
    return env


def run(
    args: list[str | Path], cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in args],
        cwd=cwd,
        env=env or clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def write_executable(path: Path, body: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(body).lstrip())
    path.chmod(0o755)
    return path


def options_script(tmp_path: Path) -> Path:
    """A script with defaults that sources parse_options.sh and prints what it got."""
    return write_executable(
        tmp_path / "opts.sh",
        f"""
        #!/usr/bin/env bash
        set -euo pipefail
        stage=1
        foo_bar=default
        use_gpu=false
        help_message="Usage: opts.sh [options] <input>..."
        . {UTILS}/parse_options.sh
        printf '%s\\n' "stage=$stage" "foo_bar=$foo_bar" "use_gpu=$use_gpu" "nargs=$#"
        printf 'arg=%s\\n' "$@"
        """,
    )


def parsed(result: subprocess.CompletedProcess[str]) -> list[str]:
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


# --- parse_options.sh ---------------------------------------------------------------------------


@pytest.mark.parametrize("args", [["--foo-bar", "x"], ["--foo-bar=x"], ["--foo_bar", "x"]])
def test_option_sets_the_variable(tmp_path: Path, args: list[str]) -> None:
    out = parsed(run([options_script(tmp_path), *args], tmp_path))
    assert out[:4] == ["stage=1", "foo_bar=x", "use_gpu=false", "nargs=0"]


def test_values_with_spaces_and_empty_values_are_kept(tmp_path: Path) -> None:
    out = parsed(run([options_script(tmp_path), "--foo-bar", "a  b", "--stage="], tmp_path))
    assert out[:2] == ["stage=", "foo_bar=a  b"]


def test_positional_arguments_are_left_in_place(tmp_path: Path) -> None:
    script = options_script(tmp_path)
    out = parsed(run([script, "--stage", "3", "in put", "--foo-bar", "y"], tmp_path))
    assert out == [
        "stage=3",
        "foo_bar=default",
        "use_gpu=false",
        "nargs=3",
        "arg=in put",
        "arg=--foo-bar",
        "arg=y",
    ]
    out = parsed(run([script, "--stage", "2", "--", "--not-an-option"], tmp_path))
    assert out == ["stage=2", "foo_bar=default", "use_gpu=false", "nargs=1", "arg=--not-an-option"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--no-such-option", "1"], "unknown option '--no-such-option'"),
        (["--stage"], "option '--stage' requires a value"),
        (["--use-gpu", "yes"], "option '--use-gpu' expects true or false, got 'yes'"),
        (["--config", "missing.conf"], "cannot read config file 'missing.conf'"),
    ],
)
def test_bad_options_fail_with_a_message(tmp_path: Path, args: list[str], message: str) -> None:
    result = run([options_script(tmp_path), *args], tmp_path)
    assert result.returncode == 1
    assert message in result.stderr
    assert result.stdout == ""


def test_boolean_options_accept_true_and_false(tmp_path: Path) -> None:
    assert parsed(run([options_script(tmp_path), "--use-gpu", "true"], tmp_path))[2] == (
        "use_gpu=true"
    )


def test_help_prints_usage_and_current_values(tmp_path: Path) -> None:
    result = run([options_script(tmp_path), "--stage", "4", "--help"], tmp_path)
    assert result.returncode == 0
    lines = result.stdout.splitlines()
    assert lines[0] == "Usage: opts.sh [options] <input>..."
    assert {'  --stage "4"', '  --foo-bar "default"', '  --use-gpu "false"'} <= set(lines)
    assert "nargs=" not in result.stdout  # the script stops after printing the help


def test_config_file_is_read_first_and_command_line_wins(tmp_path: Path) -> None:
    config = tmp_path / "my.conf"
    config.write_text("# defaults for the demo\nstage=7\nfoo_bar='from config'\n")
    out = parsed(run([options_script(tmp_path), "--stage", "9", "--config", config], tmp_path))
    assert out[:2] == ["stage=9", "foo_bar=from config"]


# --- stage.sh -----------------------------------------------------------------------------------


def stages_script(tmp_path: Path) -> Path:
    return write_executable(
        tmp_path / "stages.sh",
        f"""
        #!/usr/bin/env bash
        set -euo pipefail
        stage=1
        stop_stage=100
        . {UTILS}/parse_options.sh
        . {UTILS}/stage.sh
        log "starting"
        for number in 1 2 3 4; do
          if run_stage "$number" "step $number"; then
            echo "ran stage $number"
          fi
        done
        """,
    )


def test_stage_guards_run_exactly_the_selected_stages(tmp_path: Path) -> None:
    result = run([stages_script(tmp_path), "--stage", "2", "--stop-stage", "3"], tmp_path)
    assert parsed(result) == ["ran stage 2", "ran stage 3"]
    log_lines = result.stderr.splitlines()
    assert len(log_lines) == 3
    assert re.fullmatch(rf"{TIMESTAMP} \(stages\.sh:7\) starting", log_lines[0])
    assert re.fullmatch(rf"{TIMESTAMP} \(stages\.sh:9\) Stage 2: step 2", log_lines[1])


def test_stage_guards_default_to_all_stages(tmp_path: Path) -> None:
    assert len(parsed(run([stages_script(tmp_path)], tmp_path))) == 4


def test_non_integer_stage_stops_the_script(tmp_path: Path) -> None:
    result = run([stages_script(tmp_path), "--stage", "two"], tmp_path)
    assert result.returncode == 1
    assert "stage must be an integer, got 'two'" in result.stderr
    assert result.stdout == ""


# --- run.pl -------------------------------------------------------------------------------------


def test_run_pl_writes_output_header_and_footer(tmp_path: Path) -> None:
    result = run([UTILS / "run.pl", "exp/log/hello.log", "echo", "hello", "world"], tmp_path)
    assert result.returncode == 0, result.stderr
    lines = (tmp_path / "exp/log/hello.log").read_text().splitlines()
    assert lines[0] == "# echo hello world"
    assert lines[1].startswith("# Started at ")
    assert "hello world" in lines
    assert re.fullmatch(r"# Accounting: time=\d+ threads=1", lines[-2])
    assert lines[-1].startswith("# Ended (code 0) at ")


def test_run_pl_reports_a_failing_command(tmp_path: Path) -> None:
    command = "echo to-stdout; echo to-stderr >&2; exit 3"
    result = run([UTILS / "run.pl", "fail.log", "bash", "-c", command], tmp_path)
    assert result.returncode != 0
    assert f"see {tmp_path / 'fail.log'}" in result.stderr
    text = (tmp_path / "fail.log").read_text()
    assert "to-stdout\nto-stderr\n" in text
    assert "# Ended (code 3) at " in text


def test_run_pl_job_array_substitutes_job_ids(tmp_path: Path) -> None:
    args = ["JOB=1:3", "log/task.JOB.log", "echo", "task", "JOB", ">", "out.JOB.txt"]
    result = run([UTILS / "run.pl", *args], tmp_path)
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in (tmp_path / "log").iterdir()) == [
        "task.1.log",
        "task.2.log",
        "task.3.log",
    ]
    for job in (1, 2, 3):
        assert (
            (tmp_path / f"log/task.{job}.log")
            .read_text()
            .startswith(f"# echo task {job} > out.{job}.txt\n")
        )
        assert (tmp_path / f"out.{job}.txt").read_text() == f"task {job}\n"


def test_run_pl_names_each_failed_job(tmp_path: Path) -> None:
    result = run(
        [UTILS / "run.pl", "JOB=1:4", "log/j.JOB.log", "test", "JOB", "-le", "2"], tmp_path
    )
    assert result.returncode == 1
    assert re.findall(r"see (\S+)", result.stderr) == [
        str(tmp_path / "log/j.3.log"),
        str(tmp_path / "log/j.4.log"),
    ]
    assert "2 / 4 jobs failed" in result.stderr


def test_run_pl_runs_jobs_in_parallel(tmp_path: Path) -> None:
    # Every job waits (up to 10 s) until all three have started: only parallel jobs succeed.
    wait_for_all = (
        "touch started.JOB; for i in $(seq 200); do [ -e started.1 ] && "
        "[ -e started.2 ] && [ -e started.3 ] && exit 0; sleep 0.05; done; exit 1"
    )
    args = ["--max-jobs-run", "3", "JOB=1:3", "log/p.JOB.log", "bash", "-c", wait_for_all]
    assert run([UTILS / "run.pl", *args], tmp_path).returncode == 0


def test_run_pl_respects_max_jobs_run(tmp_path: Path) -> None:
    # mkdir fails when another job holds the lock directory, so overlapping jobs fail.
    exclusive = "mkdir lock && sleep 0.1 && rmdir lock"
    args = ["--max-jobs-run", "1", "JOB=1:3", "log/x.JOB.log", "bash", "-c", exclusive]
    result = run([UTILS / "run.pl", *args], tmp_path)
    assert result.returncode == 0, result.stderr


def test_run_pl_passes_arguments_verbatim_and_operators_as_operators(tmp_path: Path) -> None:
    args = ["q.log", "printf", "%s|", "a  b", "it's", "$HOME", "*", "|", "tr", "a-z", "A-Z"]
    assert run([UTILS / "run.pl", *args], tmp_path).returncode == 0
    assert "\nA  B|IT'S|$HOME|*|\n" in (tmp_path / "q.log").read_text()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["JOB=1:2", "one.log", "true"], "needs 'JOB' in the log file name"),
        (["--no-such", "1", "x.log", "true"], "unknown option '--no-such'"),
        (["--max-jobs-run", "0", "x.log", "true"], "invalid value '0' for max_jobs_run"),
        (["x.log"], "missing LOGFILE and command"),
    ],
)
def test_run_pl_rejects_bad_command_lines(tmp_path: Path, args: list[str], message: str) -> None:
    result = run([UTILS / "run.pl", *args], tmp_path)
    assert result.returncode == 1
    assert message in result.stderr


# --- slurm.pl -----------------------------------------------------------------------------------


def fake_slurm(tmp_path: Path, *, runs_jobs: bool = True, queue_state: str = "RUNNING") -> Path:
    """A bin directory with an sbatch that runs the batch script in the background (or drops it)
    and records its arguments, and a squeue that reports ``queue_state`` for every job."""
    bin_dir = tmp_path / "bin"
    start = 'nohup bash "${!#}" >/dev/null 2>&1 &' if runs_jobs else ":"
    write_executable(
        bin_dir / "sbatch",
        f"""
        #!/usr/bin/env bash
        printf '%s\\n' "$@" >>"{tmp_path}/sbatch.args"
        {start}
        echo "4242;cluster"
        """,
    )
    write_executable(
        bin_dir / "squeue",
        f"""
        #!/usr/bin/env bash
        echo "{queue_state}"
        """,
    )
    return bin_dir


def env_with_bin(bin_dir: Path, **overrides: str) -> dict[str, str]:
    """The clean environment with ``bin_dir`` first on PATH."""
    return clean_env(PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}", **overrides)


def test_slurm_pl_runs_jobs_with_the_requested_resources(tmp_path: Path) -> None:
    bin_dir = fake_slurm(tmp_path)
    config = tmp_path / "slurm.conf"
    config.write_text("# cluster defaults\ntime=0:10:00\npartition=default\n")
    args = [
        "--config",
        config,
        "--mem",
        "2G",
        "--poll-interval",
        "0.05",
        "JOB=1:2",
        "exp/log/s.JOB.log",
        "echo",
        "hello",
        "JOB",
    ]
    env = env_with_bin(bin_dir, SLURM_OPTS="--partition debug --gpus 1")
    result = run([UTILS / "slurm.pl", *args], tmp_path, env)
    assert result.returncode == 0, result.stderr
    for job in (1, 2):
        log = (tmp_path / f"exp/log/s.{job}.log").read_text()
        assert f"\nhello {job}\n" in log
        assert "# Ended (code 0) at " in log
        assert (tmp_path / f"exp/log/q/s.{job}.sh").is_file()
        assert (tmp_path / f"exp/log/q/s.{job}.done").read_text() == "0\n"
    submitted = (tmp_path / "sbatch.args").read_text().splitlines()
    assert submitted.count("--parsable") == 2
    for expected in (
        "--partition=debug",
        "--time=0:10:00",
        "--mem=2G",
        "--gres=gpu:1",
        "--job-name=s.1",
        str(tmp_path / "exp/log/q/s.2.sh"),
    ):
        assert expected in submitted


def test_slurm_pl_reports_a_failed_job(tmp_path: Path) -> None:
    args = ["--poll-interval", "0.05", "JOB=1:2", "log/f.JOB.log", "bash", "-c", "exit $((2*JOB))"]
    result = run([UTILS / "slurm.pl", *args], tmp_path, env_with_bin(fake_slurm(tmp_path)))
    assert result.returncode == 1
    assert f"see {tmp_path / 'log/f.1.log'}" in result.stderr
    assert (tmp_path / "log/q/f.2.done").read_text() == "4\n"
    assert "# Ended (code 4) at " in (tmp_path / "log/f.2.log").read_text()


def test_slurm_pl_fails_a_job_that_leaves_the_queue_silently(tmp_path: Path) -> None:
    bin_dir = fake_slurm(tmp_path, runs_jobs=False, queue_state="")
    args = ["--poll-interval", "0.02", "log/lost.log", "true"]
    result = run([UTILS / "slurm.pl", *args], tmp_path, env_with_bin(bin_dir))
    assert result.returncode == 1
    assert "Slurm job 4242 left the queue without writing" in result.stderr


def test_slurm_pl_reports_a_failed_submission(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    write_executable(
        bin_dir / "sbatch",
        """
        #!/usr/bin/env bash
        echo "sbatch: error: invalid partition" >&2
        exit 1
        """,
    )
    result = run([UTILS / "slurm.pl", "log/x.log", "true"], tmp_path, env_with_bin(bin_dir))
    assert result.returncode == 1
    assert "submission failed (sbatch exit status 1" in result.stderr


# --- path_template.sh ---------------------------------------------------------------------------


def fake_repo_with_path_template(tmp_path: Path, with_venv: bool = True) -> Path:
    root = tmp_path / "repo"
    (root / "recipes/utils").mkdir(parents=True)
    shutil.copy(REPO / "recipes/path_template.sh", root / "recipes/path_template.sh")
    if with_venv:
        write_executable(root / ".venv/bin/python", "#!/bin/sh\n")
    return root


PRINT_ENVIRONMENT = (
    'printf "%s\\n" "$OMP_NUM_THREADS" "$MKL_NUM_THREADS" "$PYTHONUNBUFFERED" '
    '"$VIRTUAL_ENV" "$LATENTDIFF_ROOT" "$PATH"'
)


def test_path_template_sets_up_the_environment(tmp_path: Path) -> None:
    root = fake_repo_with_path_template(tmp_path)
    script = (
        f"set -euo pipefail; . {root}/recipes/path_template.sh; "
        f". {root}/recipes/path_template.sh; {PRINT_ENVIRONMENT}"
    )
    omp, mkl, unbuffered, venv, repo_root, path = parsed(run(["bash", "-c", script], tmp_path))
    assert omp == mkl == str(len(os.sched_getaffinity(0)))
    assert unbuffered == "1"
    assert venv == str(root / ".venv")
    assert repo_root == str(root)
    entries = path.split(":")
    assert entries[:2] == [str(root / ".venv/bin"), str(root / "recipes/utils")]
    assert entries.count(str(root / "recipes/utils")) == 1  # sourcing twice adds nothing


def test_path_template_keeps_thread_counts_set_by_the_user(tmp_path: Path) -> None:
    root = fake_repo_with_path_template(tmp_path)
    script = f"set -euo pipefail; . {root}/recipes/path_template.sh; {PRINT_ENVIRONMENT}"
    out = parsed(run(["bash", "-c", script], tmp_path, clean_env(OMP_NUM_THREADS="3")))
    assert out[:2] == ["3", "3"]


def test_path_template_fails_without_venv(tmp_path: Path) -> None:
    root = fake_repo_with_path_template(tmp_path, with_venv=False)
    result = run(["bash", "-c", f"set -e; . {root}/recipes/path_template.sh; echo after"], tmp_path)
    assert result.returncode == 1
    assert "run tools/install.sh first" in result.stderr
    assert "after" not in result.stdout


# --- egs/TEMPLATE -------------------------------------------------------------------------------


def test_template_recipe_runs_end_to_end(tmp_path: Path) -> None:
    recipe = REPO / "egs/TEMPLATE/v1"
    args = ["./run.sh", "--nj", "3", "--datadir", tmp_path / "data", "--expdir", tmp_path / "exp"]
    result = run(args, recipe)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "exp/total.txt").read_text() == f"{sum(i * i for i in range(1, 21))}\n"
    logs = sorted(p.name for p in (tmp_path / "exp/log").iterdir())
    assert logs == ["square.1.log", "square.2.log", "square.3.log", "sum.log"]
    assert "Stage 4: Sum the squares" in result.stderr


# --- tools/install.sh, tools/test.sh, .ci/run ---------------------------------------------------


def fake_project(tmp_path: Path) -> Path:
    """A repository with install.sh, its inputs and a .venv whose python records its calls."""
    root = tmp_path / "project"
    (root / "tools").mkdir(parents=True)
    shutil.copy(REPO / "tools/install.sh", root / "tools/install.sh")
    (root / "pyproject.toml").write_text('[project]\nname = "demo"\n')
    (root / "tools/constraints.txt").write_text("demo-dependency==1.0\n")
    write_executable(
        root / ".venv/bin/python",
        f"""
        #!/usr/bin/env bash
        echo "python $*" >>"{tmp_path}/calls"
        """,
    )
    return root


def input_hash(root: Path) -> str:
    inputs = (root / "pyproject.toml").read_bytes() + (root / "tools/constraints.txt").read_bytes()
    return hashlib.sha256(inputs).hexdigest()


def calls(tmp_path: Path) -> list[str]:
    path = tmp_path / "calls"
    return path.read_text().splitlines() if path.exists() else []


def test_install_help(tmp_path: Path) -> None:
    result = run(["bash", REPO / "tools/install.sh", "--help"], tmp_path)
    assert result.returncode == 0
    assert "--no-system" in result.stdout and "--check" in result.stdout


def test_install_check_compares_the_stamp(tmp_path: Path) -> None:
    root = fake_project(tmp_path)
    check = ["bash", root / "tools/install.sh", "--check"]
    result = run(check, tmp_path)
    assert result.returncode == 1
    assert ".venv/.installed does not exist" in result.stdout
    (root / ".venv/.installed").write_text(input_hash(root) + "\n")
    assert run(check, tmp_path).returncode == 0
    (root / "tools/constraints.txt").write_text("demo-dependency==2.0\n")
    result = run(check, tmp_path)
    assert result.returncode == 1
    assert "tools/constraints.txt changed since the last install" in result.stdout
    assert calls(tmp_path) == []


def test_install_is_a_no_op_when_up_to_date(tmp_path: Path) -> None:
    root = fake_project(tmp_path)
    (root / ".venv/.installed").write_text(input_hash(root) + "\n")
    result = run(["bash", root / "tools/install.sh"], tmp_path)
    assert result.returncode == 0
    assert "up to date; nothing to do" in result.stdout
    assert calls(tmp_path) == []


def fake_apt(tmp_path: Path, missing: str, broken: str) -> Path:
    """Root `id`, `dpkg-query` reporting ``missing`` packages absent, `apt-get` failing for
    ``broken`` ones; every apt-get call is recorded."""
    bin_dir = tmp_path / "bin"
    write_executable(bin_dir / "id", "#!/bin/sh\necho 0\n")
    write_executable(
        bin_dir / "dpkg-query",
        f"""
        #!/usr/bin/env bash
        case " {missing} " in *" ${{!#}} "*) exit 1 ;; esac
        printf 'install ok installed'
        """,
    )
    write_executable(
        bin_dir / "apt-get",
        f"""
        #!/usr/bin/env bash
        echo "apt-get $* DEBIAN_FRONTEND=$DEBIAN_FRONTEND" >>"{tmp_path}/calls"
        case " {broken} " in *" ${{!#}} "*) exit 100 ;; esac
        """,
    )
    return bin_dir


def test_install_installs_missing_packages_and_the_project(tmp_path: Path) -> None:
    root = fake_project(tmp_path)
    env = env_with_bin(fake_apt(tmp_path, missing="espeak-ng sox", broken="sox"))
    result = run(["bash", root / "tools/install.sh"], tmp_path, env)
    assert result.returncode == 0, result.stderr
    assert "could not install optional package sox" in result.stderr
    assert calls(tmp_path) == [
        "apt-get update -qq DEBIAN_FRONTEND=noninteractive",
        "apt-get install -y -qq --no-install-recommends espeak-ng DEBIAN_FRONTEND=noninteractive",
        "apt-get install -y -qq --no-install-recommends sox DEBIAN_FRONTEND=noninteractive",
        "python -c ",
        "python -m pip install --quiet --upgrade pip",
        "python -m pip install --quiet -e .[test,bench] -c tools/constraints.txt",
    ]
    assert (root / ".venv/.installed").read_text() == input_hash(root) + "\n"


def test_install_fails_when_a_required_package_cannot_be_installed(tmp_path: Path) -> None:
    root = fake_project(tmp_path)
    env = env_with_bin(fake_apt(tmp_path, missing="libsndfile1", broken="libsndfile1"))
    result = run(["bash", root / "tools/install.sh"], tmp_path, env)
    assert result.returncode == 1
    assert "could not install required system packages: libsndfile1" in result.stderr
    assert not any(call.startswith("python") for call in calls(tmp_path))
    assert not (root / ".venv/.installed").exists()


def fake_checkout(tmp_path: Path, pytest_status: int) -> Path:
    """A repository whose install, ruff and pytest only record how they were called."""
    root = tmp_path / "checkout"
    for script in ("tools/test.sh", ".ci/run"):
        (root / script).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / script, root / script)
    record = f'echo "$(basename "$0") $* (in $PWD)" >>"{tmp_path}/calls"'
    write_executable(root / "tools/install.sh", f"#!/usr/bin/env bash\n{record}\n")
    write_executable(root / ".venv/bin/ruff", f"#!/usr/bin/env bash\n{record}\n")
    write_executable(
        root / ".venv/bin/python", f"#!/usr/bin/env bash\n{record}\nexit {pytest_status}\n"
    )
    return root


@pytest.mark.parametrize("status", [0, 3, 5])
def test_test_sh_runs_install_ruff_and_pytest(tmp_path: Path, status: int) -> None:
    root = fake_checkout(tmp_path, status)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    result = run(
        ["bash", root / "tools/test.sh", "-k", "shell"],
        elsewhere,
        clean_env(INSTALL_OPTS="--no-system"),
    )
    assert result.returncode == status
    assert calls(tmp_path) == [
        f"install.sh --no-system (in {root})",
        f"ruff check latentdiff tests (in {root})",
        f"python -m pytest -q -k shell (in {root})",
    ]
    assert ("collected no tests" in result.stderr) == (status == 5)


def test_ci_entry_runs_the_test_script_from_the_repo_root(tmp_path: Path) -> None:
    root = fake_checkout(tmp_path, pytest_status=0)
    result = run([root / ".ci/run"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert calls(tmp_path)[-1] == f"python -m pytest -q (in {root})"
    assert (root / ".ci/run").read_text().splitlines()[-1] == "bash tools/test.sh"
