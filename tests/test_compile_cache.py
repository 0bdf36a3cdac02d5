"""ZOO_COMPILE_CACHE (common.training.compile_cache): one cache folder per configuration, so a run never loads the
graph of another configuration (MindSpore's own cache, keyed on the Python files only, does: a run with 3 classes
after one with 2 died in Gather); a folder in use by another run is left alone. That a run which loads a kept graph
ends bit-identical to one that compiled is checked by the resume test (tests/test_train_e2e.py), whose resumed runs
load the graph of the uninterrupted one."""
import os

import pytest
from conftest import step_config

from common.training import compile_cache


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("ZOO_COMPILE_CACHE", str(tmp_path / "cc"))
    monkeypatch.setenv("MS_COMPILER_CACHE_ENABLE", "0")  # restored after the test: the function sets both
    monkeypatch.setenv("MS_COMPILER_CACHE_PATH", "")
    return tmp_path / "cc"


def dense(classes):
    from mindspore import nn

    return nn.Dense(8, classes)


FACTS = {"train_images": 8, "val_images": 0, "rank": 0, "group_size": 1, "amp": "O0"}


def test_each_configuration_gets_its_own_folder(cache, monkeypatch):
    cfg = step_config(num_classes=2, image_size=32)
    key = compile_cache.graph_key(cfg, dense(2), FACTS)
    assert key == compile_cache.graph_key(step_config(num_classes=2, image_size=32), dense(2), FACTS)
    assert key == compile_cache.graph_key(step_config(num_classes=2, image_size=32, output_dir="/elsewhere",
                                                      resume="auto"), dense(2), FACTS)  # file names only
    others = [compile_cache.graph_key(step_config(num_classes=3, image_size=32), dense(2), FACTS),
              compile_cache.graph_key(step_config(num_classes=2, image_size=64), dense(2), FACTS),
              compile_cache.graph_key(cfg, dense(3), FACTS),
              compile_cache.graph_key(cfg, dense(2), dict(FACTS, train_images=12)),
              compile_cache.graph_key(cfg, dense(2), dict(FACTS, rank=1))]
    monkeypatch.setenv("ZOO_FUSED_BN", "0")
    others.append(compile_cache.graph_key(cfg, dense(2), FACTS))
    assert len({key, *others}) == 1 + len(others)


def test_kept_then_used_and_a_folder_in_use_is_left_alone(cache):
    cfg = step_config(num_classes=2)
    first = compile_cache.use_compile_cache(cfg, dense(2), FACTS)
    folder = cache / compile_cache.graph_key(cfg, dense(2), FACTS)
    assert first == f"compile cache: this run's graph is kept in '{folder}' for later runs of this configuration"
    assert os.environ["MS_COMPILER_CACHE_ENABLE"] == "1" and os.environ["MS_COMPILER_CACHE_PATH"] == str(folder)
    # the same configuration while this process holds the folder: another run must not read a graph being written
    again = compile_cache.use_compile_cache(cfg, dense(2), FACTS)
    assert again.startswith("compile cache: off for this run") and "in use" in again
    # a folder holding MindSpore's rank_0/ from an earlier run, free: used
    other = step_config(num_classes=5)
    (cache / compile_cache.graph_key(other, dense(5), FACTS) / "rank_0" / "graph_cache").mkdir(parents=True)
    assert compile_cache.use_compile_cache(other, dense(5), FACTS).startswith("compile cache: using the graph")


def test_off_without_the_variable_and_mindspores_own_cache_gets_a_warning(monkeypatch):
    monkeypatch.delenv("ZOO_COMPILE_CACHE", raising=False)
    monkeypatch.setenv("MS_COMPILER_CACHE_ENABLE", "0")
    assert compile_cache.use_compile_cache(step_config(), dense(2), FACTS) is None
    monkeypatch.setenv("MS_COMPILER_CACHE_ENABLE", "1")
    note = compile_cache.use_compile_cache(step_config(), dense(2), FACTS)
    assert note.startswith("warning: MS_COMPILER_CACHE_ENABLE=1") and "ZOO_COMPILE_CACHE=DIR" in note
