"""The results destinations (``--wandb-*``, ``--hf-*``), defined once for every command that takes
them: ``@sink_options`` adds them to a command, which receives what was given as one mapping."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

import typer

#: Option name (a ``SinkSettings`` field) -> its type and typer option; all default to None (not given).
SINK_OPTIONS: dict[str, Any] = {
    "wandb_project": Annotated[
        str | None, typer.Option(help="Log to this W&B project (off when not given).", show_default=False)
    ],
    "wandb_entity": Annotated[
        str | None, typer.Option(help="W&B entity. [default: WANDB_ENTITY or your own]")
    ],
    "wandb_group": Annotated[
        str | None, typer.Option(help="Override the run group. [default: <checkpoint name>:<version>]")
    ],
    "wandb_run_id": Annotated[
        str | None, typer.Option(help="Attach to this run id. [default: derived from the evaluation]")
    ],
    "wandb_tags": Annotated[
        list[str] | None,
        typer.Option(help="Run tags: repeat the flag or give a comma-separated list (a,b)."),
    ],
    "wandb_mode": Annotated[
        str | None, typer.Option(help="online, offline or disabled. [default: WANDB_MODE, else online]")
    ],
    "wandb_upload_results": Annotated[
        bool | None, typer.Option(help="Log the bundle as an eval-results artifact. [default: yes]")
    ],
    "wandb_registry": Annotated[
        str | None,
        typer.Option(help="Link the results artifact into this registry: NAME or NAME/COLLECTION (online)."),
    ],
    "wandb_table_rows": Annotated[
        int | None, typer.Option(help="Rows in the per-sample table, wrong answers first. [default: 1000]")
    ],
    "hf_upload_repo": Annotated[
        str | None,
        typer.Option(help="Upload the bundle to this Hugging Face dataset repo (token: HF_TOKEN)."),
    ],
    "hf_upload_dir": Annotated[str | None, typer.Option(help="Folder inside --hf-upload-repo.")],
}

#: The parameter of a decorated command that receives the given sink options.
PARAMETER = "sink_flags"

F = TypeVar("F", bound=Callable[..., Any])


def option_group(
    command: F,
    parameter: str,
    options: list[inspect.Parameter],
    given: Callable[[dict[str, Any]], Any] = dict,
) -> F:
    """``command`` with ``options`` in place of its ``parameter`` (that is their place in --help);
    the command gets ``parameter``: ``given`` of the options' values by name. Typer reads the
    signature, so a group of options is defined once for every command that takes it."""
    signature = inspect.signature(command, eval_str=True)
    if parameter not in signature.parameters:
        raise TypeError(f"{command.__name__} takes no {parameter} parameter")
    params: list[inspect.Parameter] = []
    for param in signature.parameters.values():
        if param.name == parameter:
            params += [option.replace(kind=inspect.Parameter.KEYWORD_ONLY) for option in options]
        else:
            params.append(param.replace(kind=inspect.Parameter.KEYWORD_ONLY))
    names = [option.name for option in options]

    @functools.wraps(command)
    def wrapper(**kwargs: Any) -> Any:
        values = {name: kwargs.pop(name) for name in names}
        return command(**kwargs, **{parameter: given(values)})

    wrapper.__signature__ = signature.replace(parameters=params)  # type: ignore[attr-defined]  # typer reads it
    wrapper.__annotations__ = {p.name: p.annotation for p in params}
    return wrapper  # type: ignore[return-value]


def sink_options(command: F) -> F:
    """Add the SINK_OPTIONS to ``command`` where its ``sink_flags`` parameter is; the command gets
    ``sink_flags``: the options given, by name (None: not given)."""

    def given(values: dict[str, Any]) -> dict[str, Any]:
        return {**values, "wandb_tags": values["wandb_tags"] or None}  # no --wandb-tags: not given

    options = [
        inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=kind)
        for name, kind in SINK_OPTIONS.items()
    ]
    return option_group(command, PARAMETER, options, given)
