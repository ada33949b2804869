"""engine.device_memory_bytes is known before running and equals what was taken from the allocator."""
import numpy as np
import pytest

import perfkit as pk
from oracles import assert_close, depth, reference_forward


@pytest.mark.parametrize("model", ["mnist_mlp", "lenet", "resnet_small", "transformer_encoder"])
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_predicted_equals_allocated(device, model, precision):
    alloc = pk.CountingAllocator(device.allocator)
    net = pk.models.SAMPLES[model]()
    eng = pk.Builder(device, allocator=alloc).build(net, pk.BuilderConfig(max_batch_size=4, precision=precision))
    # after the build only the weights remain (tactic timing borrowed workspace and gave it back)
    assert {k: v for k, v in alloc.by_tag.items() if v} == {"weights": eng.memory["weights"]}
    ctx = eng.create_execution_context()
    assert alloc.in_use_bytes == eng.device_memory_bytes
    assert alloc.by_tag["activations"] == eng.memory["activations"]
    assert alloc.by_tag.get("workspace", 0) == eng.memory["workspace"]
    assert alloc.by_tag["io"] == eng.memory["io"]
    ctx.execute(pk.models.sample_input(net, 4))
    assert alloc.in_use_bytes == eng.device_memory_bytes      # running takes nothing more from the allocator
    ctx.close()
    assert alloc.in_use_bytes == eng.memory["weights"]
    eng.close()
    assert alloc.in_use_bytes == 0


def test_allocator_failure_is_a_clear_error():
    class Tiny:
        def allocate(self, size, alignment=256, flags=0):
            raise MemoryError("no memory left")

        def free(self, b):
            pass
    with pytest.raises(pk.AllocationError, match="could not allocate .* weights"):
        pk.Builder("cpu", allocator=Tiny()).build(pk.models.mnist_mlp(), pk.BuilderConfig(tactics="default"))
    with pytest.raises(pk.AllocationError, match="builder could not allocate .* workspace"):
        pk.Builder("cpu", allocator=Tiny()).build(pk.models.mnist_mlp())


def test_custom_allocator_returning_arrays():
    class ArrayAllocator:
        def __init__(self):
            self.calls = []

        def allocate(self, size, alignment=256, flags=0):
            self.calls.append(size)
            return np.zeros(size, np.uint8)

        def free(self, b):
            pass
    a = ArrayAllocator()
    eng = pk.Builder("cpu", allocator=a).build(pk.models.mnist_mlp(), pk.BuilderConfig(max_batch_size=2))
    assert sum(a.calls) > eng.memory["weights"]          # tactic timing borrowed workspace too
    a.calls = [eng.memory["weights"]]
    net, x = pk.models.mnist_mlp(), pk.models.sample_input(pk.models.mnist_mlp(), 2)
    out = eng.create_execution_context().execute(x)
    assert sum(a.calls) == eng.device_memory_bytes
    assert_close(out["prob"], reference_forward(net, x)["prob"], "fp32", depth=depth(net))   # computes in them
