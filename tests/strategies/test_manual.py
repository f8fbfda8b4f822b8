"""What `unimos strategies` documents: every option of every strategy, with its default and valid values."""

from __future__ import annotations

from typer.testing import CliRunner

from unimos.cli.main import app
from unimos.strategies import STRATEGIES
from unimos.strategies.base import option_docs

runner = CliRunner()


def test_every_strategy_documents_exactly_its_options_a_summary_and_its_source() -> None:
    for name in STRATEGIES.names():
        cls = STRATEGIES.get(name)
        assert cls.summary and cls.source, name
        assert set(cls.option_help) == set(cls.defaults), name
        assert all(text.strip() for text in cls.option_help.values()), name


def test_option_docs_give_the_default_and_the_valid_range_in_words() -> None:
    docs = {doc.key: doc for doc in option_docs("unimatch")}
    assert (docs["tau"].default, docs["tau"].valid) == ("0.95", "a number in [0, 1]")
    assert (docs["weak_flip"].default, docs["weak_flip"].valid) == ("auto", "one of auto, true, false")
    assert (docs["use_partial"].default, docs["use_partial"].valid) == ("true", "true or false")
    docs = {doc.key: doc for doc in option_docs("self_training")}
    assert (docs["rounds"].default, docs["rounds"].valid) == ("1", "a whole number >= 1")
    assert (docs["coarse"].default, docs["coarse"].valid) == ("(empty)", "a path (empty: none)")


def test_strategies_command_prints_one_strategys_options_with_the_released_default_and_its_paper() -> None:
    result = runner.invoke(app, ["strategies", "unimatch"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "tau" in result.output and "0.95" in result.output and "paper 000" in result.output
    assert "LiheYoung/UniMatch" in result.output and "guided_cps" not in result.output


def test_strategies_command_lists_every_strategy_without_a_name_and_refuses_an_unknown_one() -> None:
    result = runner.invoke(app, ["strategies"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert all(name in result.output for name in STRATEGIES.names())
    wrong = runner.invoke(app, ["strategies", "fixmatch"])
    assert wrong.exit_code != 0 and "fixmatch" in wrong.output and "unimatch" in wrong.output
