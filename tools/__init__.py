"""Developer tools (not installed with rtlgen): benchmarks (``bench.py``, ``bench_sim.py``, ``bench_optin.py``), the
planner's calibration against yosys (``calibrate.py``) and their shared result rendering (``results.py``), training
(``train.py`` with the Brevitas ResNets of ``resnets.py``), ONNX Runtime quantization (``quantize_ort.py``), the ECP5
cross-check, the repository's structural rules (``house.py``) and the byte-identity check of a refactoring
(``identical.py``). Each script runs as ``python tools/NAME.py``."""
