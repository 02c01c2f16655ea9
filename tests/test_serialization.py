"""distgrad.save / distgrad.load: round trips, atomic writes, corrupt files, pickle refusal, map_location."""
import io
import json
import math
import os
import pickle
import zipfile
from collections import OrderedDict

import numpy as np
import pytest

import distgrad as dg
from distgrad import optim, serialization
from distgrad.serialization import load, save


def round_trip(obj, tmp_path, **load_kwargs):
    path = tmp_path / "checkpoint.dg"
    save(obj, path)
    return load(path, **load_kwargs)


def rewrite_member(path, member, transform):
    """Rebuilds the zip at ``path`` with ``member``'s bytes replaced by ``transform(bytes)`` (valid CRCs)."""
    with zipfile.ZipFile(path) as zf:
        contents = {name: zf.read(name) for name in zf.namelist()}
    contents[member] = transform(contents[member])
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in contents.items():
            zf.writestr(name, data)


def rewrite_manifest(path, transform):
    rewrite_member(path, serialization.MANIFEST,
                   lambda raw: json.dumps(transform(json.loads(raw))).encode())


# --- round trips -------------------------------------------------------------------------------
@pytest.mark.parametrize("value", [
    None, True, False, 0, -7, 2**63 - 1, 2**200, -(2**80), 0.1, -0.0, 1e308, math.inf, -math.inf,
    "", "text with ünïcode and \"quotes\"", [], (), {}, [1, [2, [3]]], (1, (2.5, "x")), [(), []],
])
def test_plain_values_round_trip_with_their_types(value, tmp_path):
    loaded = round_trip(value, tmp_path)
    assert loaded == value and type(loaded) is type(value)
    assert repr(loaded) == repr(value)  # -0.0 stays -0.0, tuples stay tuples


def test_ints_past_the_4300_digit_str_limit_round_trip(tmp_path):
    huge = 3 ** 20000
    assert round_trip([huge, -huge], tmp_path) == [huge, -huge]


def test_nan_round_trips(tmp_path):
    loaded = round_trip({"loss": math.nan}, tmp_path)
    assert math.isnan(loaded["loss"])


def test_dict_keys_keep_their_types_and_order(tmp_path):
    value = {3: "int", "3": "str", (1, 2): "tuple", 2.5: "float", None: "none", True: "bool"}
    loaded = round_trip(value, tmp_path)
    assert list(loaded.items()) == list(value.items())
    assert [type(k) for k in loaded] == [type(k) for k in value]


def test_ordered_dict_stays_ordered_dict(tmp_path):
    value = OrderedDict([("b", 1), ("a", 2)])
    loaded = round_trip(value, tmp_path)
    assert type(loaded) is OrderedDict and loaded == value


@pytest.mark.parametrize("dtype", [dg.float16, dg.float32, dg.float64, dg.int32, dg.int64, dg.uint8, dg.bool])
@pytest.mark.parametrize("shape", [(), (0, 3), (2, 3, 4)])
def test_tensors_keep_dtype_shape_and_values(dtype, shape, tmp_path, device):
    data = (np.arange(math.prod(shape)) % 5).astype(dtype).reshape(shape)
    t = dg.tensor(data, device=device)
    loaded = round_trip(t, tmp_path)
    assert isinstance(loaded, dg.Tensor) and loaded.dtype == dtype and loaded.shape == shape
    assert loaded.device == t.device and not loaded.requires_grad
    np.testing.assert_array_equal(dg.backend.to_device(loaded.array, dg.backend.CPU), data)


def test_requires_grad_is_kept_and_a_loaded_tensor_is_a_leaf(tmp_path):
    w = dg.randn(3, dtype=dg.float64, requires_grad=True)
    y = w * 2
    loaded_w, loaded_y = round_trip([w, y], tmp_path)
    assert loaded_w.requires_grad and loaded_w.is_leaf
    assert loaded_y.requires_grad and loaded_y.is_leaf
    np.testing.assert_array_equal(loaded_y.array, y.array)


def test_non_contiguous_and_fortran_arrays_round_trip(tmp_path):
    base = np.arange(12.0).reshape(3, 4)
    value = {"transposed": dg.tensor(base).array.T, "fortran": np.asfortranarray(base), "strided": base[:, ::2]}
    loaded = round_trip(value, tmp_path)
    for key, array in value.items():
        np.testing.assert_array_equal(loaded[key], array)
        assert loaded[key].flags.writeable


def test_numpy_arrays_and_scalars_keep_their_types(tmp_path):
    value = [np.arange(4, dtype=np.int16), np.float32(1.5), np.int64(7), np.bool_(True)]
    loaded = round_trip(value, tmp_path)
    assert [type(v) for v in loaded] == [type(v) for v in value]
    np.testing.assert_array_equal(loaded[0], value[0])
    assert loaded[1:] == value[1:]


def test_an_array_referenced_twice_is_stored_once_and_stays_shared(tmp_path):
    weight = dg.randn(4, 4)
    loaded = round_trip({"encoder": weight, "decoder": weight}, tmp_path)
    assert loaded["encoder"].array is loaded["decoder"].array
    with zipfile.ZipFile(tmp_path / "checkpoint.dg") as zf:
        assert sorted(zf.namelist()) == ["arrays/0.npy", serialization.MANIFEST]


def test_rng_state_round_trips_and_replays_the_same_draws(tmp_path):
    dg.manual_seed(1234)
    dg.randn(5)
    save({"rng": dg.get_rng_state()}, tmp_path / "rng.dg")
    expected = dg.randn(5).array
    dg.manual_seed(99)
    dg.set_rng_state(load(tmp_path / "rng.dg")["rng"])
    np.testing.assert_array_equal(dg.randn(5).array, expected)


def test_saving_the_same_object_twice_gives_identical_bytes(tmp_path):
    value = {"w": dg.ones(3), "epoch": 2}
    save(value, tmp_path / "a.dg")
    save(value, tmp_path / "b.dg")
    assert (tmp_path / "a.dg").read_bytes() == (tmp_path / "b.dg").read_bytes()


def test_file_like_objects_can_be_saved_to_and_loaded_from():
    buffer = io.BytesIO()
    save({"w": dg.arange(3)}, buffer)
    buffer.seek(0)
    assert load(buffer)["w"].tolist() == [0, 1, 2]


def test_a_stream_that_cannot_seek_is_read_whole():
    buffer = io.BytesIO()
    save([1, dg.ones(2)], buffer)

    class Pipe(io.RawIOBase):
        def __init__(self, data):
            self.inner = io.BytesIO(data)

        def readable(self):
            return True

        def readinto(self, b):
            return self.inner.readinto(b)

    loaded = load(io.BufferedReader(Pipe(buffer.getvalue())))
    assert loaded[0] == 1 and loaded[1].tolist() == [1.0, 1.0]


# --- what cannot be saved ----------------------------------------------------------------------
@pytest.mark.parametrize("value,where", [
    ({"a": [1, {2, 3}]}, r"obj\['a'\]\[1\] of type set"),
    ({"f": lambda: 0}, r"obj\['f'\] of type function"),
    ([np.array([object()])], r"obj\[0\]: a NumPy array of Python objects would need pickle"),
    ({"b": b"bytes"}, r"obj\['b'\] of type bytes"),
])
def test_unsupported_values_are_refused_naming_where_they_are_and_nothing_is_written(value, where, tmp_path):
    with pytest.raises(TypeError, match=where):
        save(value, tmp_path / "checkpoint.dg")
    assert os.listdir(tmp_path) == []


def test_a_structure_that_contains_itself_is_refused(tmp_path):
    loop = [1]
    loop.append(loop)
    with pytest.raises(ValueError, match="contains itself"):
        save(loop, tmp_path / "checkpoint.dg")


# --- atomic writes -----------------------------------------------------------------------------
def test_a_crash_mid_save_keeps_the_previous_checkpoint_and_leaves_no_temporary_file(tmp_path, monkeypatch):
    path = tmp_path / "checkpoint.dg"
    save({"epoch": 1, "w": dg.zeros(1000)}, path)
    write_array = serialization._write_array

    def write_half_then_crash(zf, member, array):
        write_array(zf, member, array[: array.size // 2])
        raise OSError("No space left on device")

    monkeypatch.setattr(serialization, "_write_array", write_half_then_crash)
    with pytest.raises(OSError, match="No space left on device"):
        save({"epoch": 2, "w": dg.ones(1000)}, path)
    assert os.listdir(tmp_path) == ["checkpoint.dg"]
    monkeypatch.undo()
    previous = load(path)
    assert previous["epoch"] == 1 and previous["w"].tolist() == [0.0] * 1000


def test_an_interrupted_first_save_leaves_nothing(tmp_path, monkeypatch):
    def interrupted(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(serialization, "_write_array", interrupted)
    with pytest.raises(KeyboardInterrupt):
        save([dg.ones(2)], tmp_path / "checkpoint.dg")
    assert os.listdir(tmp_path) == []


def test_saving_through_a_symlink_replaces_the_file_it_points_to(tmp_path):
    (tmp_path / "real.dg").write_bytes(b"old")
    (tmp_path / "latest.dg").symlink_to(tmp_path / "real.dg")
    save({"epoch": 3}, tmp_path / "latest.dg")
    assert (tmp_path / "latest.dg").is_symlink() and load(tmp_path / "real.dg") == {"epoch": 3}


# --- corrupt and hostile files -----------------------------------------------------------------
CORRUPT = "is not a distgrad checkpoint or is corrupt"


@pytest.fixture
def checkpoint(tmp_path):
    path = tmp_path / "checkpoint.dg"
    save({"w": dg.arange(50, dtype=dg.float64), "step": 7}, path)
    return path


@pytest.mark.parametrize("keep", [0.0, 0.1, 0.5, 0.9, 0.99])
def test_truncated_files_give_the_clear_error(checkpoint, keep):
    data = checkpoint.read_bytes()
    checkpoint.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(RuntimeError, match=f"{checkpoint}.* {CORRUPT}"):
        load(checkpoint)


def test_a_bit_flip_in_array_data_fails_the_checksum(checkpoint):
    data = bytearray(checkpoint.read_bytes())
    data[data.index(np.float64(49.0).tobytes())] ^= 0x01
    checkpoint.write_bytes(bytes(data))
    with pytest.raises(RuntimeError, match=f"{CORRUPT}: entry arrays/0.npy: Bad CRC-32 for file 'arrays/0.npy'"):
        load(checkpoint)


def test_a_bit_flip_in_the_description_fails_the_checksum(checkpoint):
    data = bytearray(checkpoint.read_bytes())
    data[data.index(b'"step"') + 1] ^= 0x20
    checkpoint.write_bytes(bytes(data))
    with pytest.raises(RuntimeError, match=f"{CORRUPT}: entry distgrad.json: Bad CRC-32 for file 'distgrad.json'"):
        load(checkpoint)


def test_any_single_bit_flip_loads_the_same_values_or_gives_the_clear_error(checkpoint):
    data = checkpoint.read_bytes()
    for position in range(0, len(data), 7):
        flipped = bytearray(data)
        flipped[position] ^= 0x10
        checkpoint.write_bytes(bytes(flipped))
        try:
            loaded = load(checkpoint)
        except RuntimeError as exc:
            assert CORRUPT in str(exc)
        else:  # the byte was one nothing depends on (a timestamp, say)
            assert loaded["step"] == 7 and loaded["w"].tolist() == list(range(50))


def test_array_data_that_disagrees_with_its_header_is_refused(checkpoint):
    rewrite_member(checkpoint, "arrays/0.npy", lambda raw: raw[:-8])
    with pytest.raises(RuntimeError, match=f"{CORRUPT}: entry arrays/0.npy should hold 400 bytes"):
        load(checkpoint)


@pytest.mark.parametrize("change,message", [
    (lambda m: {**m, "version": 2}, "format version 2; this distgrad reads version 1"),
    (lambda m: {**m, "format": "other"}, "does not describe a distgrad-checkpoint"),
    (lambda m: {**m, "tree": {"type": "function", "name": "os.system"}}, "unknown node"),
    (lambda m: {**m, "tree": {"type": "tensor", "array": 9, "device": "cpu", "requires_grad": False}},
     "arrays/9.npy"),
])
def test_a_description_it_does_not_understand_is_refused(checkpoint, change, message):
    rewrite_manifest(checkpoint, change)
    with pytest.raises(RuntimeError, match=f"{CORRUPT}: .*{message}"):
        load(checkpoint)


def test_other_files_are_refused(tmp_path):
    (tmp_path / "notes.txt").write_text("not a checkpoint")
    with pytest.raises(RuntimeError, match=f"notes.txt {CORRUPT}: File is not a zip file"):
        load(tmp_path / "notes.txt")
    with zipfile.ZipFile(tmp_path / "other.zip", "w") as zf:
        zf.writestr("readme", "hello")
    with pytest.raises(RuntimeError, match=f"{CORRUPT}: .*distgrad.json"):
        load(tmp_path / "other.zip")


class _Payload:
    """Unpickling this would create the file named ``marker``."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_a_pickle_file_is_refused_and_never_run(tmp_path):
    marker = tmp_path / "pwned"
    (tmp_path / "evil.dg").write_bytes(pickle.dumps({"w": _Payload(str(marker))}))
    with pytest.raises(RuntimeError, match=CORRUPT):
        load(tmp_path / "evil.dg")
    assert not marker.exists()


def test_a_pickled_object_array_inside_a_checkpoint_is_refused_and_never_run(checkpoint, tmp_path):
    marker = tmp_path / "pwned"

    def object_array(_):
        buffer = io.BytesIO()
        np.save(buffer, np.array([_Payload(str(marker))], dtype=object), allow_pickle=True)
        return buffer.getvalue()

    rewrite_member(checkpoint, "arrays/0.npy", object_array)
    with pytest.raises(RuntimeError, match=f"{CORRUPT}: entry arrays/0.npy holds Python objects, which would need pickle"):
        load(checkpoint)
    assert not marker.exists()


def test_a_torch_checkpoint_is_refused(tmp_path):
    torch = pytest.importorskip("torch")
    torch.save({"w": torch.ones(2)}, tmp_path / "model.pt")
    with pytest.raises(RuntimeError, match=CORRUPT):
        load(tmp_path / "model.pt")


def test_a_missing_file_is_not_reported_as_corrupt(tmp_path):
    with pytest.raises(FileNotFoundError):
        load(tmp_path / "absent.dg")


# --- map_location ------------------------------------------------------------------------------
@pytest.fixture
def saved_on_cuda1(checkpoint):
    """A checkpoint that says its tensor was saved on cuda:1 (a GPU this machine may not have)."""
    def move(manifest):
        manifest["tree"]["values"][0]["device"] = "cuda:1"
        return manifest
    rewrite_manifest(checkpoint, move)
    return checkpoint


def test_loading_onto_a_missing_gpu_says_so_and_how_to_load_on_the_cpu(saved_on_cuda1):
    if dg.cuda.device_count() > 1:
        pytest.skip("this machine has a cuda:1")
    with pytest.raises(RuntimeError, match=r"saved on cuda:1, to be loaded on cuda:1, but \d GPU\(s\) are visible "
                                           r"here; pass map_location='cpu'"):
        load(saved_on_cuda1)


@pytest.mark.parametrize("map_location", ["cpu", dg.device("cpu"), {"cuda:1": "cpu"}])
def test_map_location_brings_tensors_to_the_cpu(saved_on_cuda1, map_location):
    loaded = load(saved_on_cuda1, map_location=map_location)
    assert loaded["w"].device == "cpu" and loaded["w"].tolist() == list(range(50))


def test_map_location_dict_leaves_unnamed_devices_alone(checkpoint):
    loaded = load(checkpoint, map_location={"cuda:3": "cuda:0"})
    assert loaded["w"].device == "cpu"


@pytest.mark.parametrize("map_location,error,message", [
    ("tpu", ValueError, "unknown device type 'tpu'"),
    (42, TypeError, "map_location must be None, a device string"),
])
def test_bad_map_location_is_refused_before_the_file_is_read(map_location, error, message, tmp_path):
    with pytest.raises(error, match=message):
        load(tmp_path / "absent.dg", map_location=map_location)


@pytest.mark.cuda
@pytest.mark.skipif(not dg.cuda.is_available(), reason="needs CuPy and a GPU")
def test_gpu_tensors_come_back_on_their_gpu_or_where_mapped(tmp_path):
    t = dg.arange(4, device="cuda:0")
    assert round_trip(t, tmp_path).device == t.device
    assert round_trip(t, tmp_path, map_location="cpu").device == "cpu"
    assert round_trip(dg.arange(4), tmp_path, map_location={"cpu": "cuda:0"}).device == "cuda:0"


# --- checkpoints of a training run -------------------------------------------------------------
def train(params, opt, scheduler, steps, seed):
    rng = np.random.default_rng(seed)
    for _ in range(steps):
        for p in params:
            p.grad = dg.tensor(rng.standard_normal(p.shape))
        opt.step()
        scheduler.step()


def build(values):
    params = [dg.tensor(v, requires_grad=True) for v in values]
    opt = optim.AdamW([{"params": params[:1]}, {"params": params[1:], "weight_decay": 0.0}], lr=0.1, amsgrad=True)
    scheduler = optim.lr_scheduler.SequentialLR(
        opt, [optim.lr_scheduler.LinearLR(opt, 0.1, total_iters=2), optim.lr_scheduler.CosineAnnealingLR(opt, 5)],
        milestones=[2])
    return params, opt, scheduler


def test_a_saved_training_run_resumes_exactly(tmp_path):
    start = [np.ones((2, 3)), np.zeros(4)]
    params, opt, scheduler = build(start)
    train(params, opt, scheduler, 3, seed=0)
    save({"params": params, "optimizer": opt.state_dict(), "scheduler": scheduler.state_dict(), "epoch": 3},
         tmp_path / "run.dg")
    train(params, opt, scheduler, 3, seed=1)

    checkpoint = load(tmp_path / "run.dg")
    assert sorted(checkpoint["optimizer"]["state"]) == [0, 1] and checkpoint["epoch"] == 3
    resumed_params, resumed_opt, resumed_scheduler = build([p.array for p in checkpoint["params"]])
    resumed_opt.load_state_dict(checkpoint["optimizer"])
    resumed_scheduler.load_state_dict(checkpoint["scheduler"])
    train(resumed_params, resumed_opt, resumed_scheduler, 3, seed=1)
    for p, q in zip(resumed_params, params):
        np.testing.assert_array_equal(p.array, q.array)
    assert resumed_scheduler.get_last_lr() == scheduler.get_last_lr()
