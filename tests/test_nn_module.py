"""Module and Parameter: registration, traversal, modes, hooks, conversion, state_dict, repr, containers."""
import copy
import pickle
from collections import OrderedDict

import numpy as np
import pytest

import distgrad
from distgrad import nn
from distgrad.tensor import Tensor


class Affine(nn.Module):
    """y = x * scale + shift, written with arithmetic ops only (no nn.functional)."""

    def __init__(self, n=3):
        super().__init__()
        self.scale = nn.Parameter(distgrad.ones(n))
        self.shift = nn.Parameter(distgrad.zeros(n))
        self.register_buffer("count", distgrad.tensor(0))
        self.register_buffer("cache", distgrad.zeros(n), persistent=False)

    def forward(self, x):
        return x * self.scale + self.shift


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.layer0 = Affine(3)
        self.layer1 = Affine(3)

    def forward(self, x):
        return self.layer1(self.layer0(x))


class Leaf(nn.Module):
    def __init__(self, text=""):
        super().__init__()
        self.text = text

    def extra_repr(self):
        return self.text


# --- Parameter ----------------------------------------------------------------------------------------
def test_parameter_shares_data_and_version_with_its_tensor():
    t = distgrad.zeros(2, 3)
    p = nn.Parameter(t)
    assert isinstance(p, Tensor) and p.requires_grad and p.is_leaf
    assert p.array is t.array
    t.array[0, 0] = 5.0
    assert p.array[0, 0] == 5.0
    assert p._version is t._version


def test_parameter_requires_grad_false_and_repr():
    p = nn.Parameter(distgrad.tensor([1.0, 2.0]), requires_grad=False)
    assert not p.requires_grad
    q = nn.Parameter(distgrad.tensor([1.0, 2.0]))
    assert repr(q) == "Parameter containing:\ntensor([1., 2.], requires_grad=True)"


def test_parameter_of_integer_tensor_cannot_require_grad():
    with pytest.raises(RuntimeError, match="only Tensors of floating point dtype can require gradients"):
        nn.Parameter(distgrad.tensor([1, 2]))


def test_parameter_deepcopy_and_pickle_copy_the_data():
    p = nn.Parameter(distgrad.tensor([1.0, 2.0]))
    for q in (copy.deepcopy(p), pickle.loads(pickle.dumps(p))):
        assert type(q) is nn.Parameter and q.requires_grad
        np.testing.assert_array_equal(q.array, p.array)
        assert q.array is not p.array


# --- registration ------------------------------------------------------------------------------------
def test_assignment_registers_parameters_buffers_and_modules():
    net = Net()
    assert list(net._modules) == ["layer0", "layer1"]
    assert list(net.layer0._parameters) == ["scale", "shift"]
    assert list(net.layer0._buffers) == ["count", "cache"]
    assert net.layer0.count.dtype == np.int64
    assert "layer0" not in net.__dict__


def test_named_parameters_use_dotted_names():
    names = [name for name, _ in Net().named_parameters()]
    assert names == ["layer0.scale", "layer0.shift", "layer1.scale", "layer1.shift"]
    assert [n for n, _ in Net().named_parameters(prefix="net", recurse=True)][0] == "net.layer0.scale"
    assert list(Net().named_parameters(recurse=False)) == []


def test_shared_parameters_and_modules_are_listed_once():
    shared = Affine()
    seq = nn.Sequential(shared, shared)
    assert [n for n, _ in seq.named_parameters()] == ["0.scale", "0.shift"]
    assert len(list(seq.modules())) == 2
    assert len(list(seq.children())) == 1
    tied = Net()
    tied.layer1.scale = tied.layer0.scale
    assert [n for n, _ in tied.named_parameters()] == ["layer0.scale", "layer0.shift", "layer1.shift"]
    assert len(list(tied.named_parameters(remove_duplicate=False))) == 4


def test_buffers_and_named_buffers():
    net = Net()
    assert [n for n, _ in net.named_buffers()] == ["layer0.count", "layer0.cache", "layer1.count", "layer1.cache"]
    assert len(list(net.buffers())) == 4


def test_named_modules_and_children():
    net = Net()
    assert [n for n, _ in net.named_modules()] == ["", "layer0", "layer1"]
    assert [n for n, _ in net.named_children()] == ["layer0", "layer1"]
    assert net.get_submodule("layer1") is net.layer1
    with pytest.raises(AttributeError, match="Net has no attribute `nope`"):
        net.get_submodule("nope")


def test_assigning_a_plain_tensor_to_a_parameter_name_is_an_error():
    m = Affine()
    with pytest.raises(TypeError, match="cannot assign 'Tensor' as parameter 'scale'"):
        m.scale = distgrad.ones(3)
    m.scale = None
    assert m.scale is None and "scale" in m._parameters
    assert [n for n, _ in m.named_parameters()] == ["shift"]


def test_assigning_to_a_buffer_name_replaces_the_buffer():
    m = Affine()
    m.count = distgrad.tensor(7)
    assert m._buffers["count"].item() == 7
    with pytest.raises(TypeError, match="cannot assign 'int' as buffer 'count'"):
        m.count = 7


def test_reassigning_a_name_moves_it_between_kinds():
    m = Affine()
    m.plain = 3
    m.plain = Leaf()
    assert "plain" in m._modules and "plain" not in m.__dict__
    m.plain = nn.Parameter(distgrad.zeros(1))
    assert "plain" in m._parameters and "plain" not in m._modules
    with pytest.raises(TypeError, match="cannot assign 'Leaf' as parameter 'shift'"):
        m.shift = Leaf()


def test_reassigning_a_child_keeps_its_position():
    net = Net()
    net.layer0 = Leaf()
    assert list(net._modules) == ["layer0", "layer1"] and isinstance(net.layer0, Leaf)


def test_register_parameter_errors():
    m = nn.Module()
    with pytest.raises(KeyError, match='parameter name can.+t contain ".", got: a.b'):
        m.register_parameter("a.b", None)
    with pytest.raises(KeyError, match='parameter name can.+t be empty string'):
        m.register_parameter("", None)
    with pytest.raises(TypeError, match="parameter name should be a string"):
        m.register_parameter(3, None)
    with pytest.raises(TypeError, match="cannot assign 'Tensor' object to parameter 'w'"):
        m.register_parameter("w", distgrad.ones(1))
    m.other = 1
    with pytest.raises(KeyError, match="attribute 'other' already exists"):
        m.register_parameter("other", None)


def test_register_buffer_and_add_module_errors():
    m = nn.Module()
    with pytest.raises(TypeError, match="cannot assign 'list' object to buffer 'b'"):
        m.register_buffer("b", [1])
    with pytest.raises(KeyError, match='buffer name can.+t contain ".", got: a.b'):
        m.register_buffer("a.b", None)
    with pytest.raises(TypeError, match="int is not a Module subclass"):
        m.add_module("x", 3)
    with pytest.raises(KeyError, match='module name can.+t contain ".", got: a.b'):
        m.add_module("a.b", nn.Module())


def test_assignment_before_init_is_an_error():
    class Early(nn.Module):
        def __init__(self):
            self.w = nn.Parameter(distgrad.ones(1))

    with pytest.raises(AttributeError, match="cannot assign parameters before Module.__init__"):
        Early()


def test_missing_attribute_and_delattr():
    m = Affine()
    with pytest.raises(AttributeError, match="'Affine' object has no attribute 'nope'"):
        m.nope
    del m.scale
    del m.count
    assert "scale" not in m._parameters and "count" not in m._buffers
    assert "shift" in dir(m)


def test_forward_not_defined_is_an_error():
    with pytest.raises(NotImplementedError, match=r'Module \[Module\] is missing the required "forward" function'):
        nn.Module()(1)


# --- modes, gradients, apply -------------------------------------------------------------------------
def test_train_and_eval_recurse_and_return_self():
    net = Net()
    assert net.eval() is net
    assert not net.training and not net.layer0.training
    net.train()
    assert all(m.training for m in net.modules())
    with pytest.raises(ValueError, match="training mode is expected to be boolean"):
        net.train("yes")


def test_zero_grad_sets_to_none_or_zeroes_in_place():
    net = Net()
    net(distgrad.ones(3)).backward(distgrad.ones(3))
    grad = net.layer0.scale.grad
    net.zero_grad(set_to_none=False)
    assert net.layer0.scale.grad is grad
    assert np.all(grad.array == 0)
    net.zero_grad()
    assert all(p.grad is None for p in net.parameters())


def test_requires_grad_toggles_every_parameter():
    net = Net().requires_grad_(False)
    assert not any(p.requires_grad for p in net.parameters())


def test_apply_visits_children_before_parents():
    seen = []
    Net().apply(lambda m: seen.append(type(m).__name__))
    assert seen == ["Affine", "Affine", "Net"]


# --- hooks -------------------------------------------------------------------------------------------
def test_forward_pre_hook_can_replace_the_input_and_be_removed():
    m = Affine()
    handle = m.register_forward_pre_hook(lambda module, args: args[0] * 2)
    np.testing.assert_allclose(m(distgrad.ones(3)).array, 2.0)
    handle.remove()
    np.testing.assert_allclose(m(distgrad.ones(3)).array, 1.0)


def test_forward_hook_sees_input_and_output_and_can_replace_output():
    m = Affine()
    calls = []

    def hook(module, args, output):
        calls.append((module, args[0].shape, output.shape))
        return output + 1

    with m.register_forward_hook(hook):
        np.testing.assert_allclose(m(distgrad.ones(3)).array, 2.0)
    assert calls == [(m, (3,), (3,))]
    np.testing.assert_allclose(m(distgrad.ones(3)).array, 1.0)


# --- dtype and device --------------------------------------------------------------------------------
def test_double_converts_parameters_grads_and_float_buffers_in_place():
    m = Affine()
    scale = m.scale
    m(distgrad.ones(3)).backward(distgrad.ones(3))
    assert m.double() is m
    assert m.scale is scale and m.scale.dtype == np.float64 and m.scale.grad.dtype == np.float64
    assert m.cache.dtype == np.float64
    assert m.count.dtype == np.int64
    m.float()
    assert m.scale.dtype == np.float32


def test_to_accepts_device_dtype_and_tensor():
    m = Affine()
    assert m.to("cpu") is m and m.scale.device == distgrad.device("cpu")
    m.to(distgrad.float64)
    assert m.shift.dtype == np.float64
    m.to(distgrad.zeros(1, dtype=distgrad.float16))
    assert m.shift.dtype == np.float16
    m.to(device="cpu", dtype=distgrad.float32)
    assert m.shift.dtype == np.float32


def test_to_integer_dtype_is_an_error():
    with pytest.raises(TypeError, match="nn.Module.to only accepts floating point or complex dtypes"):
        Affine().to(distgrad.int64)


def test_to_device(device):
    m = Affine().to(device)
    assert m.scale.device == distgrad.device(device) and m.count.device == distgrad.device(device)
    assert m.cpu().scale.device == distgrad.device("cpu")


def test_deepcopy_of_a_module_is_independent():
    net = Net()
    clone = copy.deepcopy(net)
    clone.layer0.scale.array[...] = 5
    assert np.all(net.layer0.scale.array == 1)
    assert clone.layer0.scale.requires_grad


# --- state_dict ------------------------------------------------------------------------------------
def test_state_dict_keys_and_values():
    net = Net()
    sd = net.state_dict()
    assert isinstance(sd, OrderedDict)
    assert list(sd) == ["layer0.scale", "layer0.shift", "layer0.count", "layer1.scale", "layer1.shift",
                        "layer1.count"]
    value = sd["layer0.scale"]
    assert type(value) is Tensor and not value.requires_grad
    assert value.array is net.layer0.scale.array
    assert net.state_dict(keep_vars=True)["layer0.scale"] is net.layer0.scale


def test_load_state_dict_round_trip_copies_values():
    src, dst = Net(), Net()
    src.layer1.shift.array[...] = 3.0
    src.layer0.count.array[...] = 4
    result = dst.load_state_dict(src.state_dict())
    assert repr(result) == "<All keys matched successfully>"
    assert result.missing_keys == [] and result.unexpected_keys == []
    np.testing.assert_array_equal(dst.layer1.shift.array, 3.0)
    assert dst.layer0.count.item() == 4
    assert dst.layer1.shift.array is not src.layer1.shift.array


def test_load_state_dict_strict_error_lists_every_problem():
    net = Net()
    sd = net.state_dict()
    del sd["layer0.shift"], sd["layer1.count"]
    sd["layer1.scale"] = distgrad.zeros(4)
    sd["extra"] = distgrad.zeros(1)
    expected = ("Error(s) in loading state_dict for Net:\n"
                '\tMissing key(s) in state_dict: "layer0.shift", "layer1.count". \n'
                '\tUnexpected key(s) in state_dict: "extra". \n'
                "\tsize mismatch for layer1.scale: copying a param with shape [4] from checkpoint, "
                "the shape in current model is [3].")
    before = net.layer0.scale.array.copy()
    sd["layer0.scale"] = distgrad.full((3,), 9.0)
    with pytest.raises(RuntimeError) as info:
        net.load_state_dict(sd)
    assert str(info.value) == expected
    np.testing.assert_array_equal(net.layer0.scale.array, before)  # nothing copied on error


def test_load_state_dict_not_strict_reports_keys_but_size_mismatch_still_raises():
    net = Net()
    result = net.load_state_dict({"layer0.scale": distgrad.full((3,), 2.0), "extra": distgrad.zeros(1)},
                                 strict=False)
    assert result.unexpected_keys == ["extra"]
    assert result.missing_keys[:2] == ["layer0.shift", "layer0.count"]
    np.testing.assert_array_equal(net.layer0.scale.array, 2.0)
    with pytest.raises(RuntimeError, match="size mismatch for layer0.scale"):
        net.load_state_dict({"layer0.scale": distgrad.zeros(2)}, strict=False)


def test_load_state_dict_rejects_non_tensor_values_and_non_mappings():
    with pytest.raises(RuntimeError, match='While copying the parameter named "scale"'):
        Affine().load_state_dict({"scale": [1, 2, 3], "shift": distgrad.zeros(3), "count": distgrad.tensor(0)})
    with pytest.raises(TypeError, match="Expected state_dict to be dict-like"):
        Affine().load_state_dict([1])


def test_load_state_dict_bumps_the_version_so_stale_graphs_are_caught():
    m = Affine()
    version = m.scale._version[0]
    m.load_state_dict(m.state_dict())
    assert m.scale._version[0] > version


# --- repr --------------------------------------------------------------------------------------------
def test_repr_nests_children_like_pytorch():
    net = nn.Sequential(Leaf("a=1"), nn.Sequential(Leaf(), Leaf("x\ny")))
    assert repr(net) == ("Sequential(\n"
                         "  (0): Leaf(a=1)\n"
                         "  (1): Sequential(\n"
                         "    (0): Leaf()\n"
                         "    (1): Leaf(\n"
                         "      x\n"
                         "      y\n"
                         "    )\n"
                         "  )\n"
                         ")")


# --- containers --------------------------------------------------------------------------------------
def test_sequential_runs_modules_in_order():
    seq = nn.Sequential(Affine(), Affine())
    seq[0].scale.array[...] = 2.0
    seq[1].shift.array[...] = 1.0
    np.testing.assert_allclose(seq(distgrad.ones(3)).array, 3.0)


def test_sequential_indexing_slicing_and_mutation():
    a, b, c = Leaf("a"), Leaf("b"), Leaf("c")
    seq = nn.Sequential(a, b, c)
    assert len(seq) == 3 and seq[-1] is c and list(seq) == [a, b, c]
    tail = seq[1:]
    assert type(tail) is nn.Sequential and list(tail) == [b, c] and list(tail._modules) == ["1", "2"]
    with pytest.raises(IndexError, match="index 3 is out of range"):
        seq[3]
    d = Leaf("d")
    seq.append(d)
    seq[0] = Leaf("z")
    del seq[1]
    assert list(seq._modules) == ["0", "1", "2"] and list(seq)[1:] == [c, d]
    seq.insert(0, a)
    assert seq[0] is a and len(seq) == 4


def test_sequential_from_ordered_dict_keeps_names():
    seq = nn.Sequential(OrderedDict([("first", Leaf()), ("second", Leaf())]))
    assert list(seq._modules) == ["first", "second"]
    assert seq.first is seq[0]


def test_module_list_registers_and_indexes():
    ml = nn.ModuleList([Affine(), Affine()])
    ml.append(Affine())
    ml += [Leaf()]
    assert len(ml) == 4 and isinstance(ml[-1], Leaf)
    assert len(list(ml.parameters())) == 6
    assert type(ml[:2]) is nn.ModuleList and len(ml[:2]) == 2
    ml.insert(0, Leaf("first"))
    assert ml[0].text == "first" and list(ml._modules) == ["0", "1", "2", "3", "4"]
    assert isinstance(ml.pop(0), Leaf) and len(ml) == 4


def test_module_list_repr_collapses_repeated_modules():
    ml = nn.ModuleList([Leaf("a"), Leaf("a"), Leaf("b")])
    assert repr(ml) == "ModuleList(\n  (0-1): 2 x Leaf(a)\n  (2): Leaf(b)\n)"
    assert repr(nn.ModuleList()) == "ModuleList()"


def test_module_dict():
    md = nn.ModuleDict({"a": Affine(), "b": Leaf()})
    md["c"] = Affine()
    assert list(md) == ["a", "b", "c"] and "b" in md and len(md) == 3
    assert [n for n, _ in md.named_parameters()] == ["a.scale", "a.shift", "c.scale", "c.shift"]
    assert isinstance(md.pop("b"), Leaf) and list(md.keys()) == ["a", "c"]


def test_parameter_list_wraps_tensors_and_prints_shapes():
    pl = nn.ParameterList([nn.Parameter(distgrad.zeros(3, 4)), distgrad.zeros(3)])
    assert all(isinstance(p, nn.Parameter) for p in pl) and len(pl) == 2
    assert [n for n, _ in pl.named_parameters()] == ["0", "1"]
    assert repr(pl) == ("ParameterList(\n"
                        "    (0): Parameter containing: [distgrad.float32 of size 3x4]\n"
                        "    (1): Parameter containing: [distgrad.float32 of size 3]\n"
                        ")")


def test_repr_matches_pytorch_for_containers():
    torch = pytest.importorskip("torch")
    ours = nn.ModuleList([nn.Sequential(nn.Identity(), nn.Identity()), nn.Identity()])
    theirs = torch.nn.ModuleList([torch.nn.Sequential(torch.nn.Identity(), torch.nn.Identity()),
                                  torch.nn.Identity()])
    assert repr(ours) == repr(theirs)
