import os
import signal

import pytest

from deepslim.auto.engine import _InterruptWatch, proxy_epochs


def test_ctrl_c_swallowed_by_a_trial_still_ends_the_search():
    outer = signal.signal(signal.SIGINT, signal.default_int_handler)  # pytest-xdist workers ignore SIGINT
    try:
        _swallowed_interrupt_is_raised_again()
    finally:
        signal.signal(signal.SIGINT, outer)


def test_an_ignored_sigint_stays_ignored():
    outer = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with _InterruptWatch() as watch:
            assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
            os.kill(os.getpid(), signal.SIGINT)  # ignored: nothing raises
            watch(None, None)
    finally:
        signal.signal(signal.SIGINT, outer)


def _swallowed_interrupt_is_raised_again():
    with _InterruptWatch() as watch:
        try:  # code that wraps every exception, as an ONNX export does
            try:
                os.kill(os.getpid(), signal.SIGINT)
                for _ in range(10_000):  # give the handler a bytecode boundary to run at
                    pass
            except BaseException as exc:
                raise RuntimeError("export failed") from exc
        except RuntimeError:
            pass  # the search records a failed trial and would go on ...
        with pytest.raises(KeyboardInterrupt):
            watch(None, None)  # ... but the callback after the trial ends it
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the handler is put back


def test_proxy_epochs_scale_down_to_at_least_one():
    assert proxy_epochs({"epochs": 20}, 0.15) == 3
    assert proxy_epochs({"epochs": 6}, 0.1) == 1
