"""Every setting is an option declared in one place, and what is derived from the declaration agrees with it."""

from __future__ import annotations

import dataclasses

import pytest

from jobqueue.config import OPTIONS, Settings, build_parser, load_settings


def test_every_field_of_settings_is_a_declared_option():
    """A field added without option(...) could be set by no flag and no variable, and would miss the docs."""
    declared = {opt.name for opt in OPTIONS}
    assert [f.name for f in dataclasses.fields(Settings) if f.name not in declared] == []


def test_each_option_has_one_flag_and_one_variable_named_after_it():
    flags = {opt.flag for opt in OPTIONS}
    parsed = {flag for action in build_parser()._actions for flag in action.option_strings}
    assert len(flags) == len(OPTIONS) and flags <= parsed
    for opt in OPTIONS:
        assert opt.env == "JOBQUEUE_" + opt.flag[2:].upper().replace("-", "_")
        assert "|" not in opt.spec.help, f"{opt.flag}: a | would split its row of the docs' table"


SECRET = "whsec_" + "A" * 43 + "="


@pytest.mark.parametrize("opt", [o for o in OPTIONS if o.kind in (int, float, str)], ids=lambda o: o.flag)
def test_the_variable_and_the_flag_of_each_scalar_option_set_its_field(opt, tmp_path):
    """Each is read both ways, with a value its checks accept."""
    tokens = tmp_path / "tokens"
    tokens.write_text("config-options-token-0123456789\n")
    samples = {"api_token_file": str(tokens), "webhook_secret": SECRET, "webhook_url": "https://hooks.example/in"}
    value = samples.get(opt.name) or {int: "2", float: "2.5"}.get(opt.kind) or str(opt.default)
    needs = {"JOBQUEUE_WEBHOOK_SECRET": SECRET} if opt.name == "webhook_url" else {}
    by_env = load_settings([], environ={**needs, opt.env: value})
    by_flag = load_settings([f"{opt.flag}={value}"], environ=needs)
    assert getattr(by_env, opt.name) == getattr(by_flag, opt.name) == opt.kind(value)
