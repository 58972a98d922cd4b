"""Quotes are built from the query's rows by position: the two orders must stay one."""

from __future__ import annotations

from store.quote_pages import QUOTE_FIELDS
from web.schemas import Quote


def test_the_quote_schema_lists_the_query_columns_in_order() -> None:
    assert Quote.__struct_fields__ == QUOTE_FIELDS
