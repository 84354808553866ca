from __future__ import annotations

import pytest
import yaml

from larr.config import PROFILES, ConfigError, load_config, save_config


@pytest.mark.parametrize("profile", PROFILES)
def test_profiles_load(profile: str) -> None:
    cfg = load_config(profile)
    assert cfg.profile == profile
    assert cfg.world.n_days >= 3


def test_profiles_grow_in_size() -> None:
    sizes = [load_config(p).world.n_users * load_config(p).world.n_days for p in PROFILES]
    assert sizes == sorted(sizes) and sizes[0] < sizes[-1]


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
