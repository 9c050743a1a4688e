"""Each default is written once, in the Rust core, and the Python surface shows it: the
values users got before are unchanged."""

import dataclasses
import inspect

from evospikenet import _native, kernels
from evospikenet.zenoh_comm import ZenohConfig


def test_config_defaults_come_from_the_core():
    c = ZenohConfig()
    assert c.namespace == "evospikenet"
    assert c.freshness_window == 60.0
    assert c.rekey_after_messages == 2**30
    assert c.rekey_after_seconds == 120.0
    # Given values still win over the defaults.
    c = ZenohConfig(namespace="lab", rekey_after_messages=5, rekey_after_seconds=1.5)
    assert (c.namespace, c.rekey_after_messages, c.rekey_after_seconds) == ("lab", 5, 1.5)


def test_every_kernel_parameter_has_its_default_from_the_core():
    d = _native.kernel_defaults()
    assert d["lif_float"] == {f.name: f.default for f in dataclasses.fields(kernels.LifFloatParams)}
    assert d["izhikevich"] == {
        f.name: f.default for f in dataclasses.fields(kernels.IzhikevichParams)
    }
    params = inspect.signature(kernels.lif_step).parameters
    assert {k: params[k].default for k in d["lif_int"]} == d["lif_int"]


def test_kernel_defaults_are_the_published_values():
    assert kernels.LifFloatParams() == kernels.LifFloatParams(
        tau_m=10.0, tau_syn=2.0, c_m=250.0, dt=0.1, e_l=-70.0, v_th=-55.0, v_reset=-70.0,
        t_ref=2.0, i_e=0.0,
    )  # fmt: skip
    assert kernels.IzhikevichParams() == kernels.IzhikevichParams(
        a=0.02, b=0.2, c=-65.0, d=8.0, dt=1.0, v_peak=30.0
    )
    assert _native.kernel_defaults()["lif_int"] == {"leak": 230, "threshold": 1024, "reset": 0}
