"""Cycle models of the hardware units, below the mapper.

Each model is a pure function of the spec (and the work handed to the unit) that counts what
the generated RTL does, cycle for cycle; a test runs the RTL and compares. This package
imports only :mod:`sparseforge.spec` and NumPy: the mapper (:mod:`sparseforge.dataflow`)
consults these models, the simulator (:mod:`sparseforge.sim`) composes them, and the RTL
package (:mod:`sparseforge.hwgen`) may import their constants, never the other way round.

============================  ==========================================  ============================
module                        models                                      checked against the RTL by
============================  ==========================================  ============================
:mod:`.engine`                the weight-stationary (``hwgen.engine``)    tests/test_rtl_engine.py,
                              and output-stationary (``hwgen.os_engine``) tests/test_rtl_os.py,
                              GEMM engines behind one :class:`EngineModel` tests/test_rtl_train.py
:mod:`.memory`                DRAM and the double-buffered on-chip        (a model of the board's
                              buffers around the engine                   memory system; no RTL)
:mod:`.sore`                  the SORE mask generator (``hwgen.sore``)    tests/test_rtl_sore.py
:mod:`.hashmerge`             the hash-merge unit (``hwgen.hashmerge``)   tests/test_spgemm_rtl.py
:mod:`.moe`                   the MoE expert scheduler (``hwgen.moe``)    tests/test_moe_rtl.py
============================  ==========================================  ============================
"""
