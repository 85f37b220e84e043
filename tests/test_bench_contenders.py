"""The benchmark's hand-written contenders bind what the layer's insert takes, on both engines.

A column added to test_results must reach them too, or `make bench` fails far into its run.
"""

from __future__ import annotations

import re

from bench._raw_postgres import _params as postgres_params
from bench._raw_sqlite import params_of as sqlite_params
from bench._rows import make_results
from bench._sql import COLUMNS, INSERT_POSTGRES, INSERT_SQLITE


def test_the_raw_contenders_give_every_column_of_the_insert() -> None:
    """Each raw contender gives one value per parameter of the generated insert."""
    (result,) = make_results(1)
    sqlite_names = dict.fromkeys(re.findall(r"(?<!:):(\w+)", INSERT_SQLITE))
    postgres_numbers = {int(n) for n in re.findall(r"\$(\d+)", INSERT_POSTGRES)}
    assert len(sqlite_params(result)) == len(sqlite_names) == len(COLUMNS)
    assert len(postgres_params(result)) == max(postgres_numbers) == len(COLUMNS)
