"""``radstore sql "<query>"``: DuckDB over the offline store (views: see radstore.sql)."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer


class Format(StrEnum):
    table = "table"
    csv = "csv"
    parquet = "parquet"


def _cell(v: object) -> str:
    if isinstance(v, list):
        head = ", ".join(f"{x:.4g}" if isinstance(x, float) else str(x) for x in v[:3])
        return f"[{head}{', …' if len(v) > 3 else ''}] ({len(v)})"
    if isinstance(v, float):
        return f"{v:.6g}"
    return "" if v is None else str(v)


def register(app: typer.Typer) -> None:
    @app.command("sql")
    def sql_cmd(
        ctx: typer.Context,
        query: Annotated[str, typer.Argument(help="SQL; views: <feature_set>__<phase>, *_lesions, "
                                             "*_long (deep), scans, rejections, clinical, outcomes")],
        fmt: Annotated[Format, typer.Option("--format", "-f", help="output format")] = Format.table,
        output: Annotated[Path | None, typer.Option("--output", "-o", help="file (default: stdout; "
                                                    "parquet needs a file)")] = None,
        max_rows: Annotated[int, typer.Option(help="rows shown in table format")] = 50,
    ) -> None:
        """Query features and the catalog with SQL."""
        from pipelines.commands._common import fail, settings_of
        from radstore.sql import SqlError, sql
        from radstore.store.catalog import StoreError

        settings = settings_of(ctx)
        try:
            result = sql(query, settings=settings)
        except (SqlError, StoreError) as exc:
            fail(str(exc))
        if fmt is Format.parquet:
            if output is None:
                fail("--format parquet needs --output FILE")
            from radstore.io.tables import write_table

            write_table(result, output)
            typer.echo(f"{result.num_rows} rows -> {output}")
        elif fmt is Format.csv:
            import pyarrow as pa
            import pyarrow.csv as pacsv

            flat = result
            for i, f in enumerate(result.schema):
                if pa.types.is_list(f.type) or pa.types.is_fixed_size_list(f.type):
                    flat = flat.set_column(i, f.name, pa.array(
                        [None if v is None else " ".join(map(str, v)) for v in result.column(i).to_pylist()]))
            if output is None:
                import sys

                pacsv.write_csv(flat, sys.stdout.buffer)
            else:
                pacsv.write_csv(flat, output)
                typer.echo(f"{result.num_rows} rows -> {output}")
        else:
            from rich.console import Console
            from rich.table import Table

            table = Table(show_lines=False)
            for name in result.column_names:
                table.add_column(name, overflow="fold")
            for row in result.slice(0, max_rows).to_pylist():
                table.add_row(*(_cell(row[c]) for c in result.column_names))
            import io

            buf = io.StringIO() if output else None
            console = Console(file=buf, width=200 if output else None)
            console.print(table)
            if result.num_rows > max_rows:
                console.print(f"… {result.num_rows - max_rows} more rows ({result.num_rows} total)")
            if output and buf is not None:
                output.write_text(buf.getvalue())
