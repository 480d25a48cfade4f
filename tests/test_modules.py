"""BaseModule and its containers: init_cfg, init_weights, is_init, repr."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn

import initschema as ins
from initschema_testing import zoo

KIT = zoo.kits()["initschema"]


class TestBaseModule:
    def test_init_weights_sets_is_init_everywhere(self) -> None:
        """The root and every BaseModule it reached are marked initialized."""
        model = zoo.resnet(KIT, block_cfg=dict(type="Constant", val=0, layer="Conv2d"))
        model.init_weights()
        assert model.is_init and model.layers.is_init and model.layers[0][1].is_init
        assert not model.plain[0].is_init  # under a plain nn.Sequential: never reached

    def test_second_call_warns_and_does_nothing(self) -> None:
        """A second init_weights warns and writes nothing."""
        model = zoo.toy_net(KIT, dict(type="Normal", layer="Linear"))
        model.init_weights()
        before = model.fc.weight.clone()
        with pytest.warns(UserWarning, match="has been called more than once"):
            model.init_weights()
        assert torch.equal(before, model.fc.weight)

    def test_initialized_child_is_skipped(self) -> None:
        """A child already initialized is not initialized again by its parent."""
        child = zoo.toy_net(KIT, dict(type="Constant", val=1, layer="Linear"))
        child.init_weights()
        with torch.no_grad():
            child.fc.weight.fill_(5)
        KIT.Sequential(child).init_weights()
        assert torch.all(child.fc.weight == 5)

    def test_init_cfg_is_kept_as_given(self) -> None:
        """init_cfg is a deep copy of what was passed, as in MMEngine."""
        cfg: Any = dict(type="Normal", layer="Linear")
        model = zoo.toy_net(KIT, cfg)
        cfg["std"] = 5
        assert model.init_cfg == dict(type="Normal", layer="Linear")

    def test_replaced_init_cfg_is_used(self) -> None:
        """An init_cfg set after construction is parsed when the plan is compiled."""
        model = zoo.toy_net(KIT)
        model.init_cfg = dict(type="Constant", val=2, layer="Linear")
        model.init_weights()
        assert torch.all(model.fc.weight == 2)

    def test_repr_shows_init_cfg(self) -> None:
        """repr ends with the init_cfg when there is one."""
        text = repr(zoo.toy_net(KIT, dict(type="Normal", layer="Linear")))
        assert text.endswith("init_cfg={'type': 'Normal', 'layer': 'Linear'}")

    def test_named_rules(self) -> None:
        """init_cfg may be a mapping of named rules."""
        model = zoo.toy_net(
            KIT,
            {
                "convs": dict(type="Constant", val=1, layer="Conv2d"),
                "head": dict(type="Constant", val=2, layer="Linear"),
            },
        )
        model.init_weights()
        assert torch.all(model.conv1.weight == 1) and torch.all(model.fc.weight == 2)


class TestContainers:
    def test_sequential(self) -> None:
        """Sequential keeps nn.Sequential's behaviour and runs its init_cfg."""
        seq = ins.Sequential(
            nn.Linear(2, 3), nn.ReLU(), init_cfg=dict(type="Constant", val=1, layer="Linear")
        )
        assert isinstance(seq, nn.Sequential) and len(seq) == 2
        seq.init_weights()
        assert torch.all(seq[0].weight == 1)

    def test_module_list_and_dict(self) -> None:
        """ModuleList and ModuleDict take modules positionally, like MMEngine's."""
        mlist = ins.ModuleList([nn.Linear(1, 1)], dict(type="Constant", val=3, layer="Linear"))
        mdict = ins.ModuleDict({"a": nn.Linear(1, 1)}, dict(type="Constant", val=4, layer="Linear"))
        mlist.init_weights()
        mdict.init_weights()
        assert mlist[0].weight.item() == 3 and mdict["a"].weight.item() == 4


class TestInitialize:
    def test_initialize(self) -> None:
        """initialize applies a config to any module."""
        model = nn.Sequential(nn.Linear(2, 2), nn.Conv1d(1, 1, 1))
        ins.initialize(model, dict(type="Constant", val=1, bias=2, layer="Linear"))
        assert torch.all(model[0].weight == 1) and torch.all(model[0].bias == 2)

    def test_initializer_objects_are_callable(self) -> None:
        """ins.KaimingInit(layer='Conv2d')(model), like MMEngine's initializer objects."""
        model = nn.Sequential(nn.Conv2d(1, 1, 1), nn.Linear(1, 1))
        before = model[1].weight.clone()
        ins.ConstantInit(val=3, layer="Conv2d")(model)
        assert model[0].weight.item() == 3 and torch.equal(model[1].weight, before)

    def test_initialize_rejects_none(self) -> None:
        """initialize needs a config."""
        with pytest.raises(TypeError, match="needs an init_cfg"):
            ins.initialize(nn.Linear(1, 1), None)
