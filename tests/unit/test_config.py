import pytest

from svclab.config import Settings, load_settings, pins
from svclab.errors import UsageError


def test_defaults(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    s = load_settings(env={})
    assert (s.cluster_name, s.workers, s.provider, s.kube_proxy_mode) == ("svclab", None, "", "iptables")
    assert s.own_kubeconfig == s.state_dir / "clusters" / "svclab" / "kubeconfig"


def test_precedence_flags_over_env_over_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "svclab.yaml").write_text("workers: 1\nprovider: none\ncluster_name: fromfile\n")
    s = load_settings({"cluster_name": "fromflag", "workers": None}, env={"SVCLAB_WORKERS": "3"})
    assert s.cluster_name == "fromflag"
    assert s.workers == 3
    assert s.provider == "none"


@pytest.mark.parametrize("flags, message", [
    ({"cluster_name": "Bad_Name"}, "invalid cluster name"),
    ({"cluster_name": "a" * 41}, "invalid cluster name"),
    ({"workers": 9}, "workers must be between"),
    ({"workers": "two"}, "invalid value"),
    ({"provider": "f5"}, "unknown provider"),
    ({"provider": "cloud"}, "unknown provider"),
    ({"kube_proxy_mode": "userspace"}, "unknown kube-proxy mode"),
    ({"pool_size": 1}, "pool_size"),
    ({"wait_timeout": -1}, "timeouts must be positive"),
    ({"nonsense": 1}, "unknown setting"),
])
def test_bad_flags(flags, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UsageError, match=message):
        load_settings(flags, env={})


def test_bad_env_value(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UsageError, match="SVCLAB_VERBOSE"):
        load_settings(env={"SVCLAB_VERBOSE": "maybe"})


@pytest.mark.parametrize("text, message", [
    ("workers: [", "not valid YAML at line"),
    ("- a\n- b\n", "expected a mapping"),
    ("colour: blue\n", "unknown setting 'colour'"),
    ("workers: {a: 1}\n", "invalid value"),
])
def test_malformed_config_file(text, message, tmp_path):
    path = tmp_path / "svclab.yaml"
    path.write_text(text)
    with pytest.raises(UsageError, match=message):
        load_settings(env={}, config_file=path)


def test_missing_config_file_named_explicitly(tmp_path):
    with pytest.raises(UsageError, match="does not exist"):
        load_settings(env={"SVCLAB_CONFIG": str(tmp_path / "nope.yaml")})


def test_settings_are_frozen():
    s = Settings()
    with pytest.raises(Exception):
        s.workers = 4  # type: ignore[misc]


def test_pins_are_complete():
    p = pins()
    assert p["kubernetes"]["version"].startswith("v1.34.")
    assert len(p["metallb"]["manifest_sha256"]) == 64
    assert p["metallb"]["manifest_url"].startswith("https://")
    assert p["metallb"]["version"] in p["metallb"]["manifest_url"]
    assert p["metallb"]["controller_image"].endswith(":" + p["metallb"]["version"])
    for image in (p["agnhost"]["image"], p["kind"]["node_image"]):
        assert ":" in image and not image.endswith(":latest")


def test_a_mirror_folder_that_does_not_exist_is_refused(tmp_path):
    from svclab.config import load_settings
    from svclab.errors import UsageError

    with pytest.raises(UsageError) as e:
        load_settings({}, env={"SVCLAB_MIRROR": str(tmp_path / "nope")})
    assert e.value.message == f"SVCLAB_MIRROR: the mirror folder {tmp_path / 'nope'} does not exist"
    (tmp_path / "mirror").mkdir()
    assert load_settings({}, env={"SVCLAB_MIRROR": str(tmp_path / "mirror")}).mirror == tmp_path / "mirror"


def test_load_balancer_price():
    from svclab.config import Settings, price_range
    from svclab.errors import UsageError

    assert price_range(Settings().lb_price) == (15.0, 25.0)
    assert price_range("20") == (20.0, 20.0) and price_range("$10-12.5") == (10.0, 12.5)
    for bad in ("cheap", "30-10", "1-2-3", "-5"):
        with pytest.raises(UsageError, match="lb_price must be a monthly price"):
            Settings(lb_price=bad)
