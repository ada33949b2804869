"""The one perfkit logger (guide 2.3): a child per component, silent until asked, whole lines from many
threads, and the batcher and throughput runs log through it."""
from __future__ import annotations

import io
import logging
import threading

import numpy as np
import pytest

import perfkit as pk
from perfkit.log import get_logger, log_to_stderr


def test_children_of_one_logger_and_silent_by_default():
    root = logging.getLogger("perfkit")
    assert get_logger() is root and get_logger("bench.batcher").parent.name in ("perfkit.bench", "perfkit")
    assert get_logger("bench").name == "perfkit.bench"
    assert any(isinstance(h, logging.NullHandler) for h in root.handlers)
    for bad in ("", " x", "a..b", "1x", 3):
        with pytest.raises(pk.ArgumentError):
            get_logger(bad)


def test_many_threads_write_whole_lines(monkeypatch):
    h = log_to_stderr("DEBUG")
    assert log_to_stderr("INFO") is h                   # one handler, its level changed
    buf = io.StringIO()
    monkeypatch.setattr(h, "stream", buf)
    h.setLevel(logging.DEBUG)
    log = get_logger("test")
    log.setLevel(logging.DEBUG)

    def talk(i):
        for k in range(200):
            log.debug("thread %d line %d %s", i, k, "x" * 50)
    threads = [threading.Thread(target=talk, args=(i,), name=f"talker-{i}") for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    lines = [ln for ln in buf.getvalue().splitlines() if "perfkit.test" in ln]
    assert len(lines) == 16 * 200
    for ln in lines:                                    # never two records on one line, never a cut one
        assert ln.endswith("x" * 50) and ln.count("perfkit.test") == 1
        i = int(ln.split("thread ")[1].split()[0])
        assert f"[talker-{i}]" in ln
    logging.getLogger("perfkit").removeHandler(h)
    with pytest.raises(pk.ArgumentError):
        log_to_stderr("LOUD")


def test_batcher_logs_its_batches(caplog):
    net = pk.models.mlp((4, 4), seed=0, name="logged")
    eng = pk.Builder("cpu").build(net, pk.BuilderConfig(max_batch_size=4, tactics="default"))
    with caplog.at_level(logging.DEBUG, logger="perfkit"):
        with pk.bench.DynamicBatcher(eng, 4, 0.0, name="lb") as b:
            b.infer({"data": np.zeros(4, np.float32)})
    names = {r.name for r in caplog.records}
    assert "perfkit.bench.batcher" in names
    assert any("batch 0" in r.getMessage() for r in caplog.records)
    assert any(r.threadName.startswith("perfkit-lb-") for r in caplog.records)


def test_builder_refuses_a_second_thread_and_names_the_first(monkeypatch):
    b = pk.Builder("cpu")
    inside, release = threading.Event(), threading.Event()
    real = type(b)._build

    def slow(self, network, config):
        inside.set()
        release.wait(10)
        return real(self, network, config)
    monkeypatch.setattr(type(b), "_build", slow)
    net = pk.models.mlp((4, 4), seed=0, name="busy")
    first = threading.Thread(target=lambda: b.build(net), name="builder-A")
    first.start()
    assert inside.wait(10)
    try:
        with pytest.raises(pk.BuilderBusyError, match="'builder-A'.*one Builder per thread"):
            b.build(net)
    finally:
        release.set()
        first.join()
    assert b.build(net).max_batch_size >= 1               # free again once the first build ended
