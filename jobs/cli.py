"""The ``plankton-jobs`` command: one click group, each job loaded only when it is run.

Jobs live in their own modules (a plain function doing the work plus a thin click command).
They are imported lazily so that ``plankton-jobs --help`` and the non-CNN jobs start fast and
never import TensorFlow.
"""

from __future__ import annotations

import importlib

import click

from plankton_store import __version__

#: command name -> "module:attribute" of its click command, in the order shown by --help.
COMMANDS: dict[str, str] = {
    "make-demo-data": "jobs.make_demo_data:make_demo_data_command",
    "explore": "jobs.explore:explore_command",
    "build-store": "jobs.build_store:build_store_command",
    "ingest": "jobs.ingest:ingest_command",
    "train": "jobs.train:train_command",
    "ensemble": "jobs.ensemble:ensemble_command",
    "evaluate": "jobs.evaluate:evaluate_command",
    "compare": "jobs.compare:compare_command",
    "predict": "jobs.predict:predict_command",
    "verify": "jobs.verify:verify_command",
    "embed": "jobs.embed:embed_command",
    "similar": "jobs.similar:similar_command",
    "thresholds": "jobs.thresholds:thresholds_command",
    "abundance": "jobs.abundance:abundance_command",
}


class LazyGroup(click.Group):
    """A click group that imports a command's module only when that command is used."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module_name, attr = target.split(":")
        return getattr(importlib.import_module(module_name), attr)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="plankton-jobs")
def main() -> None:
    """Plankton-image feature store and batch jobs on Dask.

    Typical flow: make-demo-data (or use your FlowCam/EcoTaxa export) -> build-store -> train
    -> evaluate. Run `plankton-jobs COMMAND --help` for the options of each job.
    """


if __name__ == "__main__":
    main()
