"""Another CPU, emulated: PyTorch's portable kernels instead of its AVX2/AVX-512 ones, and AVX2
code paths in MKL and oneDNN. Float results differ in the last bits, as on another machine,
and the closed-loop pendulum turns that into other trajectories."""

OTHER_CPU = {"ATEN_CPU_CAPABILITY": "default", "MKL_ENABLE_INSTRUCTIONS": "AVX2",
             "ONEDNN_MAX_CPU_ISA": "AVX2"}  # fmt: skip
