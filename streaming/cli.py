"""`riskpipe stream compute | ingest | archive | compact`: the streaming worker processes.

`riskpipe up` starts the three workers through the supervisor; these commands are what it
runs, and what an operator runs by hand (or once per extra worker to scale out: more
partitions, more `compute` processes with the same app id).
"""

from __future__ import annotations

import typer

from riskpipe.settings import get_settings

stream_app = typer.Typer(help="Streaming workers: feature compute (Faust), ingestion to the stores, event archive.",
                         no_args_is_help=True)


@stream_app.command()
def compute() -> None:
    """Run the Faust feature worker: events.* -> windowed features -> features.<group>."""
    from streaming.faust_app import run_worker

    run_worker(get_settings())


@stream_app.command()
def ingest() -> None:
    """Run the ingestion worker: features.<group> -> Redis (online) + offline store."""
    from streaming.ingest import run_ingest
    from streaming.logs import setup_logging

    setup_logging()
    run_ingest(get_settings())


@stream_app.command()
def archive() -> None:
    """Run the archive worker: events.* -> Parquet partitions (topic/dt/hour) in the lake."""
    from streaming.archive import run_archive
    from streaming.logs import setup_logging

    setup_logging()
    run_archive(get_settings())


@stream_app.command()
def compact(min_files: int = typer.Option(None, help="Compact hour partitions with at least this many files "
                                                     "(default: settings.archive_compact_min_files).")) -> None:
    """Compact the lake's small archive files now (safe while the archiver runs; finishes interrupted runs)."""
    from riskpipe.topics import EVENT_TOPICS
    from streaming.compaction import compact as run_compact

    settings = get_settings()
    report = run_compact(str(settings.lake_uri), list(EVENT_TOPICS),
                         min_files=min_files or settings.archive_compact_min_files)
    typer.echo(f"compacted {report.partitions} partition(s): {report.files_in} files -> {report.partitions}, "
               f"{report.rows} rows, {report.duplicates_dropped} duplicate(s) dropped, "
               f"{report.recovered} interrupted run(s) finished")
