"""One BLAS thread for work whose result, or speed, depends on the thread count."""

from __future__ import annotations

import functools

from threadpoolctl import ThreadpoolController

_CONTROLLER = ThreadpoolController()


def one_blas_thread(function):
    """``function`` run with single-threaded BLAS/LAPACK (the previous limits restored after).

    Two uses: training, whose products OpenBLAS rounds differently with one thread than with
    several (so a network trained on a 2-core machine differed from one trained with one
    thread), and batched solves of many small matrices, which gain nothing from threads (on
    a loaded 2-core machine OpenBLAS's thread hand-offs made them about 10x slower).
    """

    @functools.wraps(function)
    def serial(*args, **kwargs):
        with _CONTROLLER.limit(limits=1, user_api="blas"):
            return function(*args, **kwargs)

    return serial
