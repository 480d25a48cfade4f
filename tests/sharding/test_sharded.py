"""Seeded initialization of sharded parameters (FSDP2, DTensor) on gloo ranks on CPU.

The contract: an element's seeded value depends only on the seed, the parameter's
canonical path, the element's logical index and the initializer, so every rank's shard,
gathered, equals bit for bit what one process writes. The ranks run as processes talking
over the loopback (tests/initschema_testing/sharded_cases.py); each world size is launched
once for all its cases, and every launch is killed after its timeout.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.distributed as dist

import initschema as ins
from initschema_testing import sharded_cases as cases
from initschema_testing.asserts import state_of

pytestmark = pytest.mark.skipif(
    not (dist.is_available() and dist.is_gloo_available()),
    reason="needs torch.distributed with the gloo backend",
)

MATERIALIZED = ["vit", "resnet"]
FORMATS = ["torch", "safetensors"]
CUSTOM_LAYOUTS = ["weight_shard0_bias_replicate", "shard1"]
"""Shard(0) and Shard(1) weights (Shard(0) and Replicate biases)."""
SAFE_GATES = ["safe_user", "gate"]
DEVICES = ["cpu", "meta"]
AT_BOTH_SIZES = [
    "materialize:vit_bf16",
    *(f"pretrained:{fmt}" for fmt in FORMATS),
    *(f"pretrained_execute:{fmt}" for fmt in FORMATS),
    *(f"custom:{layout}" for layout in CUSTOM_LAYOUTS),
    *(f"gated:{gate}" for gate in SAFE_GATES),
]
CASES: dict[int, list[str]] = {
    2: [
        *AT_BOTH_SIZES,
        *(f"materialize:{m}" for m in [*MATERIALIZED, "vit_reordered", "vit_extra"]),
        *(f"execute:{layout}" for layout in cases.LAYOUTS_1D),
        *(f"refuse_faithful_materialize:{only}" for only in ["", "head"]),
        *(f"refuse_faithful_execute:{only}" for only in ["", "norm"]),
        *(f"refuse_user_init_weights:{device}" for device in DEVICES),
        *(f"refuse_call:{device}" for device in DEVICES),
    ],
    4: [
        *AT_BOTH_SIZES,
        *(f"materialize:{m}" for m in MATERIALIZED),
        *(f"execute:{layout}" for layout in cases.LAYOUTS_1D + cases.LAYOUTS_2D),
        "refuse_strided:cpu",
        "refuse_strided:meta",
    ],
}
MiB = 2**20
Ranks = Callable[[int], dict[str, list[Any]]]
"""``ranks(ws)``: the results of ``CASES[ws]``, by case, then by rank."""


@pytest.fixture(scope="module")
def ranks(tmp_path_factory: pytest.TempPathFactory) -> Ranks:
    """``ranks(ws)``: every case of ``CASES[ws]`` run once on ``ws`` ranks (a failed
    launch fails every test that needs it, without launching again)."""
    runs: dict[int, dict[str, list[Any]] | cases.LaunchError] = {}

    def run(world_size: int) -> dict[str, list[Any]]:
        if world_size not in runs:
            outdir = tmp_path_factory.mktemp(f"ws{world_size}")
            try:
                runs[world_size] = cases.launch(world_size, CASES[world_size], outdir)
            except cases.LaunchError as e:
                runs[world_size] = e
        result = runs[world_size]
        if isinstance(result, cases.LaunchError):
            pytest.fail(str(result), pytrace=False)
        return result

    return run


def per_rank(results: list[Any]) -> list[Any]:
    """The per-rank results of one case, failing with every rank's traceback if it raised."""
    if isinstance(results[0], dict) and "errors" in results[0]:
        tracebacks = [
            f"--- rank {r} ---\n{e['traceback'] if e else 'no error'}"
            for r, e in enumerate(results[0]["errors"])
        ]
        pytest.fail("the case raised:\n" + "\n".join(tracebacks), pytrace=False)
    return results


def gathered(results: list[Any]) -> dict[str, torch.Tensor]:
    state: dict[str, torch.Tensor] = per_rank(results)[0]["state"]
    return state


def assert_same_bits(got: dict[str, torch.Tensor], want: dict[str, torch.Tensor]) -> None:
    """Every tensor of ``want`` is in ``got`` with the same bits; else one line per tensor
    that is missing or differs, with how many elements and the first one."""
    lines = []
    for key, expected in want.items():
        actual = got.get(key)
        if actual is None:
            lines.append(f"{key}: missing")
        elif actual.shape != expected.shape or actual.dtype != expected.dtype:
            lines.append(
                f"{key}: {actual.dtype}{list(actual.shape)}, expected "
                f"{expected.dtype}{list(expected.shape)}"
            )
        elif not torch.equal(actual, expected):
            wrong = (actual != expected).nonzero()
            first = tuple(wrong[0].tolist())
            lines.append(
                f"{key}{list(expected.shape)}: {len(wrong)} of {expected.numel()} elements "
                f"differ, first at {first}: {actual[first].item()!r} != "
                f"{expected[first].item()!r}"
            )
    assert not lines, "\n".join(lines)


@functools.cache
def reference(name: str) -> dict[str, torch.Tensor]:
    """MODELS[name] built on meta and materialized seeded in this one process."""
    factory, cfg = cases.MODELS[name]
    with torch.device("meta"):
        model = factory()
    ins.materialize(model, "cpu", seed=cases.SEED, plan=ins.compile_plan(model, cfg))
    return state_of(model)


@functools.cache
def mixed_reference() -> dict[str, torch.Tensor]:
    """Mixed built on CPU and executed seeded in this one process."""
    model = cases.Mixed()
    ins.compile_plan(model, cases.MIXED_CFG).execute(seed=cases.SEED)
    return state_of(model)


@functools.cache
def pretrained_reference(name: str) -> dict[str, torch.Tensor]:
    """The single-process reference of MODELS[name] (``"vit"``) or of Mixed (``"mixed"``),
    with the checkpoint's values (cast to the model's dtypes) where it has them."""
    state = dict(reference(name) if name in cases.MODELS else mixed_reference())
    for key, value in cases.checkpoint_state(name).items():
        state[key] = value.to(state[key].dtype)
    return state


@functools.cache
def custom_reference() -> dict[str, torch.Tensor]:
    """Mixed built on CPU and executed seeded under CUSTOM_CFG in this one process."""
    cases.register_custom_initializers()
    model = cases.Mixed()
    ins.compile_plan(model, cases.CUSTOM_CFG).execute(seed=cases.SEED)
    return state_of(model)


@functools.cache
def gated_reference(gate: str) -> dict[str, torch.Tensor]:
    """``Gated(GATES[gate]())`` built on meta and materialized seeded in this one process."""
    with torch.device("meta"):
        model = cases.Gated(cases.GATES[gate]())
    cases.run_gated(model, cases.gated_cfg(gate), "meta")
    return state_of(model)


class TestModels:
    def test_shards_are_uneven_and_some_empty(self) -> None:
        """The models have dims 0 that 4 does not divide, and some shorter than 4."""
        for model in (cases.ViT(), cases.ResNet()):
            rows = [p.shape[0] for p in model.parameters()]
            assert any(n % 4 for n in rows) and any(n < 4 for n in rows)

    @pytest.mark.parametrize("name", MATERIALIZED)
    def test_materialize_on_meta_equals_execute_on_cpu(self, name: str) -> None:
        """The single-process reference: materializing from meta writes what executing the
        same plan seeded on a model built on CPU writes."""
        factory, cfg = cases.MODELS[name]
        model = factory()
        ins.compile_plan(model, cfg).execute(seed=cases.SEED)
        assert_same_bits(state_of(model), reference(name))


class TestMaterializeFullyShard:
    @pytest.mark.parametrize("world_size", [2, 4])
    @pytest.mark.parametrize("name", MATERIALIZED)
    def test_gathered_equals_single_process(self, ranks: Ranks, name: str, world_size: int) -> None:
        """fully_shard per block and at the root, materialize seeded, gather: the same bits
        as one process."""
        got = gathered(ranks(world_size)[f"materialize:{name}"])
        want = reference(name)
        assert sorted(got) == sorted(want)
        assert_same_bits(got, want)


class TestExecuteOnDTensors:
    @pytest.mark.parametrize(
        ("world_size", "layout"),
        [(2, layout) for layout in cases.LAYOUTS_1D]
        + [(4, layout) for layout in cases.LAYOUTS_1D + cases.LAYOUTS_2D],
    )
    def test_gathered_equals_single_process(
        self, ranks: Ranks, world_size: int, layout: str
    ) -> None:
        """Hand-placed DTensor parameters (NaN before), plan.execute(seed=...), gather:
        every element written, the same bits as one process."""
        got = gathered(ranks(world_size)[f"execute:{layout}"])
        want = mixed_reference()
        assert sorted(got) == sorted(want)
        assert_same_bits(got, want)


class TestBFloat16:
    @pytest.mark.parametrize("world_size", [2, 4])
    def test_gathered_equals_single_process(self, ranks: Ranks, world_size: int) -> None:
        """The ViT in bfloat16, fully sharded, materialized seeded, gathered: the same bits
        as one process."""
        got = gathered(ranks(world_size)["materialize:vit_bf16"])
        want = reference("vit_bf16")
        assert {t.dtype for t in want.values()} == {torch.bfloat16}
        assert sorted(got) == sorted(want)
        assert_same_bits(got, want)

    def test_float32_values_rounded(self) -> None:
        """The bfloat16 values are the float32 ones rounded (the determinism contract)."""
        want = {k: v.to(torch.bfloat16) for k, v in reference("vit").items()}
        assert_same_bits(reference("vit_bf16"), want)


class TestPretrained:
    """A Pretrained rule after seeded rules, loading into sharded parameters only each
    rank's slice of the checkpoint."""

    def test_checkpoints_cover_some_tensors(self) -> None:
        """Each checkpoint holds some of its model's tensors, not all, one as float16."""
        for name in ("vit", "mixed"):
            held = cases.checkpoint_state(name)
            model_keys = set(pretrained_reference(name))
            assert set(held) < model_keys
        assert cases.checkpoint_state("vit")["head.weight"].dtype == torch.float16

    @pytest.mark.parametrize("world_size", [2, 4])
    @pytest.mark.parametrize("fmt", FORMATS)
    def test_fully_sharded(self, ranks: Ranks, fmt: str, world_size: int) -> None:
        """The ViT on meta under fully_shard, materialized with a Pretrained rule from a
        torch file (under a prefix) or a safetensors file: the checkpoint's values where it
        has them, the single-process seeded ones elsewhere."""
        got = gathered(ranks(world_size)[f"pretrained:{fmt}"])
        want = pretrained_reference("vit")
        assert sorted(got) == sorted(want)
        assert_same_bits(got, want)

    @pytest.mark.parametrize("world_size", [2, 4])
    @pytest.mark.parametrize("fmt", FORMATS)
    def test_manual_shard1(self, ranks: Ranks, fmt: str, world_size: int) -> None:
        """Mixed with Shard(1) DTensor parameters (NaN before), plan.execute(seed=...) with
        a Pretrained rule: every element written, the checkpoint's where it has them."""
        got = gathered(ranks(world_size)[f"pretrained_execute:{fmt}"])
        want = pretrained_reference("mixed")
        assert sorted(got) == sorted(want)
        assert_same_bits(got, want)


class TestCustomInitializers:
    @pytest.mark.parametrize("world_size", [2, 4])
    @pytest.mark.parametrize("layout", CUSTOM_LAYOUTS)
    def test_gathered_equals_single_process(
        self, ranks: Ranks, layout: str, world_size: int
    ) -> None:
        """Registered user initializers on Shard(0) and Shard(1) weights, one computed over
        the whole tensor (orthogonal), one drawn elementwise (init_values): the same bits
        as one process."""
        got = gathered(ranks(world_size)[f"custom:{layout}"])
        want = custom_reference()
        assert sorted(got) == sorted(want)
        assert_same_bits(got, want)
        rows = want["fc1.weight"].double()  # 7 × 10: orthogonal rows of norm 1.5
        assert torch.allclose(rows @ rows.T, 1.5**2 * torch.eye(7, dtype=torch.float64), atol=1e-5)


class TestShardSafe:
    @pytest.mark.parametrize("world_size", [2, 4])
    @pytest.mark.parametrize("gate", SAFE_GATES, ids=["init_weights", "call_rule"])
    def test_runs_and_gathers(self, ranks: Ranks, gate: str, world_size: int) -> None:
        """A user init_weights marked @ins.shard_safe, or a Call rule with shard_safe:
        true, runs on sharded parameters (each rank filling its part): the same bits as
        one process."""
        got = gathered(ranks(world_size)[f"gated:{gate}"])
        want = gated_reference(gate)
        assert torch.all(want["gate.weight"] == cases.GATE_VALUE)
        assert sorted(got) == sorted(want)
        assert_same_bits(got, want)


class TestPathsNotOrder:
    def test_registration_order(self, ranks: Ranks) -> None:
        """Modules registered in another order under the same paths: the same bits."""
        got = gathered(ranks(2)["materialize:vit_reordered"])
        want = reference("vit")
        assert list(got) != list(want), "the reordered model should enumerate differently"
        assert sorted(got) == sorted(want)
        assert_same_bits(got, want)

    def test_extra_module(self, ranks: Ranks) -> None:
        """A block and a layer more: the parameters both models have keep their bits."""
        got = gathered(ranks(2)["materialize:vit_extra"])
        want = reference("vit")
        assert set(got) > set(want)
        assert_same_bits(got, want)


def assert_refused(result: dict[str, Any], *words: str) -> None:
    """The call raised initschema's error, its message holding every word (any case)."""
    error = result["raised"]
    assert error is not None, "the call should have raised"
    assert "InitSchemaError" in error["types"], error["traceback"]
    for word in words:
        assert word.lower() in error["message"].lower(), error["traceback"]


class TestRefusals:
    """A refused call raises initschema's error and leaves every tensor as it was: not
    allocated, not moved, not written, on any rank. In one variant of each, the sharded
    tensor is the last one the plan reaches, so a refusal made only on reaching it shows."""

    @pytest.mark.parametrize("only", ["", "head"], ids=["fully_sharded", "head_sharded"])
    def test_faithful_materialize(self, ranks: Ranks, only: str) -> None:
        """materialize(seed=None) of DTensor parameters raises, naming seed, allocating
        nothing."""
        for rank, result in enumerate(per_rank(ranks(2)[f"refuse_faithful_materialize:{only}"])):
            assert_refused(result, "seed")
            assert result["changed"] == [], f"rank {rank} allocated before the refusal"

    @pytest.mark.parametrize("only", ["", "norm"], ids=["all_dtensor", "norm_dtensor"])
    def test_faithful_execute(self, ranks: Ranks, only: str) -> None:
        """plan.execute() (faithful) of DTensor parameters raises, naming seed, writing
        nothing."""
        for rank, result in enumerate(per_rank(ranks(2)[f"refuse_faithful_execute:{only}"])):
            assert_refused(result, "seed")
            assert result["changed"] == [], f"rank {rank} wrote before the refusal"

    @pytest.mark.parametrize("device", DEVICES)
    def test_user_init_weights(self, ranks: Ranks, device: str) -> None:
        """A user init_weights on a module holding sharded parameters, not marked
        @ins.shard_safe, is refused, naming the module and shard_safe, before any write."""
        for rank, result in enumerate(per_rank(ranks(2)[f"refuse_user_init_weights:{device}"])):
            assert_refused(result, "'gate' (FSDPUserGate)", "init_weights", "shard_safe")
            assert result["changed"] == [], f"rank {rank} wrote or allocated before the refusal"

    @pytest.mark.parametrize("device", DEVICES)
    def test_call_rule(self, ranks: Ranks, device: str) -> None:
        """A Call rule without shard_safe on a module holding sharded parameters is refused,
        naming the method and shard_safe: true, before any write."""
        for rank, result in enumerate(per_rank(ranks(2)[f"refuse_call:{device}"])):
            assert_refused(result, "reset_parameters()", "'fc' (Linear)", "shard_safe: true")
            assert result["changed"] == [], f"rank {rank} wrote or allocated before the refusal"

    @pytest.mark.parametrize("device", DEVICES)
    def test_strided_shard(self, ranks: Ranks, device: str) -> None:
        """A _StridedShard parameter (FSDP2 + TP) is refused, naming it and the placement,
        before any tensor is written or allocated."""
        for rank, result in enumerate(per_rank(ranks(4)[f"refuse_strided:{device}"])):
            assert_refused(result, "_StridedShard", "1.weight")
            assert result["changed"] == [], f"rank {rank} wrote or allocated before the refusal"


@pytest.mark.skipif(
    not (sys.platform.startswith("linux") and os.access("/proc/self/clear_refs", os.W_OK)),
    reason="measures peak RSS through /proc/self/clear_refs (Linux)",
)
class TestMemory:
    def test_rank_peak_stays_near_its_shard(self, tmp_path: Path) -> None:
        """Four ranks materializing a 256 MiB weight: each rank's peak resident memory grows
        by its 64 MiB shard and tiles, well under the whole tensor."""
        results = per_rank(cases.launch(4, ["memory"], tmp_path, timeout=60)["memory"])
        for rank, result in enumerate(results):
            assert result["local_bytes"] == 64 * MiB
            assert result["local_device"] == "cpu" and result["finite"]
            assert result["growth"] < 0.6 * 256 * MiB, (
                f"rank {rank} grew by {result['growth'] / MiB:.0f} MiB"
            )
