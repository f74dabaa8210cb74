"""Writes the TensorFlow checkpoints under tests/data/tf/ and expected.json, the arrays' fingerprints as
TensorFlow's own reader (tf.train.load_checkpoint) returns them: the independent reference that
tests/test_tfcheckpoint.py compares zoo.tfcheckpoint.read_tf_checkpoint with.

Needs TensorFlow (not a zoo dependency; the tests never import this file):

    python -m venv /tmp/tfvenv && /tmp/tfvenv/bin/pip install tensorflow-cpu numpy
    /tmp/tfvenv/bin/python tests/data/tf/make_fixtures.py

Fixtures (all tiny):
- cin_v1.ckpt: a V1 checkpoint (tf.compat.v1.train.Saver(write_version=V1), the format of magenta's 2016
  `multistyle-pastiche-generator-*.ckpt`) with every variable of magenta's image_stylization transformer
  (`model.transform`, names as in zoo.methods.cin.official_name) at width 2 (alpha = 1/16) and 3 styles, plus
  global_step (int64 scalar), an int32, an int64 and a float64 variable (negative values included) and a
  float32 variable partitioned into 3 slices.
- cin_v2.ckpt.{index,data-00000-of-00001}: the same variables written by the V2 Saver.
- float16_v1.ckpt, float16_v2.ckpt.*: one float16 variable (a dtype the reader refuses).
- object_v2-1.*: a TF2 object-based checkpoint (tf.train.Checkpoint), with its _CHECKPOINTABLE_OBJECT_GRAPH.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import tensorflow as tf

tf1 = tf.compat.v1
HERE = Path(__file__).resolve().parent
WIDTH, NUM_STYLES = 2, 3


def cin_variables(width: int, num_styles: int) -> dict[str, tuple[int, ...]]:
    """magenta `model.transform`'s variables and shapes (HWIO kernels, [num_styles, C] γ/β)."""
    convs = {"transformer/contract/conv1": (9, 3, width), "transformer/contract/conv2": (3, width, 2 * width),
             "transformer/contract/conv3": (3, 2 * width, 4 * width)}
    for i in range(1, 6):
        for j in (1, 2):
            convs[f"transformer/residual/residual{i}/conv{j}"] = (3, 4 * width, 4 * width)
    convs.update({"transformer/expand/conv1/conv": (3, 4 * width, 2 * width),
                  "transformer/expand/conv2/conv": (3, 2 * width, width),
                  "transformer/expand/conv3/conv": (9, width, 3)})
    shapes = {}
    for scope, (k, cin, cout) in convs.items():
        shapes[f"{scope}/weights"] = (k, k, cin, cout)
        shapes[f"{scope}/InstanceNorm/beta"] = (num_styles, cout)
        shapes[f"{scope}/InstanceNorm/gamma"] = (num_styles, cout)
    return shapes


def build_cin_graph(rng: np.random.Generator) -> None:
    for name, shape in cin_variables(WIDTH, NUM_STYLES).items():
        value = rng.standard_normal(shape).astype(np.float32)
        if name.endswith("/weights"):
            value *= 0.1
        elif name.endswith("/gamma"):
            value = 1.0 + 0.2 * value
        tf1.get_variable(name, initializer=tf1.constant(value))
    step = tf1.train.get_or_create_global_step()
    tf1.add_to_collection("init_ops", tf1.assign(step, 40000))
    tf1.get_variable("extra/int32_counts", initializer=tf1.constant(np.array([3, -7, 0, 2**31 - 1, -2**31], np.int32)))
    tf1.get_variable("extra/int64_ids", initializer=tf1.constant(np.array([1, -1, 2**40, -(2**62)], np.int64)))
    tf1.get_variable("extra/float64_table", initializer=tf1.constant(rng.standard_normal((2, 3))))
    tf1.get_variable("extra/partitioned", shape=(7, 4), dtype=tf.float32,
                     initializer=tf1.random_normal_initializer(seed=1), partitioner=tf1.fixed_size_partitioner(3))


def build_float16_graph(rng: np.random.Generator) -> None:
    tf1.get_variable("half/weights", initializer=tf1.constant(rng.standard_normal((2, 2)).astype(np.float16)))


def save_v1_v2(build, v1_path: Path, v2_prefix: Path, seed: int) -> None:
    with tf.Graph().as_default(), tf1.Session() as sess:
        build(np.random.default_rng(seed))
        sess.run(tf1.global_variables_initializer())
        sess.run(tf1.get_collection("init_ops"))
        v1 = tf1.train.Saver(write_version=tf1.train.SaverDef.V1)
        v2 = tf1.train.Saver(write_version=tf1.train.SaverDef.V2)
        v1.save(sess, str(v1_path), write_meta_graph=False, write_state=False)
        v2.save(sess, str(v2_prefix), write_meta_graph=False, write_state=False)


def save_object_checkpoint() -> Path:
    ckpt = tf.train.Checkpoint(dense=tf.Variable(np.arange(6, dtype=np.float32).reshape(2, 3)))
    path = ckpt.write(str(HERE / "object_v2")) if hasattr(ckpt, "write") else ckpt.save(str(HERE / "object_v2"))
    return Path(path)


def fingerprint(array: np.ndarray) -> dict:
    array = np.ascontiguousarray(array)
    return {"shape": list(array.shape), "dtype": str(array.dtype),
            "sha256": hashlib.sha256(array.tobytes()).hexdigest(), "sum": float(np.sum(array, dtype=np.float64))}


def expected(path: Path) -> dict:
    """What TensorFlow's reader gives: fingerprints of the supported variables, the others' dtypes."""
    reader = tf.train.load_checkpoint(str(path))
    shapes = reader.get_variable_to_shape_map()
    out = {"variables": {}, "others": {}}
    for name, dtype in sorted(reader.get_variable_to_dtype_map().items()):
        if dtype in (tf.float32, tf.float64, tf.int32, tf.int64):
            try:
                value = reader.get_tensor(name)
            except tf.errors.UnimplementedError:  # "Sliced checkpoints are not supported": restore the whole
                spec = " ".join(map(str, shapes[name])) + " " + ":".join("-" for _ in shapes[name])
                value = tf.raw_ops.RestoreV2(prefix=str(path), tensor_names=[name], shape_and_slices=[spec],
                                             dtypes=[dtype])[0].numpy()
            out["variables"][name] = fingerprint(value)
        else:
            out["others"][name] = dtype.name
    return out


def main() -> None:
    for old in HERE.iterdir():
        if old.name.startswith(("cin_", "float16_", "object_", "checkpoint")):
            old.unlink()
    save_v1_v2(build_cin_graph, HERE / "cin_v1.ckpt", HERE / "cin_v2.ckpt", seed=0)
    save_v1_v2(build_float16_graph, HERE / "float16_v1.ckpt", HERE / "float16_v2.ckpt", seed=1)
    object_path = save_object_checkpoint()
    fixtures = {"cin_v1.ckpt": HERE / "cin_v1.ckpt", "cin_v2.ckpt": HERE / "cin_v2.ckpt",
                object_path.name: object_path}
    doc = {
        "generator": "tests/data/tf/make_fixtures.py",
        "tensorflow": tf.__version__,
        "numpy": np.__version__,
        "cin": {"width": WIDTH, "num_styles": NUM_STYLES},
        "fixtures": {name: expected(path) for name, path in fixtures.items()},
        "float16": {name: expected(HERE / name) for name in ("float16_v1.ckpt", "float16_v2.ckpt")},
    }
    (HERE / "expected.json").write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")
    for f in sorted(HERE.iterdir()):
        print(f"{f.stat().st_size:8d}  {f.name}")


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    main()
