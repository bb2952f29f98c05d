"""Sweep specs that name code of your own: argument tables, several plugins, varying them,
and a spec that names code which is not there refused before any run."""

from __future__ import annotations

import pytest

from agem.sweeps.spec import SpecError, parse_spec

OWN_GRID = """
[base]
model = "agem.models:MLP"
plugin = ["agem.runs.divergence:DivergenceCheck", 'agem.plugins:ReplayPlugin:{"mem_size": 20}']
[grid]
model_args = [{hidden_sizes = [8]}, {hidden_sizes = [16, 16]}]
"""


def test_argument_tables_and_plugins_become_run_options_and_names() -> None:
    spec = parse_spec(OWN_GRID)
    assert [job.name for job in spec.jobs] == [
        "model_args-hidden.sizes.8",
        "model_args-hidden.sizes.16.16",
    ]
    assert spec.jobs[1].options == (
        "--model",
        "agem.models:MLP",
        "--plugin",
        "agem.runs.divergence:DivergenceCheck",
        "--plugin",
        'agem.plugins:ReplayPlugin:{"mem_size": 20}',
        "--model-args",
        '{"hidden_sizes": [16, 16]}',
    )
    config = spec.jobs[1].config
    assert config is not None and config.model_args == {"hidden_sizes": [16, 16]}
    assert len(config.plugin) == 2
    assert parse_spec(spec.to_toml()).jobs == spec.jobs


def test_plugins_can_vary_and_none_is_an_empty_list() -> None:
    spec = parse_spec('[grid]\nplugin = [[], ["agem.runs.divergence:DivergenceCheck"]]\n')
    assert [job.config.plugin for job in spec.jobs if job.config] == [
        (),
        ("agem.runs.divergence:DivergenceCheck",),
    ]


@pytest.mark.parametrize(
    ("grid", "message"),
    [
        (
            'model = ["mlp", "no_such_pkg_x.mod:Net"]',
            "run model-no.such.pkg.x.mod.Net: --model no_such_pkg_x.mod:Net: no module named",
        ),
        (
            'model = ["agem.models:MLP"]\nmodel_args = [{hiden = 3}]',
            'the run: --model agem.models:MLP cannot take the arguments {"hiden": 3}',
        ),
        ("plugin = [[3]]", "[grid]: option 'plugin' needs a string or a list of strings"),
    ],
)
def test_code_that_is_not_there_is_refused_before_any_run(grid: str, message: str) -> None:
    with pytest.raises(SpecError) as caught:
        parse_spec(f"[grid]\n{grid}\n")
    assert str(caught.value).startswith(message), str(caught.value)
