from __future__ import annotations

import re

import pytest
import yaml

from larr.config import PROFILES, ConfigError, load_config, save_config


@pytest.mark.parametrize("profile", PROFILES)
def test_profiles_load(profile: str) -> None:
    cfg = load_config(profile)
    assert cfg.profile == profile
    assert cfg.world.n_days >= 3


def test_profiles_grow_in_size() -> None:
    sizes = [load_config(p).world.n_users * load_config(p).world.n_days for p in ("tiny", "small", "large")]
    assert sizes == sorted(sizes) and sizes[0] < sizes[-1]


def test_realistic_profiles_extend_their_base() -> None:
    for base in ("tiny", "small"):
        real = load_config(f"{base}_realistic")
        assert real.world.variant == "realistic" and load_config(base).world.variant == "keyword"
        assert real.world.model_copy(update={"variant": "keyword"}) == load_config(base).world
        assert real.llm == load_config(base).llm and real.ctr == load_config(base).ctr


def test_unknown_key_is_named_with_a_suggestion() -> None:
    with pytest.raises(ConfigError) as err:
        load_config("tiny", overrides=["world.n_user=5"])
    assert "world.n_user: unknown key" in str(err.value)
    assert "did you mean world.n_users" in str(err.value)


def test_bad_value_is_named() -> None:
    with pytest.raises(ConfigError) as err:
        load_config("tiny", overrides=["world.travel_prob=1.5"])
    assert "world.travel_prob" in str(err.value)


def test_cross_field_rule() -> None:
    with pytest.raises(ConfigError, match="test_travel_prob"):
        load_config("tiny", overrides=["world.travel_prob=0.5", "world.test_travel_prob=0.1"])


def test_unknown_profile() -> None:
    with pytest.raises(ConfigError, match="unknown profile 'huge'"):
        load_config("huge")


def test_file_and_override_precedence(tmp_path) -> None:
    f = tmp_path / "c.yaml"
    f.write_text(yaml.safe_dump({"world": {"n_users": 50, "n_pois": 20}}))
    cfg = load_config("tiny", f, ["world.n_pois=30"], seed=3)
    assert (cfg.world.n_users, cfg.world.n_pois, cfg.seed) == (50, 30, 3)
    assert cfg.world.n_days == load_config("tiny").world.n_days  # untouched keys keep the profile's value


def test_missing_file_is_an_error(tmp_path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config("tiny", tmp_path / "nope.yaml")


def test_saved_config_reloads_identically(tmp_path) -> None:
    cfg = load_config("tiny", overrides=["world.semantic.scale=0.5"], seed=11)
    path = save_config(cfg, tmp_path)
    again = load_config("tiny", path)
    assert again == cfg


def test_stats_prior_zero_is_a_config_error_not_a_spark_crash() -> None:
    with pytest.raises(ConfigError, match="features.stats_prior"):
        load_config("tiny", overrides=["features.stats_prior=0"])


def test_spec_key_selects_a_feature_spec() -> None:
    from larr.spec import load_spec

    assert load_spec(load_config("tiny", overrides=["spec=app_usage"]).spec).name == "app_usage"
    with pytest.raises(ValueError, match="not a built-in spec"):
        load_spec(load_config("tiny", overrides=["spec=nope.yaml"]).spec)


def test_malformed_yaml_names_the_file_and_line(tmp_path) -> None:
    f = tmp_path / "c.yaml"
    f.write_text("world:\n  n_users: 50\n  n_pois: [1, 2\n")
    with pytest.raises(ConfigError) as err:
        load_config("tiny", f)
    msg = str(err.value)
    assert "not valid YAML" in msg and f"{f} line 4" in msg and "\n" not in msg


@pytest.mark.parametrize("text, expected", [("- a\n- b\n", "top level must be a mapping"), ("", None)])
def test_config_file_top_level(tmp_path, text: str, expected: str | None) -> None:
    f = tmp_path / "c.yaml"
    f.write_text(text)
    if expected is None:
        assert load_config("tiny", f) == load_config("tiny")  # an empty file changes nothing
    else:
        with pytest.raises(ConfigError, match=expected):
            load_config("tiny", f)


def test_config_path_that_is_a_folder(tmp_path) -> None:
    with pytest.raises(ConfigError, match="is a folder, not a YAML file"):
        load_config("tiny", tmp_path)


@pytest.mark.parametrize("override, expected", [
    ("seed", "expected KEY=VALUE"),
    ("world..n_users=3", "not a dotted key"),
    ("world.n_users.x=1", "world.n_users is a value, not a section"),
    ("world.n_users=[1", "the value is not valid YAML"),
])
def test_bad_overrides_are_config_errors(override: str, expected: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(expected)):
        load_config("tiny", overrides=[override])


def test_errors_are_one_line_and_say_where_the_key_came_from(tmp_path) -> None:
    f = tmp_path / "c.yaml"
    f.write_text(yaml.safe_dump({"ctr": {"epoch": 2}}))
    with pytest.raises(ConfigError) as err:
        load_config("tiny", f, ["world.n_user=5"], seed=-1)
    msg = str(err.value)
    assert "\n" not in msg
    assert "world.n_user: unknown key (did you mean world.n_users?) [--set world.n_user=5]" in msg
    assert f"ctr.epoch: unknown key (did you mean ctr.epochs?) [--config {f}]" in msg
    assert "seed:" in msg and "[--seed]" in msg
    assert "`larr config" in msg  # the fix
