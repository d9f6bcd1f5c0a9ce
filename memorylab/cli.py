"""The `memorylab` command: validate and run scenario files.

Exit codes: 0 done, 1 a run failed with a user-facing error (MemorylabError), 2 bad input (scenario
problems, usage, an out dir in the way), 130 interrupted. Anything else that escapes is a bug and keeps
its traceback. Output is plain `typer.echo`, not rich: problem lines must stay greppable, one per line.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import List, NoReturn, Optional

import typer

from memorylab import __version__
from memorylab.errors import MemorylabError
from memorylab.runners.run_folder import holds_only_marker
from memorylab.scenario import KINDS, kind_of
from memorylab.scenario_loader import ScenarioError, load_scenario, load_scenario_and_dict

# pretty_exceptions off: a bug's traceback should be the plain one, and user errors never get one.
app = typer.Typer(
    name="memorylab",
    help="Study and operate the memory of language models on Ray.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)

SCENARIO_SUFFIXES = (".yaml", ".yml")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"memorylab {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Study and operate the memory of language models on Ray."""


def _fail(problems: List[str]) -> NoReturn:
    for line in problems:
        typer.echo(line, err=True)
    raise typer.Exit(2)


def _expand(files: List[Path]) -> List[Path]:
    """A folder stands for the scenario files under it, so CI can run `memorylab validate scenarios/`."""
    out: List[Path] = []
    for f in files:
        if f.is_dir():
            found = sorted(p for p in f.rglob("*") if p.suffix in SCENARIO_SUFFIXES and p.is_file())
            out.extend(found or [f])  # an empty folder is reported by the loader as "is a folder"
        else:
            out.append(f)
    return out


@app.command()
def validate(
    files: List[Path] = typer.Argument(..., help="Scenario files (or folders of them) to check."),
) -> None:
    """Check scenario files; print `ok FILE (kind)` for each valid one and every problem of the others."""
    problems: List[str] = []
    for path in _expand(files):
        try:
            scenario = load_scenario(path, joins_ray=_joins_ray(None))
        except ScenarioError as e:
            problems += e.problems
            continue
        typer.echo(f"ok {path} ({scenario.kind})")
    if problems:
        _fail(problems)


@app.command()
def run(
    file: Path = typer.Argument(..., help="The scenario file."),
    out: Optional[Path] = typer.Option(None, "--out", help="Run folder (default: runs/<scenario name>)."),
    address: Optional[str] = typer.Option(
        None, "--address", help="Ray address to join (overrides ray.address; default: $RAY_ADDRESS, else local)."
    ),
    overrides: List[str] = typer.Option([], "--set", help="Override a setting: --set train.lr=1e-3 (repeatable)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Delete a previous run in the folder, start afresh."),
    resume: bool = typer.Option(False, "--resume", help="Continue a run in the folder: keep finished models, "
                                "resume training from the last checkpoint."),
) -> None:
    """Run one scenario and print the path of its report."""
    try:
        scenario, raw_config = load_scenario_and_dict(file, overrides, joins_ray=_joins_ray(address))
    except ScenarioError as e:
        _fail(e.problems)

    command = kind_of(scenario).command
    if command != "run":
        _fail([f"{file}: a {scenario.kind} scenario is not run but used with `memorylab {command}`: "
               f"memorylab {command} {file}"])
    out_dir = _experiment_folder(out, Path("runs") / scenario.name, overwrite, resume)

    address = _address(address, scenario)

    from memorylab.runners import RunContext, run_scenario  # lazy: Ray and torch load only for a run

    try:
        run_scenario(scenario, out_dir, RunContext(address=address, raw_config=raw_config, scenario_path=file),
                     overwrite=overwrite, resume=resume)
    except ScenarioError as e:  # a runner re-checking the scenario (e.g. a referenced file) is still bad input
        _fail(e.problems)
    except (MemorylabError, OSError, *_ray_task_errors()) as e:
        _failure(e)
    except KeyboardInterrupt:
        # Caught here because click would turn it into "Aborted!" with exit code 1.
        typer.echo(f"interrupted; partial results may be in {out_dir}", err=True)
        raise typer.Exit(130)
    typer.echo(str(out_dir / "report.json"))


@app.command()
def serve(
    file: Path = typer.Argument(..., help="A memory_agent scenario file."),
    port: Optional[int] = typer.Option(None, "--port", help="HTTP port (default: serve.port, 8000)."),
    host: Optional[str] = typer.Option(None, "--host", help="Interface to listen on (default: serve.host, loopback)."),
    address: Optional[str] = typer.Option(None, "--address", help="Ray address to join (default: $RAY_ADDRESS, "
                                          "else a local Ray)."),
    folder: Optional[Path] = typer.Option(None, "--folder", help="Where the store and generator live "
                                          "(default: serve.folder, else runs/<name>)."),
    overrides: List[str] = typer.Option([], "--set", help="Override a setting (repeatable)."),
    config_out: Optional[Path] = typer.Option(None, "--config-out", help="Write the Serve config (for `serve "
                                              "deploy` and a RayService's serveConfigV2) to this file and exit "
                                              "without serving; it listens on --host, default 0.0.0.0."),
) -> None:
    """Serve a memory agent over HTTP (Ray Serve) until interrupted; OpenAPI docs at /docs."""
    try:
        scenario, raw_config = load_scenario_and_dict(file, overrides, joins_ray=_joins_ray(address))
    except ScenarioError as e:
        _fail(e.problems)
    if kind_of(scenario).command != "serve":
        _fail([f"{file}: kind is '{scenario.kind}'; `memorylab serve` needs kind: {_kinds_of('serve')}"])
    if config_out is not None:
        from memorylab.serve.config_out import serve_config, write_serve_config

        try:
            config = serve_config(scenario, raw_config, host=host, port=port, folder=folder)
            write_serve_config(config, config_out, file)
        except OSError as e:
            _fail([f"error: cannot write {config_out}: {e.strerror or e}"])
        except MemorylabError as e:
            typer.echo(f"error: {e}", err=True)
            raise typer.Exit(1)
        typer.echo(f"wrote {config_out}; deploy it: serve deploy {config_out} --address http://HEAD:8265")
        return
    address = _address(address, scenario)

    import time

    from memorylab.cluster.connect import connect
    from memorylab.serve.launch import start_agent, stop_agent

    try:
        connect(address, scenario.ray.num_cpus)
        url = start_agent(scenario, host=host or scenario.serve.host, port=port or scenario.serve.port,
                          folder=str(folder) if folder else None)
        typer.echo(f"serving {scenario.name} at {url} (API docs: {url}/docs); Ctrl-C stops")
        while True:
            time.sleep(3600)
    except MemorylabError as e:
        typer.echo(f"error: {e}", err=True)
        stop_agent()
        raise typer.Exit(1)
    except KeyboardInterrupt:
        stop_agent()
        typer.echo("stopped")


def _kinds_of(command: str) -> str:
    return " or ".join(k.name for k in KINDS.values() if k.command == command)


def _joins_ray(given: Optional[str]) -> bool:
    """Whether the run joins a cluster whatever the file says (see `_address`): then the file's ray.num_cpus,
    which sizes a local Ray, is not checked against its resources."""
    return bool(given or os.environ.get("RAY_ADDRESS"))


def _address(given: Optional[str], scenario) -> Optional[str]:
    """--address wins over the file's ray.address; $RAY_ADDRESS only when neither names one (ray.init would
    read it anyway, but passing it makes the address that was used visible to the runner and its report)."""
    ray_config = getattr(scenario, "ray", None)
    return given or getattr(ray_config, "address", None) or os.environ.get("RAY_ADDRESS") or None


def _experiment_folder(out: Optional[Path], default: Path, overwrite: bool, resume: bool) -> Path:
    """The run or experiment folder, refused (exit 2) when it is in the way: a file, or a previous run that
    neither --overwrite nor --resume names. Checked before Ray and torch load, so a clash costs nothing."""
    folder = out if out is not None else default
    if folder.exists() and not folder.is_dir():
        _fail([f"error: {folder} exists and is not a folder"])
    _check_creatable(folder, "--out " if out is not None else "")
    if overwrite and resume:
        _fail(["error: --overwrite and --resume contradict each other; pass one"])
    # A folder holding only the marker is a run that failed before it began (killed while connecting, say).
    in_the_way = folder.is_dir() and any(folder.iterdir()) and not holds_only_marker(folder)
    if in_the_way and not (overwrite or resume):
        _fail([f"error: {folder} already exists and is not empty; "
               "pass --overwrite (start afresh), --resume (continue it) or choose --out"])
    return folder


def _check_creatable(folder: Path, option: str) -> None:
    """Refuse (exit 2) a folder that cannot be made (a file on its path, /proc, no permission) by making it:
    the folders made here are removed again, the run makes (and marks) its folder itself."""
    made = [p for p in [folder, *folder.parents] if not p.exists()]
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        _fail([f"error: cannot create {option}{folder}: {e.strerror or e}"])
    for path in made:
        path.rmdir()


def _ray_task_errors() -> tuple[type, ...]:
    from ray.exceptions import RayActorError, RayTaskError  # loaded already by then: only a run reaches this

    return (RayTaskError, RayActorError)


def _failure(e: BaseException) -> NoReturn:
    """A run that failed with an error the user can act on (a MemorylabError, an OSError such as a model that
    cannot be downloaded): one line, exit 1. An error raised in a Ray task is reported as its cause."""
    from ray.exceptions import RayActorError

    from memorylab.tune.errors import error_line, user_facing

    if isinstance(e, RayActorError):  # the machine's doing, not the run's: killed, out of memory, overloaded
        typer.echo(f"error: a Ray actor of the run died ({error_line(e)}); the machine may be out of memory or "
                   f"too loaded for its health checks; run it again with --resume", err=True)
        raise typer.Exit(1)
    if user_facing(e) is None:
        raise e  # an error in a Ray task that is a bug: its traceback is what helps
    typer.echo(f"error: {error_line(e)}", err=True)
    raise typer.Exit(1)


@app.command()
def tune(
    file: Path = typer.Argument(..., help="A sweep scenario file."),
    out: Optional[Path] = typer.Option(None, "--out", help="Experiment folder (default: storage_path/<name>, "
                                       "else runs/<name>)."),
    address: Optional[str] = typer.Option(None, "--address", help="Ray address to join (default: $RAY_ADDRESS, "
                                          "else a local Ray)."),
    overrides: List[str] = typer.Option([], "--set", help="Override a setting: --set num_samples=32 (repeatable)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Delete a previous experiment in the folder."),
    resume: bool = typer.Option(False, "--resume", help="Continue an interrupted experiment: finished trials "
                                "are kept, unfinished ones run again."),
) -> None:
    """Run a sweep with Ray Tune, then write its analysis (analysis.md, pareto.png) into the folder."""
    try:
        sweep, raw_config = load_scenario_and_dict(file, overrides, joins_ray=_joins_ray(address))
    except ScenarioError as e:
        _fail(e.problems)
    if kind_of(sweep).command != "tune":
        _fail([f"{file}: kind is '{sweep.kind}'; `memorylab tune` needs kind: {_kinds_of('tune')} "
               f"(use it with: memorylab {kind_of(sweep).command} {file})"])
    default = Path(sweep.storage_path or "runs") / sweep.name
    folder = _experiment_folder(out, default, overwrite, resume)
    address = _address(address, sweep)

    from memorylab.runners.run_folder import marked_folder
    from memorylab.scenario_loader import load_named
    from memorylab.tune.analysis import analyze_experiment
    from memorylab.tune.experiment import run_sweep

    try:
        wrapped, wrapped_raw, wrapped_path = load_named(sweep.scenario, file)
        with marked_folder(folder, "sweep", overwrite=overwrite):
            record = run_sweep(sweep, wrapped, wrapped_raw, folder, scenario_path=wrapped_path, address=address,
                               resume=resume, raw_config=raw_config)
        table = analyze_experiment(folder)
    except ScenarioError as e:
        _fail(e.problems)
    except (MemorylabError, OSError, *_ray_task_errors()) as e:
        _failure(e)
    except KeyboardInterrupt:
        typer.echo(f"interrupted; continue with: memorylab tune {file} --out {folder} --resume", err=True)
        raise typer.Exit(130)
    typer.echo(table)
    wall_s = (record.get("resumes") or [record])[-1]["wall_s"]  # this invocation's
    typer.echo(f"{record['trials']} trials ({record['errored']} failed) in {wall_s:.0f} s; "
               f"analysis: {folder / 'analysis.md'}")
    if record["errored"]:
        raise typer.Exit(1)


@app.command()
def analyze(
    folder: Path = typer.Argument(..., help="An experiment folder written by `memorylab tune`."),
    top: int = typer.Option(10, "--top", min=1, help="Rows to print."),
) -> None:
    """Write analysis.csv, analysis.md (best trial per objective, Pareto front) and pareto.png; print the top."""
    from memorylab.tune.analysis import analyze_experiment

    try:
        typer.echo(analyze_experiment(folder, top=top))
    except MemorylabError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(1)
    typer.echo(f"analysis: {folder / 'analysis.md'}")


def main() -> None:
    app(prog_name="memorylab")


if __name__ == "__main__":
    main()
