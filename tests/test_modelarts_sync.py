"""ModelArts copies (issue 14): one copy of data_url per server however many processes start, and only rank 0
copies the run folder out. moxing (only on ModelArts images) is replaced by a recorder of the copies asked for."""
import sys
import threading
import time
import types

from easydict import EasyDict


def _fake_moxing(calls):
    def copy_parallel(src_url, dst_url):
        time.sleep(0.2)  # long enough for the other processes to reach the lock meanwhile
        calls.append(("copy_parallel", src_url, dst_url))

    def copy(src, dst):
        calls.append(("copy", src, dst))

    return types.SimpleNamespace(file=types.SimpleNamespace(copy_parallel=copy_parallel, copy=copy))


def _cfg(**kw):
    cfg = dict(enable_modelarts=True, data_url="obs://bucket/imagenet", train_url="obs://bucket/out",
               checkpoint_url="", resume="", pretrained="", data_dir="", output_dir="/tmp/run")
    cfg.update(kw)
    return EasyDict(cfg)


def test_one_process_per_server_copies_the_data_and_only_rank_0_copies_out(tmp_path, monkeypatch):
    from common import modelarts

    calls = []
    monkeypatch.setitem(sys.modules, "moxing", _fake_moxing(calls))
    monkeypatch.setattr(modelarts, "LOCAL_DATA", str(tmp_path / "data"))
    monkeypatch.setattr(modelarts, "LOCK_FILE", str(tmp_path / "sync.lock"))
    cfgs = [_cfg() for _ in range(4)]
    threads = [threading.Thread(target=modelarts.sync_in, args=(c,)) for c in cfgs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert calls == [("copy_parallel", "obs://bucket/imagenet", str(tmp_path / "data"))]
    assert all(c.data_dir == str(tmp_path / "data") for c in cfgs)
    calls.clear()
    for rank in (1, 2, 3):
        modelarts.sync_out(_cfg(), rank=rank)
    assert calls == []
    modelarts.sync_out(_cfg(), rank=0)
    assert calls == [("copy_parallel", "/tmp/run", "obs://bucket/out")]
