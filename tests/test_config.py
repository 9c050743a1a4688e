"""ZenohConfig: defaults, validation, environment, and that the key never shows."""

import pytest
from evospikenet.zenoh_comm import ZenohCommunicator, ZenohConfig

GOOD = "9c1f" * 16


def test_defaults_are_secure():
    cfg = ZenohConfig()
    assert cfg.mode == "peer"
    assert cfg.namespace == "evospikenet"
    assert cfg.multicast_scouting is False
    assert cfg.connect == [] and cfg.listen == []
    assert cfg.encrypted is False


def test_psk_accepts_whitespace_and_bytes():
    a = ZenohConfig(psk=f"  {GOOD}\n")
    b = ZenohConfig(psk=bytes.fromhex(GOOD))
    assert a.encrypted and b.encrypted
    assert a.key_id == b.key_id and len(a.key_id) == 8


@pytest.mark.parametrize(
    "bad, expect",
    [
        ("abc123", "64"),
        (GOOD[:-2], "64"),
        (GOOD + "00", "64"),
        ("g" * 64, "hexadecimal"),
        ("0" * 64, "zero"),
        (b"\x01" * 31, "32 bytes"),
    ],
)
def test_bad_psk_raises_without_echoing(bad, expect):
    with pytest.raises(ValueError) as info:
        ZenohConfig(psk=bad)
    msg = str(info.value)
    assert expect in msg
    shown = bad if isinstance(bad, str) else bad.hex()
    if len(shown) >= 6:
        assert shown not in msg


def test_psk_type_error():
    with pytest.raises(TypeError):
        ZenohConfig(psk=12345)


def test_repr_never_shows_key():
    cfg = ZenohConfig(psk=GOOD, connect=["tcp/127.0.0.1:7447"])
    r = repr(cfg)
    assert GOOD not in r and GOOD.upper() not in r and "redacted" in r
    assert "tcp/127.0.0.1:7447" in r
    assert "psk=None" in repr(ZenohConfig())


@pytest.mark.parametrize(
    "kwargs",
    [
        {"mode": "bridge"},
        {"connect": ["127.0.0.1:7447"]},
        {"listen": ["udp/127.0.0.1:7447"]},
        {"namespace": "a/*"},
        {"namespace": ""},
        {"mode": "client"},
        {"freshness_window": -1},
    ],
)
def test_bad_fields_raise_value_error(kwargs):
    with pytest.raises(ValueError):
        ZenohConfig(**kwargs)


def test_connect_accepts_a_single_string_and_setter_validates():
    cfg = ZenohConfig(connect="tcp/127.0.0.1:7000")
    assert cfg.connect == ["tcp/127.0.0.1:7000"]
    with pytest.raises(ValueError):
        cfg.connect = ["nonsense"]
    assert cfg.connect == ["tcp/127.0.0.1:7000"]
    with pytest.raises(TypeError):
        ZenohConfig(listen=[1, 2])


def test_from_env(monkeypatch):
    monkeypatch.setenv("EVOSPIKENET_PSK", f" {GOOD} ")
    monkeypatch.setenv("NODE_ID", "pfc-0")
    monkeypatch.setenv("EVOSPIKENET_CONNECT", "tcp/127.0.0.1:7001,tcp/127.0.0.1:7002")
    monkeypatch.setenv("EVOSPIKENET_LISTEN", "tcp/127.0.0.1:0")
    cfg = ZenohConfig.from_env()
    assert cfg.encrypted and cfg.node_id == "pfc-0"
    assert cfg.connect == ["tcp/127.0.0.1:7001", "tcp/127.0.0.1:7002"]
    assert cfg.listen == ["tcp/127.0.0.1:0"]


def test_from_env_bad_psk_names_the_variable(monkeypatch):
    monkeypatch.setenv("EVOSPIKENET_PSK", "feedface")
    with pytest.raises(ValueError) as info:
        ZenohConfig.from_env()
    assert "EVOSPIKENET_PSK" in str(info.value)
    assert "feedface" not in str(info.value)


def test_communicator_constructor_forms(monkeypatch):
    monkeypatch.setenv("NODE_ID", "motor-0")
    cfg = ZenohConfig(listen=["tcp/127.0.0.1:0"])
    with ZenohCommunicator(cfg) as comm:
        assert comm.node_id == "motor-0"
    monkeypatch.delenv("NODE_ID")
    with ZenohCommunicator(cfg) as comm:
        assert comm.node_id.startswith("node-")
    with ZenohCommunicator("visual-1", cfg) as comm:
        assert comm.node_id == "visual-1"
        assert "visual-1" in repr(comm) and "plaintext" in repr(comm)
    with pytest.raises(ValueError):
        ZenohCommunicator("bad/id", cfg)
    with pytest.raises(TypeError):
        ZenohCommunicator(cfg, cfg)
    with pytest.raises(TypeError):
        ZenohCommunicator("n", "not a config")


def test_listen_port_in_use_is_a_clear_error():
    with ZenohCommunicator("a", ZenohConfig(listen=["tcp/127.0.0.1:0"])) as a:
        taken = a.locators[0]
        with pytest.raises(ConnectionError) as info:
            ZenohCommunicator("b", ZenohConfig(listen=[taken]))
        assert taken in str(info.value)
