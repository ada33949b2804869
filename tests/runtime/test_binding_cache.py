"""The host fast path: a warm context skips validating a call whose binding signature it accepted last,
and still validates everything else."""
import numpy as np
import pytest

import perfkit as pk
import perfkit.runtime.bindings as bindings


@pytest.fixture()
def counted(monkeypatch):
    calls = []
    real = bindings.check_bindings

    def counting(*a, **k):
        calls.append(a[2])
        return real(*a, **k)
    monkeypatch.setattr(bindings, "check_bindings", counting)
    return calls


def mlp_context(batch=4):
    eng = pk.Builder("cpu").build(pk.models.mnist_mlp(), pk.BuilderConfig(max_batch_size=batch))
    return eng, eng.create_execution_context()


def test_a_repeated_call_is_validated_once_and_computes_each_time(counted):
    eng, ctx = mlp_context()
    xs = [pk.models.sample_input(eng, 3, seed=i) for i in range(3)]
    outs = [ctx.execute(x) for x in xs]
    assert len(counted) == 1                                    # same names, types, shapes, dtypes: one check
    fresh = eng.create_execution_context()
    for x, o in zip(xs, outs):                                  # every call computed its own inputs
        for n, v in fresh.execute(x).items():
            np.testing.assert_array_equal(o[n], v)


def test_a_changed_signature_is_validated_and_a_rejected_call_changes_nothing(counted):
    eng, ctx = mlp_context()
    x = pk.models.sample_input(eng, 2, seed=1)
    good = ctx.execute(x)
    (name, a), = x.items()
    with pytest.raises(pk.BindingError, match="shape"):
        ctx.execute({name: a[:, :-1]})                          # a new signature: checked, rejected
    with pytest.raises(pk.BatchSizeError):
        ctx.execute(x, batch_size=3)                            # same arrays, another batch size: checked
    with pytest.raises(pk.BindingError, match="missing"):
        ctx.execute({})
    assert len(counted) == 4
    for n, v in ctx.execute(x).items():       # rejected calls changed nothing: the accepted one is still known
        np.testing.assert_array_equal(good[n], v)
    assert len(counted) == 4


def test_inputs_that_need_conversion_are_validated_every_time(counted):
    eng, ctx = mlp_context()
    (name, a), = pk.models.sample_input(eng, 1, seed=2).items()
    for _ in range(2):
        ctx.execute({name: a.tolist()})                         # a list is converted: not cached
    ctx.execute({name: a.astype(np.float64)})                  # another dtype: a new signature
    ctx.execute({name: a.astype(np.float64)})
    assert len(counted) == 3


def test_the_enqueue_fast_path_keeps_contiguity_in_the_signature(counted):
    eng, ctx = mlp_context()
    dev = eng.device
    (name, a), = pk.models.sample_input(eng, 4, seed=3).items()
    s = dev.create_stream()
    ctx.enqueue({name: np.ascontiguousarray(a)}, stream=s)
    ctx.enqueue({name: np.ascontiguousarray(a)}, stream=s)
    s.synchronize()
    wide = np.zeros(a.shape[:-1] + (a.shape[-1] * 2,), a.dtype)[..., ::2]
    with pytest.raises(pk.BindingError, match="contiguous"):
        ctx.enqueue({name: wide}, stream=s)                     # same shape and dtype, not contiguous
    assert len(counted) == 2
    s.synchronize()
